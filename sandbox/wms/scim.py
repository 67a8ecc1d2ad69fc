"""OCLC identity (SCIM 2) patron search, as WMS answers it (``samples/scim/``).

``POST /idaas/scim/v2/Users/.search`` with body
``{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"External_ID eq \\"<barcode>\\""}``
(``externalId`` is accepted as the attribute name too). The institution searched is the token's.

* no / unknown / expired token -> 401, body like ``wmsLookupUserAuthNotWorking.json``
* token without scope ``SCIM:read_user`` -> 403, like ``wmsLookupUserMissingPermissions.json``
* Content-Type not ``application/scim+json`` or ``application/json`` -> 415, like
  ``wmsLookupUserUnsupportedMediaType.json``
* body not JSON / not a SearchRequest / unsupported filter -> 400 SCIM error with ``scimType`` ``invalidFilter``
  or ``invalidSyntax``
* found -> 200 ListResponse with one resource shaped like ``wmsLookupUserGoodPatron.json``; not found -> 200
  ``{"totalResults":0,"itemsPerPage":0,...,"Resources":[]}`` like ``wmsLookupUserNotFound.json``
* injected ``problem`` fault -> 500 like ``wmsLookupUserUnableToHandle.json`` (detail = the fault's detail)
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import state as st

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
CORRELATION = "urn:mace:oclc.org:eidm:schema:persona:correlationinfo:20180101"
PERSONA = "urn:mace:oclc.org:eidm:schema:persona:persona:20180305"
CIRC_INFO = "urn:mace:oclc.org:eidm:schema:persona:wmscircpatroninfo:20180101"
ILL_INFO = "urn:mace:oclc.org:eidm:schema:persona:wsillinfo:20180101"
SCIM_CONTENT_TYPE = "application/scim+json"
READ_SCOPE = "SCIM:read_user"

_FILTER = re.compile(r'^\s*(External_ID|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def error(status: int, detail: str, scim_type: str | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "detail": detail, "status": str(status)}
    if scim_type:
        body["scimType"] = scim_type
    return status, body


def unauthorized() -> tuple[int, dict[str, Any]]:
    return error(401, "Authentication failure. Missing or invalid authorization token.")


def forbidden() -> tuple[int, dict[str, Any]]:
    return error(
        403, "Authorization failure. You do not have sufficient permissions to access this resource."
    )


def unsupported_media_type() -> tuple[int, dict[str, Any]]:
    return error(415, "Unsupported media type.")


def unable_to_handle(detail: str | None = None) -> tuple[int, dict[str, Any]]:
    return error(500, detail or "Unable to to handle the request.")


def media_type_ok(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in (SCIM_CONTENT_TYPE, "application/json")


def parse_search(body: bytes) -> str:
    """The barcode searched for; raises ValueError (with a SCIM scimType prefix) on a bad request."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalidSyntax|the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("invalidSyntax|the body must be a SCIM SearchRequest object")
    schemas = payload.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_SCHEMA not in schemas):
        raise ValueError(f"invalidSyntax|schemas must contain {SEARCH_SCHEMA}")
    flt = payload.get("filter")
    if not isinstance(flt, str):
        raise ValueError('invalidFilter|a filter External_ID eq "<barcode>" is required')
    match = _FILTER.match(flt)
    if not match:
        raise ValueError(f'invalidFilter|unsupported filter; only External_ID eq "<barcode>": {flt[:200]}')
    return re.sub(r"\\(.)", r"\1", match.group(2))


def search(state: st.WmsState, registry_id: str, body: bytes, base_url: str) -> tuple[int, dict[str, Any]]:
    try:
        barcode = parse_search(body)
    except ValueError as exc:
        scim_type, _, detail = str(exc).partition("|")
        return error(400, detail, scim_type)
    with state.lock:
        inst = state.institution(registry_id)
        patron = inst.patrons.get(barcode)
        if patron is None:
            return 200, {"totalResults": 0, "itemsPerPage": 0, "schemas": [LIST_SCHEMA], "Resources": []}
        resource = user_resource(inst, patron, base_url)
    return 200, {
        "totalResults": 1,
        "itemsPerPage": 1,
        "startIndex": 1,
        "schemas": [LIST_SCHEMA],
        "Resources": [resource],
    }


def user_resource(inst: st.Institution, patron: st.Patron, base_url: str) -> dict[str, Any]:
    ppid = patron.patron_id
    family = patron.family_name or patron.barcode
    given = patron.given_name or ("ILL" if patron.is_ill_account else "Patron")
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA, CORRELATION, PERSONA, CIRC_INFO, ILL_INFO],
        "id": ppid,
        "externalId": patron.barcode,
        "userName": "NOT SUPPORTED",
        "name": {"familyName": family, "givenName": given},
    }
    if patron.email:
        resource["emails"] = [{"value": patron.email, "primary": True}]
    resource.update(
        {
            CORRELATION: {
                "correlationInfo": [
                    {"sourceSystem": f"urn:mace:oclc:idm:{inst.registry_id}", "idAtSource": patron.barcode}
                ]
            },
            PERSONA: {
                "oclcPPID": ppid,
                "institutionId": inst.registry_id,
                "oclcNamespace": f"urn:oclc:platform:{inst.registry_id}",
                "oclcUsername": patron.barcode,
                "oclcExpirationDate": st.iso(patron.expires_at),
                "nameInfoCanSelfEdit": False,
            },
            CIRC_INFO: {
                "circulationInfo": {
                    "barcode": patron.barcode,
                    "borrowerCategory": patron.borrower_category,
                    "homeBranch": patron.home_branch,
                    "circRegistrationDate": patron.created.date().isoformat(),
                    "isCircBlocked": patron.blocked,
                    "isCollectionExempt": False,
                    "isFineExempt": False,
                    "isVerified": True,
                    "storeCheckoutHistory": False,
                }
            },
            ILL_INFO: {"illInfo": {"isBlocked": False, "isApproved": False}},
            "meta": {
                "resourceType": "User",
                "created": st.iso(patron.created),
                "lastModified": st.iso(patron.updated),
                "location": f"{base_url}/idaas/scim/v2/Users/{ppid}",
            },
        }
    )
    return resource
