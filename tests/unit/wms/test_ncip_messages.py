"""The NCIP messages the bridge sends: schema-valid, in OCLC's CircILL dialect, values in the right places."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import xmlschema
from lxml import etree

from illbridge.config.library import WmsSettings
from illbridge.wms import ncip
from tests.reference import NCIP_XSD

XSD = NCIP_XSD
NS = {"n": "http://www.niso.org/2008/ncip"}
SCHEME = "{http://www.niso.org/2008/ncip}Scheme"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


@pytest.fixture
def settings() -> WmsSettings:
    return WmsSettings(
        registry_id="128807",
        ncip_url="http://127.0.0.1:9140/ncip",
        oauth_url="http://127.0.0.1:9140/oauth/token",
        scim_url="http://127.0.0.1:9140/idaas/scim/v2/Users/.search",
        wskey="east-wskey",
        wskey_secret="east-secret",
    )


def valid(schema: xmlschema.XMLSchema, message: bytes) -> etree._Element:
    """Assert the message is UTF-8 with a declaration and validates; return its root."""
    assert message.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    schema.validate(message.decode("utf-8"))
    return etree.fromstring(message)


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, f"{path}: {len(found)} matches"
    return found[0]


def value(root: etree._Element, path: str) -> str:
    return one(root, path).text


def full_accept_item(settings: WmsSettings, **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "request_id": "EAST-1001",
        "temp_item_barcode": "ILL-T-1001",
        "lending_agency_id": "WEST",
        "patron_barcode": "EAST-P-0001",
        "pickup_branch": "262630",
        "date_for_return": datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "title": "The Hobbit",
        "author": "J. R. R. Tolkien",
        "publisher": "Harper Collins",
        "publication_date": "1997",
        "call_number": "PR6039.O32 H633 1997",
        "edition": "1997",
        "pickup_expiry": datetime(2025, 2, 20, tzinfo=UTC),
    }
    fields.update(overrides)
    return ncip.accept_item(settings, **fields)  # type: ignore[arg-type]


# --- the header and the root, common to every message ----------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda s: full_accept_item(s),
        lambda s: ncip.check_out_item(s, item_barcode="EAST-ITEM-0001", user_barcode="ILL-WEST"),
        lambda s: ncip.check_in_item(s, item_barcode="EAST-ITEM-0001"),
        lambda s: ncip.lookup_item(s, item_barcode="EAST-ITEM-0001"),
    ],
    ids=["AcceptItem", "CheckOutItem", "CheckInItem", "LookupItem"],
)
def test_every_message_has_the_circill_header_and_a_qualified_version(schema, settings, build):
    # Given the library's WMS settings
    # When any message is built
    root = valid(schema, build(settings))
    # Then the root carries the qualified ncip:version of the samples
    assert root.get("{http://www.niso.org/2008/ncip}version") == (
        "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
    )
    assert root.get("version") is None
    # And the InitiationHeader names ReShare -> WMS Circ, the registry id both ways, profile 2.00
    header = one(root, "/n:NCIPMessage/*/n:InitiationHeader")
    from_system = one(header, "n:FromSystemId")
    assert (from_system.text, from_system.get(SCHEME)) == ("ReShare", ncip.SYSTEM_ID_SCHEME)
    to_system = one(header, "n:ToSystemId")
    assert (to_system.text, to_system.get(SCHEME)) == ("WMS Circ", ncip.SYSTEM_ID_SCHEME)
    for side in ("FromAgencyId", "ToAgencyId"):
        agency = one(header, f"n:{side}/n:AgencyId")
        assert (agency.text, agency.get(SCHEME)) == ("128807", ncip.INSTITUTION_ID_SCHEME)
    profile = one(header, "n:ApplicationProfileType")
    assert (profile.text, profile.get(SCHEME)) == ("2.00", ncip.APPLICATION_PROFILE_SCHEME)


def test_dialect_values_come_from_the_settings(schema, settings):
    # Given a library configured with OCLC's own values instead of ReShare's
    custom = settings.model_copy(
        update={
            "from_system_id": "WSILL",
            "requested_action_type": "Circulate",
            "requested_action_type_scheme": (
                "http://www.niso.org/ncip/v1_0/imp1/schemes/requestedactiontype/requestedactiontype.scm"
            ),
            "request_id_prefix": "X-",
        }
    )
    # When an AcceptItem is built
    root = valid(schema, full_accept_item(custom))
    # Then those values are what is sent
    assert value(root, "//n:FromSystemId") == "WSILL"
    action = one(root, "//n:AcceptItem/n:RequestedActionType")
    assert action.text == "Circulate"
    assert action.get(SCHEME).endswith("/requestedactiontype/requestedactiontype.scm")
    assert value(root, "//n:RequestId/n:RequestIdentifierValue") == "X-EAST-1001"


# --- AcceptItem -------------------------------------------------------------------------------------------


def test_accept_item_with_every_field(schema, settings):
    # Given a received ILL item with full bibliographic data
    # When the AcceptItem is built
    root = valid(schema, full_accept_item(settings))
    accept = one(root, "/n:NCIPMessage/n:AcceptItem")
    # Then the elements come in the order of AcceptItemReceived.xml (and of the schema)
    assert [etree.QName(child).localname for child in accept] == [
        "InitiationHeader",
        "RequestId",
        "RequestedActionType",
        "UserId",
        "ItemId",
        "DateForReturn",
        "ItemOptionalFields",
        "PickupLocation",
        "PickupExpiryDate",
    ]
    # And the request id is the ILL Request Id "ReShareRequest" + hrid
    request_type = one(accept, "n:RequestId/n:RequestIdentifierType")
    assert (request_type.text, request_type.get(SCHEME)) == ("ILL Request Id", ncip.REQUEST_ID_TYPE_SCHEME)
    assert value(accept, "n:RequestId/n:RequestIdentifierValue") == "ReShareRequestEAST-1001"
    # And ReShare's requested action
    action = one(accept, "n:RequestedActionType")
    assert action.text == "Hold For Fulfillment"
    assert action.get(SCHEME) == (
        "http://www.oclc.org/ncip/schemes/ws-illv1_0requestedactiontype/requestedactiontype.scm"
    )
    # And the patron by barcode, with the NISO visible user id scheme
    user_type = one(accept, "n:UserId/n:UserIdentifierType")
    assert (user_type.text, user_type.get(SCHEME)) == ("Barcode", ncip.USER_ID_TYPE_SCHEME)
    assert value(accept, "n:UserId/n:UserIdentifierValue") == "EAST-P-0001"
    # And the temp item barcode, owned by the lender (symbol scheme by default)
    lender = one(accept, "n:ItemId/n:AgencyId")
    assert (lender.text, lender.get(SCHEME)) == ("WEST", ncip.SYMBOL_SCHEME)
    item_type = one(accept, "n:ItemId/n:ItemIdentifierType")
    assert (item_type.text, item_type.get(SCHEME)) == ("Barcode", ncip.ITEM_ID_TYPE_SCHEME)
    assert value(accept, "n:ItemId/n:ItemIdentifierValue") == "ILL-T-1001"
    # And the lender's due date in UTC with a Z
    assert value(accept, "n:DateForReturn") == "2025-03-01T10:00:00Z"
    # And the bibliographic description in schema order, with the call number
    description = one(accept, "n:ItemOptionalFields/n:BibliographicDescription")
    assert [(etree.QName(c).localname, c.text) for c in description] == [
        ("Author", "J. R. R. Tolkien"),
        ("Edition", "1997"),
        ("PublicationDate", "1997"),
        ("Publisher", "Harper Collins"),
        ("Title", "The Hobbit"),
    ]
    assert value(accept, "n:ItemOptionalFields/n:ItemDescription/n:CallNumber") == "PR6039.O32 H633 1997"
    # And the pickup branch with the branchid scheme, and the pickup expiry
    pickup = one(accept, "n:PickupLocation")
    assert (pickup.text, pickup.get(SCHEME)) == ("262630", ncip.PICKUP_LOCATION_SCHEME)
    assert value(accept, "n:PickupExpiryDate") == "2025-02-20T00:00:00Z"


def test_accept_item_minimal_leaves_optional_elements_out(schema, settings):
    # Given an item without due date, bibliographic data or pickup expiry
    message = ncip.accept_item(
        settings,
        request_id="EAST-1002",
        temp_item_barcode="ILL-T-1002",
        lending_agency_id="WEST",
        patron_barcode="EAST-P-0001",
        pickup_branch="128807",
    )
    # When it is built
    root = valid(schema, message)
    accept = one(root, "/n:NCIPMessage/n:AcceptItem")
    # Then only the required and always-sent elements are there
    assert [etree.QName(child).localname for child in accept] == [
        "InitiationHeader",
        "RequestId",
        "RequestedActionType",
        "UserId",
        "ItemId",
        "PickupLocation",
    ]


def test_accept_item_call_number_only_and_bibliographic_level_and_medium(schema, settings):
    # Given a call number but no bibliographic data, then bibliographic level and medium type
    only_call_number = valid(
        schema,
        full_accept_item(
            settings, title=None, author=None, publisher=None, publication_date=None, edition=None
        ),
    )
    with_level = valid(
        schema, full_accept_item(settings, bibliographic_level="Monograph", medium_type="Book")
    )
    # Then ItemOptionalFields has only the ItemDescription in the first
    optional_fields = one(only_call_number, "//n:ItemOptionalFields")
    assert [etree.QName(child).localname for child in optional_fields] == ["ItemDescription"]
    # And the second carries level and medium with their schemes after the title
    level = one(with_level, "//n:BibliographicDescription/n:BibliographicLevel")
    assert (level.text, level.get(SCHEME)) == ("Monograph", ncip.BIBLIOGRAPHIC_LEVEL_SCHEME)
    medium = one(with_level, "//n:BibliographicDescription/n:MediumType")
    assert (medium.text, medium.get(SCHEME)) == ("Book", ncip.MEDIUM_TYPE_SCHEME)


def test_accept_item_lender_as_institution_registry_id(schema, settings):
    # Given a lender WMS knows by its registry id
    # When the scheme is "institution" (argument or library setting)
    by_argument = valid(
        schema, full_accept_item(settings, lending_agency_id="91475", lending_agency_scheme="institution")
    )
    by_setting = valid(
        schema,
        full_accept_item(
            settings.model_copy(update={"lending_agency_scheme": "institution"}), lending_agency_id="91475"
        ),
    )
    # Then the item's AgencyId uses the institution id scheme
    for root in (by_argument, by_setting):
        lender = one(root, "//n:AcceptItem/n:ItemId/n:AgencyId")
        assert (lender.text, lender.get(SCHEME)) == ("91475", ncip.INSTITUTION_ID_SCHEME)


def test_accept_item_naive_dates_are_utc_and_dates_are_midnight(schema, settings):
    # Given a naive datetime and a plain date
    root = valid(
        schema,
        full_accept_item(
            settings, date_for_return=datetime(2025, 3, 1, 8, 30), pickup_expiry=date(2025, 2, 20)
        ),
    )
    # Then both are sent as UTC with a Z
    assert value(root, "//n:DateForReturn") == "2025-03-01T08:30:00Z"
    assert value(root, "//n:PickupExpiryDate") == "2025-02-20T00:00:00Z"


def test_text_is_escaped_and_control_characters_are_dropped(schema, settings):
    # Given a title with markup characters and a control character
    root = valid(schema, full_accept_item(settings, title='Cats & <Dogs> "quoted"\x07', author="Zoë"))
    # Then it travels intact as text, minus the character XML cannot carry
    assert value(root, "//n:Title") == 'Cats & <Dogs> "quoted"'
    assert value(root, "//n:Author") == "Zoë"


def test_the_request_id_prefix_is_not_doubled(schema, settings):
    # Given an hrid that already carries the prefix
    root = valid(schema, full_accept_item(settings, request_id="ReShareRequestEAST-1"))
    # Then it is sent once
    assert value(root, "//n:RequestIdentifierValue") == "ReShareRequestEAST-1"


@pytest.mark.parametrize(
    "field", ["request_id", "temp_item_barcode", "lending_agency_id", "patron_barcode", "pickup_branch"]
)
def test_accept_item_refuses_blank_required_values(settings, field):
    # Given a required value that is blank
    # When the message is built
    # Then it is refused before anything is sent
    with pytest.raises(ValueError, match=field):
        full_accept_item(settings, **{field: "  "})


def test_accept_item_refuses_an_unknown_agency_scheme(settings):
    with pytest.raises(ValueError, match="lending_agency_scheme"):
        full_accept_item(settings, lending_agency_scheme="isil")


# --- CheckOutItem -----------------------------------------------------------------------------------------


def test_check_out_item_to_an_account_with_every_field(schema, settings):
    # Given a shipped loan to the borrowing institution's patron account, with a due date
    message = ncip.check_out_item(
        settings,
        item_barcode="EAST-ITEM-0001",
        user_barcode="ILL-WEST",
        request_id="EAST-2001",
        desired_date_due=datetime(2025, 4, 1, 23, 59, 59, tzinfo=UTC),
        shipped_at=datetime(2025, 3, 1, 9, 15, tzinfo=UTC),
    )
    # When it is built
    root = valid(schema, message)
    checkout = one(root, "/n:NCIPMessage/n:CheckOutItem")
    # Then the order follows CheckOutItemToInstitutionForILL.xml
    assert [etree.QName(child).localname for child in checkout] == [
        "InitiationHeader",
        "MandatedAction",
        "UserId",
        "ItemId",
        "RequestId",
        "DesiredDateDue",
    ]
    assert value(checkout, "n:MandatedAction/n:DateEventOccurred") == "2025-03-01T09:15:00Z"
    user_type = one(checkout, "n:UserId/n:UserIdentifierType")
    assert (user_type.text, user_type.get(SCHEME)) == ("Barcode", ncip.USER_ID_TYPE_SCHEME)
    assert value(checkout, "n:UserId/n:UserIdentifierValue") == "ILL-WEST"
    assert value(checkout, "n:ItemId/n:ItemIdentifierValue") == "EAST-ITEM-0001"
    assert one(checkout, "n:ItemId/n:ItemIdentifierType").get(SCHEME) == ncip.ITEM_ID_TYPE_SCHEME
    assert value(checkout, "n:RequestId/n:RequestIdentifierType") == "ILL Request Id"
    assert value(checkout, "n:RequestId/n:RequestIdentifierValue") == "ReShareRequestEAST-2001"
    assert value(checkout, "n:DesiredDateDue") == "2025-04-01T23:59:59Z"


def test_check_out_item_to_an_institution_symbol_minimal(schema, settings):
    # Given a checkout to an OCLC symbol, without request id, due date or shipping date
    root = valid(
        schema, ncip.check_out_item(settings, item_barcode="EAST-ITEM-0002", institution_symbol="NDOSU")
    )
    checkout = one(root, "/n:NCIPMessage/n:CheckOutItem")
    # Then only header, user and item are sent, the user as an OCLC Institution Symbol
    assert [etree.QName(child).localname for child in checkout] == ["InitiationHeader", "UserId", "ItemId"]
    user_type = one(checkout, "n:UserId/n:UserIdentifierType")
    assert (user_type.text, user_type.get(SCHEME)) == ("OCLC Institution Symbol", ncip.OCLC_USER_ID_SCHEME)
    assert value(checkout, "n:UserId/n:UserIdentifierValue") == "NDOSU"


@pytest.mark.parametrize(
    "users", [{}, {"user_barcode": "ILL-WEST", "institution_symbol": "NDOSU"}], ids=["neither", "both"]
)
def test_check_out_item_needs_exactly_one_user(settings, users):
    with pytest.raises(ValueError, match="exactly one"):
        ncip.check_out_item(settings, item_barcode="EAST-ITEM-0001", **users)


# --- CheckInItem ------------------------------------------------------------------------------------------


def test_check_in_by_barcode(schema, settings):
    # Given an item barcode
    root = valid(schema, ncip.check_in_item(settings, item_barcode="ILL-T-1001"))
    checkin = one(root, "/n:NCIPMessage/n:CheckInItem")
    # Then the item goes by Barcode (CheckInBarcodedItem.xml) and nothing optional is sent
    assert [etree.QName(child).localname for child in checkin] == ["InitiationHeader", "ItemId"]
    item_type = one(checkin, "n:ItemId/n:ItemIdentifierType")
    assert (item_type.text, item_type.get(SCHEME)) == ("Barcode", ncip.ITEM_ID_TYPE_SCHEME)
    assert value(checkin, "n:ItemId/n:ItemIdentifierValue") == "ILL-T-1001"


def test_check_in_by_request_id_with_the_return_time(schema, settings):
    # Given the ILL request's hrid and when the return happened
    root = valid(
        schema,
        ncip.check_in_item(
            settings, request_id="EAST-1001", occurred_at=datetime(2025, 5, 2, 14, 0, tzinfo=UTC)
        ),
    )
    checkin = one(root, "/n:NCIPMessage/n:CheckInItem")
    # Then it is sent like CheckInRequestedItem.xml: MandatedAction, then the ILL Request Id as the item id
    assert [etree.QName(child).localname for child in checkin] == [
        "InitiationHeader",
        "MandatedAction",
        "ItemId",
    ]
    assert value(checkin, "n:MandatedAction/n:DateEventOccurred") == "2025-05-02T14:00:00Z"
    item_type = one(checkin, "n:ItemId/n:ItemIdentifierType")
    assert (item_type.text, item_type.get(SCHEME)) == ("ILL Request Id", ncip.REQUEST_ID_TYPE_SCHEME)
    assert value(checkin, "n:ItemId/n:ItemIdentifierValue") == "ReShareRequestEAST-1001"


@pytest.mark.parametrize("ids", [{}, {"item_barcode": "A", "request_id": "B"}], ids=["neither", "both"])
def test_check_in_needs_exactly_one_identifier(settings, ids):
    with pytest.raises(ValueError, match="exactly one"):
        ncip.check_in_item(settings, **ids)


# --- LookupItem -------------------------------------------------------------------------------------------


def test_lookup_item_asks_for_circulation_status_and_description(schema, settings):
    # Given an item barcode
    root = valid(schema, ncip.lookup_item(settings, item_barcode="EAST-ITEM-0001"))
    lookup = one(root, "/n:NCIPMessage/n:LookupItem")
    # Then the item goes by barcode and the circulation status and item description are asked for
    assert [etree.QName(child).localname for child in lookup] == [
        "InitiationHeader",
        "ItemId",
        "ItemElementType",
        "ItemElementType",
    ]
    assert value(lookup, "n:ItemId/n:ItemIdentifierValue") == "EAST-ITEM-0001"
    asked = [(e.text, e.get(SCHEME)) for e in lookup.xpath("n:ItemElementType", namespaces=NS)]
    assert asked == [
        ("Circulation Status", ncip.ITEM_ELEMENT_TYPE_SCHEME),
        ("Item Description", ncip.ITEM_ELEMENT_TYPE_SCHEME),
    ]


def test_the_schema_check_can_fail(schema, settings):
    # Given a message with two elements swapped (a builder bug this suite must catch)
    root = etree.fromstring(ncip.check_out_item(settings, item_barcode="I", user_barcode="U"))
    checkout = root[0]
    user, item = checkout[1], checkout[2]
    checkout.remove(user)
    item.addnext(user)
    # When it is validated
    # Then the schema refuses it
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate(etree.tostring(root).decode())


def test_lookup_item_can_ask_for_the_current_borrower(schema, settings):
    # Given a lookup that must tell who has the item (verifying a checkout whose answer was lost)
    root = valid(schema, ncip.lookup_item(settings, item_barcode="EAST-ITEM-0001", current_borrower=True))
    lookup = one(root, "/n:NCIPMessage/n:LookupItem")
    # Then CurrentBorrowerDesired follows the element types, as the schema orders it
    assert etree.QName(lookup[-1]).localname == "CurrentBorrowerDesired"


# --- the "reshare" message profile: exactly what ReShare's WMS adapter (NCIP2WMS2Client) sends ----------


def elements(root: etree._Element) -> list[str]:
    """Every element below the operation, as slash paths (local names), in document order."""
    operation = root[0]
    return [
        "/".join(etree.QName(e).localname for e in reversed([n, *n.iterancestors()][:-2]))
        for n in operation.iter()
        if n is not operation and isinstance(n.tag, str)
    ]


def test_reshare_profile_accept_item_is_what_ncip2wms2client_sends(schema, settings):
    reshare = settings.model_copy(update={"message_profile": "reshare"})
    root = valid(schema, full_accept_item(reshare, bibliographic_level="Monograph", medium_type="Book"))
    body = [p for p in elements(root) if not p.startswith("InitiationHeader")]
    assert body == [
        "RequestId",
        "RequestId/RequestIdentifierType",
        "RequestId/RequestIdentifierValue",
        "RequestedActionType",
        "UserId",
        "UserId/UserIdentifierType",
        "UserId/UserIdentifierValue",
        "ItemId",
        "ItemId/AgencyId",
        "ItemId/ItemIdentifierType",
        "ItemId/ItemIdentifierValue",
        "ItemOptionalFields",
        "ItemOptionalFields/BibliographicDescription",
        "ItemOptionalFields/BibliographicDescription/Author",
        "ItemOptionalFields/BibliographicDescription/PublicationDate",
        "ItemOptionalFields/BibliographicDescription/Publisher",
        "ItemOptionalFields/BibliographicDescription/Title",
        "ItemOptionalFields/ItemDescription",
        "ItemOptionalFields/ItemDescription/CallNumber",
        "PickupLocation",
    ]
    # AcceptItem.modifyForWMS: the library's own registry id, institution scheme (not the lender)
    agency = one(root, "//n:ItemId/n:AgencyId")
    assert (agency.text, agency.get(SCHEME)) == ("128807", ncip.INSTITUTION_ID_SCHEME)


def test_reshare_profile_check_out_and_check_in(schema, settings):
    reshare = settings.model_copy(update={"message_profile": "reshare"})
    out = valid(
        schema,
        ncip.check_out_item(
            reshare,
            item_barcode="EAST-ITEM-0001",
            user_barcode="ILL-WEST",
            request_id="WEST-1",
            desired_date_due=datetime(2025, 3, 1, tzinfo=UTC),
            shipped_at=datetime(2025, 2, 1, tzinfo=UTC),
        ),
    )
    assert [p for p in elements(out) if not p.startswith("InitiationHeader") and "/" not in p] == [
        "UserId",
        "ItemId",
        "RequestId",
        "DesiredDateDue",
    ]  # no MandatedAction
    circill = valid(
        schema,
        ncip.check_out_item(
            settings,
            item_barcode="EAST-ITEM-0001",
            user_barcode="ILL-WEST",
            shipped_at=datetime(2025, 2, 1, tzinfo=UTC),
        ),
    )
    assert "MandatedAction" in elements(circill)
    back = valid(
        schema, ncip.check_in_item(reshare, item_barcode="EAST-ITEM-0001", occurred_at=datetime.now(UTC))
    )
    assert [p for p in elements(back) if not p.startswith("InitiationHeader")] == [
        "ItemId",
        "ItemId/ItemIdentifierType",
        "ItemId/ItemIdentifierValue",
    ]


def test_cancel_request_item_names_the_patron_the_request_and_the_temp_item(schema, settings):
    # lib-ncip-client CancelRequestItem: UserId, RequestId, RequestType Hold, RequestScopeType Item; the temp
    # item's ItemId after the RequestId (NCIP 2.02 allows it) names one volume's hold
    root = valid(
        schema,
        ncip.cancel_request_item(
            settings, request_id="EAST-1001", patron_barcode="EAST-P-0001", item_barcode="EAST-1001-0002"
        ),
    )
    body = one(root, "n:CancelRequestItem")
    assert [etree.QName(child).localname for child in body] == [
        "InitiationHeader",
        "UserId",
        "RequestId",
        "ItemId",
        "RequestType",
        "RequestScopeType",
    ]
    assert value(body, "n:UserId/n:UserIdentifierValue") == "EAST-P-0001"
    assert value(body, "n:RequestId/n:RequestIdentifierValue") == ncip.ill_request_id(settings, "EAST-1001")
    assert value(body, "n:RequestId/n:RequestIdentifierType") == "ILL Request Id"
    assert value(body, "n:ItemId/n:ItemIdentifierValue") == "EAST-1001-0002"
    assert value(body, "n:RequestType") == "Hold" and value(body, "n:RequestScopeType") == "Item"
    with pytest.raises(ValueError):
        ncip.cancel_request_item(settings, request_id="EAST-1001", patron_barcode=" ", item_barcode="X")


def test_a_cancel_request_item_response_is_read_as_the_toolkit_sample_has_it():
    # circill-toolkit binding/ncipv2_02 CancelRequestItemResponse.xml (its values)
    answer = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ns1:NCIPMessage xmlns:ns1="http://www.niso.org/2008/ncip"
  ns1:version="http://www.niso.org/schemas/ncip/v2_02/imp1/xsd/ncip_v2_02.xsd">
  <ns1:CancelRequestItemResponse>
    <ns1:RequestId><ns1:RequestIdentifierValue>101919</ns1:RequestIdentifierValue></ns1:RequestId>
    <ns1:ItemId>
      <ns1:AgencyId ns1:Scheme="localhost/ncip/v1/schemes/agencies/1">MIT</ns1:AgencyId>
      <ns1:ItemIdentifierValue>19823098123</ns1:ItemIdentifierValue>
    </ns1:ItemId>
    <ns1:UserId>
      <ns1:AgencyId ns1:Scheme="localhost/ncip/v1/schemes/agencies/1">MIT</ns1:AgencyId>
      <ns1:UserIdentifierValue>10923123</ns1:UserIdentifierValue>
    </ns1:UserId>
  </ns1:CancelRequestItemResponse>
</ns1:NCIPMessage>"""
    result = ncip.parse_cancel_request_item_response(answer)
    assert (result.request_id, result.item_barcode) == ("101919", "19823098123")
