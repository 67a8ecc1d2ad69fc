"""WMS patron look-up through OCLC's identity SCIM search (docs/wms.md#patron-look-up-scim): request body and answer reading.

WMS has no NCIP LookupUser: ``POST .../idaas/scim/v2/Users/.search`` with a SCIM SearchRequest filtering on
``External_ID`` (the patron barcode). ``Resources[0]`` carries the expiry date (persona schema) and the
circulation block, barcode, borrower category and home branch (wmscircpatroninfo schema). An empty
``Resources`` means no such patron; errors are SCIM Error JSON (``detail``, ``status``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from illbridge.errors import PatronNotFound, WmsAuthError, WmsError, WmsProtocolError, WmsUnavailable
from illbridge.observability import mask
from illbridge.timeutil import to_utc

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PERSONA = "urn:mace:oclc.org:eidm:schema:persona:persona:20180305"
CIRCULATION = "urn:mace:oclc.org:eidm:schema:persona:wmscircpatroninfo:20180101"
ILL_INFO = "urn:mace:oclc.org:eidm:schema:persona:wsillinfo:20180101"
MEDIA_TYPE = "application/scim+json"


@dataclass(frozen=True)
class Patron:
    barcode: str
    expires: date | None  # the UTC date of oclcExpirationDate
    blocked: bool  # circulationInfo.isCircBlocked
    borrower_category: str | None = None
    home_branch: str | None = None
    expires_at: datetime | None = None  # oclcExpirationDate as sent (an instant, midnight UTC in practice)
    ill_blocked: bool = False  # illInfo.isBlocked (WorldShare ILL's own block; informative)

    def is_expired(self, today: date) -> bool:
        """Expired from its expiration date on (ReShare: expired when the expiration instant is past).

        Give a ``datetime`` to compare with the exact instant instead of the date.
        """
        if isinstance(today, datetime):
            moment = to_utc(today)
            return self.expires_at is not None and moment is not None and moment >= self.expires_at
        return self.expires is not None and today >= self.expires

    def summary(self) -> str:
        expires = self.expires.isoformat() if self.expires else "never"
        return (
            f"patron={mask(self.barcode)} blocked={self.blocked} expires={expires} "
            f"category={self.borrower_category or '-'} home={self.home_branch or '-'}"
        )


def _scim_string(value: str) -> str:
    """A SCIM filter string literal: quotes and backslashes escaped (RFC 7644 uses JSON string rules)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_body(barcode: str) -> bytes:
    """The SearchRequest for one patron barcode."""
    if not barcode or not barcode.strip():
        raise ValueError("patron barcode is required")
    body = {"schemas": [SEARCH_REQUEST], "filter": f"External_ID eq {_scim_string(barcode)}"}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _detail(payload: Any, fallback: bytes) -> str:
    if isinstance(payload, dict):
        for key in ("detail", "message", "error_description", "error"):
            if payload.get(key):
                return str(payload[key])
    return " ".join(fallback[:200].decode("utf-8", "replace").split())


def error_for(status: int, body: bytes) -> WmsError:
    """The typed error for a SCIM error answer (HTTP status, or the ``status`` inside a SCIM Error)."""
    payload = _json(body)
    detail = _detail(payload, body)
    if isinstance(payload, dict) and str(payload.get("status", "")).isdigit() and status < 400:
        status = int(payload["status"])
    text = f"SCIM patron search: HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return WmsAuthError(text)
    if status in (408, 429) or status >= 500:
        return WmsUnavailable(text)
    return WmsProtocolError(text)  # 404 unsupported endpoint, 400 bad filter, 415 media type, ...


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "y", "1")
    return bool(value)


def parse_search_response(body: bytes, barcode: str) -> Patron:
    """Read a 2xx SCIM ListResponse for ``barcode``. Raises PatronNotFound, or the mapped error when the
    body is a SCIM Error, or WmsProtocolError when it cannot be read."""
    payload = _json(body)
    if not isinstance(payload, dict):
        raise WmsProtocolError("SCIM patron search: the answer is not a JSON object")
    if ERROR_SCHEMA in (payload.get("schemas") or []):
        raise error_for(200, body)
    resources = payload.get("Resources", payload.get("resources"))
    if resources is None:
        if payload.get("totalResults") == 0:
            resources = []
        else:
            raise WmsProtocolError("SCIM patron search: the answer has no Resources")
    if not isinstance(resources, list):
        raise WmsProtocolError("SCIM patron search: Resources is not a list")
    users = [resource for resource in resources if isinstance(resource, dict)]
    if not users:
        raise PatronNotFound(f"WMS knows no patron with barcode {mask(barcode)}")

    def circulation(user: dict[str, Any]) -> dict[str, Any]:
        info = (user.get(CIRCULATION) or {}).get("circulationInfo") or {}
        return info if isinstance(info, dict) else {}

    # External_ID is unique per institution; if several came back, prefer the one with this very barcode.
    user = next((u for u in users if circulation(u).get("barcode") == barcode), users[0])
    info = circulation(user)
    persona = user.get(PERSONA) or {}
    raw_expiry = persona.get("oclcExpirationDate") if isinstance(persona, dict) else None
    try:
        expires_at = to_utc(raw_expiry) if raw_expiry else None
    except ValueError as exc:
        raise WmsProtocolError(
            f"SCIM patron search: oclcExpirationDate {raw_expiry!r} is not a date"
        ) from exc
    ill = (user.get(ILL_INFO) or {}).get("illInfo") or {}
    return Patron(
        barcode=str(info.get("barcode") or user.get("externalId") or barcode),
        expires=expires_at.date() if expires_at else None,
        blocked=_flag(info.get("isCircBlocked", False)),
        borrower_category=info.get("borrowerCategory") or None,
        home_branch=str(info["homeBranch"]) if info.get("homeBranch") else None,
        expires_at=expires_at,
        ill_blocked=_flag(ill.get("isBlocked", False)) if isinstance(ill, dict) else False,
    )
