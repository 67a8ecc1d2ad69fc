"""Signed webhooks (Standard Webhooks): ReShare request events and WMS check-in notices.

Checks run cheapest-first and nothing is written until all pass:
size (413) -> signature headers present (401) -> signature and timestamp (401; any configured library's
secrets, several per library for rotation, 5 minutes tolerance both ways) -> JSON (400) -> shape, unknown
fields refused (400) -> replay of a seen ``webhook-id`` (200, no effect).
A ReShare event is never trusted: the bridge re-reads the request from ReShare and emits the same
``ReShareRequestChanged`` the poller would (the same "did the state change" write dedupes the two).
A WMS check-in notice is not trusted either: it becomes a ``WmsItemCheckedIn`` event (``source="webhook"``)
whose step asks WMS through the check-in probe before acting on it (``illbridge.workflow.notices``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from illbridge.config import LibraryConfig
from illbridge.errors import BadInput, ReShareNotFound
from illbridge.models import WmsItemCheckedIn
from illbridge.observability import logger
from illbridge.workflow.checks import require_manual_integration
from illbridge.workflow.polling import Transitions
from illbridge.workflow.services import Services

MAX_BODY_BYTES = 256 * 1024
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
OID_PREFIX = "org.olf.rs.PatronRequest:"
SCHEMA_SUFFIX = "_mod_rs"  # mod-rs events name the tenant by its schema: <tenant>_mod_rs


@dataclass
class WebhookAnswer:
    status: int
    body: dict[str, Any]


class Unauthorized(BadInput):
    """The delivery is not signed by a configured secret (or is stale): 401."""


class TooLarge(BadInput):
    """The body is over the size limit: 413."""


class ReShareEventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100)
    title: str | None = None
    state: str | None = None
    dueDate: str | None = None


class ReShareEvent(BaseModel):
    """The shape mod-rs publishes (docs/reshare.md#events; mod-rs ``AppListenerService``): ``{event, tenant,
    oid, payload: {id, title, state, dueDate}}`` for a state change, ``{event: Req_New_Patron_Request_ind |
    Resp_New_Patron_Request_ind, tenant, oid, payload: {id, title}}`` for a new request. ``tenant`` is the
    tenant's schema name, ``<tenant>_mod_rs`` (the plain tenant name is taken too, as a relay may rewrite it)."""

    model_config = ConfigDict(extra="forbid")
    event: str = Field(
        pattern=r"^(STATUS_[A-Z_]+_ind|Req_New_Patron_Request_ind|Resp_New_Patron_Request_ind)$"
    )
    tenant: str = Field(min_length=1, max_length=100)
    oid: str = Field(pattern=r"^org\.olf\.rs\.PatronRequest:[A-Za-z0-9-]+$")
    payload: ReShareEventPayload


class WmsCheckInNotice(BaseModel):
    """A WMS check-in notice (from a site's own feed): which item, where, when."""

    model_config = ConfigDict(extra="forbid")
    registry_id: str = Field(pattern=r"^\d{3,8}$")
    item_barcode: str = Field(min_length=1, max_length=100)
    branch: str | None = Field(default=None, pattern=r"^\d{6}$")
    checked_in_at: datetime | None = None


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def authenticate(services: Services, headers: dict[str, str], body: str) -> LibraryConfig:
    """The library whose webhook secret signed this delivery; Unauthorized if none did."""
    if len(body.encode()) > MAX_BODY_BYTES:
        raise TooLarge(f"body is over {MAX_BODY_BYTES // 1024} KiB")
    signed = {name: _header(headers, name) for name in SIGNATURE_HEADERS}
    missing = [name for name, value in signed.items() if not value]
    if missing:
        raise Unauthorized(f"missing signature header(s): {', '.join(missing)}")
    for config in services.configs.all():
        for secret in config.webhook_secrets:
            try:
                Webhook(secret.get_secret_value()).verify(body, signed)  # type: ignore[arg-type]
            except WebhookVerificationError:
                continue
            return config
    raise Unauthorized(
        "signature does not verify (unknown secret, altered body, or timestamp outside 5 minutes)"
    )


def parse(model: type[BaseModel], body: str) -> Any:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadInput(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise BadInput(f"body does not match the {model.__name__} shape: {problems}") from exc


def handle_reshare_event(services: Services, headers: dict[str, str], body: str) -> WebhookAnswer:
    config = authenticate(services, headers, body)
    event: ReShareEvent = parse(ReShareEvent, body)
    if event.tenant.removesuffix(SCHEMA_SUFFIX) != config.reshare.tenant:
        raise Unauthorized(f"the secret that signed this is not the secret of tenant {event.tenant!r}")
    request_id = event.oid.removeprefix(OID_PREFIX)
    if event.payload.id != request_id:
        raise BadInput("payload.id does not match oid")
    webhook_id = _header(headers, "webhook-id") or ""
    if services.store.webhook_seen(config.library_id, webhook_id):
        return WebhookAnswer(200, {"status": "duplicate", "webhook_id": webhook_id})
    require_manual_integration(services, config)  # else 503: ReShare itself acts in WMS for this tenant
    try:
        request = services.reshare(config).get_request(request_id)
    except ReShareNotFound as exc:
        raise BadInput(f"ReShare tenant {event.tenant!r} has no request {request_id!r}") from exc
    assert request.last_updated is not None
    transitions = Transitions()
    changed = transitions.observe(services, config, request, source="webhook")
    transitions.flush(services, config.reshare.tenant)
    services.store.remember_webhook(config.library_id, webhook_id)
    logger.info("ReShare webhook", extra={"hrid": request.hrid, "state": request.state.code, "new": changed})
    return WebhookAnswer(
        202,
        {
            "status": "accepted",
            "hrid": request.hrid,
            "state": request.state.code,
            "transition": changed,
        },
    )


def handle_wms_check_in(services: Services, headers: dict[str, str], body: str) -> WebhookAnswer:
    config = authenticate(services, headers, body)
    notice: WmsCheckInNotice = parse(WmsCheckInNotice, body)
    if notice.registry_id != config.wms.registry_id:
        raise Unauthorized(f"the secret that signed this is not the secret of registry {notice.registry_id}")
    webhook_id = _header(headers, "webhook-id") or ""
    if services.store.webhook_seen(config.library_id, webhook_id):
        return WebhookAnswer(200, {"status": "duplicate", "webhook_id": webhook_id})
    mapping = services.store.find_by_item(notice.registry_id, notice.item_barcode)
    if mapping is None or not mapping.open:
        services.store.remember_webhook(config.library_id, webhook_id)
        return WebhookAnswer(
            202, {"status": "ignored", "reason": f"no open ILL request uses item {notice.item_barcode}"}
        )
    services.bus.put(
        [
            WmsItemCheckedIn(
                library_id=config.library_id,
                registry_id=notice.registry_id,
                item_barcode=notice.item_barcode,
                checked_in_at=notice.checked_in_at or services.clock(),
                branch=notice.branch,
                side=mapping.side.value,
                tenant=mapping.tenant,
                request_id=mapping.request_id,
                source="webhook",
            )
        ]
    )
    services.store.remember_webhook(config.library_id, webhook_id)
    return WebhookAnswer(
        202, {"status": "accepted", "hrid": mapping.hrid, "item_barcode": notice.item_barcode}
    )
