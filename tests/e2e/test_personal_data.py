"""Personal data and secrets stay out of history, logs and the ops command's output.

Whole lives run with a patron whose barcode, names, e-mail and note are known, one of them with a patron WMS
does not know (an NCIP Problem whose ProblemValue is the barcode), and the demo libraries' secrets. Afterwards
none of these strings may appear in the bridge table's history and attention rows, in anything logged (the
bridge's JSON logs and the runtime's), or in what the ``illbridge`` command prints. The barcode's last four
characters may (``****7731``), that is how staff recognise a patron.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from illbridge.observability import logger as bridge_logger
from illbridge.wiring import current_services
from sandbox.demo import DEMO_LIBRARIES, WEBHOOK_SECRETS
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, settle, ship_and_receive, sim
from tests.staff_cli import illbridge

pytestmark = pytest.mark.e2e

BARCODE = "EAST-P-PRIV-7731"
UNKNOWN_BARCODE = "EAST-P-GHOST-4402"
GIVEN, FAMILY, EMAIL = "Hildegard", "Pemberton-Okonkwo", "hildegard.pemberton@patrons.example"
NOTE = "please call Hildegard on 555-0199"
EAST = "128807"


def private_strings() -> dict[str, str]:
    secrets = {
        f"{library}.{name}": value
        for library, demo in DEMO_LIBRARIES.items()
        for name, value in demo["secrets"].items()
    }
    webhook = {f"{library}.webhook": secret for library, secret in WEBHOOK_SECRETS.items()}
    webhook_keys = {
        f"{library}.webhook key": secret.removeprefix("whsec_") for library, secret in WEBHOOK_SECRETS.items()
    }
    return {
        "barcode": BARCODE,
        "unknown barcode": UNKNOWN_BARCODE,
        "given name": GIVEN,
        "family name": FAMILY,
        "e-mail": EMAIL,
        "note": NOTE,
        **secrets,
        **webhook,
        **webhook_keys,
    }


def leaks(text: str) -> list[str]:
    return [name for name, value in private_strings().items() if value in text]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line: the bridge's Powertools logger (JSON, as CloudWatch gets it, at the template's LogLevel)
    and everything else at INFO (stricter than Lambda's runtime, whose root logger stays at WARNING; DEBUG of
    boto3 would print whole requests, which no deployment turns on)."""
    stream = io.StringIO()
    bridge_handler = logging.StreamHandler(stream)
    bridge_handler.setFormatter(bridge_logger.registered_formatter)
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    bridge = logging.getLogger(bridge_logger.name)
    root = logging.getLogger()
    bridge.addHandler(bridge_handler)
    root.addHandler(plain)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        bridge.removeHandler(bridge_handler)
        root.removeHandler(plain)
        root.setLevel(level)


def table_rows(sb: Sandbox, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The bridge table's rows whose sort key starts with one of ``kinds`` (read the way staff could)."""
    client = sb.boto3_client("dynamodb")
    deserialize = TypeDeserializer().deserialize
    rows = []
    for page in client.get_paginator("scan").paginate(TableName=sb.physical_name("BridgeTable")):
        for item in page["Items"]:
            row = {k: deserialize(v) for k, v in item.items()}
            if str(row.get("sk", "")).startswith(kinds):
                rows.append(row)
    return rows


def ops_output(*argv: str) -> str:
    return illbridge(*argv)[1]


def test_no_barcode_name_or_secret_reaches_history_logs_or_ops_output(
    sandbox: Sandbox, captured_logs: io.StringIO
) -> None:
    sb = sandbox
    # Given a patron WMS knows by name and e-mail, and a request that carries a note
    sim(
        sb,
        "wms",
        "POST",
        "patrons",
        registry_id=EAST,
        barcode=BARCODE,
        expires="2030-12-31",
        home_branch=EAST,
        given_name=GIVEN,
        family_name=FAMILY,
        email=EMAIL,
    )
    for item in ("WEST-ITEM-0741", "WEST-ITEM-0742"):
        sim(sb, "wms", "POST", "items", registry_id="262626", barcode=item, branch="262626", title="Private")
    # When a whole borrowing life runs: received, picked up, returned, shipped back, completed
    pair = create_pair(
        sb, patron_barcode=BARCODE, patron_note=NOTE, volumes=[{"item_barcode": "WEST-ITEM-0741"}]
    )
    east, west = ship_and_receive(sb, pair, ["WEST-ITEM-0741"])
    sim(sb, "wms", "POST", "checkin", barcode=pair["hrid"], branch=EAST)
    sim(sb, "wms", "POST", "checkout", item_barcode=pair["hrid"], patron_barcode=BARCODE)
    sim(sb, "wms", "POST", "checkin", barcode=pair["hrid"], branch=EAST)
    east.act(pair["borrower"]["id"], "patronReturnedItem")
    settle(sb)
    east.act(pair["borrower"]["id"], "shippedReturn")
    settle(sb)
    west.act(pair["lender"]["id"], "supplierCheckOutOfReshare")
    settle(sb)
    assert east.state(pair["borrower"]["id"]) == "REQ_REQUEST_COMPLETE"
    # and a request for a patron WMS does not know: AcceptItem's Problem names the barcode
    ghost = create_pair(sb, patron_barcode=UNKNOWN_BARCODE, volumes=[{"item_barcode": "WEST-ITEM-0742"}])
    ship_and_receive(sb, ghost, ["WEST-ITEM-0742"])
    store = current_services().store
    [item] = [a for a in store.list_attention("east") if a.request_id == ghost["borrower"]["id"]]
    assert UNKNOWN_BARCODE[-4:] in item.reason  # staff still recognise the patron by the last characters

    # Then no history or attention row holds any of them
    rows = table_rows(sb, ("LOG#", "ATTN#"))
    assert rows
    assert {name for row in rows for name in leaks(json.dumps(row, default=str))} == set()
    # nor any log line
    logged = captured_logs.getvalue()
    assert "AcceptItem" in logged
    assert leaks(logged) == []
    # nor what the ops command prints about these requests and the attention list
    printed = (
        "".join(
            ops_output(command, hrid, *extra)
            for hrid in (pair["hrid"], ghost["hrid"])
            for command in ("status", "history")
            for extra in ((), ("--json",))
        )
        + ops_output("attention")
        + ops_output("attention", "--json")
    )
    assert ghost["hrid"] in printed and "****" in printed
    assert leaks(printed) == []
