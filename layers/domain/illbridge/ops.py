"""Staff operations: see a request's history and mapping, list the attention list, retry a failed step.

    python -m illbridge.ops attention --tenant east
    python -m illbridge.ops show --tenant east --request <request id>
    python -m illbridge.ops retry --tenant east --request <request id> --step borrow_received
    python -m illbridge.ops resolve --tenant east --request <request id> --step lend_shipped   # dealt with
    python -m illbridge.ops check [--library east]     # configuration against ReShare and WMS; exit 1 if wrong

It runs with the same environment as the functions (TABLE_NAME, EVENT_BUS_NAME, CONFIG_PREFIX, ...).
A retry releases the failed step and puts its triggering event on the bus again, so the step runs through its
queue exactly as it did the first time (and only once, whatever happens to the retry).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from illbridge.errors import BridgeError
from illbridge.models import ReShareRequestChanged, StepName, WmsItemCheckedIn
from illbridge.observability import mask, redact
from illbridge.workflow import checks
from illbridge.workflow.services import Services, current_services

WMS_TRIGGERED = {StepName.BORROW_WMS_RETURNED, StepName.LEND_WMS_RETURNED}


def show(services: Services, tenant: str, request_id: str) -> dict[str, Any]:
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


def attention(services: Services, tenant: str) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in services.store.list_attention(tenant)]


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
    return {"released": released, "sent": event.model_dump(mode="json")}


def check(services: Services, library_id: str | None = None) -> list[dict[str, Any]]:
    """Every configuration check of one library, or of all; each with what to fix when it fails."""
    ids = [library_id] if library_id else services.configs.library_ids()
    return [f.as_dict() for i in ids for f in checks.check_library(services, services.configs.get(i))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m illbridge.ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("attention", help="the attention list of a tenant")
    listing.add_argument("--tenant", required=True)
    showing = commands.add_parser("show", help="mapping, steps and history of one request")
    showing.add_argument("--tenant", required=True)
    showing.add_argument("--request", required=True)
    retrying = commands.add_parser("retry", help="retry a failed step of one request")
    retrying.add_argument("--tenant", required=True)
    retrying.add_argument("--request", required=True)
    retrying.add_argument("--step", required=True, choices=[s.value for s in StepName])
    resolving = commands.add_parser(
        "resolve", help="take an attention item off the list (dealt with by hand)"
    )
    resolving.add_argument("--tenant", required=True)
    resolving.add_argument("--request", required=True)
    resolving.add_argument("--step", required=True, choices=[s.value for s in StepName])
    checking = commands.add_parser("check", help="check libraries' configuration against ReShare and WMS")
    checking.add_argument("--library", help="one library id (default: every configured library)")
    args = parser.parse_args(argv)
    services = current_services()
    try:
        if args.command == "check":
            findings = check(services, args.library)
            print(json.dumps(findings, indent=2))
            return 0 if all(f["ok"] for f in findings) else 1
        if args.command == "resolve":
            resolved = services.store.resolve_attention(args.tenant, args.request, args.step)
            print(json.dumps({"resolved": resolved}))
            return 0 if resolved else 1
        if args.command == "attention":
            result: Any = attention(services, args.tenant)
        elif args.command == "show":
            result = show(services, args.tenant, args.request)
        else:
            result = retry(services, args.tenant, args.request, StepName(args.step))
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
