"""The WMS client against a real local HTTP server: what is sent, and every failure mapped to the right type."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests
import xmlschema
from urllib3.exceptions import MaxRetryError, NameResolutionError, ProtocolError
from wms_fakes import Reply, settings_for, token_reply

from illbridge.errors import (
    ConfigurationError,
    UnsafeXml,
    WmsAuthError,
    WmsOutcomeUnknown,
    WmsProblem,
    WmsProtocolError,
    WmsUnavailable,
)
from illbridge.wms.auth import TokenCache
from illbridge.wms.client import WmsClient
from illbridge.wms.probe import LookupItemProbe, LookupUserProbe, NoProbe, probe_for, verdict
from illbridge.wms.transport import never_sent
from tests.reference import CIRCILL, NCIP_SAMPLES, NCIP_XSD

XSD = str(NCIP_XSD)


def circill(name: str) -> Reply:
    return Reply.xml((CIRCILL / name).read_bytes())


def lookup_answer(status: str, barcode: str = "EAST-ITEM-0001") -> Reply:
    return Reply.xml(
        f"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:LookupItemResponse>
        <n:ItemId><n:ItemIdentifierValue>{barcode}</n:ItemIdentifierValue></n:ItemId>
        <n:ItemOptionalFields><n:CirculationStatus>{status}</n:CirculationStatus></n:ItemOptionalFields>
        </n:LookupItemResponse></n:NCIPMessage>""".encode()
    )


@pytest.fixture
def client(fake_wms):
    fake_wms.route("/oauth/token", token_reply("tok-1"))
    with WmsClient(settings_for(fake_wms), tokens=TokenCache()) as wms:
        yield wms


def slow_client(fake_wms, timeout: float = 0.3) -> WmsClient:
    fake_wms.route("/oauth/token", token_reply("tok-1"))
    return WmsClient(settings_for(fake_wms, timeout_seconds=timeout), tokens=TokenCache())


# --- what goes out ----------------------------------------------------------------------------------------


def test_accept_item_sends_a_valid_message_and_reads_the_answer(fake_wms, client, exchanges):
    # Given WMS accepts the item
    fake_wms.route("/ncip", circill("AcceptItemMinimalResponseSuccess.xml"))
    # When the bridge sends an AcceptItem
    result = client.accept_item(
        request_id="EAST-1001",
        temp_item_barcode="ILL-T-1001",
        lending_agency_id="WEST",
        patron_barcode="EAST-P-0001",
        pickup_branch="262630",
        date_for_return=datetime(2025, 3, 1, tzinfo=UTC),
        title="Dune",
    )
    # Then the answer is read
    assert (result.request_id, result.item_barcode) == ("12345", "ABCDE")
    # And the POST carried XML, a bearer token and a schema-valid NCIP message
    (sent,) = fake_wms.requests_to("/ncip")
    assert sent.headers["content-type"] == "application/xml; charset=utf-8"
    assert sent.headers["authorization"] == "Bearer tok-1"
    xmlschema.XMLSchema(XSD).validate(sent.body.decode())
    # And the call was logged, without secrets and with the patron barcode masked
    (exchange,) = exchanges
    assert exchange.operation == "AcceptItem"
    assert exchange.outcome == "ok" and exchange.http_status == 200 and exchange.attempts == 1
    assert exchange.duration_ms >= 0
    assert "ReShareRequestEAST-1001" in exchange.request_summary
    line = str(exchange.as_dict())
    assert "EAST-P-0001" not in line and "east-secret" not in line and "tok-1" not in line
    assert exchange.as_dict()["started_at"].endswith("Z")


def test_connections_are_reused_between_calls(fake_wms, client):
    # Given several calls in a row
    fake_wms.route("/ncip", circill("CheckInItemMinimalResponseSuccess.xml"))
    for _ in range(3):
        client.check_in_item(item_barcode="ABCDE")
    # Then they all went over one kept-alive connection
    assert len({request.peer for request in fake_wms.requests_to("/ncip")}) == 1


def test_each_operation_reads_its_answer(fake_wms, client):
    fake_wms.route(
        "/ncip",
        circill("CheckOutItemResponseSuccess.xml"),
        circill("CheckInResponseRequestedItemSuccess.xml"),
        lookup_answer("On Loan"),
    )
    assert client.check_out_item(item_barcode="ABCDE", user_barcode="ILL-WEST").due_date == datetime(
        2018, 2, 1, 12, 34, 56, tzinfo=UTC
    )
    assert client.check_in_item(request_id="12345").item_barcode == "12345"
    assert client.lookup_item("EAST-ITEM-0001").circulation_status == "On Loan"


# --- WMS said no ------------------------------------------------------------------------------------------


def test_problem_is_raised_typed_and_recorded(fake_wms, client, exchanges):
    fake_wms.route("/ncip", circill("CheckOutItemResponseUserUnknown.xml"))
    with pytest.raises(WmsProblem) as caught:
        client.check_out_item(item_barcode="ABCDE", user_barcode="ZYXWV")
    assert caught.value.problem_type == "Unknown User"
    assert exchanges[-1].outcome == "problem"
    assert "Unknown User" in exchanges[-1].response_summary


def test_a_problem_carried_by_a_4xx_is_still_the_problem(fake_wms, client):
    body = (CIRCILL / "CheckInResponseBarcodedItemUnknown.xml").read_bytes()
    fake_wms.route("/ncip", Reply(400, body, "application/xml"))
    with pytest.raises(WmsProblem, match="Unknown Item"):
        client.check_in_item(item_barcode="ABCDE")


# --- failures: never sent, sent without answer, answered badly --------------------------------------------


def test_connection_refused_is_unavailable(fake_wms, closed_port, exchanges):
    # Given the token works but nothing listens at the NCIP URL
    fake_wms.route("/oauth/token", token_reply())
    settings = settings_for(fake_wms, ncip_url=f"http://127.0.0.1:{closed_port}/ncip")
    client = WmsClient(settings, tokens=TokenCache())
    # When a changing call is sent
    with client, pytest.raises(WmsUnavailable) as caught:
        client.check_out_item(item_barcode="ABCDE", user_barcode="ILL-WEST")
    # Then it is Unavailable (never sent, safe to retry), not OutcomeUnknown
    assert type(caught.value) is WmsUnavailable
    assert caught.value.transient
    assert exchanges[-1].outcome == "unavailable"
    assert exchanges[-1].http_status is None


def test_dns_failure_is_never_sent_and_a_reset_may_have_been():
    # Given the exception chains requests raises for a failed name lookup and for a reset after sending
    lookup = NameResolutionError("unresolvable-host", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    dns = requests.exceptions.ConnectionError(MaxRetryError(None, "/ncip", lookup))  # type: ignore[arg-type]
    reset = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )
    # Then only the lookup failure counts as never sent
    assert never_sent(dns)
    assert not never_sent(reset)


def test_read_timeout_on_a_changing_call_is_outcome_unknown(fake_wms, exchanges):
    # Given WMS takes longer than the client's read timeout
    client = slow_client(fake_wms, timeout=0.3)
    fake_wms.route("/ncip", Reply(200, b"", delay=1.5))
    started = time.perf_counter()
    # When a CheckOutItem is sent
    with pytest.raises(WmsOutcomeUnknown, match="verify"):
        client.check_out_item(item_barcode="ABCDE", user_barcode="ILL-WEST")
    # Then the client gave up after about its timeout, having sent the call once
    assert time.perf_counter() - started < 1.2
    assert len(fake_wms.requests_to("/ncip")) == 1
    assert exchanges[-1].outcome == "outcome_unknown"
    client.close()


def test_read_timeout_on_a_lookup_is_unavailable(fake_wms):
    client = slow_client(fake_wms, timeout=0.3)
    fake_wms.route("/ncip", Reply(200, b"", delay=1.5))
    with pytest.raises(WmsUnavailable) as caught:
        client.lookup_item("EAST-ITEM-0001")
    assert type(caught.value) is WmsUnavailable
    client.close()


def test_dropped_connection_after_sending_is_outcome_unknown(fake_wms, client):
    # Given WMS reads the call and closes the connection without answering
    fake_wms.route("/ncip", Reply(drop=True))
    # When an AcceptItem is sent
    with pytest.raises(WmsOutcomeUnknown):
        client.accept_item(
            request_id="EAST-1",
            temp_item_barcode="T-1",
            lending_agency_id="WEST",
            patron_barcode="EAST-P-0001",
            pickup_branch="262630",
        )
    # Then it went out exactly once: no automatic retry of a non-idempotent call
    assert len(fake_wms.requests_to("/ncip")) == 1


@pytest.mark.parametrize(
    ("status", "operation", "error"),
    [
        (500, "check_out", WmsUnavailable),
        (502, "check_out", WmsUnavailable),
        (503, "lookup", WmsUnavailable),
        (504, "check_out", WmsOutcomeUnknown),
        (504, "lookup", WmsUnavailable),
        (429, "check_out", WmsUnavailable),
        (403, "check_out", WmsAuthError),
        (400, "check_out", WmsProtocolError),
        (404, "lookup", WmsProtocolError),
        (302, "check_out", WmsProtocolError),
    ],
)
def test_http_statuses_map_to_typed_errors(fake_wms, client, status, operation, error, exchanges):
    fake_wms.route("/ncip", Reply(status, b"<html>oops</html>", "text/html"))
    with pytest.raises(error) as caught:
        if operation == "lookup":
            client.lookup_item("EAST-ITEM-0001")
        else:
            client.check_out_item(item_barcode="ABCDE", user_barcode="ILL-WEST")
    assert type(caught.value) is error
    assert str(status) in str(caught.value)
    assert exchanges[-1].http_status == status
    assert len(fake_wms.requests_to("/ncip")) == 1


def test_unreadable_200_is_a_protocol_error(fake_wms, client, exchanges):
    fake_wms.route("/ncip", Reply(200, b"<html>maintenance</html>", "text/html"))
    with pytest.raises(WmsProtocolError):
        client.check_in_item(item_barcode="ABCDE")
    assert exchanges[-1].outcome == "protocol_error"


def test_hostile_answer_is_refused(fake_wms, client, exchanges):
    fake_wms.route("/ncip", Reply.xml(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'))
    with pytest.raises(UnsafeXml):
        client.check_in_item(item_barcode="ABCDE")
    assert exchanges[-1].outcome == "unsafe_xml"


def test_token_failure_surfaces_on_the_operation(fake_wms, exchanges):
    fake_wms.route("/oauth/token", Reply.json({"error": "invalid_client"}, 401))
    with WmsClient(settings_for(fake_wms), tokens=TokenCache()) as client:
        with pytest.raises(WmsAuthError, match="invalid_client"):
            client.lookup_item("EAST-ITEM-0001")
        assert exchanges[-1].outcome == "auth_error"
        assert fake_wms.requests_to("/ncip") == []


def test_timeouts_come_from_the_settings(fake_wms):
    assert WmsClient(settings_for(fake_wms, timeout_seconds=20)).timeout == (10.0, 20.0)
    assert WmsClient(settings_for(fake_wms, timeout_seconds=0.5)).timeout == (0.5, 0.5)


def test_an_unusable_url_is_a_configuration_error(fake_wms):
    fake_wms.route("/oauth/token", token_reply())
    client = WmsClient(settings_for(fake_wms), tokens=TokenCache())
    client.settings = client.settings.model_copy(update={"ncip_url": "ftp://127.0.0.1/ncip"})
    with pytest.raises(ConfigurationError):
        client.check_in_item(item_barcode="ABCDE")


# --- the check-in probe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "seen_on_loan", "expected"),
    [
        ("On Loan", True, False),
        ("Recalled", True, False),
        ("Lost", True, False),
        ("Available", True, True),
        ("Available On Shelf", True, True),
        ("In Transit", True, True),
        ("On Hold Shelf", True, True),
        ("Unavailable", True, True),
        ("On Order", False, False),
        ("On Hold Shelf", False, False),
        ("In Transit", False, False),
        ("On Loan", False, False),
        ("Unavailable", False, True),
        ("Not Available", False, True),
        (None, True, None),
    ],
)
def test_probe_verdict(status, seen_on_loan, expected):
    assert verdict(status, seen_on_loan=seen_on_loan) is expected


def test_lookup_item_probe_reports_status_and_verdict(fake_wms, client):
    fake_wms.route("/ncip", lookup_answer("Unavailable", "ILL-T-1"), lookup_answer("On Loan", "ILL-T-1"))
    probe = probe_for(client.settings.model_copy(update={"checkin_probe": "lookup_item"}), client)
    assert isinstance(probe, LookupItemProbe)
    returned = probe.is_checked_in("ILL-T-1")
    assert (returned.supported, returned.found, returned.circulation_status, returned.checked_in) == (
        True,
        True,
        "Unavailable",
        True,
    )
    on_loan = probe.is_checked_in("ILL-T-1", seen_on_loan=True)
    assert on_loan.on_loan and on_loan.checked_in is False


def test_lookup_item_probe_unknown_item_and_unsupported_service(fake_wms, client):
    fake_wms.route(
        "/ncip",
        circill("CheckInResponseBarcodedItemUnknown.xml"),  # a Problem: Unknown Item (wrong response name)
        Reply.xml(
            b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:Problem>
            <n:ProblemType>Unsupported Service</n:ProblemType></n:Problem></n:NCIPMessage>"""
        ),
        Reply.xml(
            b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:LookupItemResponse>
            <n:Problem><n:ProblemType>Unknown Item</n:ProblemType></n:Problem></n:LookupItemResponse>
            </n:NCIPMessage>"""
        ),
    )
    probe = LookupItemProbe(client)
    with pytest.raises(WmsProtocolError):  # a CheckInItemResponse is not an answer to LookupItem
        probe.is_checked_in("X")
    unsupported = probe.is_checked_in("X")
    assert (unsupported.supported, unsupported.checked_in) == (False, None)
    unknown = probe.is_checked_in("X")
    assert (unknown.supported, unknown.found, unknown.checked_in) == (True, False, None)


def test_the_default_probe_is_lookup_user_one_call_per_holder(fake_wms, client):
    # OCLC's LookupUserResponse sample: item 09128312 on loan (due 2010-11-20) and also requested.
    fake_wms.route(
        "/ncip", Reply.xml((NCIP_SAMPLES / "other" / "LookupUserResponseSample1.xml").read_bytes())
    )
    probe = probe_for(client.settings, client)
    assert isinstance(probe, LookupUserProbe)
    on_loan = probe.is_checked_in("09128312", holder="987181")
    assert (on_loan.supported, on_loan.found, on_loan.on_loan, on_loan.checked_in) == (
        True,
        True,
        True,
        False,
    )
    assert on_loan.due_date == datetime(2010, 11, 20, 0, 0, 0, 329000, tzinfo=UTC)
    gone = probe.is_checked_in("OTHER-ITEM", seen_on_loan=True, holder="987181")
    assert (gone.found, gone.checked_in) == (False, True)
    undecided = probe.is_checked_in("OTHER-ITEM", holder="987181")  # the loan was never seen: cannot tell
    assert undecided.checked_in is None
    assert probe.calls == 1 and len(fake_wms.requests_to("/ncip")) == 1
    sent = fake_wms.requests_to("/ncip")[0].body
    assert b"LoanedItemsDesired" in sent and b"RequestedItemsDesired" in sent
    assert probe.is_checked_in("09128312").supported is False  # LookupUser needs the holder


def test_lookup_user_probe_unsupported_service(fake_wms, client):
    fake_wms.route(
        "/ncip",
        Reply.xml(
            b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:Problem>
            <n:ProblemType>Unsupported Service</n:ProblemType></n:Problem></n:NCIPMessage>"""
        ),
    )
    result = LookupUserProbe(client).is_checked_in("X", seen_on_loan=True, holder="ILL-WEST")
    assert (result.supported, result.checked_in) == (False, None)


def test_no_probe_never_reports(fake_wms, client):
    probe = probe_for(client.settings.model_copy(update={"checkin_probe": "none"}), client)
    assert isinstance(probe, NoProbe)
    result = probe.is_checked_in("ABCDE", seen_on_loan=True)
    assert (result.supported, result.checked_in) == (False, None)
    assert fake_wms.requests_to("/ncip") == []
