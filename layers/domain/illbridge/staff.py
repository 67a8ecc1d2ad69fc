"""What staff ask of the bridge, by library and hrid: a request's mapping and timeline, the attention list,
retrying or resolving a step, the configuration check. Plain functions over ``Services``, answering plain data:
the ops API function (``functions/ops_api``) and the operator's ``illbridge`` command (outside the layer)
render them; nothing here prints.

A retry releases the failed step and puts its triggering event on the bus again, so the step runs through its
queue exactly as it did the first time (and only once, whatever happens to the retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, ConfigurationError
from illbridge.intake import checks
from illbridge.models import ReShareRequestChanged, StepName, StepStatus, WmsItemCheckedIn
from illbridge.models.mapping import AttentionItem
from illbridge.models.patron_request import PatronRequest
from illbridge.observability import mask, redact
from illbridge.wiring import Services

WMS_TRIGGERED = {StepName.BORROW_WMS_RETURNED, StepName.LEND_WMS_RETURNED}


class NotFound(BridgeError):
    """No library's ReShare tenant knows the hrid (or the one named does not)."""


class Ambiguous(BridgeError):
    """The hrid is known at more than one library (a borrowing request and its lending copy): name one."""


@dataclass(frozen=True)
class Located:
    """A ReShare request found by hrid at one library."""

    config: LibraryConfig
    request: PatronRequest

    @property
    def library_id(self) -> str:
        return self.config.library_id

    @property
    def tenant(self) -> str:
        return self.config.reshare.tenant

    @property
    def request_id(self) -> str:
        return self.request.id

    @property
    def hrid(self) -> str:
        return self.request.hrid or self.request.id


def library_configs(services: Services, library_id: str | None = None) -> list[LibraryConfig]:
    if library_id:
        return [services.configs.get(library_id)]
    return [services.configs.get(i) for i in services.configs.library_ids()]


def locate_all(services: Services, hrid: str, library_id: str | None = None) -> list[Located]:
    """Every library that knows ``hrid`` (a borrowing request and its lending copy share it), or the one named."""
    hrid = hrid.strip()
    found = []
    for config in library_configs(services, library_id):
        request = services.reshare(config).find_by_hrid(hrid)
        if request is not None:
            found.append(Located(config, request))
    if not found:
        where = f"library {library_id}" if library_id else "any library"
        raise NotFound(f"no request {hrid!r} at {where} in ReShare")
    return found


def locate(services: Services, hrid: str, library_id: str | None = None) -> Located:
    """The request staff call ``hrid``, at ``library_id`` or at the one library that knows it. When both sides
    know it, the side whose steps need attention is meant (a retry is for what failed)."""
    found = locate_all(services, hrid, library_id)
    if len(found) > 1:
        troubled = [f for f in found if needs_attention(services, f)]
        if len(troubled) == 1:
            return troubled[0]
        sides = ", ".join(f"{f.library_id} ({f.request.side})" for f in found)
        raise Ambiguous(f"request {hrid} is at {sides}: name the library (--library)")
    return found[0]


def open_items(services: Services, tenant: str, request_id: str) -> list[AttentionItem]:
    items = (services.store.get_attention(tenant, request_id, step.value) for step in StepName)
    return [item for item in items if item is not None and not item.resolved]


def failed_steps(services: Services, tenant: str, request_id: str) -> list[StepName]:
    failed = {s.step for s in services.store.steps(tenant, request_id) if s.status == StepStatus.FAILED}
    flagged = {StepName(item.step) for item in open_items(services, tenant, request_id)}
    return sorted(failed | flagged, key=lambda s: list(StepName).index(s))


def needs_attention(services: Services, found: Located) -> bool:
    return bool(failed_steps(services, found.tenant, found.request_id))


def show(services: Services, tenant: str, request_id: str) -> dict[str, Any]:
    """Mapping, steps and history (oldest first) of one request; patron barcodes masked."""
    store = services.store
    mapping = store.get_mapping(tenant, request_id)
    shown = mapping.model_dump(mode="json") if mapping else None
    if shown is not None and shown.get("patron_barcode"):
        shown["patron_barcode"] = mask(shown["patron_barcode"])  # staff recognise the last characters
    private = [mapping.patron_barcode or ""] if mapping else []
    return {
        "mapping": shown,
        "steps": [redact(s.model_dump(mode="json"), private) for s in store.steps(tenant, request_id)],
        "history": [redact(h.model_dump(mode="json"), private) for h in store.history(tenant, request_id)],
    }


def request_view(services: Services, hrid: str, library_id: str | None = None) -> dict[str, Any]:
    """What staff see of one request (the one ``locate`` picks); see ``describe``."""
    return describe(services, locate(services, hrid, library_id))


def request_views(services: Services, hrid: str, library_id: str | None = None) -> list[dict[str, Any]]:
    """What staff see of every side of a request that the bridge knows by ``hrid``."""
    return [describe(services, found) for found in locate_all(services, hrid, library_id)]


def describe(services: Services, found: Located) -> dict[str, Any]:
    """Where the request is in ReShare, the bridge's mapping, steps, timeline and open attention items."""
    view = show(services, found.tenant, found.request_id)
    return {
        "library_id": found.library_id,
        "library": found.config.name,
        "tenant": found.tenant,
        "request_id": found.request_id,
        "hrid": found.hrid,
        "side": found.request.side,
        "state": found.request.state.code,
        "title": found.request.title,
        "attention": [
            i.model_dump(mode="json") for i in open_items(services, found.tenant, found.request_id)
        ],
        **view,
    }


def attention(services: Services, library_id: str | None = None) -> list[AttentionItem]:
    """The open attention items of one library, or of every library, newest first."""
    items = [
        item
        for config in library_configs(services, library_id)
        for item in services.store.list_attention(config.reshare.tenant)
        if library_id is None or item.library_id == library_id
    ]
    return sorted(items, key=lambda item: item.raised_at, reverse=True)


def retry(services: Services, tenant: str, request_id: str, step: StepName) -> dict[str, Any]:
    """Release a failed step and send its trigger again."""
    store = services.store
    config = services.configs.for_tenant(tenant)
    released = store.release_step(tenant, request_id, step)
    if step in WMS_TRIGGERED:
        mapping = store.get_mapping(tenant, request_id)
        if mapping is None or not mapping.items:
            raise BridgeError(f"request {request_id} has no mapped WMS item to retry with")
        event: Any = WmsItemCheckedIn(
            library_id=config.library_id,
            registry_id=mapping.registry_id,
            item_barcode=mapping.items[0].barcode,
            checked_in_at=services.clock(),
            side=mapping.side.value,
            tenant=tenant,
            request_id=request_id,
            source="ops",
        )
    else:
        request = services.reshare(config).get_request(request_id)
        record = store.get_step(tenant, request_id, step)
        state = record.trigger if record and record.trigger else request.state.code
        event = ReShareRequestChanged(
            library_id=config.library_id,
            tenant=tenant,
            side="borrowing" if request.is_requester else "lending",
            request_id=request_id,
            hrid=request.hrid or request_id,
            state=state,
            previous_state=None,
            last_updated=request.last_updated or services.clock(),
            source="ops",
        )
    services.bus.put([event])
    return {"step": step.value, "released": released, "sent": event.model_dump(mode="json")}


def retry_request(
    services: Services, hrid: str, library_id: str | None = None, step: StepName | None = None
) -> list[dict[str, Any]]:
    """Retry one step of the request, or (no step) every step that failed or has an open attention item."""
    found = locate(services, hrid, library_id)
    steps = [step] if step is not None else failed_steps(services, found.tenant, found.request_id)
    if not steps:
        raise BridgeError(f"request {found.hrid} has no failed step to retry (name one with --step)")
    return [retry(services, found.tenant, found.request_id, s) for s in steps]


def resolve(services: Services, hrid: str, step: StepName, library_id: str | None = None) -> bool:
    """Take the request's attention item for ``step`` off the list (dealt with by hand)."""
    found = locate(services, hrid, library_id)
    return services.store.resolve_attention(found.tenant, found.request_id, step.value)


def check(services: Services, library_id: str | None = None) -> list[checks.Finding]:
    """Every configuration check of one library, or of all; each with what to fix when it fails. A library whose
    settings or secret cannot be read is one failed finding, and the others are still checked."""
    findings: list[checks.Finding] = []
    for name in [library_id] if library_id else services.configs.library_ids():
        try:
            config = services.configs.get(name)
        except ConfigurationError as exc:
            findings.append(
                checks.Finding(
                    name,
                    "configuration",
                    False,
                    str(exc),
                    "Put the library's settings in SSM and its secret (wskey_secret, reshare_password, "
                    "webhook_secrets) in Secrets Manager as docs/configuration.md describes.",
                )
            )
            continue
        findings += checks.check_library(services.ports, config)
    return findings
