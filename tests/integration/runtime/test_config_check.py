"""The configuration check (docs/configuration.md#checking-a-library-before-first-use): the ReShare tenant's
``host_lms_integration`` must be ``manual``, or mod-rs and the bridge would both act in WMS
(docs/reshare.md#host-lms-integration).
"""

from __future__ import annotations

import json

import pytest
import requests

from illbridge.intake import checks
from illbridge.intake.polling import poll_all
from illbridge.wiring import current_services
from sandbox import events
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import reshare_event, signed_headers
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, sim
from tests.staff_cli import illbridge


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts as a new function instance does: no tenant seen "manual" yet
    monkeypatch.setattr(checks, "_verified", {})


def queued(sb: Sandbox, queue: str) -> int:
    sqs = sb.boto3_client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=sb.queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def check_config(*argv: str) -> tuple[int, list[dict]]:
    """``illbridge check-config --json [LIBRARY]``: (exit code, findings)."""
    code, output = illbridge("check-config", *argv, "--json")
    return code, json.loads(output[: output.rindex("]") + 1])


def test_the_demo_libraries_pass_every_check(sb: Sandbox) -> None:
    code, findings = check_config()
    assert code == 0
    assert {(f["library_id"], f["check"]) for f in findings} == {
        (library, check)
        for library in ("east", "west")
        for check in ("secrets", "reshare", "wms-token", "wms", "wms-branch", "wms-probe")
    }
    tokens = [f["detail"] for f in findings if f["check"] == "wms-token" and f["library_id"] == "east"]
    assert tokens == ["token for scope WMS_NCIP", "token for scope SCIM:read_user"]
    assert all(f["ok"] for f in findings), findings
    # every mapped pickup branch is its own visible "check by hand" row, never a silent pass: WMS has no look-up
    branches = {(f["library_id"], f["detail"]): f for f in findings if f["check"] == "wms-branch"}
    assert set(branches) == {
        ("east", "pickup branch 128807 (east-main): not checkable, WMS offers no branch look-up"),
        ("east", "pickup branch 262630 (east-science): not checkable, WMS offers no branch look-up"),
        ("west", "pickup branch 262626 (west-main): not checkable, WMS offers no branch look-up"),
    }
    assert all(not f["checked"] and f["fix"].startswith("Check by hand in WMS") for f in branches.values())
    assert all(f["checked"] for f in findings if f["check"] != "wms-branch")
    probe = next(f for f in findings if f["check"] == "wms-probe")
    assert (
        "check-in probe lookup_user" in probe["detail"]
        and "LookupItem: Unsupported Service" in probe["detail"]
    )


def test_the_check_says_when_wms_answers_neither_look_up(sb: Sandbox) -> None:
    sim(sb, "wms", "POST", "options", lookup_user="unsupported")
    try:
        code, findings = check_config("east")
    finally:
        sim(sb, "wms", "POST", "options", lookup_user="supported")
    assert code == 1
    [probe] = [f for f in findings if f["check"] == "wms-probe"]
    assert not probe["ok"]
    assert (
        "neither LookupUser nor LookupItem" in probe["detail"] and "Update ReShare request" in probe["detail"]
    )
    assert "checkin_probe" in probe["fix"]
    # With LookupItem answered instead, the check names the probe that works
    sim(sb, "wms", "POST", "options", lookup_user="unsupported", lookup_item="supported")
    try:
        code, findings = check_config("east")
    finally:
        sim(sb, "wms", "POST", "options", lookup_user="supported", lookup_item="unsupported")
    assert code == 1
    [probe] = [f for f in findings if f["check"] == "wms-probe"]
    assert not probe["ok"] and "'lookup_item'" in probe["fix"]


def test_a_partner_without_an_agency_id_is_a_configuration_error(sb: Sandbox) -> None:
    east = sb.libraries["east"]  # lending_agency_scheme institution: the registry id must be configured
    assert checks.agency_id_findings(east) == []
    broken = east.model_copy(update={"partner_agency_ids": {}})
    [finding] = checks.agency_id_findings(broken)
    assert not finding.ok and "RESHARE:WEST" in finding.detail and "partner_agency_ids" in finding.fix
    assert broken.lending_agency_id("RESHARE:WEST") is None  # never a placeholder such as "UNKNOWN"
    assert broken.lending_agency_id(None) is None


def test_a_tenant_that_calls_wms_itself_is_not_polled_until_it_is_switched_to_manual(sb: Sandbox) -> None:
    # Given west's ReShare tenant set to call WMS itself, and a pair west has shipped
    sim(sb, "reshare", "POST", "settings", tenant="west", key="host_lms_integration", value="wms2")
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0901"}], lender_state="RES_ITEM_SHIPPED")
    before = queued(sb, "LendShippedQueue")
    # When the check runs, Then it fails for west, naming the setting and the fix
    code, findings = check_config("west")
    assert code == 1
    [reshare] = [f for f in findings if f["check"] == "reshare"]
    assert not reshare["ok"] and "'wms2'" in reshare["detail"] and "manual" in reshare["fix"]
    # When the poller runs, Then it refuses west (the run fails: retries, then the schedule's DLQ and alarm),
    # east is still polled, and nothing of west's reaches a step queue
    summary = {f"{r.library_id}/{r.side}": r for r in poll_all(current_services())}
    assert summary["west/lending"].error and "host_lms_integration" in summary["west/lending"].error
    assert summary["east/borrowing"].error is None
    with pytest.raises(Exception, match="host_lms_integration"):
        sb.invoke("ReSharePollerFunction", events.load("reshare_poller/scheduled.json"))
    assert queued(sb, "LendShippedQueue") == before
    # and a signed webhook about west's request is answered 503 (the relay tries again later), nothing queued
    body = json.dumps(
        reshare_event("west", pair["lender"]["id"], "t", "RES_ITEM_SHIPPED", None), separators=(",", ":")
    )
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/reshare",
        data=body,
        headers=signed_headers(WEBHOOK_SECRETS["west"], body),
        timeout=30,
    )
    assert answer.status_code == 503 and "host_lms_integration" in answer.json()["message"], answer.text
    assert queued(sb, "LendShippedQueue") == before
    # When staff switch it to manual, Then the next poll takes up the shipment (a failed check is not cached)
    sim(sb, "reshare", "POST", "settings", tenant="west", key="host_lms_integration", value="manual")
    assert sb.invoke("ReSharePollerFunction", events.load("reshare_poller/scheduled.json"))["failed"] == 0
    assert queued(sb, "LendShippedQueue") == before + 1


def test_the_table_names_the_fix_and_an_expired_partner_account_fails(sb: Sandbox) -> None:
    # Given west's tenant switched to call WMS itself: the table (not only --json) says what to set
    sim(sb, "reshare", "POST", "settings", tenant="west", key="host_lms_integration", value="wms2")
    try:
        code, output = illbridge("check-config", "west")
    finally:
        sim(sb, "reshare", "POST", "settings", tenant="west", key="host_lms_integration", value="manual")
    assert code == 1 and "FAIL" in output
    assert "host_lms_integration to 'manual'" in output and "1 check(s) failed" in output
    # the branch rows show as "by hand" with what to check, in the table as in --json
    assert "by hand" in output and "Check by hand in WMS that 262626" in " ".join(output.split())
    code, output = illbridge("check-config", "west")
    assert code == 0 and "every check passed; 1 to check by hand in WMS" in " ".join(output.split())
    # Given east's partner account for west expired in east's WMS
    sim(sb, "wms", "POST", "patrons", registry_id="128807", barcode="ILL-WEST", expires="2020-01-31")
    try:
        code, findings = check_config("east")
    finally:
        sim(sb, "wms", "POST", "patrons", registry_id="128807", barcode="ILL-WEST", expires="2030-12-31")
    assert code == 1
    [expired] = [f for f in findings if not f["ok"]]
    assert "'ILL-WEST' is expired on 2020-01-31" in expired["detail"] and "Renew" in expired["fix"]
    assert check_config("east")[0] == 0
