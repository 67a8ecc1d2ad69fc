"""NCIP 2.02 in OCLC's CircILL dialect: message builders and response readers (docs/wms.md#the-circill-dialect
and the sections on each operation after it).

Builders are pure functions of the library's ``WmsSettings`` and typed keyword arguments; each returns the
UTF-8 bytes of one ``NCIPMessage`` (with an XML declaration) that validates against ``ncip_v2_02.xsd``: the
element order follows the schema and OCLC's samples, every ``Scheme`` and the root ``version`` attribute are
namespace-qualified.

Readers take the bytes WMS answered and return a typed result, or raise:
- ``WmsProblem`` for an NCIP ``Problem`` (inside the ``...Response`` or directly under ``NCIPMessage``), with
  its type, detail, element, value and the operation;
- ``UnsafeXml`` for a DTD or entity declaration (refused before parsing);
- ``WmsProtocolError`` for anything else that cannot be read (not XML, not NCIP, another response, a missing
  identifier, a date that is not a date).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from lxml import etree

from illbridge.config.library import WmsSettings
from illbridge.errors import UnsafeXml, WmsProblem, WmsProtocolError
from illbridge.observability import mask
from illbridge.timeutil import iso, to_utc
from illbridge.wms.messages import AcceptItem, CancelRequestItem, CheckInItem, CheckOutItem, WmsMessage
from illbridge.wms.safexml import (
    NCIP_NS,
    MalformedXml,
    attribute,
    children,
    find,
    local_name,
    parse_xml,
    text,
)

# --- the dialect ----------------------------------------------------------------------------------------

NCIP_VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
SYSTEM_ID_SCHEME = "http://oclc.org/ncip/schemes/systemid/oclcsystemid.scm"
INSTITUTION_ID_SCHEME = "http://oclc.org/ncip/schemes/agencyid/institutionid.scm"
SYMBOL_SCHEME = "http://oclc.org/ncip/schemes/agencyid/symbol.scm"
APPLICATION_PROFILE_SCHEME = (
    "http://oclc.org/ncip/schemes/applicationprofiletype/circillapplicationprofiletype.scm"
)
APPLICATION_PROFILE = "2.00"
USER_ID_TYPE_SCHEME = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleuseridentifiertype/visibleuseridentifiertype.scm"
)
ITEM_ID_TYPE_SCHEME = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleitemidentifiertype/visibleitemidentifiertype.scm"
)
BARCODE = "Barcode"
REQUEST_TYPE_SCHEME = "http://www.niso.org/ncip/v1_0/imp1/schemes/requesttype/requesttype.scm"
REQUEST_SCOPE_TYPE_SCHEME = "http://www.niso.org/ncip/v1_0/imp1/schemes/requestscopetype/requestscopetype.scm"
OCLC_USER_ID_SCHEME = "http://oclc.org/ncip/schemes/userid/oclcids.scm"
INSTITUTION_SYMBOL = "OCLC Institution Symbol"
REQUEST_ID_TYPE_SCHEME = "http://oclc.org/ncip/schemes/requestidentifiertype/circillrequestidentifiertype.scm"
ILL_REQUEST_ID = "ILL Request Id"
PICKUP_LOCATION_SCHEME = "http://oclc.org/ncip/schemes/pickuplocation/branchid.scm"
ITEM_ELEMENT_TYPE_SCHEME = "http://www.niso.org/ncip/v1_0/schemes/itemelementtype/itemelementtype.scm"
BIBLIOGRAPHIC_LEVEL_SCHEME = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/bibliographiclevel/bibliographiclevel.scm"
)
MEDIUM_TYPE_SCHEME = "http://worldcat.org/ncip/schemes/v2/extensions/mediumtype.scm"
AGENCY_SCHEMES: dict[str, str] = {"symbol": SYMBOL_SCHEME, "institution": INSTITUTION_ID_SCHEME}

Operation = Literal[
    "AcceptItem", "CheckOutItem", "CheckInItem", "CancelRequestItem", "LookupItem", "LookupUser"
]

# Problem types the workflow treats as "already done" (docs/wms.md#acceptitem, docs/wms.md#checkinitem,
# docs/architecture.md#exactly-once-against-systems-that-are-not-idempotent): an AcceptItem answered
# Duplicate Item for the bridge's own temp barcode; a check-in of something already checked in (ReShare's
# list: Item Not Checked Out, Not On Loan, Unknown Item, 9022). Whether to accept them is the
# caller's decision; the client always raises WmsProblem.
DUPLICATE_ITEM = "Duplicate Item"
CHECK_IN_ALREADY_DONE = frozenset({"Item Not Checked Out", "Not On Loan", "Unknown Item", "9022"})

_SCHEME = f"{{{NCIP_NS}}}Scheme"
_VERSION = f"{{{NCIP_NS}}}version"
# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML_CHAR = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def ill_request_id(settings: WmsSettings, hrid: str) -> str:
    """The ILL Request Id WMS knows a ReShare request by: the configured prefix + the hrid."""
    hrid = _required("request_id", hrid)
    prefix = settings.request_id_prefix
    return hrid if prefix and hrid.startswith(prefix) else f"{prefix}{hrid}"


# --- building -------------------------------------------------------------------------------------------


def _clean(value: str) -> str:
    return _NOT_XML_CHAR.sub("", value).strip()


def _required(name: str, value: str | None) -> str:
    cleaned = _clean(value) if isinstance(value, str) else ""
    if not cleaned:
        raise ValueError(f"{name} is required and must not be blank")
    return cleaned


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _clean(str(value))
    return cleaned or None


def _when(value: datetime | date) -> str:
    moment = to_utc(value)
    assert moment is not None
    return iso(moment)


def _el(
    parent: etree._Element, name: str, value: str | None = None, scheme: str | None = None
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NCIP_NS}}}{name}")
    if scheme is not None:
        element.set(_SCHEME, scheme)
    if value is not None:
        element.text = value
    return element


def _message(settings: WmsSettings, operation: Operation) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{NCIP_NS}}}NCIPMessage", nsmap={"ncip": NCIP_NS})
    root.set(_VERSION, NCIP_VERSION)
    body = _el(root, operation)
    header = _el(body, "InitiationHeader")
    _el(header, "FromSystemId", settings.from_system_id, SYSTEM_ID_SCHEME)
    _el(_el(header, "FromAgencyId"), "AgencyId", settings.registry_id, INSTITUTION_ID_SCHEME)
    _el(header, "ToSystemId", settings.to_system_id, SYSTEM_ID_SCHEME)
    _el(_el(header, "ToAgencyId"), "AgencyId", settings.registry_id, INSTITUTION_ID_SCHEME)
    _el(header, "ApplicationProfileType", APPLICATION_PROFILE, APPLICATION_PROFILE_SCHEME)
    return root, body


def _bytes(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
        root, encoding="UTF-8", xml_declaration=False
    )


def _user_id(parent: etree._Element, value: str, *, id_type: str, scheme: str) -> None:
    user = _el(parent, "UserId")
    _el(user, "UserIdentifierType", id_type, scheme)
    _el(user, "UserIdentifierValue", value)


def _item_id(
    parent: etree._Element,
    value: str,
    *,
    id_type: str = BARCODE,
    scheme: str = ITEM_ID_TYPE_SCHEME,
    agency: tuple[str, str] | None = None,
) -> None:
    item = _el(parent, "ItemId")
    if agency is not None:
        _el(item, "AgencyId", agency[0], agency[1])
    _el(item, "ItemIdentifierType", id_type, scheme)
    _el(item, "ItemIdentifierValue", value)


def _request_id(parent: etree._Element, value: str) -> None:
    request = _el(parent, "RequestId")
    _el(request, "RequestIdentifierType", ILL_REQUEST_ID, REQUEST_ID_TYPE_SCHEME)
    _el(request, "RequestIdentifierValue", value)


def encode(settings: WmsSettings, message: WmsMessage) -> bytes:
    """The NCIP XML of one message value (``illbridge.wms.messages``), for this library's settings."""
    if isinstance(message, AcceptItem):
        return _accept_item(settings, message)
    if isinstance(message, CheckOutItem):
        return _check_out_item(settings, message)
    if isinstance(message, CheckInItem):
        return _check_in_item(settings, message)
    if isinstance(message, CancelRequestItem):
        return _cancel_request_item(settings, message)
    raise TypeError(f"not an NCIP message the bridge sends: {type(message).__name__}")


def _accept_item(settings: WmsSettings, message: AcceptItem) -> bytes:
    """AcceptItem: WMS creates a temporary item (owned by the lender) and an item-level hold for the patron.

    ``request_id`` is the ReShare hrid (the prefix is added); ``lending_agency_scheme`` defaults to the
    library's setting. Element order follows ``AcceptItemReceived.xml``.
    """
    m = message
    lending_agency_id, scheme_name = (
        m.lending_agency_id,
        m.lending_agency_scheme or settings.lending_agency_scheme,
    )
    date_for_return, pickup_expiry = m.date_for_return, m.pickup_expiry
    edition, bibliographic_level, medium_type = m.edition, m.bibliographic_level, m.medium_type
    if settings.message_profile == "reshare":
        # NCIP2WMS2Client: AcceptItem.modifyForWMS puts the library's own registry id on ItemId/AgencyId
        # (institution scheme); no DateForReturn, no PickupExpiryDate; Author, Title, Publisher,
        # PublicationDate and CallNumber only.
        lending_agency_id, scheme_name = settings.registry_id, "institution"
        date_for_return = pickup_expiry = None
        edition = bibliographic_level = medium_type = None
    if scheme_name not in AGENCY_SCHEMES:
        raise ValueError(
            f"lending_agency_scheme must be one of {sorted(AGENCY_SCHEMES)}, not {scheme_name!r}"
        )
    root, body = _message(settings, "AcceptItem")
    _request_id(body, ill_request_id(settings, m.request_id))
    _el(body, "RequestedActionType", settings.requested_action_type, settings.requested_action_type_scheme)
    _user_id(body, _required("patron_barcode", m.patron_barcode), id_type=BARCODE, scheme=USER_ID_TYPE_SCHEME)
    _item_id(
        body,
        _required("temp_item_barcode", m.temp_item_barcode),
        agency=(_required("lending_agency_id", lending_agency_id), AGENCY_SCHEMES[scheme_name]),
    )
    if date_for_return is not None:
        _el(body, "DateForReturn", _when(date_for_return))

    bibliographic = [
        ("Author", _optional(m.author), None),
        ("Edition", _optional(edition), None),
        ("PublicationDate", _optional(m.publication_date), None),
        ("Publisher", _optional(m.publisher), None),
        ("Title", _optional(m.title), None),
        ("BibliographicLevel", _optional(bibliographic_level), BIBLIOGRAPHIC_LEVEL_SCHEME),
        ("MediumType", _optional(medium_type), MEDIUM_TYPE_SCHEME),
    ]
    number = _optional(m.call_number)
    if number or any(value for _, value, _ in bibliographic):
        optional_fields = _el(body, "ItemOptionalFields")
        if any(value for _, value, _ in bibliographic):
            description = _el(optional_fields, "BibliographicDescription")
            for name, value, scheme in bibliographic:
                if value:
                    _el(description, name, value, scheme)
        if number:
            _el(_el(optional_fields, "ItemDescription"), "CallNumber", number)

    _el(body, "PickupLocation", _required("pickup_branch", m.pickup_branch), PICKUP_LOCATION_SCHEME)
    if pickup_expiry is not None:
        _el(body, "PickupExpiryDate", _when(pickup_expiry))
    return _bytes(root)


def _check_out_item(settings: WmsSettings, message: CheckOutItem) -> bytes:
    """CheckOutItem: the lent item out to the borrowing institution's account.

    Exactly one of ``user_barcode`` (a patron account, what ReShare sends) and ``institution_symbol`` (the
    ``OCLC Institution Symbol`` user id). ``shipped_at`` becomes ``MandatedAction/DateEventOccurred`` (the
    item has left: WMS must honour the checkout). Element order follows
    ``CheckOutItemToInstitutionForILL.xml``.
    """
    m = message
    if (m.user_barcode is None) == (m.institution_symbol is None):
        raise ValueError("give exactly one of user_barcode and institution_symbol")
    # NCIP2WMS2Client sends no MandatedAction: UserId, ItemId, RequestId, DesiredDateDue
    shipped_at = None if settings.message_profile == "reshare" else m.shipped_at
    root, body = _message(settings, "CheckOutItem")
    if shipped_at is not None:
        _el(_el(body, "MandatedAction"), "DateEventOccurred", _when(shipped_at))
    if m.user_barcode is not None:
        _user_id(body, _required("user_barcode", m.user_barcode), id_type=BARCODE, scheme=USER_ID_TYPE_SCHEME)
    else:
        _user_id(
            body,
            _required("institution_symbol", m.institution_symbol),
            id_type=INSTITUTION_SYMBOL,
            scheme=OCLC_USER_ID_SCHEME,
        )
    _item_id(body, _required("item_barcode", m.item_barcode))
    if m.request_id is not None:
        _request_id(body, ill_request_id(settings, m.request_id))
    if m.desired_date_due is not None:
        _el(body, "DesiredDateDue", _when(m.desired_date_due))
    return _bytes(root)


def _check_in_item(settings: WmsSettings, message: CheckInItem) -> bytes:
    """CheckInItem by item barcode (``CheckInBarcodedItem.xml``) or by ILL request id
    (``CheckInRequestedItem.xml``: the hrid, prefixed, as an ``ILL Request Id`` item identifier).

    ``occurred_at`` becomes ``MandatedAction/DateEventOccurred`` (when the return happened).
    """
    m = message
    if (m.item_barcode is None) == (m.request_id is None):
        raise ValueError("give exactly one of item_barcode and request_id")
    # NCIP2WMS2Client: the ItemId (Barcode) only
    occurred_at = None if settings.message_profile == "reshare" else m.occurred_at
    root, body = _message(settings, "CheckInItem")
    if occurred_at is not None:
        _el(_el(body, "MandatedAction"), "DateEventOccurred", _when(occurred_at))
    if m.item_barcode is not None:
        _item_id(body, _required("item_barcode", m.item_barcode))
    else:
        _item_id(
            body,
            ill_request_id(settings, m.request_id or ""),
            id_type=ILL_REQUEST_ID,
            scheme=REQUEST_ID_TYPE_SCHEME,
        )
    return _bytes(root)


def _cancel_request_item(settings: WmsSettings, message: CancelRequestItem) -> bytes:
    """CancelRequestItem: cancel the patron's hold on one temp item (OCLC lists the service for WMS's staff
    and patron profiles). The shape of lib-ncip-client's ``CancelRequestItem`` (UserId, RequestId,
    RequestType ``Hold``, RequestScopeType ``Item``) with the temp item's ``ItemId`` after the RequestId, as
    NCIP 2.02 allows, so one volume's hold of a multi-volume request is named exactly."""
    m = message
    root, body = _message(settings, "CancelRequestItem")
    _user_id(body, _required("patron_barcode", m.patron_barcode), id_type=BARCODE, scheme=USER_ID_TYPE_SCHEME)
    _request_id(body, ill_request_id(settings, m.request_id))
    _item_id(body, _required("item_barcode", m.item_barcode))
    _el(body, "RequestType", "Hold", REQUEST_TYPE_SCHEME)
    _el(body, "RequestScopeType", "Item", REQUEST_SCOPE_TYPE_SCHEME)
    return _bytes(root)


# The same messages from keyword arguments (the message's fields), for callers that do not hold a value.


def accept_item(settings: WmsSettings, **fields: Any) -> bytes:
    return encode(settings, AcceptItem(**fields))


def check_out_item(settings: WmsSettings, **fields: Any) -> bytes:
    return encode(settings, CheckOutItem(**fields))


def check_in_item(settings: WmsSettings, **fields: Any) -> bytes:
    return encode(settings, CheckInItem(**fields))


def cancel_request_item(settings: WmsSettings, **fields: Any) -> bytes:
    return encode(settings, CancelRequestItem(**fields))


def lookup_item(settings: WmsSettings, *, item_barcode: str, current_borrower: bool = False) -> bytes:
    """LookupItem by barcode, asking for the circulation status and the item description.

    ``current_borrower=True`` adds ``CurrentBorrowerDesired`` (who has it on loan: for verifying a checkout
    whose answer was lost).
    """
    root, body = _message(settings, "LookupItem")
    _item_id(body, _required("item_barcode", item_barcode))
    _el(body, "ItemElementType", "Circulation Status", ITEM_ELEMENT_TYPE_SCHEME)
    _el(body, "ItemElementType", "Item Description", ITEM_ELEMENT_TYPE_SCHEME)
    if current_borrower:
        _el(body, "CurrentBorrowerDesired")
    return _bytes(root)


def lookup_user(
    settings: WmsSettings,
    *,
    user_barcode: str,
    loaned_items: bool = True,
    requested_items: bool = True,
) -> bytes:
    """LookupUser (OCLC's patron profile) by barcode, asking for the user's loaned and requested items.

    One call lists every loan and hold of a patron or of a borrowing-institution account
    (``LoanedItemsDesired``, ``RequestedItemsDesired``; circill-toolkit ``LookupUserWCLExtSample1.xml``).
    """
    root, body = _message(settings, "LookupUser")
    _user_id(body, _required("user_barcode", user_barcode), id_type=BARCODE, scheme=USER_ID_TYPE_SCHEME)
    if loaned_items:
        _el(body, "LoanedItemsDesired")
    if requested_items:
        _el(body, "RequestedItemsDesired")
    return _bytes(root)


# --- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptItemResult:
    request_id: str
    item_barcode: str | None

    def summary(self) -> str:
        return f"request_id={self.request_id} item={self.item_barcode or '-'}"


@dataclass(frozen=True)
class CheckOutResult:
    item_barcode: str
    user_id: str
    due_date: datetime | None  # None: indeterminate loan period or non-returnable

    def summary(self) -> str:
        due = iso(self.due_date) if self.due_date else "none"
        return f"item={self.item_barcode} user={mask(self.user_id)} due={due}"


@dataclass(frozen=True)
class CheckInResult:
    item_barcode: str  # the ItemIdentifierValue echoed back (a request id when checked in by request id)
    user_id: str | None = None  # the last borrower, when WMS says
    # Where WMS routes the item: the destination's location names by level joined with "/" (WMS-style
    # "<institution>/<branch>[/<location>]"), and the same as a tuple.
    routing_to: str | None = None
    routing_instructions: str | None = None
    item_id_type: str | None = None
    routing_path: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [f"item={self.item_barcode}"]
        if self.user_id:
            parts.append(f"user={mask(self.user_id)}")
        if self.routing_to or self.routing_instructions:
            parts.append(f"routing={self.routing_to or self.routing_instructions}")
        return " ".join(parts)


@dataclass(frozen=True)
class ItemStatus:
    item_barcode: str
    circulation_status: str
    circulation_status_scheme: str | None = None
    due_date: datetime | None = None
    hold_pickup_date: datetime | None = None
    current_borrower: str | None = None
    call_number: str | None = None
    title: str | None = None

    def summary(self) -> str:
        return f"item={self.item_barcode} status={self.circulation_status!r}"


@dataclass(frozen=True)
class CancelRequestResult:
    request_id: str | None
    item_barcode: str | None

    def summary(self) -> str:
        return f"hold cancelled: request_id={self.request_id or '-'} item={self.item_barcode or '-'}"


@dataclass(frozen=True)
class UserItem:
    """One of a user's loaned or requested items in a LookupUserResponse."""

    item_barcode: str | None
    request_id: str | None = None  # RequestedItem: the request (hold) id, e.g. the ILL Request Id
    due_date: datetime | None = None  # LoanedItem
    request_status: str | None = None  # RequestedItem: RequestStatusType


@dataclass(frozen=True)
class UserItems:
    user_id: str
    loaned: tuple[UserItem, ...] = ()
    requested: tuple[UserItem, ...] = ()

    def loan(self, barcode: str) -> UserItem | None:
        return next((i for i in self.loaned if i.item_barcode == barcode), None)

    def request(self, barcode: str) -> UserItem | None:
        return next((i for i in self.requested if i.item_barcode == barcode), None)

    def summary(self) -> str:
        return f"user={mask(self.user_id)} loaned={len(self.loaned)} requested={len(self.requested)}"


@dataclass(frozen=True)
class NcipMessage:
    """One NCIP message as read: its single child's name (the operation), that element and the version."""

    name: str
    element: etree._Element
    version: str | None


def read_message(data: bytes | str, *, lenient: bool = False) -> NcipMessage:
    """Parse an NCIP message safely and return its body element.

    The root must be ``NCIPMessage``; its ``version`` is read whether qualified or not (the mod-ncip samples
    leave it unqualified). ``lenient=True`` also accepts elements in a foreign namespace.
    """
    try:
        root = parse_xml(data)
    except MalformedXml as exc:
        raise WmsProtocolError(f"WMS answered something that is not XML: {exc.message}") from exc
    namespace = etree.QName(root).namespace
    if local_name(root) != "NCIPMessage" or not (lenient or namespace in (NCIP_NS, None)):
        raise WmsProtocolError(f"WMS answered XML that is not an NCIP message (root {root.tag!r})")
    body = [child for child in root if isinstance(child.tag, str)]
    if not body:
        raise WmsProtocolError("WMS answered an empty NCIPMessage")
    version = attribute(root, "version")
    if local_name(body[0]) == "Problem":
        return NcipMessage("Problem", root, version)
    return NcipMessage(local_name(body[0]), body[0], version)


def _problem(problem: etree._Element, operation: str) -> WmsProblem:
    problem_type = text(problem, "ProblemType")
    if problem_type is None:
        raise WmsProtocolError(f"{operation}: WMS answered a Problem without a ProblemType")
    return WmsProblem(
        problem_type,
        text(problem, "ProblemDetail"),
        element=text(problem, "ProblemElement"),
        value=text(problem, "ProblemValue"),
        operation=operation,
    )


def _response(data: bytes | str, operation: Operation) -> etree._Element:
    message = read_message(data)
    if message.name == "Problem":  # NCIPMessage/Problem: a messaging error (unsupported service, bad XML)
        raise _problem(children(message.element, "Problem")[0], operation)
    expected = f"{operation}Response"
    if message.name != expected:
        raise WmsProtocolError(f"{operation}: expected {expected}, WMS answered {message.name}")
    problems = children(message.element, "Problem")
    if problems:
        raise _problem(problems[0], operation)
    return message.element


def problem_in(data: bytes | str, operation: Operation) -> WmsProblem | None:
    """The Problem an NCIP answer carries, if it is a readable one that does; else None (never raises)."""
    try:
        _response(data, operation)
    except WmsProblem as problem:
        return problem
    except (WmsProtocolError, UnsafeXml):
        return None
    return None


def _required_text(element: etree._Element, operation: str, *path: str) -> str:
    value = text(element, *path)
    if value is None:
        raise WmsProtocolError(f"{operation}: the response has no {'/'.join(path)}")
    return value


def _datetime(element: etree._Element, operation: str, *path: str) -> datetime | None:
    value = text(element, *path)
    if value is None:
        return None
    try:
        return to_utc(value)
    except ValueError as exc:
        raise WmsProtocolError(f"{operation}: {'/'.join(path)} {value!r} is not a date-time") from exc


def parse_accept_item_response(data: bytes | str) -> AcceptItemResult:
    response = _response(data, "AcceptItem")
    return AcceptItemResult(
        request_id=_required_text(response, "AcceptItem", "RequestId", "RequestIdentifierValue"),
        item_barcode=text(response, "ItemId", "ItemIdentifierValue"),
    )


def parse_check_out_item_response(data: bytes | str) -> CheckOutResult:
    response = _response(data, "CheckOutItem")
    return CheckOutResult(
        item_barcode=_required_text(response, "CheckOutItem", "ItemId", "ItemIdentifierValue"),
        user_id=_required_text(response, "CheckOutItem", "UserId", "UserIdentifierValue"),
        due_date=_datetime(response, "CheckOutItem", "DateDue"),
    )


def _routing_path(routing: etree._Element | None) -> tuple[str, ...]:
    """The location names of a RoutingInformation's destination, by LocationNameLevel (broadest first)."""
    location_name = find(routing, "Destination", "Location", "LocationName")
    if location_name is None:
        return ()
    levels: list[tuple[int, int, str]] = []
    for position, instance in enumerate(children(location_name, "LocationNameInstance")):
        value = text(instance, "LocationNameValue")
        level_text = text(instance, "LocationNameLevel") or ""
        level = int(level_text) if level_text.isdigit() else 0
        if value:
            levels.append((level, position, value))
    return tuple(value for _, _, value in sorted(levels))


def parse_check_in_item_response(data: bytes | str) -> CheckInResult:
    response = _response(data, "CheckInItem")
    routing = find(response, "RoutingInformation")
    path = _routing_path(routing)
    return CheckInResult(
        item_barcode=_required_text(response, "CheckInItem", "ItemId", "ItemIdentifierValue"),
        user_id=text(response, "UserId", "UserIdentifierValue"),
        routing_to="/".join(path) or None,
        routing_path=path,
        routing_instructions=text(routing, "RoutingInstructions"),
        item_id_type=text(response, "ItemId", "ItemIdentifierType"),
    )


def parse_cancel_request_item_response(data: bytes | str) -> CancelRequestResult:
    response = _response(data, "CancelRequestItem")
    return CancelRequestResult(
        request_id=text(response, "RequestId", "RequestIdentifierValue"),
        item_barcode=text(response, "ItemId", "ItemIdentifierValue"),
    )


def parse_lookup_item_response(data: bytes | str) -> ItemStatus:
    response = _response(data, "LookupItem")
    fields = find(response, "ItemOptionalFields")
    status = find(fields, "CirculationStatus")
    status_text = text(status)
    if status is None or status_text is None:
        raise WmsProtocolError("LookupItem: the response has no ItemOptionalFields/CirculationStatus")
    return ItemStatus(
        item_barcode=_required_text(response, "LookupItem", "ItemId", "ItemIdentifierValue"),
        circulation_status=status_text,
        circulation_status_scheme=attribute(status, "Scheme"),
        due_date=_datetime(response, "LookupItem", "ItemOptionalFields", "DateDue"),
        hold_pickup_date=_datetime(response, "LookupItem", "HoldPickupDate"),
        current_borrower=text(
            response, "ItemTransaction", "CurrentBorrower", "UserId", "UserIdentifierValue"
        ),
        call_number=text(fields, "ItemDescription", "CallNumber"),
        title=text(fields, "BibliographicDescription", "Title"),
    )


def parse_lookup_user_response(data: bytes | str) -> UserItems:
    response = _response(data, "LookupUser")
    loaned = tuple(
        UserItem(
            item_barcode=text(node, "ItemId", "ItemIdentifierValue"),
            due_date=_datetime(node, "LookupUser", "DateDue"),
        )
        for node in children(response, "LoanedItem")
    )
    requested = tuple(
        UserItem(
            item_barcode=text(node, "ItemId", "ItemIdentifierValue"),
            request_id=text(node, "RequestId", "RequestIdentifierValue"),
            request_status=text(node, "RequestStatusType"),
        )
        for node in children(response, "RequestedItem")
    )
    return UserItems(
        user_id=_required_text(response, "LookupUser", "UserId", "UserIdentifierValue"),
        loaned=loaned,
        requested=requested,
    )
