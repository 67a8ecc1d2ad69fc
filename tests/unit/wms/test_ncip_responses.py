"""Reading what WMS answers: every CircILL response sample, Problems as typed errors, lenient namespaces,
and hostile XML refused before any expansion."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from illbridge.errors import UnsafeXml, WmsProblem, WmsProtocolError
from illbridge.wms import ncip
from illbridge.wms.safexml import MalformedXml, parse_xml, text
from tests.reference import NCIP_SAMPLES

SAMPLES = NCIP_SAMPLES
CIRCILL = SAMPLES / "circill"


def sample(name: str) -> bytes:
    return (CIRCILL / name).read_bytes()


# --- successes --------------------------------------------------------------------------------------------


def test_accept_item_minimal_response():
    # Given OCLC's minimal AcceptItem success
    # When it is read
    result = ncip.parse_accept_item_response(sample("AcceptItemMinimalResponseSuccess.xml"))
    # Then the request id and the temp item barcode come back
    assert result == ncip.AcceptItemResult(request_id="12345", item_barcode="ABCDE")


def test_check_out_success_gives_the_real_due_date():
    # Given OCLC's CheckOutItem success (due date after policy)
    result = ncip.parse_check_out_item_response(sample("CheckOutItemResponseSuccess.xml"))
    # Then item, user and the UTC due date are read
    assert result.item_barcode == "ABCDE"
    assert result.user_id == "NDOSU"
    assert result.due_date == datetime(2018, 2, 1, 12, 34, 56, tzinfo=UTC)


def test_check_in_barcoded_success():
    result = ncip.parse_check_in_item_response(sample("CheckInResponseBarcodedItemSuccess.xml"))
    assert result == ncip.CheckInResult(item_barcode="ABCDE", item_id_type="Barcode")


def test_check_in_minimal_success():
    result = ncip.parse_check_in_item_response(sample("CheckInItemMinimalResponseSuccess.xml"))
    assert result.item_barcode == "ABCDE"
    assert result.user_id is None and result.routing_to is None


@pytest.mark.parametrize(
    "name", ["CheckInResponseRequestedItemSuccess.xml", "CheckInResponseRequestedItemUnknown.xml"]
)
def test_check_in_by_request_id_success_and_unknown_are_both_success(name):
    # Given a check-in addressed by ILL request id (an unknown one is a success per OCLC's sample)
    result = ncip.parse_check_in_item_response(sample(name))
    # Then the request id comes back as the item identifier, typed as such
    assert result.item_barcode == "12345"
    assert result.item_id_type == "ILL Request Id"


def test_check_in_with_last_borrower_and_routing():
    # Given a check-in answer with the last borrower and routing to a branch
    answer = b"""<?xml version="1.0"?>
    <ns1:NCIPMessage xmlns:ns1="http://www.niso.org/2008/ncip" ns1:version="x">
      <ns1:CheckInItemResponse>
        <ns1:ItemId><ns1:ItemIdentifierValue>ILL-T-1</ns1:ItemIdentifierValue></ns1:ItemId>
        <ns1:UserId><ns1:UserIdentifierValue>EAST-P-0001</ns1:UserIdentifierValue></ns1:UserId>
        <ns1:RoutingInformation>
          <ns1:RoutingInstructions>Route to 128807</ns1:RoutingInstructions>
          <ns1:Destination><ns1:Location>
            <ns1:LocationType>Permanent</ns1:LocationType>
            <ns1:LocationName>
              <ns1:LocationNameInstance><ns1:LocationNameLevel>1</ns1:LocationNameLevel>
                <ns1:LocationNameValue>East University</ns1:LocationNameValue></ns1:LocationNameInstance>
              <ns1:LocationNameInstance><ns1:LocationNameLevel>2</ns1:LocationNameLevel>
                <ns1:LocationNameValue>128807</ns1:LocationNameValue></ns1:LocationNameInstance>
            </ns1:LocationName>
          </ns1:Location></ns1:Destination>
        </ns1:RoutingInformation>
      </ns1:CheckInItemResponse>
    </ns1:NCIPMessage>"""
    # When it is read
    result = ncip.parse_check_in_item_response(answer)
    # Then the last borrower and the most specific destination are there
    assert result.user_id == "EAST-P-0001"
    assert result.routing_to == "East University/128807"
    assert result.routing_path == ("East University", "128807")
    assert result.routing_instructions == "Route to 128807"


def test_lookup_item_response():
    answer = b"""<NCIPMessage xmlns="http://www.niso.org/2008/ncip" xmlns:n="http://www.niso.org/2008/ncip"
        n:version="x"><LookupItemResponse>
      <ItemId><ItemIdentifierValue>EAST-ITEM-0001</ItemIdentifierValue></ItemId>
      <HoldPickupDate>2025-01-10T00:00:00Z</HoldPickupDate>
      <ItemTransaction><CurrentBorrower><UserId><UserIdentifierValue>ILL-WEST</UserIdentifierValue></UserId>
      </CurrentBorrower></ItemTransaction>
      <ItemOptionalFields>
        <BibliographicDescription><Title>Dune</Title></BibliographicDescription>
        <CirculationStatus n:Scheme="http://worldcat.org/ncip/schemes/v2/extensions/circulationstatus.scm"
          >On Loan</CirculationStatus>
        <ItemDescription><CallNumber>PS3558 .E63</CallNumber></ItemDescription>
        <DateDue>2025-02-01T23:59:59.5Z</DateDue>
      </ItemOptionalFields></LookupItemResponse></NCIPMessage>"""
    status = ncip.parse_lookup_item_response(answer)
    assert status.item_barcode == "EAST-ITEM-0001"
    assert status.circulation_status == "On Loan"
    assert status.circulation_status_scheme.endswith("circulationstatus.scm")
    assert status.current_borrower == "ILL-WEST"
    assert status.title == "Dune" and status.call_number == "PS3558 .E63"
    assert status.due_date == datetime(2025, 2, 1, 23, 59, 59, 500000, tzinfo=UTC)
    assert status.hold_pickup_date == datetime(2025, 1, 10, tzinfo=UTC)


def test_lookup_item_without_a_status_is_a_protocol_error():
    answer = b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:LookupItemResponse>
      <n:ItemId><n:ItemIdentifierValue>X</n:ItemIdentifierValue></n:ItemId></n:LookupItemResponse></n:NCIPMessage>"""
    with pytest.raises(WmsProtocolError, match="CirculationStatus"):
        ncip.parse_lookup_item_response(answer)


# --- Problems ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parse", "operation", "problem_type", "detail", "value"),
    [
        (
            "CheckOutItemResponseItemUnknown.xml",
            ncip.parse_check_out_item_response,
            "CheckOutItem",
            "Unknown Item",
            "UNKNOWN_ITEM",
            "91475/ABCDE",
        ),
        (
            "CheckOutItemResponseUserUnknown.xml",
            ncip.parse_check_out_item_response,
            "CheckOutItem",
            "Unknown User",
            "UNKNOWN_USER",
            "91475/ZYXWV",
        ),
        (
            "CheckOutItemResponseRequirementsNotMet.xml",
            ncip.parse_check_out_item_response,
            "CheckOutItem",
            "Resource Cannot Be Provided",
            "See Use Restrictions and Fee Requirements",
            None,
        ),
        (
            "CheckInResponseBarcodedItemNotOnLoan.xml",
            ncip.parse_check_in_item_response,
            "CheckInItem",
            "Item Not Checked Out",
            "ITEM_NOT_CHECKED_OUT",
            "91475/ABCDE",
        ),
        (
            "CheckInResponseBarcodedItemUnknown.xml",
            ncip.parse_check_in_item_response,
            "CheckInItem",
            "Unknown Item",
            "UNKNOWN_ITEM",
            "91475/ABCDE",
        ),
    ],
)
def test_problem_samples_become_typed_problems(name, parse, operation, problem_type, detail, value):
    # Given one of OCLC's Problem responses
    # When it is read
    with pytest.raises(WmsProblem) as caught:
        parse(sample(name))
    # Then the Problem's type, detail, element and value and the operation are on the error
    problem = caught.value
    assert problem.problem_type == problem_type
    assert problem.detail == detail
    assert problem.value == value
    assert problem.element is None
    assert problem.operation == operation
    assert not problem.transient


def test_problem_element_is_read():
    answer = b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:AcceptItemResponse>
      <n:Problem><n:ProblemType>Duplicate Item</n:ProblemType><n:ProblemDetail>barcode in use</n:ProblemDetail>
      <n:ProblemElement>ItemIdentifierValue</n:ProblemElement><n:ProblemValue>ILL-T-1</n:ProblemValue></n:Problem>
      </n:AcceptItemResponse></n:NCIPMessage>"""
    with pytest.raises(WmsProblem) as caught:
        ncip.parse_accept_item_response(answer)
    assert (caught.value.problem_type, caught.value.element, caught.value.value) == (
        "Duplicate Item",
        "ItemIdentifierValue",
        "ILL-T-1",
    )
    assert str(caught.value) == "AcceptItem: Duplicate Item: barcode in use"


def test_top_level_problem_is_a_typed_problem():
    # Given a messaging error directly under NCIPMessage (e.g. an unsupported service)
    answer = b"""<ncip:NCIPMessage xmlns:ncip="http://www.niso.org/2008/ncip" ncip:version="x"><ncip:Problem>
      <ncip:ProblemType>Unsupported Service</ncip:ProblemType><ncip:ProblemDetail>LookupItem</ncip:ProblemDetail>
      </ncip:Problem></ncip:NCIPMessage>"""
    with pytest.raises(WmsProblem) as caught:
        ncip.parse_lookup_item_response(answer)
    assert caught.value.problem_type == "Unsupported Service"
    assert caught.value.detail == "LookupItem"
    assert caught.value.operation == "LookupItem"


def test_problem_in_reads_without_raising():
    assert ncip.problem_in(sample("CheckOutItemResponseUserUnknown.xml"), "CheckOutItem").problem_type == (
        "Unknown User"
    )
    assert ncip.problem_in(sample("CheckOutItemResponseSuccess.xml"), "CheckOutItem") is None
    assert ncip.problem_in(b"<html/>", "CheckOutItem") is None


# --- unreadable answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"", "not XML"),
        (b"<html><body>502 Bad Gateway</body></html>", "not an NCIP message"),
        (b"Service Unavailable", "not XML"),
        (b"<ncip:NCIPMessage xmlns:ncip='http://www.niso.org/2008/ncip'", "not XML"),
        (b"<NCIPMessage xmlns='urn:other'><CheckOutItemResponse/></NCIPMessage>", "not an NCIP message"),
        (b"<NCIPMessage xmlns='http://www.niso.org/2008/ncip'/>", "empty"),
    ],
)
def test_unreadable_answers_are_protocol_errors(answer, match):
    with pytest.raises(WmsProtocolError, match=match):
        ncip.parse_check_out_item_response(answer)


def test_the_wrong_response_is_a_protocol_error():
    # Given a CheckInItemResponse where a CheckOutItemResponse was expected
    with pytest.raises(WmsProtocolError, match="expected CheckOutItemResponse"):
        ncip.parse_check_out_item_response(sample("CheckInResponseBarcodedItemSuccess.xml"))


def test_missing_identifiers_and_bad_dates_are_protocol_errors():
    base = b"""<n:NCIPMessage xmlns:n="http://www.niso.org/2008/ncip" n:version="x"><n:CheckOutItemResponse>
      <n:ItemId><n:ItemIdentifierValue>A</n:ItemIdentifierValue></n:ItemId>%s</n:CheckOutItemResponse>
      </n:NCIPMessage>"""
    with pytest.raises(WmsProtocolError, match="UserId"):
        ncip.parse_check_out_item_response(base % b"")
    bad_date = (
        b"<n:UserId><n:UserIdentifierValue>U</n:UserIdentifierValue></n:UserId><n:DateDue>soon</n:DateDue>"
    )
    with pytest.raises(WmsProtocolError, match="DateDue"):
        ncip.parse_check_out_item_response(base % bad_date)
    indeterminate = b"<n:UserId><n:UserIdentifierValue>U</n:UserIdentifierValue></n:UserId>"
    assert ncip.parse_check_out_item_response(base % indeterminate).due_date is None


# --- lenient reading --------------------------------------------------------------------------------------


def test_other_prefixes_and_the_default_namespace_read_the_same():
    # Given the success sample, re-prefixed and with a default namespace
    original = sample("CheckOutItemResponseSuccess.xml")
    renamed = original.replace(b"ns1:", b"circ:").replace(b"xmlns:ns1=", b"xmlns:circ=")
    default = original.replace(b"ns1:", b"").replace(b"xmlns:ns1=", b"xmlns=")
    default = default.replace(b'version="http', b'xmlns:v="http://www.niso.org/2008/ncip" v:version="http', 1)
    # When each is read
    # Then all give the same result
    expected = ncip.parse_check_out_item_response(original)
    assert ncip.parse_check_out_item_response(renamed) == expected
    assert ncip.parse_check_out_item_response(default) == expected


def test_no_namespace_at_all_is_read():
    answer = b"""<NCIPMessage version="2.0"><CheckInItemResponse><ItemId>
      <ItemIdentifierValue>B1</ItemIdentifierValue></ItemId></CheckInItemResponse></NCIPMessage>"""
    assert ncip.parse_check_in_item_response(answer).item_barcode == "B1"


def test_mod_ncip_sample_with_unqualified_version_is_read_leniently():
    # Given the mod-ncip LookupUser whose root version is unqualified (it fails strict validation)
    message = ncip.read_message((SAMPLES / "other" / "lookupUser.xml").read_bytes())
    # Then it is read: its operation, its unqualified version and its content
    assert message.name == "LookupUser"
    assert message.version == "http://www.niso.org/schemas/ncip/v2_0/ncip_v2_0.xsd"
    assert text(message.element, "UserId", "UserIdentifierValue") == "8377630"


def test_generic_lookup_user_response_is_read():
    message = ncip.read_message((SAMPLES / "other" / "LookupUserResponseSample1.xml").read_bytes())
    assert message.name == "LookupUserResponse"
    assert message.version == "http://www.niso.org/schemas/ncip/v2_01/imp1/xsd/ncip_v2_01.xsd"
    assert text(message.element, "LoanedItem", "DateDue") == "2010-11-20T00:00:00.329Z"


def test_foreign_namespace_only_when_lenient():
    answer = b"""<x:NCIPMessage xmlns:x="urn:vendor:ncip"><x:CheckInItemResponse/></x:NCIPMessage>"""
    with pytest.raises(WmsProtocolError):
        ncip.read_message(answer)
    assert ncip.read_message(answer, lenient=True).name == "CheckInItemResponse"


# --- hostile XML ------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<NCIPMessage xmlns="http://www.niso.org/2008/ncip"><CheckInItemResponse><ItemId>
<ItemIdentifierValue>&lol9;</ItemIdentifierValue></ItemId></CheckInItemResponse></NCIPMessage>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<NCIPMessage xmlns="http://www.niso.org/2008/ncip"><CheckInItemResponse><ItemId>
<ItemIdentifierValue>&xxe;</ItemIdentifierValue></ItemId></CheckInItemResponse></NCIPMessage>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<NCIPMessage xmlns="http://www.niso.org/2008/ncip"/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE NCIPMessage SYSTEM "http://127.0.0.1:9/ncip.dtd">
<NCIPMessage xmlns="http://www.niso.org/2008/ncip"/>"""

SNEAKY_CASE = b"""<?xml version="1.0"?><!doctype r [<!entity x "y">]><r>&x;</r>"""


@pytest.mark.parametrize(
    "hostile",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        PARAMETER_ENTITY,
        EXTERNAL_DTD,
        SNEAKY_CASE,
        b"<?xml version='1.0'?><!  DOCTYPE r><r/>",
        BILLION_LAUGHS.decode().encode("utf-16"),
    ],
    ids=["billion-laughs", "xxe", "parameter-entity", "external-dtd", "lower-case", "spaced", "utf-16"],
)
def test_hostile_xml_is_refused_before_parsing(hostile):
    # Given XML with a DTD or entity declarations
    started = time.perf_counter()
    # When it is read, as a response or raw
    with pytest.raises(UnsafeXml):
        ncip.parse_check_in_item_response(hostile)
    with pytest.raises(UnsafeXml):
        parse_xml(hostile)
    # Then it is refused at once, without any expansion
    assert time.perf_counter() - started < 0.5


def test_oversized_xml_is_refused():
    huge = b"<NCIPMessage>" + b" " * (2 * 1024 * 1024) + b"</NCIPMessage>"
    with pytest.raises(UnsafeXml, match="bytes"):
        parse_xml(huge)


def test_undeclared_entities_are_malformed_not_expanded():
    with pytest.raises(MalformedXml):
        parse_xml(b"<r>&undefined;</r>")
    with pytest.raises(WmsProtocolError):
        ncip.parse_check_in_item_response(
            b"<NCIPMessage><CheckInItemResponse>&x;</CheckInItemResponse></NCIPMessage>"
        )
