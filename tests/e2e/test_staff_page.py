"""The staff page (GET /ops/) and the ops API, as staff use them: in a real browser, headless Chromium from
Debian's ``chromium`` package (``apt-get install -y chromium``; the README's test setup and ``.ci/run`` install
it). A request made to fail (a patron WMS does not know) shows on the page with its reason, its fix and its
timeline; after the patron is added in WMS the page's Retry button completes it and clears the item. A
screenshot of the failing request is kept at tests/artifacts/staff-page.png (gitignored).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import html as lxml_html

from illbridge.wiring import current_services
from sandbox import events
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, settle, ship_and_receive, sim

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EAST_REGISTRY = "128807"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install Debian's chromium package (apt-get install -y chromium), as .ci/run does",
)


def browse(url: str, profile: Path, *extra: str) -> Any:
    """Load ``url`` in headless Chromium; the DOM it rendered (parsed)."""
    answer = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",  # tests run as root in containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1400,1100",
            *extra,
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert "<html" in answer.stdout, answer.stderr[-2000:]
    return lxml_html.fromstring(answer.stdout)


def texts(dom: Any, xpath: str) -> list[str]:
    return [" ".join(node.text_content().split()) for node in dom.xpath(xpath)]


def screenshot(url: str, profile: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1400,1100",
            "--hide-scrollbars",
            f"--screenshot={target}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )


def test_a_failed_request_shows_on_the_page_and_its_retry_button_completes_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = sandbox
    gateway = sb.urls["gateway"]
    # Given a borrowed item received at east for a patron WMS does not know
    pair = create_pair(sb, patron_barcode="EAST-P-9999", volumes=[{"item_barcode": "WEST-ITEM-0005"}])
    hrid, borrower_id = pair["hrid"], pair["borrower"]["id"]
    ship_and_receive(sb, pair, ["WEST-ITEM-0005"])
    [item] = [a for a in current_services().store.list_attention("east") if a.request_id == borrower_id]

    # When staff open the page for the request (the browser renders what the server sent: no script at all)
    page = f"{gateway}/ops/?hrid={hrid}&library=east"
    dom = browse(page, tmp_path / "profile")
    # Then they find the reason, the fix and the timeline of the failed step
    assert not dom.xpath("//script")
    [section] = dom.xpath("//section[contains(@class, 'request')]")
    assert f"Request {hrid} at east" in section.text_content()
    assert (
        item.reason in texts(section, ".//td[@class='reason']")
        and "9999" in item.reason
        and "EAST-P-9999" not in item.reason
    )
    assert item.fix in texts(section, ".//td[@class='fix']")
    timeline = texts(section, ".//table[@class='timeline']/tbody/tr")
    assert any("SCIM patron look-up" in row and "problem" in row for row in timeline), timeline
    assert any("attention raised" in row for row in timeline), timeline
    assert "FAILED" in texts(section, ".//td[@class='status-FAILED']")
    # and the attention list on the same page has it, with its retry command
    listed = [row for row in texts(dom, "//*[@id='attention']//tbody/tr") if hrid in row]
    assert len(listed) == 1 and item.reason in listed[0] and item.retry in listed[0]
    screenshot(page, tmp_path / "profile", ARTIFACTS / "staff-page.png")
    assert (ARTIFACTS / "staff-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The ops API says the same as JSON (and its sample event drives the function as API Gateway would)
    sample = sb.invoke("OpsApiFunction", events.load("ops_api/attention.json"))
    assert sample["statusCode"] == 200 and hrid in sample["body"]
    answer = requests.get(f"{gateway}/ops/attention", params={"library": "east"}, timeout=30)
    assert answer.status_code == 200
    assert [i["reason"] for i in answer.json()["items"] if i["hrid"] == hrid] == [item.reason]
    view = requests.get(f"{gateway}/ops/requests/east/{hrid}", timeout=30).json()
    assert (view["side"], view["request_id"]) == ("borrowing", borrower_id)
    assert [s["status"] for s in view["steps"] if s["step"] == "borrow_received"] == ["FAILED"]
    assert requests.get(f"{gateway}/ops/requests/east/EAST-NOPE", timeout=30).status_code == 404
    refused = requests.post(f"{gateway}/ops/requests/east/{hrid}/retry", json={"step": "nope"}, timeout=30)
    assert refused.status_code == 400 and "borrow_received" in refused.json()["error"]

    # When the patron is added in WMS and staff press the page's Retry button (a plain form post)
    sim(sb, "wms", "POST", "patrons", registry_id=EAST_REGISTRY, barcode="EAST-P-9999", expires="2030-12-31")
    [form] = section.xpath(".//form[@method='post']")
    fields = {i.get("name"): i.get("value") for i in form.xpath(".//input")}
    assert fields == {"step": "borrow_received"}
    posted = requests.post(f"{gateway}{form.get('action')}", data=fields, allow_redirects=False, timeout=30)
    assert posted.status_code == 303
    assert (
        posted.headers["Location"].startswith("/ops/?")
        and "retried=borrow_received" in posted.headers["Location"]
    )
    settle(sb)

    # Then the page shows the step done, the temp item made in WMS, and nothing left on the list
    dom = browse(f"{gateway}{posted.headers['Location']}", tmp_path / "profile")
    [section] = dom.xpath("//section[contains(@class, 'request')]")
    assert "Retry sent for borrow_received" in " ".join(texts(dom, "//p[@class='notice']"))
    assert "SUCCEEDED" in texts(section, ".//td[@class='status-SUCCEEDED']")
    assert any(
        "AcceptItem" in row and "success" in row
        for row in texts(section, ".//table[@class='timeline']/tbody/tr")
    )
    assert not [row for row in texts(dom, "//*[@id='attention']//tbody/tr") if hrid in row]
    assert requests.get(f"{gateway}/ops/attention", timeout=30).json()["items"] == []
