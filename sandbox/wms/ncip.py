"""NCIP 2.02 (OCLC CircILL dialect) for the WMS simulator: safe parsing, the four operations, response building.

Every response is an ``NCIPMessage`` in namespace ``http://www.niso.org/2008/ncip`` (prefix ``ns1`` like OCLC's
samples) with a qualified ``ns1:version`` attribute, and validates against ``ncip_v2_02.xsd``. The
``ResponseHeader`` mirrors the request's ``InitiationHeader`` with From/To swapped (omitted when the request has
no header; a missing agency is filled with the institution's registry id).

Safety: a body containing ``<!DOCTYPE`` or ``<!ENTITY`` (also in UTF-16/32) is refused before parsing, and
parsing uses ``XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)`` (libxml2
then also caps nesting depth). Bodies that do not look like XML at all raise :class:`NonXmlBody` (HTTP 400).

Problems (ProblemType, ProblemDetail code, ProblemElement, ProblemValue):

* whole-message problems, answered as a top-level ``<NCIPMessage><Problem>`` (messaging error scheme):
  malformed XML, DOCTYPE/ENTITY, wrong namespace or root -> ``Invalid Message Syntax Error``;
  an unsupported or unknown message -> ``Unsupported Service`` (ProblemElement = the message name).
* inside the ``...Response`` (HTTP 200 as WMS does):
  missing data (e.g. no ItemId, no RequestId, no UserId) -> ``Needed Data Missing`` (ProblemElement = the
  missing element); an unparsable date -> ``Invalid Date``; a ToAgencyId that is neither the token
  institution's registry id, its symbol nor one of its branches -> ``Unknown Agency`` (ProblemElement
  ``ToAgencyId``);
  AcceptItem: barcode in use -> ``Duplicate Item`` (ItemIdentifierValue, the barcode); unknown patron ->
  ``Unknown User``; unknown pickup branch -> ``Unknown Agency`` (ProblemElement ``PickupLocation``,
  ProblemValue the branch id);
  CheckOutItem: ``Unknown User``, ``Unknown Item``, ``User Blocked``, expired account ->
  ``User Ineligible To Check Out This Item`` (detail ``USER_EXPIRED``), on loan to someone else or on hold for
  someone else -> ``Resource Cannot Be Provided``;
  CheckInItem: ``Unknown Item``, ``Item Not Checked Out`` (ProblemValue ``<registry id>/<barcode>`` like the
  samples); by ILL Request Id an unknown / not-on-loan item is a success (sample
  ``CheckInResponseRequestedItemUnknown.xml``);
  LookupItem: ``Unknown Item``;
  injected ``problem`` faults: the fault's ProblemType (default ``Temporary Processing Failure``).

CheckInItemResponse success, as OCLC documents it for WMS: ``ItemId`` (the request's, with an ``AgencyId``: the
request's or the institution's registry id), then ``UserId`` (the last borrower, with ``AgencyId``, only when a
loan ended) and ``RoutingInformation``: ``RoutingInstructions`` one of ``Request:<request id>`` (fills a hold),
``Process`` (a temp ILL item back home) or ``Re-shelve``; ``Destination/Location`` with LocationType ``Current``,
LocationName level 1 = the holding code, level 2 = the shelving location; plus RequestType ``Hold`` and the hold
patron's UserId when it fills a hold.

LookupItemResponse: ``RequestId`` + ``ItemId`` for temp items (their ILL request id), else ``ItemId``; then
``HoldPickupDate`` (Ready hold with a pickup expiry), ``ItemTransaction`` (``CurrentBorrower`` when on loan,
``CurrentRequester`` for an active hold, whose ``Ext`` carries the hold's ``RequestId`` and a
``RequestStatusType`` with the WMS hold status ``Pending`` or ``Ready``), and ``ItemOptionalFields``:
``BibliographicDescription``, ``CirculationStatus``, ``HoldQueueLength``, ``ItemDescription/CallNumber`` (when known),
``Location`` (current branch), ``DateDue`` when on loan. CirculationStatus values (NCIP circulation status
scheme) by WMS item status: Available -> ``Available On Shelf``; Unavailable -> ``Not Available``;
On Loan -> ``On Loan``; In Transit -> ``In Transit Between Library Locations``; On Hold Shelf (hold Ready) ->
``Available For Pickup``; On Order (temp item accepted, not checked in yet) -> ``On Order``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from . import state as st

NS = "http://www.niso.org/2008/ncip"
NCIP_VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
NSMAP = {"n": NS}

# Scheme URIs (identifiers of NCIP / OCLC code lists, not addresses that are contacted).
SCHEME_SYSTEM_ID = "http://oclc.org/ncip/schemes/systemid/oclcsystemid.scm"
SCHEME_INSTITUTION_ID = "http://oclc.org/ncip/schemes/agencyid/institutionid.scm"
SCHEME_REQUEST_ID_TYPE = "http://oclc.org/ncip/schemes/requestidentifiertype/circillrequestidentifiertype.scm"
SCHEME_ITEM_ID_TYPE = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleitemidentifiertype/visibleitemidentifiertype.scm"
)
SCHEME_USER_ID_TYPE = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleuseridentifiertype/visibleuseridentifiertype.scm"
)
SCHEME_OCLC_USER_IDS = "http://oclc.org/ncip/schemes/userid/oclcids.scm"
SCHEME_PROCESSING_ERROR = "http://www.niso.org/ncip/v1_0/schemes/processingerrortype/{}.scm"
SCHEME_MESSAGING_ERROR = "http://www.niso.org/ncip/v1_0/schemes/messagingerrortype/messagingerrortype.scm"
SCHEME_CIRCULATION_STATUS = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/circulationstatus/circulationstatus.scm"
)
SCHEME_LOCATION_TYPE = "http://www.niso.org/ncip/v1_0/imp1/schemes/locationtype/locationtype.scm"
SCHEME_REQUEST_TYPE = "http://www.niso.org/ncip/v1_0/imp1/schemes/requesttype/requesttype.scm"
SCHEME_HOLD_STATUS = "urn:x-reshare-wms-sandbox:schemes:holdstatus"
SCHEME_BIB_LEVEL = "http://www.niso.org/ncip/v1_0/imp1/schemes/bibliographiclevel/bibliographiclevel.scm"

SUPPORTED_OPERATIONS = (
    "AcceptItem",
    "CheckOutItem",
    "CheckInItem",
    "CancelRequestItem",
    "LookupItem",
    "LookupUser",
)
# Operations a switch may turn off (sandbox.wms.options): answered with the top-level Problem
# "Unsupported Service", as for a message the server has no service for.
SWITCHED_OPERATIONS = {"LookupItem": "lookup_item", "LookupUser": "lookup_user"}
SCHEME_REQUEST_STATUS = "http://www.niso.org/ncip/v1_0/imp1/schemes/requeststatustype/requeststatustype.scm"
SCHEME_CURRENCY = "http://www.bsi-global.com/Technical+Information/Publications/_Publications/tig90x.doc"
# WMS hold status -> NISO RequestStatusType (LookupUserResponse RequestedItem).
REQUEST_STATUS = {st.HOLD_PENDING: "In Process", st.HOLD_READY: "Available For Pickup"}
GENERAL_PROBLEMS = {
    "Needed Data Missing",
    "Unknown Agency",
    "Invalid Date",
    "Temporary Processing Failure",
    "Unsupported Service",
}

CIRCULATION_STATUS = {
    st.ITEM_AVAILABLE: "Available On Shelf",
    st.ITEM_UNAVAILABLE: "Not Available",
    st.ITEM_ON_LOAN: "On Loan",
    st.ITEM_IN_TRANSIT: "In Transit Between Library Locations",
    st.ITEM_ON_HOLD_SHELF: "Available For Pickup",
    st.ITEM_ON_ORDER: "On Order",
}

_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")

E = ElementMaker(namespace=NS, nsmap={"ns1": NS})


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


# Errors ----------------------------------------------------------------------------------------------


class NonXmlBody(Exception):
    """The body is not XML at all (empty, JSON, binary): HTTP 400."""


class MessageRejected(Exception):
    """The message as a whole is unusable: a top-level NCIP Problem."""

    def __init__(
        self, problem_type: str, detail: str, *, element: str | None = None, operation: str | None = None
    ):
        super().__init__(detail)
        self.problem_type = problem_type
        self.detail = detail
        self.element = element
        self.operation = operation


class NeededDataMissing(Exception):
    def __init__(self, element: str, detail: str | None = None, problem_type: str = "Needed Data Missing"):
        super().__init__(detail or f"{element} is required")
        self.element = element
        self.detail = detail or f"{element} is required"
        self.problem_type = problem_type


# Parsing ---------------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        collect_ids=False,
    )


def looks_like_xml(body: bytes) -> bool:
    data = body
    for bom in _BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
            break
    data = data.replace(b"\x00", b"").lstrip()
    return data.startswith(b"<")


@dataclass
class Identifier:
    value: str
    type: str | None = None
    type_scheme: str | None = None
    agency: str | None = None
    agency_scheme: str | None = None


@dataclass
class Header:
    from_system: tuple[str, str | None] | None = None
    from_agency: tuple[str, str | None] | None = None
    to_system: tuple[str, str | None] | None = None
    to_agency: tuple[str, str | None] | None = None


@dataclass
class NcipRequest:
    operation: str
    element: Any  # the operation element (lxml)
    header: Header | None


def parse_request(body: bytes) -> NcipRequest:
    """Parse a request body; raises NonXmlBody or MessageRejected."""
    if not body or not body.strip(b" \t\r\n\x00"):
        raise NonXmlBody("empty body")
    if not looks_like_xml(body):
        raise NonXmlBody("the body is not XML")
    if _FORBIDDEN.search(body) or _FORBIDDEN.search(body.replace(b"\x00", b"")):
        raise MessageRejected(
            "Invalid Message Syntax Error", "DOCTYPE and ENTITY declarations are not accepted"
        )
    try:
        root = etree.fromstring(body, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MessageRejected("Invalid Message Syntax Error", f"not well-formed XML: {exc}") from exc
    if not isinstance(root.tag, str) or root.tag != q("NCIPMessage"):
        raise MessageRejected(
            "Invalid Message Syntax Error",
            f"the root element must be NCIPMessage in namespace {NS}, got {_tag_text(root)}",
        )
    children = [c for c in root if isinstance(c.tag, str)]
    if len(children) != 1:
        raise MessageRejected(
            "Invalid Message Syntax Error",
            f"NCIPMessage must hold exactly one message, found {len(children)}",
        )
    op = children[0]
    qname = etree.QName(op)
    if qname.namespace != NS:
        raise MessageRejected(
            "Invalid Message Syntax Error", f"the message element {_tag_text(op)} is not in namespace {NS}"
        )
    name = qname.localname
    if name not in SUPPORTED_OPERATIONS:
        raise MessageRejected(
            "Unsupported Service",
            f"{name} is not supported by this service",
            element=name,
            operation=name,
        )
    validate(root, name)
    return NcipRequest(operation=name, element=op, header=_read_header(op))


_SCHEMA: etree.XMLSchema | None = None


def validate(root: Any, operation: str) -> None:
    """Validate a request against NCIP 2.02 (``ncip_v2_02.xsd``), as OCLC's toolkit does by default: an
    unqualified ``version``, an unknown element, a missing required element or a wrong order is the messaging
    Problem ``Invalid Message Syntax Error`` (circill-toolkit ``Version1MessagingError``), with the schema's
    message as ProblemDetail and the offending element's path as ProblemElement."""
    global _SCHEMA
    if _SCHEMA is None:
        from tests.reference import NCIP_XSD

        _SCHEMA = etree.XMLSchema(etree.parse(str(NCIP_XSD)))
    if _SCHEMA.validate(root):
        return
    error = _SCHEMA.error_log.last_error  # type: ignore[attr-defined]  # lxml has it; the stubs do not
    path = (error.path or "").replace(f"{{{NS}}}", "") if error is not None else ""
    detail = error.message if error is not None else "the message does not validate against NCIP 2.02"
    raise MessageRejected(
        "Invalid Message Syntax Error",
        f"{detail}"[:400],
        element=path[:200] or None,
        operation=operation,
    )


def _tag_text(el: Any) -> str:
    tag = el.tag if isinstance(el.tag, str) else "?"
    return tag[:200]


def find(el: Any, path: str) -> Any:
    if el is None:
        return None
    return el.find("/".join(f"n:{p}" for p in path.split("/")), NSMAP)


def text(el: Any, path: str | None = None) -> str | None:
    node = find(el, path) if path else el
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


def _scheme(node: Any) -> str | None:
    if node is None:
        return None
    return node.get(q("Scheme")) or node.get("Scheme")


def _svp(el: Any, path: str) -> tuple[str, str | None] | None:
    node = find(el, path)
    value = text(node)
    return (value, _scheme(node)) if value is not None else None


def _read_header(op: Any) -> Header | None:
    header = find(op, "InitiationHeader")
    if header is None:
        return None
    return Header(
        from_system=_svp(header, "FromSystemId"),
        from_agency=_svp(header, "FromAgencyId/AgencyId"),
        to_system=_svp(header, "ToSystemId"),
        to_agency=_svp(header, "ToAgencyId/AgencyId"),
    )


def read_identifier(op: Any, element: str, id_kind: str) -> Identifier | None:
    """Read ItemId/UserId/RequestId (``id_kind`` = Item/User/Request)."""
    node = find(op, element)
    if node is None:
        return None
    value = text(node, f"{id_kind}IdentifierValue")
    if value is None:
        raise NeededDataMissing(f"{id_kind}IdentifierValue", f"{element} has no {id_kind}IdentifierValue")
    type_node = find(node, f"{id_kind}IdentifierType")
    agency_node = find(node, "AgencyId")
    return Identifier(
        value=value,
        type=text(type_node),
        type_scheme=_scheme(type_node),
        agency=text(agency_node),
        agency_scheme=_scheme(agency_node),
    )


def read_datetime(op: Any, element: str) -> datetime | None:
    value = text(op, element)
    if value is None:
        return None
    try:
        return st.parse_datetime(value)
    except ValueError as exc:
        raise NeededDataMissing(
            element, f"{element} is not an xs:dateTime: {value[:64]}", "Invalid Date"
        ) from exc


# Building --------------------------------------------------------------------------------------------


def svp(name: str, value: str, scheme: str | None = None) -> Any:
    el = E(name, value)
    if scheme:
        el.set(q("Scheme"), scheme)
    return el


def build_identifier(element: str, id_kind: str, ident: Identifier) -> Any:
    el = E(element)
    if ident.agency:
        el.append(svp("AgencyId", ident.agency, ident.agency_scheme))
    if ident.type:
        el.append(svp(f"{id_kind}IdentifierType", ident.type, ident.type_scheme))
    el.append(E(f"{id_kind}IdentifierValue", ident.value))
    return el


def build_response_header(header: Header | None, registry_id: str | None) -> Any:
    if header is None:
        return None
    fallback = (registry_id or "", SCHEME_INSTITUTION_ID)
    el = E("ResponseHeader")
    if header.to_system:
        el.append(svp("FromSystemId", *header.to_system))
    el.append(E("FromAgencyId", svp("AgencyId", *(header.to_agency or fallback))))
    if header.from_system:
        el.append(svp("ToSystemId", *header.from_system))
    el.append(E("ToAgencyId", svp("AgencyId", *(header.from_agency or fallback))))
    return el


def problem_scheme(operation: str | None, problem_type: str) -> str:
    if problem_type in ("Invalid Message Syntax Error",):
        return SCHEME_MESSAGING_ERROR
    if operation is None or problem_type in GENERAL_PROBLEMS:
        return SCHEME_PROCESSING_ERROR.format("generalprocessingerror")
    return SCHEME_PROCESSING_ERROR.format(operation.lower() + "processingerror")


def build_problem(
    operation: str | None,
    problem_type: str,
    detail: str | None = None,
    element: str | None = None,
    value: str | None = None,
) -> Any:
    el = E("Problem", svp("ProblemType", problem_type, problem_scheme(operation, problem_type)))
    if detail:
        el.append(E("ProblemDetail", _clean(detail)))
    if element:
        el.append(E("ProblemElement", _clean(element)))
    if value:
        el.append(E("ProblemValue", _clean(value)))
    return el


def _clean(value: str) -> str:
    """Strip characters XML 1.0 cannot carry (they may come from hostile input echoed in a detail)."""
    return "".join(
        ch for ch in value[:500] if ch in "\t\n\r" or (" " <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd")
    )


def message(*children: Any) -> bytes:
    root = E("NCIPMessage")
    root.set(q("version"), NCIP_VERSION)
    for child in children:
        if child is not None:
            root.append(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def top_level_problem(problem_type: str, detail: str, element: str | None = None) -> bytes:
    return message(build_problem(None, problem_type, detail, element))


def response(operation: str, request: NcipRequest | None, registry_id: str | None, *children: Any) -> bytes:
    el = E(f"{operation}Response")
    head = build_response_header(request.header if request else None, registry_id)
    if head is not None:
        el.append(head)
    for child in children:
        if child is not None:
            el.append(child)
    return message(el)


def problem_response(
    request: NcipRequest,
    registry_id: str | None,
    problem_type: str,
    detail: str | None = None,
    element: str | None = None,
    value: str | None = None,
) -> bytes:
    op = request.operation
    return response(op, request, registry_id, build_problem(op, problem_type, detail, element, value))


# Operations ------------------------------------------------------------------------------------------


@dataclass
class NcipResult:
    body: bytes
    outcome: str  # "success" or "problem"
    problem_type: str | None = None
    detail: str | None = None


class NcipService:
    """Executes one parsed request against the state for the token's institution."""

    def __init__(self, state: st.WmsState) -> None:
        self.state = state

    def execute(self, registry_id: str, request: NcipRequest) -> NcipResult:
        # Under the state lock (re-entrant): the response is built from the same state the operation changed.
        with self.state.lock:
            return self._execute(registry_id, request)

    def _execute(self, registry_id: str, request: NcipRequest) -> NcipResult:
        try:
            inst = self.state.institution(registry_id)
            to_agency = request.header.to_agency if request.header else None
            if to_agency and to_agency[0] not in inst.agency_ids():
                return self._problem(
                    request,
                    registry_id,
                    "Unknown Agency",
                    f"ToAgencyId {to_agency[0]!r} is not this institution ({registry_id})",
                    "ToAgencyId",
                    to_agency[0],
                )
            switch = SWITCHED_OPERATIONS.get(request.operation)
            if switch is not None and self.state.options.is_(switch, "unsupported"):
                body = top_level_problem(
                    "Unsupported Service",
                    f"{request.operation} is not supported by this service",
                    request.operation,
                )
                return NcipResult(body=body, outcome="problem", problem_type="Unsupported Service")
            handler = getattr(self, "_" + request.operation)
            return handler(inst, request)
        except NeededDataMissing as exc:
            return self._problem(request, registry_id, exc.problem_type, exc.detail, exc.element)
        except st.CircError as exc:
            return self._problem(request, registry_id, exc.problem_type, exc.detail, exc.element, exc.value)

    def _problem(
        self,
        request: NcipRequest,
        registry_id: str,
        problem_type: str,
        detail: str | None = None,
        element: str | None = None,
        value: str | None = None,
    ) -> NcipResult:
        body = problem_response(request, registry_id, problem_type, detail, element, value)
        return NcipResult(body=body, outcome="problem", problem_type=problem_type, detail=detail)

    @staticmethod
    def _required(ident: Identifier | None, element: str) -> Identifier:
        if ident is None:
            raise NeededDataMissing(element)
        return ident

    # AcceptItem ----------------------------------------------------------------------------------
    def _AcceptItem(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        op = request.element
        request_id = self._required(read_identifier(op, "RequestId", "Request"), "RequestId")
        user = self._required(read_identifier(op, "UserId", "User"), "UserId")
        item_id = self._required(read_identifier(op, "ItemId", "Item"), "ItemId")
        bib = find(op, "ItemOptionalFields/BibliographicDescription")
        self.state.accept_item(
            inst.registry_id,
            request_id=request_id.value,
            item_barcode=item_id.value,
            patron_barcode=user.value,
            pickup_branch=self._pickup(inst, op),
            lending_library=item_id.agency,
            lending_library_scheme=item_id.agency_scheme,
            date_for_return=read_datetime(op, "DateForReturn"),
            pickup_expiry=read_datetime(op, "PickupExpiryDate"),
            requested_action=text(op, "RequestedActionType"),
            title=text(bib, "Title") or "",
            author=text(bib, "Author") or "",
            publisher=text(bib, "Publisher") or "",
            publication_date=text(bib, "PublicationDate") or "",
            edition=text(bib, "Edition") or "",
            call_number=text(op, "ItemOptionalFields/ItemDescription/CallNumber") or "",
        )
        body = response(
            "AcceptItem",
            request,
            inst.registry_id,
            build_identifier("RequestId", "Request", request_id),
            build_identifier("ItemId", "Item", item_id),
        )
        return NcipResult(body=body, outcome="success")

    @staticmethod
    def _pickup(inst: st.Institution, op: Any) -> str | None:
        """PickupLocation under either of OCLC's pickup schemes: a branch registry id (``branchid.scm``), or the
        institution named by its OCLC symbol or institution registry id (its main branch)."""
        value = text(op, "PickupLocation")
        if value is None or value in inst.branches:
            return value
        if value == inst.registry_id or (inst.symbol and value.upper() == inst.symbol.upper()):
            return inst.main_branch
        return value

    # CheckOutItem --------------------------------------------------------------------------------
    def _CheckOutItem(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        op = request.element
        user = self._required(read_identifier(op, "UserId", "User"), "UserId")
        item_id = self._required(read_identifier(op, "ItemId", "Item"), "ItemId")
        request_id = read_identifier(op, "RequestId", "Request")
        by_symbol = (user.type or "").strip().lower() == "oclc institution symbol" or (
            user.type_scheme == SCHEME_OCLC_USER_IDS and (user.type or "").lower() != "barcode"
        )
        result = self.state.check_out(
            inst.registry_id,
            item_barcode=item_id.value,
            patron_value=user.value,
            by_symbol=by_symbol,
            desired_due=read_datetime(op, "DesiredDateDue"),
            request_id=request_id.value if request_id else None,
            source="ncip",
            mandated=find(op, "MandatedAction") is not None,
        )
        body = response(
            "CheckOutItem",
            request,
            inst.registry_id,
            build_identifier("ItemId", "Item", item_id),
            build_identifier("UserId", "User", user),
            E("DateDue", self.due_text(result.loan.due)),
        )
        return NcipResult(body=body, outcome="success")

    # CheckInItem ---------------------------------------------------------------------------------
    def _CheckInItem(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        op = request.element
        item_id = self._required(read_identifier(op, "ItemId", "Item"), "ItemId")
        by_request = (item_id.type or "").strip().lower() == "ill request id" or (
            item_id.type_scheme == SCHEME_REQUEST_ID_TYPE
        )
        if by_request:
            result = self.state.check_in(inst.registry_id, request_id=item_id.value)
        else:
            result = self.state.check_in(inst.registry_id, barcode=item_id.value)
        # ItemId and UserId carry an AgencyId (OCLC's CheckInItemResponse for WMS): the request's, else the
        # institution's registry id.
        if not item_id.agency:
            item_id = Identifier(
                value=item_id.value,
                type=item_id.type,
                type_scheme=item_id.type_scheme,
                agency=inst.registry_id,
                agency_scheme=SCHEME_INSTITUTION_ID,
            )
        children: list[Any] = [build_identifier("ItemId", "Item", item_id)]
        if result.loan is not None:
            children.append(
                build_identifier(
                    "UserId",
                    "User",
                    Identifier(
                        value=result.loan.patron_barcode,
                        type="Barcode",
                        type_scheme=SCHEME_USER_ID_TYPE,
                        agency=inst.registry_id,
                        agency_scheme=SCHEME_INSTITUTION_ID,
                    ),
                )
            )
        if result.found and result.item is not None and result.destination:
            children.append(self._routing(inst, result))
        body = response("CheckInItem", request, inst.registry_id, *children)
        return NcipResult(body=body, outcome="success")

    @staticmethod
    def _routing(inst: st.Institution, result: st.CheckInResult) -> Any:
        """RoutingInformation as OCLC documents CheckInItemResponse for WMS: ``RoutingInstructions`` one of the
        literals ``Request:<request id>`` (the item fills a hold), ``Process`` (a temp ILL item back home, to be
        processed for return) or ``Re-shelve``; ``Destination/Location`` with LocationType ``Current``,
        level 1 the holding code and level 2 the shelving location."""
        item = result.item
        assert item is not None and result.destination is not None
        hold = result.hold if result.hold is not None and result.hold.active else None
        if hold is not None:
            instructions = f"Request:{hold.request_id or hold.hold_id}"
        elif item.temporary:
            instructions = "Process"
        else:
            instructions = "Re-shelve"
        holding = item.holding_location or f"{result.destination}-STACKS"
        shelving = item.shelving_location or "Stacks"
        location = E(
            "Location",
            svp("LocationType", "Current", SCHEME_LOCATION_TYPE),
            E(
                "LocationName",
                *[
                    E("LocationNameInstance", E("LocationNameLevel", str(n)), E("LocationNameValue", value))
                    for n, value in enumerate((holding, shelving), start=1)
                ],
            ),
        )
        el = E("RoutingInformation", E("RoutingInstructions", instructions), E("Destination", location))
        if hold is not None:
            el.append(svp("RequestType", "Hold", SCHEME_REQUEST_TYPE))
            el.append(
                build_identifier(
                    "UserId",
                    "User",
                    Identifier(
                        value=hold.patron_barcode,
                        type="Barcode",
                        type_scheme=SCHEME_USER_ID_TYPE,
                        agency=inst.registry_id,
                        agency_scheme=SCHEME_INSTITUTION_ID,
                    ),
                )
            )
        return el

    def due_text(self, due: datetime) -> str:
        """A due date as WMS renders it: ``end_of_day_local`` keeps the library's offset and milliseconds
        (``2026-12-28T23:59:59.000-05:00``); ``utc`` is an instant with ``Z`` like OCLC's samples."""
        if self.state.options.is_("due_date_style", "end_of_day_local") and due.utcoffset():
            return due.isoformat(timespec="milliseconds")
        return st.iso(due) or ""

    # LookupUser (patron profile) ------------------------------------------------------------------
    # CancelRequestItem ---------------------------------------------------------------------------
    def _CancelRequestItem(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        """OCLC lists CancelRequestItem for WMS (staff and patron profiles); the shape is NCIP 2.02's and
        lib-ncip-client's ``CancelRequestItem`` (UserId, RequestId, RequestType Hold, RequestScopeType Item);
        the answer as circill-toolkit's ``CancelRequestItemResponse.xml`` (RequestId, ItemId, UserId). The
        user is the ``UserId``, or the ``Barcode Id`` AuthenticationInput of the patron-profile form."""
        op = request.element
        user = read_identifier(op, "UserId", "User")
        if user is None:
            barcode = next(
                (
                    text(node, "AuthenticationInputData")
                    for node in op
                    if isinstance(node.tag, str)
                    and etree.QName(node).localname == "AuthenticationInput"
                    and (text(node, "AuthenticationInputType") or "").strip().lower() == "barcode id"
                ),
                None,
            )
            if not barcode:
                raise NeededDataMissing("UserId")
            user = Identifier(value=barcode, type="Barcode", type_scheme=SCHEME_USER_ID_TYPE)
        request_id = read_identifier(op, "RequestId", "Request")
        item_id = read_identifier(op, "ItemId", "Item")
        if request_id is None and item_id is None:
            raise NeededDataMissing("RequestId")
        holds, item = self.state.cancel_request(
            inst.registry_id,
            patron_barcode=user.value,
            request_id=request_id.value if request_id else None,
            item_barcode=item_id.value if item_id else None,
        )
        children: list[Any] = []
        if request_id is not None:
            children.append(build_identifier("RequestId", "Request", request_id))
        barcode = item.barcode if item is not None else holds[0].item_barcode
        children.append(
            build_identifier(
                "ItemId",
                "Item",
                Identifier(
                    value=barcode,
                    type="Barcode",
                    type_scheme=SCHEME_ITEM_ID_TYPE,
                    agency=inst.registry_id,
                    agency_scheme=SCHEME_INSTITUTION_ID,
                ),
            )
        )
        children.append(
            build_identifier(
                "UserId",
                "User",
                Identifier(
                    value=user.value,
                    type="Barcode",
                    type_scheme=SCHEME_USER_ID_TYPE,
                    agency=inst.registry_id,
                    agency_scheme=SCHEME_INSTITUTION_ID,
                ),
            )
        )
        body = response("CancelRequestItem", request, inst.registry_id, *children)
        return NcipResult(body=body, outcome="success")

    def _LookupUser(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        """The user's loans and holds, shaped like OCLC's ``LookupUserResponseSample1.xml``.

        ``LoanedItemsDesired``: a ``LoanedItem`` per active loan (ItemId, ReminderLevel, DateDue, Amount,
        Title); ``RequestedItemsDesired``: a ``RequestedItem`` per active hold (RequestId when the hold has an
        ILL request id, ItemId, RequestType ``Hold``, RequestStatusType ``In Process`` / ``Available For
        Pickup``, DatePlaced, PickupLocation, Title). A borrowing-institution account may be named by its
        barcode or its ``OCLC Institution Symbol``.
        """
        op = request.element
        user = self._required(read_identifier(op, "UserId", "User"), "UserId")
        by_symbol = (user.type or "").strip().lower() == "oclc institution symbol"
        _patron, loans, holds = self.state.lookup_user(inst.registry_id, user.value, by_symbol=by_symbol)
        children: list[Any] = [build_identifier("UserId", "User", user)]
        if find(op, "LoanedItemsDesired") is not None:
            for loan in loans:
                item = inst.items.get(loan.item_barcode)
                loaned = E(
                    "LoanedItem",
                    build_identifier(
                        "ItemId",
                        "Item",
                        Identifier(value=loan.item_barcode, type="Barcode", type_scheme=SCHEME_ITEM_ID_TYPE),
                    ),
                    E("ReminderLevel", "1"),
                    E("DateDue", self.due_text(loan.due)),
                    E("Amount", svp("CurrencyCode", "USD", SCHEME_CURRENCY), E("MonetaryValue", "0")),
                )
                if item is not None and item.title:
                    loaned.append(E("Title", item.title))
                children.append(loaned)
        if find(op, "RequestedItemsDesired") is not None:
            for hold in holds:
                item = inst.items.get(hold.item_barcode)
                requested = E("RequestedItem")
                if hold.request_id:
                    requested.append(
                        build_identifier(
                            "RequestId",
                            "Request",
                            Identifier(
                                value=hold.request_id,
                                type="ILL Request Id",
                                type_scheme=SCHEME_REQUEST_ID_TYPE,
                            ),
                        )
                    )
                requested.append(
                    build_identifier(
                        "ItemId",
                        "Item",
                        Identifier(value=hold.item_barcode, type="Barcode", type_scheme=SCHEME_ITEM_ID_TYPE),
                    )
                )
                requested.append(svp("RequestType", "Hold", SCHEME_REQUEST_TYPE))
                requested.append(
                    svp(
                        "RequestStatusType",
                        REQUEST_STATUS.get(hold.status, "In Process"),
                        SCHEME_REQUEST_STATUS,
                    )
                )
                requested.append(E("DatePlaced", st.iso(hold.created) or ""))
                requested.append(E("PickupLocation", hold.pickup_branch))
                if item is not None and item.title:
                    requested.append(E("Title", item.title))
                children.append(requested)
        body = response("LookupUser", request, inst.registry_id, *children)
        return NcipResult(body=body, outcome="success")

    # LookupItem ----------------------------------------------------------------------------------
    def _LookupItem(self, inst: st.Institution, request: NcipRequest) -> NcipResult:
        op = request.element
        item_id = read_identifier(op, "ItemId", "Item")
        request_id = read_identifier(op, "RequestId", "Request") if item_id is None else None
        if item_id is None and request_id is None:
            raise NeededDataMissing("ItemId", "ItemId or RequestId is required")
        if item_id is not None:
            item, loan, hold = self.state.lookup_item(inst.registry_id, barcode=item_id.value)
        else:
            assert request_id is not None
            item, loan, hold = self.state.lookup_item(inst.registry_id, request_id=request_id.value)
        children: list[Any] = []
        if item.temporary and item.request_id:
            children.append(
                build_identifier(
                    "RequestId",
                    "Request",
                    Identifier(
                        value=item.request_id, type="ILL Request Id", type_scheme=SCHEME_REQUEST_ID_TYPE
                    ),
                )
            )
        children.append(
            build_identifier("ItemId", "Item", item_id)
            if item_id is not None
            else build_identifier(
                "ItemId",
                "Item",
                Identifier(value=item.barcode, type="Barcode", type_scheme=SCHEME_ITEM_ID_TYPE),
            )
        )
        if hold is not None and hold.status == st.HOLD_READY and hold.pickup_expiry is not None:
            children.append(E("HoldPickupDate", st.iso(hold.pickup_expiry) or ""))
        transaction = E("ItemTransaction")
        if loan is not None:
            transaction.append(E("CurrentBorrower", self._user_id(loan.patron_barcode)))
        if hold is not None:
            ext = E("Ext")
            if hold.request_id:
                ext.append(
                    build_identifier(
                        "RequestId",
                        "Request",
                        Identifier(
                            value=hold.request_id, type="ILL Request Id", type_scheme=SCHEME_REQUEST_ID_TYPE
                        ),
                    )
                )
            ext.append(svp("RequestStatusType", hold.status, SCHEME_HOLD_STATUS))
            transaction.append(E("CurrentRequester", self._user_id(hold.patron_barcode), ext))
        if len(transaction):
            children.append(transaction)
        children.append(self._item_fields(inst, item, loan, hold))
        body = response("LookupItem", request, inst.registry_id, *children)
        return NcipResult(body=body, outcome="success")

    @staticmethod
    def _user_id(barcode: str) -> Any:
        return build_identifier(
            "UserId", "User", Identifier(value=barcode, type="Barcode", type_scheme=SCHEME_USER_ID_TYPE)
        )

    @staticmethod
    def _item_fields(inst: st.Institution, item: st.Item, loan: st.Loan | None, hold: st.Hold | None) -> Any:
        fields = E("ItemOptionalFields")
        bib = E("BibliographicDescription")
        for element, value in (
            ("Author", item.author),
            ("Edition", item.edition),
            ("PublicationDate", item.publication_date),
            ("Publisher", item.publisher),
            ("Title", item.title),
        ):
            if value:
                bib.append(E(element, value))
        if len(bib):
            fields.append(bib)
        fields.append(
            svp(
                "CirculationStatus",
                CIRCULATION_STATUS.get(item.status, "Not Available"),
                SCHEME_CIRCULATION_STATUS,
            )
        )
        fields.append(E("HoldQueueLength", "1" if hold is not None else "0"))
        if item.call_number:
            fields.append(E("ItemDescription", E("CallNumber", item.call_number)))
        where = item.location or item.branch
        levels = [inst.registry_id, where]
        if item.shelving_location:
            levels.append(item.shelving_location)
        fields.append(
            E(
                "Location",
                svp("LocationType", "Current Location", SCHEME_LOCATION_TYPE),
                E(
                    "LocationName",
                    *[
                        E(
                            "LocationNameInstance",
                            E("LocationNameLevel", str(n)),
                            E("LocationNameValue", value),
                        )
                        for n, value in enumerate(levels, start=1)
                    ],
                ),
            )
        )
        if loan is not None:
            fields.append(E("DateDue", st.iso(loan.due) or ""))
        return fields
