"""Signed webhooks (Standard Webhooks): ReShare request events and WMS check-in notices.

Checks run cheapest-first and nothing is written until all pass (docs/operations.md, "Webhook answers"):
size (413) -> signature headers present (401) -> their syntax: ``webhook-id`` 1-256 printable ASCII characters,
``webhook-timestamp`` integer seconds, ``webhook-signature`` space-separated ``v<n>,<base64>`` (400) ->
signature and timestamp (401; any configured library's secrets, several per library for rotation, 5 minutes
tolerance both ways) -> body UTF-8 (400) -> JSON, not empty, not nested deeper than 32 levels (400) -> shape,
unknown fields refused (400) -> replay of a ``webhook-id`` this endpoint already took from this library (200,
no effect). Every answer is JSON and says nothing of the bridge's insides.
A ReShare event is never trusted: the bridge re-reads the request from ReShare and, if its state is a
transition, puts the same ``ReShareRequestChanged`` the poller would on the bus and then records the state as
seen (``illbridge.intake.seen``). A delivery is answered 202 only once both are done; if the bus refuses the
event, nothing is recorded and the delivery is answered 503 (``EventsNotDelivered``, transient): the sender
resends it, and the poller, which lists the request again as it is not recorded, puts it too.
A WMS check-in notice is not trusted either: it becomes a ``WmsItemCheckedIn`` event (``source="webhook"``)
whose step asks WMS through the check-in probe before acting on it (``illbridge.workflow.notices``). Nothing
but the notice itself can tell the bridge about it, so it enters the outbox in the same write that takes its
``webhook-id`` (``illbridge.intake.outbox``): once answered 202 it reaches the bus even if the bus is down now.
Replay protection is one conditional write per endpoint and library (``BridgeStore.claim_webhook``): of ten
parallel copies of one delivery exactly one is answered 202, the others 200 ``duplicate``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks.webhooks import Webhook

from illbridge.config import LibraryConfig
from illbridge.errors import BadInput, EventsNotDelivered, ReShareNotFound, TooLarge, Unauthorized
from illbridge.intake.checks import require_manual_integration
from illbridge.intake.outbox import deliver
from illbridge.intake.ports import WebhookPorts
from illbridge.intake.seen import Transitions
from illbridge.models import WmsItemCheckedIn
from illbridge.observability import logger, metrics

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
MAX_WEBHOOK_ID = 256
MAX_SIGNATURE_HEADER = 1024  # room for a few signatures during secret rotation
TOLERANCE_SECONDS = 5 * 60  # Standard Webhooks: timestamps more than 5 minutes off are refused
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
OID_PREFIX = "org.olf.rs.PatronRequest:"
SCHEMA_SUFFIX = "_mod_rs"  # mod-rs events name the tenant by its schema: <tenant>_mod_rs
RESHARE_ENDPOINT = "reshare"
WMS_ENDPOINT = "wms"

_WEBHOOK_ID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_WEBHOOK_ID}}}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v[0-9]+,[A-Za-z0-9+/]+={0,2}$")


@dataclass
class WebhookAnswer:
    """What became of a delivery (``body["status"]``: ``accepted``, ``ignored`` or ``duplicate``) and what to
    answer the sender; the HTTP status is chosen by the handler (``functions/webhook/app.py``)."""

    body: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.body["status"])


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
    item_barcode: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
    branch: str | None = Field(default=None, pattern=r"^\d{6}$")
    checked_in_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """An authenticated delivery: the library whose secret signed it, its ``webhook-id`` and its body text."""

    config: LibraryConfig
    webhook_id: str
    text: str


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _signed_headers(headers: dict[str, str]) -> tuple[str, int, list[tuple[str, bytes]]]:
    """The three signature headers, checked for presence (401) and syntax (400), parsed."""
    signed = {name: _header(headers, name) for name in SIGNATURE_HEADERS}
    missing = [name for name, value in signed.items() if not value]
    if missing:
        raise Unauthorized(f"missing signature header(s): {', '.join(missing)}")
    webhook_id, stamp, signature = (str(signed[name]) for name in SIGNATURE_HEADERS)
    if not _WEBHOOK_ID.match(webhook_id):
        raise BadInput(f"webhook-id must be 1 to {MAX_WEBHOOK_ID} printable ASCII characters without spaces")
    if not _TIMESTAMP.match(stamp):
        raise BadInput("webhook-timestamp must be whole seconds since the epoch")
    if len(signature) > MAX_SIGNATURE_HEADER:
        raise BadInput(f"webhook-signature is longer than {MAX_SIGNATURE_HEADER} characters")
    signatures: list[tuple[str, bytes]] = []
    for part in signature.split(" "):
        if not _SIGNATURE.match(part):
            raise BadInput("webhook-signature must be space-separated 'v1,<base64>' values")
        version, _, encoded = part.partition(",")
        try:
            signatures.append((version, base64.b64decode(encoded, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise BadInput("webhook-signature must be space-separated 'v1,<base64>' values") from exc
    return webhook_id, int(stamp), signatures


def _key(secret: str) -> bytes | None:
    try:
        return Webhook(secret)._whsecret
    except Exception:  # a secret that is not whsec_<base64>: ignored (illbridge check-config reports it)
        return None


def authenticate(ports: WebhookPorts, headers: dict[str, str], body: bytes | str) -> Delivery:
    """The library whose webhook secret signed this delivery; ``Unauthorized``/``BadInput``/``TooLarge`` if
    the delivery is not well-formed and signed. The body is signed as the bytes received."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge(f"body is over {MAX_BODY_BYTES // 1024} KiB")
    webhook_id, stamp, signatures = _signed_headers(headers)
    if abs(time.time() - stamp) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is more than 5 minutes off")
    offered = [sig for version, sig in signatures if version == "v1"]
    signed_content = f"{webhook_id}.{stamp}.".encode() + raw
    for config in ports.webhook_configs.all():  # the webhook secrets only, never the WSKey secret
        for secret in config.webhook_secrets:
            key = _key(secret.get_secret_value())
            if key is None:
                continue
            expected = hmac.new(key, signed_content, hashlib.sha256).digest()
            if any(hmac.compare_digest(expected, sig) for sig in offered):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BadInput("body is not UTF-8") from exc
                return Delivery(config, webhook_id, text)
    raise Unauthorized("signature does not verify (unknown secret or altered body)")


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse(model: type[BaseModel], body: str) -> Any:
    if not body.strip():
        raise BadInput("body is empty")
    if _depth(body) > MAX_JSON_DEPTH:
        raise BadInput(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadInput(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except (RecursionError, ValueError) as exc:
        raise BadInput("body is not JSON the bridge can read") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise BadInput(f"body does not match the {model.__name__} shape: {problems}") from exc


def handle_reshare_event(ports: WebhookPorts, headers: dict[str, str], body: bytes | str) -> WebhookAnswer:
    delivery = authenticate(ports, headers, body)
    config, webhook_id = delivery.config, delivery.webhook_id
    event: ReShareEvent = parse(ReShareEvent, delivery.text)
    if event.tenant.removesuffix(SCHEMA_SUFFIX) != config.reshare.tenant:
        raise Unauthorized(f"the secret that signed this is not the secret of tenant {event.tenant!r}")
    request_id = event.oid.removeprefix(OID_PREFIX)
    if event.payload.id != request_id:
        raise BadInput("payload.id does not match oid")
    if ports.store.webhook_seen(RESHARE_ENDPOINT, config.library_id, webhook_id):
        return _duplicate(webhook_id)
    require_manual_integration(ports, config)  # else 503: ReShare itself acts in WMS for this tenant
    try:
        request = ports.reshare(config).get_request(request_id)
    except ReShareNotFound as exc:
        raise BadInput(f"ReShare tenant {event.tenant!r} has no request {request_id!r}") from exc
    assert request.last_updated is not None
    transitions = Transitions()
    # a transition's event goes on the bus first, then the state is recorded as seen; if the bus refuses it,
    # EventsNotDelivered answers 503 and nothing is recorded or taken: the sender's retry (or the next poll)
    # puts it. A copy of this delivery (or the poller) that observes it too may put it again: the step's
    # claim drops the second copy, and exactly one of them records it
    changed = transitions.observe(ports, config, request, source="webhook")
    if changed:
        transitions.flush(ports)
    if not ports.store.claim_webhook(RESHARE_ENDPOINT, config.library_id, webhook_id).taken:
        return _duplicate(webhook_id)
    logger.info("ReShare webhook", extra={"hrid": request.hrid, "state": request.state.code, "new": changed})
    return WebhookAnswer(
        {"status": "accepted", "hrid": request.hrid, "state": request.state.code, "transition": changed}
    )


def handle_wms_check_in(ports: WebhookPorts, headers: dict[str, str], body: bytes | str) -> WebhookAnswer:
    delivery = authenticate(ports, headers, body)
    config, webhook_id = delivery.config, delivery.webhook_id
    notice: WmsCheckInNotice = parse(WmsCheckInNotice, delivery.text)
    if notice.registry_id != config.wms.registry_id:
        raise Unauthorized(f"the secret that signed this is not the secret of registry {notice.registry_id}")
    if ports.store.webhook_seen(WMS_ENDPOINT, config.library_id, webhook_id):
        return _duplicate(webhook_id)
    mapping = ports.store.find_by_item(notice.registry_id, notice.item_barcode)
    if mapping is None or not mapping.open:
        if not ports.store.claim_webhook(WMS_ENDPOINT, config.library_id, webhook_id).taken:
            return _duplicate(webhook_id)
        return WebhookAnswer(
            {"status": "ignored", "reason": f"no open ILL request uses item {notice.item_barcode}"}
        )
    checked_in = WmsItemCheckedIn(
        library_id=config.library_id,
        registry_id=notice.registry_id,
        item_barcode=notice.item_barcode,
        checked_in_at=notice.checked_in_at or ports.clock(),
        branch=notice.branch,
        side=mapping.side.value,
        tenant=mapping.tenant,
        request_id=mapping.request_id,
        source="webhook",
    )
    # the webhook-id is taken and the event enters the outbox in one transaction: both or neither
    claim = ports.store.claim_webhook(
        WMS_ENDPOINT, config.library_id, webhook_id, event=checked_in, tenant=config.reshare.tenant
    )
    if not claim.taken:
        return _duplicate(webhook_id)
    assert claim.pending is not None
    answer: dict[str, Any] = {"status": "accepted", "hrid": mapping.hrid, "item_barcode": notice.item_barcode}
    try:
        deliver(ports, [claim.pending])
    except EventsNotDelivered as exc:
        logger.warning("webhook: event left in the outbox for the next poll", extra={"error": exc.message})
        answer["delivery"] = "pending"
    return WebhookAnswer(answer)


def _duplicate(webhook_id: str) -> WebhookAnswer:
    metrics.add_metric(name="WebhookReplays", unit="Count", value=1)
    return WebhookAnswer({"status": "duplicate", "webhook_id": webhook_id})
