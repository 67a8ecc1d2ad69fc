"""The WMS Circulation simulator over real HTTP: tokens, CircILL samples, borrowing/lending flows, faults, SCIM,
hostile input. One simulator per module on a free loopback port; every test starts from reset + demo data."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
import xmlschema
from lxml import etree

from sandbox.wms import WmsSimulator
from tests.reference import NCIP

SHARED = NCIP
XSD = SHARED / "ncip_v2_02.xsd"
CIRCILL = SHARED / "samples" / "circill"
SCIM_SAMPLES = SHARED / "samples" / "scim"

NS = "http://www.niso.org/2008/ncip"
VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
ITEM_TYPE_SCHEME = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleitemidentifiertype/visibleitemidentifiertype.scm"
)
USER_TYPE_SCHEME = (
    "http://www.niso.org/ncip/v1_0/imp1/schemes/visibleuseridentifiertype/visibleuseridentifiertype.scm"
)
REQUEST_TYPE_SCHEME = "http://oclc.org/ncip/schemes/requestidentifiertype/circillrequestidentifiertype.scm"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PERSONA = "urn:mace:oclc.org:eidm:schema:persona:persona:20180305"
CIRC = "urn:mace:oclc.org:eidm:schema:persona:wmscircpatroninfo:20180101"
T = 10  # client timeout, seconds

# CheckInItemResponse elements the simulator adds to OCLC's minimal success samples (both optional in the XSD).
CHECKIN_EXTRAS = {"UserId", "RoutingInformation"}


# Fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


@pytest.fixture(scope="module")
def sim():
    # LookupItem is not documented for WMS (switch lookup_item, default unsupported): the LookupItem tests
    # here are of its "supported" value. Due dates here are compared as instants (switch due_date_style utc);
    # the defaults have their own tests (test_switch_defaults_*).
    simulator = WmsSimulator(
        host="127.0.0.1",
        port=0,
        token_ttl=1200,
        options={"lookup_item": "supported", "due_date_style": "utc"},
    )
    url = simulator.start()
    assert url == simulator.base_url == f"http://127.0.0.1:{simulator.port}"
    assert simulator.port > 0
    yield simulator
    simulator.stop()


@pytest.fixture
def url(sim: WmsSimulator) -> str:
    assert requests.post(sim.base_url + "/_sim/reset", timeout=T).status_code == 200
    assert requests.post(sim.base_url + "/_sim/seed-demo", timeout=T).status_code == 200
    return sim.base_url


DEMO_SECRETS = {"east-wskey": "east-secret", "west-wskey": "west-secret"}


def get_token(url: str, key: str = "east-wskey", secret: str | None = None, scope: str = "WMS_NCIP") -> str:
    secret = secret if secret is not None else DEMO_SECRETS[key]
    r = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(key, secret),
        timeout=T,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def ncip(
    url: str, token: str | None, body: bytes | str, content_type: str = "application/xml; charset=utf-8"
):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(url + "/ncip", data=data, headers=headers, timeout=T)


def sim_post(url: str, path: str, payload: dict[str, Any] | None = None, expect: int = 200) -> Any:
    r = requests.post(url + path, json=payload or {}, timeout=T)
    assert r.status_code == expect, r.text
    return r.json()


def sim_get(url: str, path: str, expect: int = 200) -> Any:
    r = requests.get(url + path, timeout=T)
    assert r.status_code == expect, r.text
    return r.json()


def header(agency: str = "128807") -> str:
    return (
        "<ns1:InitiationHeader>"
        '<ns1:FromSystemId ns1:Scheme="http://oclc.org/ncip/schemes/systemid/oclcsystemid.scm">ReShare'
        "</ns1:FromSystemId>"
        '<ns1:FromAgencyId><ns1:AgencyId ns1:Scheme="http://oclc.org/ncip/schemes/agencyid/institutionid.scm">'
        f"{agency}</ns1:AgencyId></ns1:FromAgencyId>"
        '<ns1:ToSystemId ns1:Scheme="http://oclc.org/ncip/schemes/systemid/oclcsystemid.scm">WMS Circ</ns1:ToSystemId>'
        '<ns1:ToAgencyId><ns1:AgencyId ns1:Scheme="http://oclc.org/ncip/schemes/agencyid/institutionid.scm">'
        f"{agency}</ns1:AgencyId></ns1:ToAgencyId>"
        '<ns1:ApplicationProfileType ns1:Scheme="http://oclc.org/ncip/schemes/applicationprofiletype/'
        'circillapplicationprofiletype.scm">2.00</ns1:ApplicationProfileType>'
        "</ns1:InitiationHeader>"
    )


def msg(op: str, inner: str, agency: str | None = "128807") -> str:
    head = header(agency) if agency else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ns1:NCIPMessage xmlns:ns1="{NS}" ns1:version="{VERSION}">'
        f"<ns1:{op}>{head}{inner}</ns1:{op}></ns1:NCIPMessage>"
    )


def item_id(barcode: str, agency: str | None = None) -> str:
    agency_el = (
        f'<ns1:AgencyId ns1:Scheme="http://oclc.org/ncip/schemes/agencyid/symbol.scm">{agency}</ns1:AgencyId>'
        if agency
        else ""
    )
    return (
        f"<ns1:ItemId>{agency_el}"
        f'<ns1:ItemIdentifierType ns1:Scheme="{ITEM_TYPE_SCHEME}">Barcode</ns1:ItemIdentifierType>'
        f"<ns1:ItemIdentifierValue>{barcode}</ns1:ItemIdentifierValue></ns1:ItemId>"
    )


def user_id(value: str, symbol: bool = False) -> str:
    if symbol:
        kind = (
            '<ns1:UserIdentifierType ns1:Scheme="http://oclc.org/ncip/schemes/userid/oclcids.scm">'
            "OCLC Institution Symbol</ns1:UserIdentifierType>"
        )
    else:
        kind = f'<ns1:UserIdentifierType ns1:Scheme="{USER_TYPE_SCHEME}">Barcode</ns1:UserIdentifierType>'
    return f"<ns1:UserId>{kind}<ns1:UserIdentifierValue>{value}</ns1:UserIdentifierValue></ns1:UserId>"


def request_id(value: str) -> str:
    return (
        f'<ns1:RequestId><ns1:RequestIdentifierType ns1:Scheme="{REQUEST_TYPE_SCHEME}">ILL Request Id'
        f"</ns1:RequestIdentifierType><ns1:RequestIdentifierValue>{value}</ns1:RequestIdentifierValue></ns1:RequestId>"
    )


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def accept_item(
    barcode: str, rid: str, patron: str, *, pickup: str | None = "262630", due: datetime | None = None
):
    due = due or datetime.now(UTC) + timedelta(days=60)
    pickup_el = (
        f'<ns1:PickupLocation ns1:Scheme="http://oclc.org/ncip/schemes/pickuplocation/branchid.scm">{pickup}'
        "</ns1:PickupLocation>"
        if pickup
        else ""
    )
    return msg(
        "AcceptItem",
        request_id(rid)
        + '<ns1:RequestedActionType ns1:Scheme="http://www.oclc.org/ncip/schemes/ws-illv1_0requestedactiontype/'
        'requestedactiontype.scm">Hold For Fulfillment</ns1:RequestedActionType>'
        + user_id(patron)
        + item_id(barcode, agency="WEST")
        + f"<ns1:DateForReturn>{iso(due)}</ns1:DateForReturn>"
        + "<ns1:ItemOptionalFields><ns1:BibliographicDescription><ns1:Author>Le Guin, Ursula K.</ns1:Author>"
        "<ns1:PublicationDate>1969</ns1:PublicationDate><ns1:Publisher>Ace</ns1:Publisher>"
        "<ns1:Title>The Left Hand of Darkness</ns1:Title></ns1:BibliographicDescription>"
        "<ns1:ItemDescription><ns1:CallNumber>PS3562.E42 L4</ns1:CallNumber></ns1:ItemDescription>"
        "</ns1:ItemOptionalFields>" + pickup_el,
    )


def checkout_item(
    barcode: str, user: str, *, symbol: bool = False, rid: str | None = None, desired=None
) -> str:
    inner = user_id(user, symbol) + item_id(barcode)
    if rid:
        inner += request_id(rid)
    if desired is not None:
        inner += f"<ns1:DesiredDateDue>{iso(desired)}</ns1:DesiredDateDue>"
    return msg("CheckOutItem", inner)


def checkin_item(barcode: str) -> str:
    return msg("CheckInItem", item_id(barcode))


def checkin_by_request(rid: str) -> str:
    return msg(
        "CheckInItem",
        f'<ns1:ItemId><ns1:ItemIdentifierType ns1:Scheme="{REQUEST_TYPE_SCHEME}">ILL Request Id'
        f"</ns1:ItemIdentifierType><ns1:ItemIdentifierValue>{rid}</ns1:ItemIdentifierValue></ns1:ItemId>",
    )


def lookup_item(barcode: str) -> str:
    return msg("LookupItem", item_id(barcode))


class Answer:
    """A parsed NCIP answer: the response element, its children, a Problem (if any)."""

    def __init__(self, content: bytes, schema: xmlschema.XMLSchema) -> None:
        schema.validate(content)  # every answer must be schema-valid
        self.root = etree.fromstring(content)
        assert self.root.get(f"{{{NS}}}version") == VERSION
        elements = [c for c in self.root if isinstance(c.tag, str)]
        assert len(elements) >= 1
        self.element = elements[0]
        self.name = etree.QName(self.element).localname

    def child_names(self) -> list[str]:
        return [etree.QName(c).localname for c in self.element if isinstance(c.tag, str)]

    def text(self, path: str) -> str | None:
        node = self.element.find("/".join(f"n:{p}" for p in path.split("/")), {"n": NS})
        return None if node is None else (node.text or "").strip()

    def all_text(self, path: str) -> list[str]:
        nodes = self.element.findall("/".join(f"n:{p}" for p in path.split("/")), {"n": NS})
        return [(n.text or "").strip() for n in nodes]

    @property
    def problem(self) -> str | None:
        if self.name == "Problem":
            return (self.element.findtext(f"{{{NS}}}ProblemType") or "").strip()
        return self.text("Problem/ProblemType")


def answer(r: requests.Response, schema: xmlschema.XMLSchema) -> Answer:
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/xml")
    return Answer(r.content, schema)


def call(
    url: str, token: str, body: str, schema: xmlschema.XMLSchema, *, validate_request: bool = True
) -> Answer:
    if validate_request:
        schema.validate(body)  # the test's own requests are proper NCIP too
    return answer(ncip(url, token, body), schema)


# Tokens -----------------------------------------------------------------------------------------------


def test_token_good_bad_and_scopes(url: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    r = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP SCIM:read_user"},
        auth=("east-wskey", "east-secret"),
        timeout=T,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1200
    assert body["scope"] == "WMS_NCIP SCIM:read_user"
    assert body["access_token"]
    expires_at = parse_iso(body["expires_at"])
    assert before + timedelta(seconds=1195) <= expires_at <= datetime.now(UTC) + timedelta(seconds=1201)

    bad_secret = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
        auth=("east-wskey", "wrong"),
        timeout=T,
    )
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    unknown_key = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
        auth=("x", "y"),
        timeout=T,
    )
    assert (unknown_key.status_code, unknown_key.json()["error"]) == (401, "invalid_client")
    no_auth = requests.post(url + "/oauth/token", data={"grant_type": "client_credentials"}, timeout=T)
    assert (no_auth.status_code, no_auth.json()["error"]) == (401, "invalid_client")
    garbage_basic = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
        headers={"Authorization": "Basic !!!not-base64"},
        timeout=T,
    )
    assert garbage_basic.status_code == 401
    bad_grant = requests.post(
        url + "/oauth/token",
        data={"grant_type": "password", "scope": "WMS_NCIP"},
        auth=("east-wskey", "east-secret"),
        timeout=T,
    )
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "unsupported_grant_type")
    bad_scope = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP WMS_ACQ"},
        auth=("east-wskey", "east-secret"),
        timeout=T,
    )
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")


def test_token_belongs_to_its_institution_and_expires(url: str, schema) -> None:
    west = get_token(url, "west-wskey", "west-secret")
    # A West token on a message addressed to East: Unknown Agency, nothing done.
    a = call(url, west, lookup_item("EAST-ITEM-0001"), schema)
    assert a.problem == "Unknown Agency"
    assert a.text("Problem/ProblemElement") == "ToAgencyId"
    # West's own item, through West's token, answers.
    a = call(url, west, msg("LookupItem", item_id("WEST-ITEM-0001"), agency="262626"), schema)
    assert a.problem is None
    # ...but East items are not visible to West even without a header.
    a = call(url, west, msg("LookupItem", item_id("EAST-ITEM-0001"), agency=None), schema)
    assert a.problem == "Unknown Item"

    east = get_token(url)
    assert call(url, east, lookup_item("EAST-ITEM-0001"), schema).problem is None
    assert sim_post(url, "/_sim/expire-tokens")["expired"] >= 2
    assert ncip(url, east, lookup_item("EAST-ITEM-0001")).status_code == 401

    assert sim_post(url, "/_sim/token-ttl", {"token_ttl": 1}) == {"token_ttl": 1}
    assert sim_get(url, "/_sim/token-ttl") == {"token_ttl": 1}
    short = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
        auth=("east-wskey", "east-secret"),
        timeout=T,
    ).json()
    assert short["expires_in"] == 1
    assert ncip(url, short["access_token"], lookup_item("EAST-ITEM-0001")).status_code == 200
    time.sleep(1.2)
    r = ncip(url, short["access_token"], lookup_item("EAST-ITEM-0001"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"


def test_ncip_needs_the_wms_ncip_scope(url: str) -> None:
    scim_only = get_token(url, scope="SCIM:read_user")
    r = ncip(url, scim_only, lookup_item("EAST-ITEM-0001"))
    assert r.status_code == 401


# The CircILL samples ------------------------------------------------------------------------------------


def seed_ocwms(url: str, *, patron: bool = True, item: bool = True) -> str:
    """The simulator's institution matching OCLC's samples (symbol OCWMS, accounts ZYXWV and NDOSU); a token."""
    seeded = sim_post(url, "/_sim/seed-oclc-samples", {"patron": patron, "item": item})
    assert (seeded["registry_id"], seeded["symbol"]) == ("91475", "OCWMS")
    return get_token(url, "ocwms-key", "ocwms-secret")


def sample(name: str) -> bytes:
    return (CIRCILL / name).read_bytes()


def staff_checkout_abcde(url: str, token: str, schema) -> None:
    sim_post(url, "/_sim/checkout", {"item_barcode": "ABCDE", "patron_barcode": "ZYXWV"})


def ncip_checkout_abcde(url: str, token: str, schema) -> None:
    a = answer(ncip(url, token, sample("CheckOutItemToInstitutionForILL.xml")), schema)
    assert a.problem is None


SAMPLE_CASES = [
    # (request sample, response sample, seed options, preparation)
    ("AcceptItemReceived.xml", "AcceptItemMinimalResponseSuccess.xml", {"item": False}, None),
    ("AcceptItemD2D.xml", "AcceptItemMinimalResponseSuccess.xml", {"item": False}, None),
    ("CheckOutItemToInstitutionForILL.xml", "CheckOutItemResponseSuccess.xml", {}, None),
    ("CheckOutItemToPatron.xml", "CheckOutItemResponseSuccess.xml", {}, None),
    ("CheckOutItemToPatronForILL.xml", "CheckOutItemResponseSuccess.xml", {}, None),
    ("CheckInBarcodedItem.xml", "CheckInResponseBarcodedItemSuccess.xml", {}, staff_checkout_abcde),
    ("CheckInRequestedItem.xml", "CheckInResponseRequestedItemSuccess.xml", {}, ncip_checkout_abcde),
    # Problems and the request-id special case
    ("CheckInBarcodedItem.xml", "CheckInResponseBarcodedItemNotOnLoan.xml", {}, None),
    ("CheckInBarcodedItem.xml", "CheckInResponseBarcodedItemUnknown.xml", {"item": False}, None),
    ("CheckInRequestedItem.xml", "CheckInResponseRequestedItemUnknown.xml", {"item": False}, None),
    ("CheckOutItemToPatron.xml", "CheckOutItemResponseUserUnknown.xml", {"patron": False}, None),
    ("CheckOutItemToPatron.xml", "CheckOutItemResponseItemUnknown.xml", {"item": False}, None),
]


def _names(el: Any) -> list[str]:
    return [etree.QName(c).localname for c in el if isinstance(c.tag, str)]


@pytest.mark.parametrize(("request_name", "response_name", "seed", "prepare"), SAMPLE_CASES)
def test_circill_samples(url: str, schema, request_name, response_name, seed, prepare) -> None:
    token = seed_ocwms(url, **seed)
    if prepare is not None:
        prepare(url, token, schema)
    schema.validate(sample(request_name))
    ours = answer(ncip(url, token, sample(request_name)), schema)
    theirs = Answer(sample(response_name), schema)

    assert ours.name == theirs.name
    extras = CHECKIN_EXTRAS if ours.name == "CheckInItemResponse" else set()
    assert [n for n in ours.child_names() if n not in extras] == theirs.child_names()
    # Response header: same elements, From/To swapped relative to the request (WSILL -> WMS Circ and back).
    ours_head = ours.element.find(f"{{{NS}}}ResponseHeader")
    theirs_head = theirs.element.find(f"{{{NS}}}ResponseHeader")
    # (OCLC's "minimal" samples leave out the optional system ids; the simulator always mirrors them.)
    optional = {"FromSystemId", "ToSystemId"} - set(_names(theirs_head))
    assert [n for n in _names(ours_head) if n not in optional] == _names(theirs_head)
    for path in ("FromSystemId", "ToSystemId", "FromAgencyId/AgencyId", "ToAgencyId/AgencyId"):
        if theirs.text(f"ResponseHeader/{path}") is not None:
            assert ours.text(f"ResponseHeader/{path}") == theirs.text(f"ResponseHeader/{path}"), path
    assert ours.text("ResponseHeader/FromSystemId") == "WMS Circ"
    if theirs.problem:
        assert ours.problem == theirs.problem
        assert ours.text("Problem/ProblemDetail") == theirs.text("Problem/ProblemDetail")
        assert ours.text("Problem/ProblemValue").endswith(
            "/" + theirs.text("Problem/ProblemValue").split("/")[-1]
        )
    else:
        assert ours.problem is None
        # Identifiers are exact copies of the request's (OCLC: "since that is what the client understands").
        sent = etree.fromstring(sample(request_name))
        for path in (
            "ItemId/ItemIdentifierValue",
            "UserId/UserIdentifierValue",
            "RequestId/RequestIdentifierValue",
        ):
            if theirs.text(path) is not None:
                wanted = sent.findtext(".//" + "/".join(f"{{{NS}}}{p}" for p in path.split("/")))
                assert ours.text(path) == wanted.strip(), path
        if theirs.text("DateDue") is not None:
            assert ours.text("DateDue")


def test_circill_sample_effects(url: str, schema) -> None:
    token = seed_ocwms(url, item=False)
    answer(ncip(url, token, sample("AcceptItemReceived.xml")), schema)
    temp = sim_get(url, "/_sim/temp-items?registry_id=91475")
    assert len(temp) == 1
    assert temp[0] | {} == temp[0]
    t = temp[0]
    assert (t["barcode"], t["request_id"], t["lending_library"]) == ("ABCDE", "12345", "NDOSU")
    assert (t["title"], t["author"], t["publisher"], t["publication_date"]) == (
        "The Hobbit",
        "J. R. R. Tolkien",
        "Harper Collins",
        "1997",
    )
    assert t["call_number"] == "PR6039.O32 H633 1997"
    assert t["date_for_return"] == "2018-02-01T00:00:00Z"
    assert (t["holding_location"], t["shelving_location"], t["branch"]) == ("ILL", "ILL Shelf", "91475")
    holds = sim_get(url, "/_sim/holds?registry_id=91475")
    assert [(h["patron_barcode"], h["status"], h["pickup_branch"]) for h in holds] == [
        ("ZYXWV", "Pending", "91475")
    ]

    # The sample checkout to institution NDOSU by symbol honours the mandated DesiredDateDue.
    sim_post(url, "/_sim/items", {"registry_id": "91475", "barcode": "LEND-1"})
    body = sample("CheckOutItemToInstitutionForILL.xml").replace(b">ABCDE<", b">LEND-1<")
    a = answer(ncip(url, token, body), schema)
    assert a.text("DateDue") == "2018-02-01T12:34:56Z"
    loans = [
        loan for loan in sim_get(url, "/_sim/loans?registry_id=91475") if loan["item_barcode"] == "LEND-1"
    ]
    assert [(loan["patron_barcode"], loan["request_id"]) for loan in loans] == [("ILL-NDOSU", "12345")]


# Borrowing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lender_days", [10, 90])
def test_borrowing_flow(url: str, schema, lender_days: int) -> None:
    token = get_token(url)
    lender_due = (datetime.now(UTC) + timedelta(days=lender_days)).replace(microsecond=0)
    a = call(
        url, token, accept_item("TMP-0001", "ReShareRequestEAST-1235", "EAST-P-0001", due=lender_due), schema
    )
    assert a.problem is None
    assert a.child_names() == ["ResponseHeader", "RequestId", "ItemId"]
    assert a.text("RequestId/RequestIdentifierValue") == "ReShareRequestEAST-1235"
    assert a.text("ItemId/ItemIdentifierValue") == "TMP-0001"
    assert a.text("ResponseHeader/FromSystemId") == "WMS Circ"
    assert a.text("ResponseHeader/ToSystemId") == "ReShare"

    temp = sim_get(url, "/_sim/temp-items?registry_id=128807")
    assert [(t["barcode"], t["status"], t["request_id"], t["lending_library"]) for t in temp] == [
        ("TMP-0001", "On Order", "ReShareRequestEAST-1235", "WEST")
    ]
    assert (temp[0]["holding_location"], temp[0]["shelving_location"], temp[0]["branch"]) == (
        "ILL",
        "ILL Shelf",
        "128807",
    )
    assert temp[0]["date_for_return"] == iso(lender_due)
    look = call(url, token, lookup_item("TMP-0001"), schema)
    assert look.text("ItemOptionalFields/CirculationStatus") == "On Order"
    assert look.text("RequestId/RequestIdentifierValue") == "ReShareRequestEAST-1235"
    assert look.text("ItemOptionalFields/ItemDescription/CallNumber") == "PS3562.E42 L4"
    assert look.text("ItemTransaction/CurrentRequester/Ext/RequestStatusType") == "Pending"

    # Checked in at the wrong branch: in transit to the pickup branch, hold still Pending, no notice.
    out = sim_post(url, "/_sim/checkin", {"barcode": "TMP-0001", "branch": "128807"})
    assert (out["item"]["status"], out["item"]["in_transit_to"], out["hold"]["status"]) == (
        "In Transit",
        "262630",
        "Pending",
    )
    assert out["notice"] is None
    assert sim_get(url, "/_sim/notices") == []
    look = call(url, token, lookup_item("TMP-0001"), schema)
    assert look.text("ItemOptionalFields/CirculationStatus") == "In Transit Between Library Locations"

    # Checked in at the pickup branch: hold Ready, pickup notice.
    out = sim_post(url, "/_sim/checkin", {"barcode": "TMP-0001", "branch": "262630"})
    assert out["hold"]["status"] == "Ready"
    assert out["item"]["status"] == "On Hold Shelf"
    notices = sim_get(url, "/_sim/notices?registry_id=128807")
    assert [(n["patron"], n["item"], n["kind"]) for n in notices] == [
        ("EAST-P-0001", "TMP-0001", "hold_ready")
    ]
    assert parse_iso(notices[0]["time"]) <= datetime.now(UTC)
    look = call(url, token, lookup_item("TMP-0001"), schema)
    assert look.text("ItemOptionalFields/CirculationStatus") == "Available For Pickup"
    assert look.text("ItemTransaction/CurrentRequester/Ext/RequestStatusType") == "Ready"

    # Someone else cannot take it.
    refused = requests.post(
        url + "/_sim/checkout", json={"item_barcode": "TMP-0001", "patron_barcode": "ILL-DEFAULT"}, timeout=T
    )
    assert refused.status_code == 409
    assert refused.json()["problem_type"] == "Resource Cannot Be Provided"

    # Staff check it out to the patron: due = earlier of policy (28 days) and the lender's date.
    before = datetime.now(UTC).replace(microsecond=0)
    out = sim_post(url, "/_sim/checkout", {"item_barcode": "TMP-0001", "patron_barcode": "EAST-P-0001"})
    after = datetime.now(UTC)
    assert out["hold"]["status"] == "Filled"
    assert out["item"]["status"] == "On Loan"
    due = parse_iso(out["loan"]["due"])
    if lender_days < 28:
        assert due == lender_due
    else:
        assert before + timedelta(days=28) <= due <= after + timedelta(days=28)
    assert out["loan"]["request_id"] == "ReShareRequestEAST-1235"
    look = call(url, token, lookup_item("TMP-0001"), schema)
    assert look.text("ItemOptionalFields/CirculationStatus") == "On Loan"
    assert look.text("ItemTransaction/CurrentBorrower/UserId/UserIdentifierValue") == "EAST-P-0001"
    assert look.text("ItemOptionalFields/DateDue") == out["loan"]["due"]

    # The patron returns it; the bridge checks it in over NCIP: routed home, Unavailable, request id kept.
    a = call(url, token, checkin_item("TMP-0001"), schema)
    assert a.problem is None
    assert a.child_names() == ["ResponseHeader", "ItemId", "UserId", "RoutingInformation"]
    assert a.text("UserId/UserIdentifierValue") == "EAST-P-0001"
    # OCLC's CheckInItemResponse for WMS: a temp item back home is "Process"; Location Current, level 1 the
    # holding code, level 2 the shelving location; ItemId and UserId carry an AgencyId
    assert a.text("RoutingInformation/RoutingInstructions") == "Process"
    assert a.text("RoutingInformation/Destination/Location/LocationType") == "Current"
    assert a.all_text(
        "RoutingInformation/Destination/Location/LocationName/LocationNameInstance/LocationNameValue"
    ) == ["ILL", "ILL Shelf"]
    assert a.text("ItemId/AgencyId") == "128807" and a.text("UserId/AgencyId") == "128807"
    item = sim_get(url, "/_sim/items/TMP-0001")
    assert (item["status"], item["location"], item["request_id"], item["temporary"]) == (
        "Unavailable",
        "128807",
        "ReShareRequestEAST-1235",
        True,
    )
    assert item["active_loan"] is None
    assert item["loans"][0]["returned_at"] is not None
    look = call(url, token, lookup_item("TMP-0001"), schema)
    assert look.text("ItemOptionalFields/CirculationStatus") == "Not Available"
    assert len(sim_get(url, "/_sim/temp-items")) == 1  # never deleted

    # Checking in again: by barcode a Problem, by request id a success (OCLC's sample behaviour).
    again = call(url, token, checkin_item("TMP-0001"), schema)
    assert again.problem == "Item Not Checked Out"
    by_request = call(url, token, checkin_by_request("ReShareRequestEAST-1235"), schema)
    assert by_request.problem is None
    assert by_request.text("ItemId/ItemIdentifierValue") == "ReShareRequestEAST-1235"


def test_checkin_of_temp_item_with_active_hold_cancels_it(url: str, schema) -> None:
    token = get_token(url)
    call(url, token, accept_item("TMP-P", "ReShareRequestEAST-1", "EAST-P-0001", pickup="128807"), schema)
    call(url, token, accept_item("TMP-R", "ReShareRequestEAST-2", "EAST-P-0001", pickup="128807"), schema)
    sim_post(url, "/_sim/checkin", {"barcode": "TMP-R", "branch": "128807"})  # hold Ready
    for barcode in ("TMP-P", "TMP-R"):
        a = call(url, token, checkin_item(barcode), schema)
        assert a.problem is None, barcode
        assert "UserId" not in a.child_names()
        item = sim_get(url, f"/_sim/items/{barcode}")
        assert (item["status"], item["location"]) == ("Unavailable", "128807")
        assert [h["status"] for h in item["holds"]] == ["Cancelled"]
    # Now nothing is active any more: a Problem.
    assert call(url, token, checkin_item("TMP-P"), schema).problem == "Item Not Checked Out"


def test_checkin_by_request_id_of_loaned_temp_item(url: str, schema) -> None:
    token = get_token(url)
    call(url, token, accept_item("TMP-Q", "ReShareRequestEAST-77", "EAST-P-0001", pickup="128807"), schema)
    sim_post(url, "/_sim/checkin", {"barcode": "TMP-Q"})  # default branch = main = pickup
    sim_post(url, "/_sim/checkout", {"item_barcode": "TMP-Q", "patron_barcode": "EAST-P-0001"})
    a = call(url, token, checkin_by_request("ReShareRequestEAST-77"), schema)
    assert a.problem is None
    assert a.text("UserId/UserIdentifierValue") == "EAST-P-0001"
    assert sim_get(url, "/_sim/items/TMP-Q")["status"] == "Unavailable"


def test_accept_item_problems(url: str, schema) -> None:
    token = get_token(url)
    assert (
        call(url, token, accept_item("TMP-D", "ReShareRequestEAST-9", "EAST-P-0001"), schema).problem is None
    )
    dup = call(url, token, accept_item("TMP-D", "ReShareRequestEAST-9", "EAST-P-0001"), schema)
    assert dup.problem == "Duplicate Item"
    assert dup.text("Problem/ProblemElement") == "ItemIdentifierValue"
    assert dup.text("Problem/ProblemValue") == "TMP-D"
    assert dup.child_names() == ["ResponseHeader", "Problem"]
    real = call(url, token, accept_item("EAST-ITEM-0001", "ReShareRequestEAST-10", "EAST-P-0001"), schema)
    assert real.problem == "Duplicate Item"
    assert len(sim_get(url, "/_sim/temp-items")) == 1
    assert len(sim_get(url, "/_sim/holds")) == 1

    unknown_user = call(url, token, accept_item("TMP-E", "ReShareRequestEAST-11", "NOBODY"), schema)
    assert unknown_user.problem == "Unknown User"
    bad_pickup = call(
        url, token, accept_item("TMP-F", "ReShareRequestEAST-12", "EAST-P-0001", pickup="999999"), schema
    )
    assert bad_pickup.problem == "Unknown Agency"
    assert bad_pickup.text("Problem/ProblemElement") == "PickupLocation"
    assert bad_pickup.text("Problem/ProblemValue") == "999999"
    assert len(sim_get(url, "/_sim/temp-items")) == 1


# Lending ---------------------------------------------------------------------------------------------


def test_lending_flow(url: str, schema) -> None:
    token = get_token(url)
    far = (date.today() + timedelta(days=400)).isoformat()
    soon = date.today() + timedelta(days=10)
    sim_post(
        url,
        "/_sim/patrons",
        {"registry_id": "128807", "barcode": "ILL-FAR", "expires": far, "symbol": "FARL"},
    )
    sim_post(
        url, "/_sim/patrons", {"registry_id": "128807", "barcode": "ILL-SOON", "expires": soon.isoformat()}
    )

    # With DesiredDateDue: that date; the request id is recorded on the loan.
    desired = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    a = call(
        url,
        token,
        checkout_item("EAST-ITEM-0001", "ILL-FAR", rid="ReShareRequestWEST-5", desired=desired),
        schema,
    )
    assert a.problem is None
    assert a.child_names() == ["ResponseHeader", "ItemId", "UserId", "DateDue"]
    assert a.text("DateDue") == iso(desired)
    loans = sim_get(url, "/_sim/loans?registry_id=128807")
    assert [(loan["item_barcode"], loan["patron_barcode"], loan["request_id"]) for loan in loans] == [
        ("EAST-ITEM-0001", "ILL-FAR", "ReShareRequestWEST-5")
    ]
    # Same user again (a retry): what WMS answers is not documented (switch repeat_checkout_same_account);
    # under every value there is still exactly one loan.
    later = desired + timedelta(days=5)
    again = call(url, token, checkout_item("EAST-ITEM-0001", "ILL-FAR", desired=later), schema)
    assert again.problem == "Resource Cannot Be Provided"  # default: problem
    sim_post(url, "/_sim/options", {"repeat_checkout_same_account": "returns_existing_loan"})
    again = call(url, token, checkout_item("EAST-ITEM-0001", "ILL-FAR", desired=later), schema)
    assert again.text("DateDue") == iso(desired)
    sim_post(url, "/_sim/options", {"repeat_checkout_same_account": "renews"})
    again = call(url, token, checkout_item("EAST-ITEM-0001", "ILL-FAR", desired=later), schema)
    assert again.text("DateDue") == iso(later)
    sim_post(url, "/_sim/options", {"repeat_checkout_same_account": "problem"})
    assert len(sim_get(url, "/_sim/loans")) == 1
    # Another user: refused.
    other = call(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT"), schema)
    assert other.problem == "Resource Cannot Be Provided"

    # Without DesiredDateDue: the ILL loan policy (42 days); by OCLC institution symbol.
    before = datetime.now(UTC).replace(microsecond=0)
    a = call(url, token, checkout_item("EAST-ITEM-0002", "FARL", symbol=True), schema)
    due = parse_iso(a.text("DateDue"))
    assert before + timedelta(days=42) <= due <= datetime.now(UTC) + timedelta(days=42)
    assert a.text("UserId/UserIdentifierValue") == "FARL"

    # Never past the account's expiry.
    a = call(url, token, checkout_item("EAST-ITEM-0003", "ILL-SOON"), schema)
    assert a.text("DateDue") == f"{soon.isoformat()}T00:00:00Z"
    a = call(
        url,
        token,
        checkout_item("EAST-ITEM-0004", "ILL-SOON", desired=datetime.now(UTC) + timedelta(days=300)),
        schema,
    )
    assert a.text("DateDue") == f"{soon.isoformat()}T00:00:00Z"

    # Policy changes apply.
    sim_post(url, "/_sim/policies", {"registry_id": "128807", "ill_loan_days": 7})
    a = call(url, token, checkout_item("EAST-ITEM-0005", "ILL-FAR"), schema)
    assert parse_iso(a.text("DateDue")) <= datetime.now(UTC) + timedelta(days=7, seconds=1)

    # Refusals.
    assert call(url, token, checkout_item("EAST-ITEM-0006", "EAST-P-0002"), schema).problem == "User Blocked"
    expired = call(url, token, checkout_item("EAST-ITEM-0006", "ILL-EXPIRED"), schema)
    assert expired.problem == "User Ineligible To Check Out This Item"
    assert expired.text("Problem/ProblemDetail") == "USER_EXPIRED"
    assert call(url, token, checkout_item("EAST-ITEM-0006", "NOBODY"), schema).problem == "Unknown User"
    assert call(url, token, checkout_item("NO-SUCH-ITEM", "ILL-FAR"), schema).problem == "Unknown Item"
    assert (
        call(url, token, checkout_item("EAST-ITEM-0006", "NOSYMBOL", symbol=True), schema).problem
        == "Unknown User"
    )
    assert sim_get(url, "/_sim/items/EAST-ITEM-0006")["status"] == "Available"

    # Returns: Available or Unavailable per collection type.
    call(url, token, checkout_item("EAST-REF-0001", "ILL-FAR"), schema)
    for barcode, status, ncip_status in (
        ("EAST-ITEM-0001", "Available", "Available On Shelf"),
        ("EAST-REF-0001", "Unavailable", "Not Available"),
    ):
        a = call(url, token, checkin_item(barcode), schema)
        assert a.problem is None
        assert a.text("UserId/UserIdentifierValue") == "ILL-FAR"
        assert sim_get(url, f"/_sim/items/{barcode}")["status"] == status
        look = call(url, token, lookup_item(barcode), schema)
        assert look.text("ItemOptionalFields/CirculationStatus") == ncip_status
        assert look.child_names() == ["ResponseHeader", "ItemId", "ItemOptionalFields"]
    assert call(url, token, checkin_item("EAST-ITEM-0001"), schema).problem == "Item Not Checked Out"
    assert call(url, token, checkin_item("NOPE"), schema).problem == "Unknown Item"
    assert call(url, token, lookup_item("NOPE"), schema).problem == "Unknown Item"


def test_staff_actions_refusals(url: str) -> None:
    r = requests.post(
        url + "/_sim/checkout",
        json={"item_barcode": "EAST-ITEM-0001", "patron_barcode": "EAST-P-0002"},
        timeout=T,
    )
    assert (r.status_code, r.json()["problem_type"]) == (409, "User Blocked")
    r = requests.post(
        url + "/_sim/checkout",
        json={"item_barcode": "EAST-ITEM-0001", "patron_barcode": "EAST-P-0003"},
        timeout=T,
    )
    assert r.status_code == 409
    r = requests.post(
        url + "/_sim/checkin", json={"barcode": "EAST-ITEM-0001", "branch": "128807"}, timeout=T
    )
    assert (r.status_code, r.json()["problem_type"]) == (409, "Item Not Checked Out")
    r = requests.post(url + "/_sim/checkin", json={"barcode": "NOPE"}, timeout=T)
    assert (r.status_code, r.json()["problem_type"]) == (409, "Unknown Item")
    r = requests.post(
        url + "/_sim/checkin", json={"barcode": "EAST-ITEM-0001", "branch": "000000"}, timeout=T
    )
    assert r.status_code == 409
    r = requests.post(url + "/_sim/checkin", json={}, timeout=T)
    assert r.status_code == 400
    # ILL-DEFAULT exists in both demo institutions, items do not: registry id is optional for unique barcodes.
    out = sim_post(url, "/_sim/checkout", {"item_barcode": "WEST-ITEM-0001", "patron_barcode": "WEST-P-0001"})
    assert out["registry_id"] == "262626"
    assert parse_iso(out["loan"]["due"]) > datetime.now(UTC) + timedelta(days=27)
    # A barcode in two institutions needs registry_id.
    sim_post(url, "/_sim/items", {"registry_id": "262626", "barcode": "EAST-ITEM-0001"})
    r = requests.post(url + "/_sim/checkin", json={"barcode": "EAST-ITEM-0001"}, timeout=T)
    assert r.status_code == 400
    out = sim_post(
        url,
        "/_sim/checkout",
        {"registry_id": "262626", "item_barcode": "EAST-ITEM-0001", "patron_barcode": "WEST-P-0001"},
    )
    assert out["registry_id"] == "262626"
    assert requests.get(url + "/_sim/items/EAST-ITEM-0001", timeout=T).status_code == 400
    assert sim_get(url, "/_sim/items/EAST-ITEM-0001?registry_id=128807")["status"] == "Available"


# The /_sim/ API ---------------------------------------------------------------------------------------


def test_sim_api_seed_and_read(url: str) -> None:
    state = sim_get(url, "/_sim/state")
    for key in (
        "institutions",
        "branches",
        "patrons",
        "items",
        "temp_items",
        "holds",
        "loans",
        "notices",
        "faults",
        "requests_log",
    ):
        assert key in state
    east = next(i for i in state["institutions"] if i["registry_id"] == "128807")
    assert east["ill_settings"] == {
        "holding_location": "ILL",
        "shelving_location": "ILL Shelf",
        "home_branch": "128807",
    }
    assert east["policies"]["patron_loan_days"] == 28 and east["policies"]["ill_loan_days"] == 42
    branches = sim_get(url, "/_sim/branches?registry_id=128807")
    assert [(b["branch_id"], b["name"], b["main"]) for b in branches] == [
        ("128807", "Main", True),
        ("262630", "Science Library", False),
    ]
    patrons = {p["barcode"]: p for p in sim_get(url, "/_sim/patrons?registry_id=128807")}
    assert set(patrons) == {
        "EAST-P-0001",
        "EAST-P-0002",
        "EAST-P-0003",
        "ILL-WEST",
        "ILL-DEFAULT",
        "ILL-EXPIRED",
    }
    assert patrons["EAST-P-0002"]["blocked"] is True
    assert patrons["EAST-P-0003"]["expired"] is True and patrons["ILL-EXPIRED"]["expired"] is True
    assert patrons["ILL-WEST"]["expires"] == "2027-06-30"
    items = sim_get(url, "/_sim/items?registry_id=128807")
    assert len(items) == 11
    assert {i["barcode"]: i["status"] for i in items}["EAST-REF-0001"] == "Unavailable"
    west = sim_get(url, "/_sim/patrons?registry_id=262626")
    assert {p["barcode"] for p in west} == {"WEST-P-0001", "ILL-EAST", "ILL-DEFAULT"}
    assert len(sim_get(url, "/_sim/items?registry_id=262626")) == 10
    assert all("registry_id" in p for p in sim_get(url, "/_sim/patrons"))

    # Adding things.
    sim_post(url, "/_sim/branches", {"registry_id": "262626", "branch_id": "262627", "name": "West Annex"})
    assert len(sim_get(url, "/_sim/branches?registry_id=262626")) == 2
    item = sim_post(
        url,
        "/_sim/items",
        {
            "registry_id": "262626",
            "barcode": "W-NEW",
            "branch": "262627",
            "collection_type": "non-circulating",
            "call_number": "X1",
            "title": "New",
        },
    )
    assert (item["status"], item["branch"], item["registry_id"]) == ("Unavailable", "262627", "262626")
    assert (
        sim_post(url, "/_sim/policies", {"registry_id": "262626", "patron_loan_days": 14})["patron_loan_days"]
        == 14
    )
    assert sim_get(url, "/_sim/policies?registry_id=262626")[0]["patron_loan_days"] == 14

    # Bad input to the control API.
    assert (
        requests.post(
            url + "/_sim/patrons", json={"registry_id": "nope", "barcode": "x"}, timeout=T
        ).status_code
        == 404
    )
    assert requests.post(url + "/_sim/patrons", json={"registry_id": "128807"}, timeout=T).status_code == 400
    assert (
        requests.post(
            url + "/_sim/patrons",
            json={"registry_id": "128807", "barcode": "x", "expires": "soon"},
            timeout=T,
        ).status_code
        == 400
    )
    assert (
        requests.post(
            url + "/_sim/items", json={"registry_id": "128807", "barcode": "x", "branch": "1"}, timeout=T
        ).status_code
        == 400
    )
    assert requests.post(url + "/_sim/institutions", json={"registry_id": "5"}, timeout=T).status_code == 400
    assert requests.post(url + "/_sim/patrons", data=b"{not json", timeout=T).status_code == 400
    assert requests.post(url + "/_sim/patrons", json=[1, 2], timeout=T).status_code == 400
    assert requests.get(url + "/_sim/items/NOPE", timeout=T).status_code == 404
    assert requests.get(url + "/_sim/holds?registry_id=nope", timeout=T).status_code == 404
    assert requests.post(url + "/_sim/token-ttl", json={"token_ttl": "x"}, timeout=T).status_code == 400

    # Reset empties everything.
    sim_post(url, "/_sim/reset")
    state = sim_get(url, "/_sim/state")
    assert state["institutions"] == [] and state["items"] == [] and state["requests_log"] == []


def test_requests_log(url: str, schema) -> None:
    token = get_token(url)
    call(url, token, lookup_item("EAST-ITEM-0001"), schema)
    call(url, token, checkin_item("NOPE"), schema)
    ncip(url, "bad-token", lookup_item("EAST-ITEM-0001"))
    log = sim_get(url, "/_sim/requests-log")
    assert [(e["operation"], e["outcome"]) for e in log] == [
        ("token", "success"),  # token requests are logged too: calls per token can be counted
        ("LookupItem", "success"),
        ("CheckInItem", "problem"),
        (None, "unauthorized"),
    ]
    assert log[2]["problem_type"] == "Unknown Item"
    assert log[1]["registry_id"] == "128807" and "time" in log[1]
    assert log[0]["registry_id"] == "128807" and log[0]["scopes"] == ["WMS_NCIP"]
    assert len(sim_get(url, "/_sim/requests-log?registry_id=262626")) == 0


# Faults ----------------------------------------------------------------------------------------------


def add_fault(url: str, **spec: Any) -> dict[str, Any]:
    return sim_post(url, "/_sim/faults", spec)


def test_fault_latency(url: str, schema) -> None:
    token = get_token(url)
    add_fault(url, operation="LookupItem", kind="latency", latency_ms=300)
    started = time.monotonic()
    a = call(url, token, lookup_item("EAST-ITEM-0001"), schema)
    assert time.monotonic() - started >= 0.3
    assert a.problem is None
    call(url, token, lookup_item("EAST-ITEM-0001"), schema)
    assert sim_get(url, "/_sim/faults") == []  # the one-shot latency fault was consumed


def test_fault_http_error(url: str) -> None:
    token = get_token(url)
    add_fault(url, operation="CheckOutItem", kind="http_error", status=502)
    r = ncip(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT"))
    assert r.status_code == 502
    assert sim_get(url, "/_sim/loans") == []  # nothing applied
    add_fault(url, operation="CheckOutItem", kind="http_error")
    assert ncip(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT")).status_code == 503
    assert ncip(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT")).status_code == 200


def test_fault_timeout(url: str) -> None:
    token = get_token(url)
    sim_post(url, "/_sim/checkout", {"item_barcode": "EAST-ITEM-0001", "patron_barcode": "EAST-P-0001"})
    add_fault(url, operation="CheckInItem", kind="timeout", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        ncip(url, token, checkin_item("EAST-ITEM-0001"))
    assert time.monotonic() - started >= 0.5
    assert sim_get(url, "/_sim/items/EAST-ITEM-0001")["status"] == "On Loan"  # not applied
    # A client that gives up earlier sees a read timeout.
    add_fault(url, operation="CheckInItem", kind="timeout", timeout_s=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            url + "/ncip",
            data=checkin_item("EAST-ITEM-0001").encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
            timeout=0.2,
        )


def test_fault_drop_response_applies_then_drops(url: str, schema) -> None:
    token = get_token(url)
    add_fault(url, operation="AcceptItem", kind="drop_response")
    with pytest.raises(requests.exceptions.ConnectionError):
        ncip(url, token, accept_item("TMP-DROP", "ReShareRequestEAST-3", "EAST-P-0001"))
    temp = sim_get(url, "/_sim/temp-items")
    assert [t["barcode"] for t in temp] == ["TMP-DROP"]  # the effect happened
    retry = call(url, token, accept_item("TMP-DROP", "ReShareRequestEAST-3", "EAST-P-0001"), schema)
    assert retry.problem == "Duplicate Item"
    accepts = [e for e in sim_get(url, "/_sim/requests-log") if e["operation"] == "AcceptItem"]
    assert accepts[0]["outcome"] == "fault_drop_response"


def test_fault_problem_times_and_wildcard(url: str, schema) -> None:
    token = get_token(url)
    add_fault(
        url,
        operation="CheckOutItem",
        kind="problem",
        problem_type="Temporary Processing Failure",
        problem_detail="WMS is down",
        times=2,
    )
    for _ in range(2):
        a = call(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT"), schema)
        assert a.problem == "Temporary Processing Failure"
        assert a.text("Problem/ProblemDetail") == "WMS is down"
    assert sim_get(url, "/_sim/loans") == []
    assert call(url, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT"), schema).problem is None

    add_fault(url, operation="*", kind="http_error", status=500, times=-1)
    faults = sim_get(url, "/_sim/faults")
    assert [(f["operation"], f["kind"], f["times"]) for f in faults] == [("*", "http_error", -1)]
    for _ in range(3):
        assert ncip(url, token, lookup_item("EAST-ITEM-0001")).status_code == 500
    assert (
        requests.post(url + "/oauth/token", auth=("east-wskey", "east-secret"), timeout=T).status_code == 500
    )
    assert requests.delete(url + "/_sim/faults", timeout=T).json() == {"cleared": 1}
    assert ncip(url, token, lookup_item("EAST-ITEM-0001")).status_code == 200
    # Bad fault specs.
    assert (
        requests.post(
            url + "/_sim/faults", json={"operation": "Nope", "kind": "latency"}, timeout=T
        ).status_code
        == 400
    )
    assert (
        requests.post(
            url + "/_sim/faults", json={"operation": "token", "kind": "nope"}, timeout=T
        ).status_code
        == 400
    )


def test_fault_token_and_scim(url: str) -> None:
    add_fault(url, operation="token", kind="problem", problem_type="temporarily_unavailable")
    r = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
        auth=("east-wskey", "east-secret"),
        timeout=T,
    )
    assert (r.status_code, r.json()["error"]) == (400, "temporarily_unavailable")
    add_fault(url, operation="token", kind="drop_response")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(
            url + "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "WMS_NCIP"},
            auth=("east-wskey", "east-secret"),
            timeout=T,
        )
    token = get_token(url, scope="SCIM:read_user")
    add_fault(url, operation="scim", kind="problem")
    r = scim_search(url, token, "EAST-P-0001")
    assert r.status_code == 500
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    add_fault(url, operation="scim", kind="http_error", status=429)
    assert scim_search(url, token, "EAST-P-0001").status_code == 429
    assert scim_search(url, token, "EAST-P-0001").status_code == 200


# SCIM ------------------------------------------------------------------------------------------------


def scim_search(
    url: str,
    token: str | None,
    barcode: str,
    content_type: str = "application/scim+json",
    flt: str | None = None,
):
    headers = {"Content-Type": content_type, "Accept": "application/scim+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"schemas": [SEARCH], "filter": flt if flt is not None else f'External_ID eq "{barcode}"'}
    return requests.post(
        url + "/idaas/scim/v2/Users/.search", data=json.dumps(body), headers=headers, timeout=T
    )


def scim_sample(name: str) -> Any:
    return json.loads((SCIM_SAMPLES / name).read_text())


def test_scim_lookups(url: str) -> None:
    token = get_token(url, scope="SCIM:read_user")
    good = scim_search(url, token, "EAST-P-0001")
    assert good.status_code == 200
    body = good.json()
    ref = scim_sample("wmsLookupUserGoodPatron.json")
    assert set(ref) == set(body)
    resource, ref_resource = body["Resources"][0], ref["Resources"][0]
    for key in ("schemas", "id", "externalId", "userName", "name", PERSONA, CIRC, "meta"):
        assert key in resource
    assert set(ref_resource[PERSONA]) == set(resource[PERSONA])
    assert set(ref_resource[CIRC]["circulationInfo"]) == set(resource[CIRC]["circulationInfo"])
    info = resource[CIRC]["circulationInfo"]
    assert (info["barcode"], info["isCircBlocked"], info["borrowerCategory"], info["homeBranch"]) == (
        "EAST-P-0001",
        False,
        "ADULT",
        "128807",
    )
    assert resource[PERSONA]["oclcExpirationDate"] == "2030-12-31T00:00:00Z"
    assert resource[PERSONA]["institutionId"] == "128807"
    assert body["totalResults"] == 1

    blocked = scim_search(url, token, "EAST-P-0002").json()["Resources"][0]
    assert blocked[CIRC]["circulationInfo"]["isCircBlocked"] is True
    expired = scim_search(url, token, "EAST-P-0003").json()["Resources"][0]
    assert parse_iso(expired[PERSONA]["oclcExpirationDate"]) < datetime.now(UTC)

    assert scim_search(url, token, "NOBODY").json() == scim_sample("wmsLookupUserNotFound.json")
    # West's patron is not East's.
    assert scim_search(url, token, "WEST-P-0001").json()["totalResults"] == 0
    assert scim_search(url, token, "EAST-P-0001", content_type="application/json").status_code == 200


def test_scim_errors(url: str) -> None:
    scim_token = get_token(url, scope="SCIM:read_user")
    ncip_token = get_token(url, scope="WMS_NCIP")
    r = scim_search(url, None, "EAST-P-0001")
    assert (r.status_code, r.json()) == (401, scim_sample("wmsLookupUserAuthNotWorking.json"))
    r = scim_search(url, "nonsense", "EAST-P-0001")
    assert (r.status_code, r.json()) == (401, scim_sample("wmsLookupUserAuthNotWorking.json"))
    r = scim_search(url, ncip_token, "EAST-P-0001")
    assert (r.status_code, r.json()) == (403, scim_sample("wmsLookupUserMissingPermissions.json"))
    r = scim_search(url, scim_token, "EAST-P-0001", content_type="text/plain")
    assert (r.status_code, r.json()) == (415, scim_sample("wmsLookupUserUnsupportedMediaType.json"))
    r = scim_search(url, scim_token, "x", flt='userName sw "a"')
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidFilter"
    r = requests.post(
        url + "/idaas/scim/v2/Users/.search",
        data=b"{broken",
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"},
        timeout=T,
    )
    assert r.status_code == 400
    sim_post(url, "/_sim/expire-tokens")
    assert scim_search(url, scim_token, "EAST-P-0001").status_code == 401


# Hostile input ---------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">'
    '<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">'
    '<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">'
    '<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">'
    '<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">'
    '<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>'
    f'<NCIPMessage xmlns="{NS}" version="2"><LookupItem><ItemId><ItemIdentifierValue>&lol9;'
    "</ItemIdentifierValue></ItemId></LookupItem></NCIPMessage>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<NCIPMessage xmlns="{NS}" version="2"><LookupItem><ItemId><ItemIdentifierValue>&xxe;'
    "</ItemIdentifierValue></ItemId></LookupItem></NCIPMessage>"
)
PLAIN_DOCTYPE = f'<?xml version="1.0"?><!DOCTYPE NCIPMessage><NCIPMessage xmlns="{NS}" version="2"><LookupItem/></NCIPMessage>'
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>'
    f'<NCIPMessage xmlns="{NS}" version="2"/>'
)
DEFAULT_NS_LOOKUP = (
    f'<NCIPMessage xmlns="{NS}" xmlns:n="{NS}" n:version="{VERSION}"><LookupItem><ItemId>'
    "<ItemIdentifierValue>{}</ItemIdentifierValue></ItemId></LookupItem></NCIPMessage>"
)


def _deep(depth: int) -> bytes:
    return (
        f'<NCIPMessage xmlns="{NS}" version="2"><LookupItem>'
        + "<a>" * depth
        + "</a>" * depth
        + "</LookupItem></NCIPMessage>"
    ).encode()


def _problem(kind: str, element: str | None = None):
    """Expect HTTP 200 and an NCIP Problem of ``kind`` (top-level or inside the response)."""

    def check(r: requests.Response, schema) -> None:
        a = answer(r, schema)
        assert a.problem == kind, r.text[:400]
        if element is not None:
            path = "ProblemElement"
            value = (
                a.element.findtext(f"{{{NS}}}{path}") if a.name == "Problem" else a.text(f"Problem/{path}")
            )
            assert value == element

    return check


def _status(code: int):
    def check(r: requests.Response, schema) -> None:
        assert r.status_code == code, (r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith("application/json")
        assert "error" in r.json()

    return check


def _top_level(kind: str):
    def check(r: requests.Response, schema) -> None:
        a = answer(r, schema)
        assert a.name == "Problem", r.text[:300]
        assert a.problem == kind

    return check


def _no_passwd(kind: str):
    def check(r: requests.Response, schema) -> None:
        _top_level(kind)(r, schema)
        assert b"root:" not in r.content

    return check


def _unknown_item(value: str):
    def check(r: requests.Response, schema) -> None:
        a = answer(r, schema)
        assert a.problem == "Unknown Item"
        assert a.text("Problem/ProblemValue") == f"128807/{value}"

    return check


XML = "application/xml; charset=utf-8"
HOSTILE = [
    # (case, body, content type, auth: "good"|"bad"|"none"|"basic", check)
    (
        "malformed xml",
        f'<NCIPMessage xmlns="{NS}" version="2"><LookupItem>'.encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "mismatched tags",
        f'<NCIPMessage xmlns="{NS}"><a></b></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "wrong namespace",
        b'<NCIPMessage xmlns="urn:not-ncip" version="2"><LookupItem/></NCIPMessage>',
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "no namespace",
        b"<NCIPMessage><LookupItem/></NCIPMessage>",
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "message in other namespace",
        f'<NCIPMessage xmlns="{NS}"><x:LookupItem xmlns:x="urn:x"/></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "unknown message",
        f'<NCIPMessage xmlns="{NS}" version="2"><FrobnicateItem/></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Unsupported Service"),
    ),
    (
        # no branch look-up for a WSKey (docs/wms.md#branches): check-config lists branches to check by hand
        "LookupAgency",
        f'<NCIPMessage xmlns="{NS}" version="2"><LookupAgency/></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Unsupported Service"),
    ),
    (
        "unsupported NCIP service",
        f'<NCIPMessage xmlns="{NS}" version="2"><RenewItem/></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Unsupported Service"),
    ),
    (
        "empty NCIPMessage",
        f'<NCIPMessage xmlns="{NS}" version="2"/>'.encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "two messages",
        f'<NCIPMessage xmlns="{NS}"><LookupItem/><LookupItem/></NCIPMessage>'.encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "missing ItemId (check-in)",
        msg("CheckInItem", "").encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "missing ItemId (lookup)",
        msg("LookupItem", "").encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "missing UserId (checkout)",
        msg("CheckOutItem", item_id("EAST-ITEM-0001")).encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "missing RequestId (accept)",
        msg("AcceptItem", user_id("EAST-P-0001") + item_id("T-1")).encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "empty ItemIdentifierValue",
        msg(
            "CheckInItem", "<ns1:ItemId><ns1:ItemIdentifierValue> </ns1:ItemIdentifierValue></ns1:ItemId>"
        ).encode(),
        XML,
        "good",
        _problem("Needed Data Missing", "ItemIdentifierValue"),
    ),
    (
        "bad date",
        msg(
            "CheckOutItem",
            user_id("ILL-DEFAULT")
            + item_id("EAST-ITEM-0001")
            + "<ns1:DesiredDateDue>next tuesday</ns1:DesiredDateDue>",
        ).encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "wrong ToAgencyId",
        msg("LookupItem", item_id("EAST-ITEM-0001"), agency="999999").encode(),
        XML,
        "good",
        _problem("Unknown Agency", "ToAgencyId"),
    ),
    ("billion laughs", BILLION_LAUGHS.encode(), XML, "good", _top_level("Invalid Message Syntax Error")),
    ("external entity", XXE.encode(), XML, "good", _no_passwd("Invalid Message Syntax Error")),
    ("parameter entity", PARAMETER_ENTITY.encode(), XML, "good", _no_passwd("Invalid Message Syntax Error")),
    ("plain DOCTYPE", PLAIN_DOCTYPE.encode(), XML, "good", _top_level("Invalid Message Syntax Error")),
    (
        "DOCTYPE in UTF-16",
        XXE.replace('<?xml version="1.0"?>', "").encode("utf-16"),
        XML,
        "good",
        _no_passwd("Invalid Message Syntax Error"),
    ),
    ("huge body", b"<a>" + b"x" * (1024 * 1024 + 10) + b"</a>", XML, "good", _status(413)),
    ("JSON body", b'{"CheckInItem": {"ItemId": "EAST-ITEM-0001"}}', "application/json", "good", _status(400)),
    ("JSON body declared XML", b'{"CheckInItem": {}}', XML, "good", _status(400)),
    ("empty body", b"", XML, "good", _status(400)),
    ("whitespace body", b"  \r\n\t ", XML, "good", _status(400)),
    ("binary garbage", bytes(range(256)) * 4, "application/octet-stream", "good", _status(400)),
    (
        "wrong content type",
        DEFAULT_NS_LOOKUP.format("EAST-ITEM-0001").encode(),
        "text/plain",
        "good",
        _status(415),
    ),
    ("bad bearer token", DEFAULT_NS_LOOKUP.format("EAST-ITEM-0001").encode(), XML, "bad", _status(401)),
    ("missing auth", DEFAULT_NS_LOOKUP.format("EAST-ITEM-0001").encode(), XML, "none", _status(401)),
    ("basic auth on ncip", DEFAULT_NS_LOOKUP.format("EAST-ITEM-0001").encode(), XML, "basic", _status(401)),
    (
        "non-UTF-8 bytes",
        b'<?xml version="1.0" encoding="UTF-8"?>'
        + DEFAULT_NS_LOOKUP.format("X").encode().replace(b">X<", b">\xff\xfe\xc3<"),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "latin-1 declared",
        b'<?xml version="1.0" encoding="ISO-8859-1"?>'
        + DEFAULT_NS_LOOKUP.format("CAF\u00c9").encode("latin-1"),
        XML,
        "good",
        _unknown_item("CAF\u00c9"),
    ),
    ("deeply nested", _deep(5000), XML, "good", _top_level("Invalid Message Syntax Error")),
    (
        "control characters",
        DEFAULT_NS_LOOKUP.format("A\x01B").encode(),
        XML,
        "good",
        _top_level("Invalid Message Syntax Error"),
    ),
    (
        "large but legal value",
        DEFAULT_NS_LOOKUP.format("Z" * 200_000).encode(),
        XML,
        "good",
        _problem("Unknown Item"),
    ),
    (
        "script in barcode",
        DEFAULT_NS_LOOKUP.format("&lt;script&gt;alert(1)&lt;/script&gt;").encode(),
        "text/xml",
        "good",
        _unknown_item("<script>alert(1)</script>"),
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "content_type", "auth", "check"), HOSTILE, ids=[c[0] for c in HOSTILE]
)
def test_hostile_input(url: str, schema, case, body, content_type, auth, check) -> None:
    headers = {"Content-Type": content_type}
    if auth == "good":
        headers["Authorization"] = "Bearer " + get_token(url)
    elif auth == "bad":
        headers["Authorization"] = "Bearer not-a-token"
    elif auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(b"east-wskey:east-secret").decode()
    r = requests.post(url + "/ncip", data=body, headers=headers, timeout=T)  # a hang fails here
    assert r.status_code != 500
    check(r, schema)
    # ...and the server still answers properly.
    ok = call(url, get_token(url), lookup_item("EAST-ITEM-0001"), schema)
    assert ok.text("ItemOptionalFields/CirculationStatus") == "Available On Shelf"


def raw_http(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=T) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)  # end of request: the server sees EOF after the data
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_http(url: str, schema) -> None:
    assert raw_http(url, b"POST /ncip HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n").startswith(
        b"HTTP/1.0 400"
    )
    assert raw_http(url, b"POST /ncip HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n").startswith(
        b"HTTP/1.0 400"
    )
    chunked = b"POST /ncip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert raw_http(url, chunked).startswith(b"HTTP/1.0 411")
    assert b'"error"' in raw_http(url, b"GARBAGE\r\n\r\n")  # an HTTP/0.9-style request: a bare 400 body
    assert raw_http(url, b"GARBAGE /ncip HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 405")
    assert raw_http(url, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 414")
    assert raw_http(url, b"GET /_sim/state HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n").startswith(
        b"HTTP/1.0 431"
    )
    tls_hello = raw_http(url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
    assert tls_hello == b"" or b'"error"' in tls_hello
    # A client that announces more than it sends and goes away.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=T) as conn:
        conn.sendall(b"POST /ncip HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<short")
    r = requests.get(url + "/nowhere", timeout=T)
    assert (r.status_code, r.json()["error"]) == (404, "not found")
    r = requests.get(url + "/ncip", timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert requests.put(url + "/_sim/state", timeout=T).status_code == 405
    assert requests.delete(url + "/oauth/token", timeout=T).status_code == 405
    assert requests.head(url + "/_sim/reset", timeout=T).status_code == 405
    assert requests.get(url + "/_sim/../../etc/passwd", timeout=T).status_code == 404
    ok = call(url, get_token(url), lookup_item("EAST-ITEM-0001"), schema)
    assert ok.problem is None


def test_unexpected_exceptions_are_contained(sim: WmsSimulator, url: str, schema, monkeypatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaboom")

    token = get_token(url)
    monkeypatch.setattr(sim.ncip, "execute", boom)
    r = ncip(url, token, lookup_item("EAST-ITEM-0001"))
    a = answer(r, schema)
    assert (a.name, a.problem) == ("Problem", "Temporary Processing Failure")
    monkeypatch.setattr(sim.state, "snapshot", boom)
    r = requests.get(url + "/_sim/state", timeout=T)
    assert r.status_code == 400 and "error" in r.json()
    monkeypatch.undo()
    assert call(url, token, lookup_item("EAST-ITEM-0001"), schema).problem is None
    assert requests.get(url + "/_sim/state", timeout=T).status_code == 200


def test_concurrent_requests_and_clean_stop(schema) -> None:
    import concurrent.futures

    simulator = WmsSimulator(port=0)
    url = simulator.start()
    try:
        simulator.seed_demo()
        token = get_token(url)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            bodies = [accept_item(f"TMP-C{n}", f"ReShareRequestEAST-C{n}", "EAST-P-0001") for n in range(24)]
            bodies += [accept_item("TMP-SAME", "ReShareRequestEAST-SAME", "EAST-P-0001") for _ in range(8)]
            results = list(pool.map(lambda b: Answer(ncip(url, token, b).content, schema), bodies))
        assert sum(1 for a in results if a.problem is None) == 25
        assert sum(1 for a in results if a.problem == "Duplicate Item") == 7
        # A request held by a timeout fault does not block stop().
        add_fault(url, operation="LookupItem", kind="timeout", timeout_s=30)
        pool2 = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        pending = pool2.submit(ncip, url, token, lookup_item("EAST-ITEM-0001"))
        time.sleep(0.2)
    finally:
        started = time.monotonic()
        simulator.stop()
        # stop() did not wait out the 30 s the held request was told to sleep (a wide bound, not a speed test)
        assert time.monotonic() - started < 25
    with pytest.raises(requests.exceptions.ConnectionError):
        pending.result(timeout=T)
    pool2.shutdown()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/_sim/state", timeout=2)
    simulator.stop()  # idempotent


# Switches (sandbox.wms.options): undocumented WMS behaviour ------------------------------------------


def lookup_user(barcode: str) -> str:
    return msg("LookupUser", user_id(barcode) + "<ns1:LoanedItemsDesired/><ns1:RequestedItemsDesired/>")


def test_options_endpoint_lists_every_switch_with_its_default_and_refuses_unknowns(url: str) -> None:
    described = sim_get(url, "/_sim/options")
    names = [s["name"] for s in described["switches"]]
    assert names == [
        "lookup_item",
        "lookup_user",
        "desired_due_date",
        "due_date_style",
        "checkin_of_held_temp_item",
        "repeat_checkout_same_account",
        "duplicate_temp_barcode",
        "expired_account_when_mandated",
    ]
    assert all(s["default"] == s["values"][0] and s["known"] for s in described["switches"])
    assert described["options"]["lookup_item"] == "supported"  # this module's baseline
    before = described["options"]
    bad = requests.post(url + "/_sim/options", json={"lookup_user": "maybe", "nope": "x"}, timeout=T)
    assert bad.status_code == 400 and "nope" in bad.json()["error"] and "maybe" in bad.json()["error"]
    assert sim_get(url, "/_sim/options")["options"] == before  # all or nothing
    changed = sim_post(url, "/_sim/options", {"lookup_user": "unsupported"})
    assert changed["options"]["lookup_user"] == "unsupported"
    sim_post(url, "/_sim/reset")
    assert sim_get(url, "/_sim/options")["options"] == before  # reset: the values it was started with


def test_switch_defaults_a_fresh_simulator(schema) -> None:
    fresh = WmsSimulator(port=0)
    base = fresh.start()
    try:
        fresh.seed_demo()
        assert sim_get(base, "/_sim/options")["options"] == {
            "lookup_item": "unsupported",
            "lookup_user": "supported",
            "desired_due_date": "honoured_capped_at_expiry",
            "due_date_style": "end_of_day_local",
            "checkin_of_held_temp_item": "cancels_hold",
            "repeat_checkout_same_account": "problem",
            "duplicate_temp_barcode": "problem_duplicate_item",
            "expired_account_when_mandated": "refused",
        }
        token = get_token(base)
        refused = call(base, token, lookup_item("EAST-ITEM-0001"), schema)
        assert (refused.name, refused.problem) == ("Problem", "Unsupported Service")  # top-level Problem
        # End of the library's day, in its offset (East: America/New_York), like a published WMS client.
        desired = datetime(2030, 3, 14, 15, 0, tzinfo=UTC)
        out = call(base, token, checkout_item("EAST-ITEM-0001", "ILL-DEFAULT", desired=desired), schema)
        assert out.text("DateDue") == "2030-03-14T23:59:59.000-04:00"
    finally:
        fresh.stop()


def test_lookup_user_lists_loans_and_holds_like_oclcs_sample(url: str, schema) -> None:
    token = get_token(url)
    call(url, token, accept_item("TMP-LU-1", "ReShareRequestEAST-77", "EAST-P-0001"), schema)
    desired = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    call(url, token, checkout_item("EAST-ITEM-0004", "EAST-P-0001", desired=desired), schema)
    a = call(url, token, lookup_user("EAST-P-0001"), schema)
    assert a.child_names() == ["ResponseHeader", "UserId", "LoanedItem", "RequestedItem"]
    assert a.text("LoanedItem/ItemId/ItemIdentifierValue") == "EAST-ITEM-0004"
    assert a.text("LoanedItem/DateDue") == iso(desired)
    assert a.text("RequestedItem/ItemId/ItemIdentifierValue") == "TMP-LU-1"
    assert a.text("RequestedItem/RequestId/RequestIdentifierValue") == "ReShareRequestEAST-77"
    assert a.text("RequestedItem/RequestStatusType") == "In Process"
    only_loans = call(
        url, token, msg("LookupUser", user_id("EAST-P-0001") + "<ns1:LoanedItemsDesired/>"), schema
    )
    assert only_loans.child_names() == ["ResponseHeader", "UserId", "LoanedItem"]
    assert call(url, token, lookup_user("NOBODY"), schema).problem == "Unknown User"
    sim_post(url, "/_sim/options", {"lookup_user": "unsupported"})
    refused = call(url, token, lookup_user("EAST-P-0001"), schema)
    assert (refused.name, refused.problem) == ("Problem", "Unsupported Service")


def test_switch_duplicate_temp_barcode_wording(url: str, schema) -> None:
    token = get_token(url)
    call(url, token, accept_item("TMP-DUP", "ReShareRequestEAST-8", "EAST-P-0001"), schema)
    assert call(
        url, token, accept_item("TMP-DUP", "ReShareRequestEAST-8", "EAST-P-0001"), schema
    ).problem == ("Duplicate Item")
    sim_post(url, "/_sim/options", {"duplicate_temp_barcode": "problem_other_wording"})
    other = call(url, token, accept_item("TMP-DUP", "ReShareRequestEAST-8", "EAST-P-0001"), schema)
    assert other.problem == "Resource Cannot Be Provided"
    assert len([t for t in sim_get(url, "/_sim/temp-items") if t["barcode"] == "TMP-DUP"]) == 1


def mandated_checkout(barcode: str, user: str, desired: datetime | None = None) -> str:
    mandated = f"<ns1:MandatedAction><ns1:DateEventOccurred>{iso(datetime.now(UTC))}</ns1:DateEventOccurred></ns1:MandatedAction>"
    due = f"<ns1:DesiredDateDue>{iso(desired)}</ns1:DesiredDateDue>" if desired else ""
    return msg("CheckOutItem", mandated + user_id(user) + item_id(barcode) + due)


def test_switch_desired_due_date_and_expired_account_when_mandated(url: str, schema) -> None:
    token = get_token(url)
    desired = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    sim_post(url, "/_sim/options", {"desired_due_date": "policy_always"})
    policy = call(url, token, checkout_item("EAST-ITEM-0005", "ILL-DEFAULT", desired=desired), schema)
    assert parse_iso(policy.text("DateDue")) > desired + timedelta(days=30)  # ILL policy: 42 days
    mandated = call(url, token, mandated_checkout("EAST-ITEM-0006", "ILL-DEFAULT", desired), schema)
    assert mandated.text("DateDue") == iso(desired)  # MandatedAction: honoured (OCLC's sample)
    refused = call(url, token, mandated_checkout("EAST-ITEM-0007", "ILL-EXPIRED", desired), schema)
    assert refused.problem == "User Ineligible To Check Out This Item"
    sim_post(url, "/_sim/options", {"expired_account_when_mandated": "honoured"})
    assert (
        call(url, token, mandated_checkout("EAST-ITEM-0007", "ILL-EXPIRED", desired), schema).problem is None
    )
    assert call(url, token, checkout_item("EAST-ITEM-0008", "ILL-EXPIRED"), schema).problem == (
        "User Ineligible To Check Out This Item"
    )  # without MandatedAction: still refused


def test_switch_checkin_of_held_temp_item(url: str, schema) -> None:
    token = get_token(url)
    for barcode, value in (("TMP-H1", "cancels_hold"), ("TMP-H2", "keeps_hold")):
        sim_post(url, "/_sim/options", {"checkin_of_held_temp_item": value})
        call(url, token, accept_item(barcode, f"ReShareRequestEAST-{barcode}", "EAST-P-0001"), schema)
        sim_post(url, "/_sim/checkin", {"barcode": barcode, "branch": "262630"})  # arrives: hold Ready
        call(url, token, checkin_item(barcode), schema)  # checked in again, never borrowed
        holds = [h for h in sim_get(url, "/_sim/holds") if h["item_barcode"] == barcode]
        item = sim_get(url, f"/_sim/items/{barcode}")
        if value == "cancels_hold":
            assert (holds[0]["status"], item["status"]) == ("Cancelled", "Unavailable")
        else:
            assert (holds[0]["status"], item["status"]) == ("Ready", "On Hold Shelf")


@pytest.mark.parametrize(
    "pickup", ["262630", "EAST", "128807"], ids=["branch id", "symbol", "institution id"]
)
def test_pickup_location_under_both_of_oclcs_schemes(url: str, schema, pickup: str) -> None:
    token = get_token(url)
    call(url, token, accept_item("TMP-PICK", "ReShareRequestEAST-90", "EAST-P-0001", pickup=pickup), schema)
    [hold] = [h for h in sim_get(url, "/_sim/holds") if h["item_barcode"] == "TMP-PICK"]
    # a branch id is that branch; the institution (by OCLC symbol or registry id) is its main branch
    assert hold["pickup_branch"] == ("262630" if pickup == "262630" else "128807")


def test_requests_are_validated_against_the_schema_like_a_strict_server(url: str, schema) -> None:
    token = get_token(url)
    unknown_element = msg("LookupUser", user_id("EAST-P-0001") + "<ns1:Frobnicate/>")
    refused = call(url, token, unknown_element, schema, validate_request=False)
    assert (refused.name, refused.problem) == ("Problem", "Invalid Message Syntax Error")
    assert "Frobnicate" in (refused.element.findtext(f"{{{NS}}}ProblemDetail") or "")
    lenient = (SHARED / "samples" / "other" / "lookupUser.xml").read_bytes()  # unqualified version attribute
    refused = answer(ncip(url, token, lenient), schema)
    assert (refused.name, refused.problem) == ("Problem", "Invalid Message Syntax Error")


def cancel_request(request: str, patron: str, item: str | None = None) -> str:
    scope = (
        '<ns1:RequestType ns1:Scheme="http://www.niso.org/ncip/v1_0/imp1/schemes/requesttype/requesttype.scm">'
        "Hold</ns1:RequestType>"
    )
    return msg(
        "CancelRequestItem", user_id(patron) + request_id(request) + (item_id(item) if item else "") + scope
    )


def test_cancel_request_item_cancels_the_patron_s_hold_and_answers_as_the_toolkit_sample(
    url: str, schema
) -> None:
    # keeps_hold: a temp item checked in while held goes back to the hold shelf; CancelRequestItem then ends it
    sim_post(url, "/_sim/options", {"checkin_of_held_temp_item": "keeps_hold"})
    token = get_token(url)
    call(url, token, accept_item("TMP-C1", "ReShareRequestEAST-71", "EAST-P-0001"), schema)
    sim_post(url, "/_sim/checkin", {"barcode": "TMP-C1", "branch": "262630"})  # arrives: hold Ready
    # a stranger's cancel, and an unknown request: NCIP's Unknown User / Unknown Request, nothing changes
    stranger = call(url, token, cancel_request("ReShareRequestEAST-71", "NOBODY"), schema)
    assert stranger.problem == "Unknown User"
    unknown = call(url, token, cancel_request("ReShareRequestEAST-72", "EAST-P-0001"), schema)
    assert unknown.problem == "Unknown Request"
    assert [h["status"] for h in sim_get(url, "/_sim/holds") if h["item_barcode"] == "TMP-C1"] == ["Ready"]
    # the patron's hold by request id and item: cancelled; answer RequestId, ItemId, UserId
    done = call(url, token, cancel_request("ReShareRequestEAST-71", "EAST-P-0001", "TMP-C1"), schema)
    assert done.problem is None and done.name == "CancelRequestItemResponse"
    assert done.child_names() == ["ResponseHeader", "RequestId", "ItemId", "UserId"]
    assert (done.text("RequestId/RequestIdentifierValue"), done.text("ItemId/ItemIdentifierValue")) == (
        "ReShareRequestEAST-71",
        "TMP-C1",
    )
    assert done.text("UserId/UserIdentifierValue") == "EAST-P-0001"
    assert [h["status"] for h in sim_get(url, "/_sim/holds") if h["item_barcode"] == "TMP-C1"] == [
        "Cancelled"
    ]
    assert sim_get(url, "/_sim/items/TMP-C1")["status"] != "On Hold Shelf"
    # a second cancel: the request is no longer active
    again = call(url, token, cancel_request("ReShareRequestEAST-71", "EAST-P-0001", "TMP-C1"), schema)
    assert again.problem == "Unknown Request"
    log = [e for e in sim_get(url, "/_sim/requests-log") if e["operation"] == "CancelRequestItem"]
    assert [e["outcome"] for e in log] == ["problem", "problem", "success", "problem"]
