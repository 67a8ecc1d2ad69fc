"""The block ``python -m sandbox up`` prints once everything is up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .gateway import describe

if TYPE_CHECKING:
    from .core import Sandbox


def first_request(reshare_url: str) -> str:
    body = {
        "borrower_tenant": "east",
        "lender_tenant": "west",
        "title": "The Name of the Rose",
        "patron_barcode": "EAST-P-0001",
        "pickup_location_slug": "east-main",
        "volumes": [{"item_barcode": "WEST-ITEM-0001", "call_number": "PQ4865.C6 N6"}],
        "lender_state": "RES_ITEM_SHIPPED",
    }
    return (
        f"curl -s -X POST {reshare_url}/_sim/requests -H 'Content-Type: application/json' \\\n"
        f"       -d '{json.dumps(body, separators=(',', ':'))}'"
    )


def render(sb: Sandbox) -> str:
    from sandbox.demo import DEMO_LIBRARIES, WEBHOOK_SECRETS

    assert sb.gateway is not None and sb.resources is not None and sb.scheduler is not None
    urls = sb.urls
    rule = "=" * 100
    lines = [
        rule,
        f" ReShare <-> WMS bridge sandbox is up ({sb.timings.get('total', 0):.1f} s)"
        f"{'' if sb.background else ' (no scheduler or queue pollers: background off)'}",
        rule,
        "Local API gateway (like `sam local start-api`):",
        *(f"  {line}" for line in describe(sb.gateway.routes, urls["gateway"])),
        "Simulators (real HTTP servers; /_sim/ endpoints to create, inspect and act):",
        f"  ReShare (Okapi, mod-rs)   {urls['reshare']}   e.g. GET /_sim/requests, GET /_sim/calls",
        f"  WMS (OAuth, NCIP, SCIM)   {urls['wms']}   e.g. GET /_sim/loans, /_sim/temp-items, /_sim/holds",
        f"Embedded AWS (moto)         {urls['moto']}   region {sb.region}, credentials testing/testing",
        f"  AWS_ENDPOINT_URL={urls['moto']} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"AWS_DEFAULT_REGION={sb.region} aws sqs list-queues",
        "Schedules:",
    ]
    for schedule in sb.scheduler.schedules:
        every = sb.tick or schedule.period
        when = f"every {every:g} s" if every else "by hand only"
        lines.append(f"  {schedule.function:28} {schedule.expression:18} {when}")
    if sb.visibility is not None:
        visibility = f"{sb.visibility} s (template's overridden)"
    elif sb.time_scale is not None:
        visibility = f"the template's x {sb.time_scale:g}, as every timing"
    else:
        visibility = "as the template"
    lines.append(f"Queues -> functions (visibility timeout {visibility}):")
    for poller in sb.pollers.values():
        source = poller.source
        lines.append(
            f"  {sb.physical_name(source.queue_logical_id):54} -> {source.function} "
            f"(batch {source.batch_size}, at most {source.max_concurrency} at once)"
        )
    for topic, url in sb.resources.inboxes.items():
        lines.append(f"Topic {topic}: what staff would get is logged here (and copied to {url})")
    if sb.libraries:
        prefix = sb.env.get("CONFIG_PREFIX", "/reshare-wms-bridge")
        lines.append(
            f"Demo libraries (SSM {prefix}/libraries/<id>, Secrets Manager {prefix.strip('/')}/libraries/<id> "
            f"and {prefix.strip('/')}/webhooks/<id>):"
        )
        for library_id, config in sb.libraries.items():
            demo = DEMO_LIBRARIES[library_id]
            lines.append(
                f"  {library_id:5} ReShare tenant {config.reshare.tenant} ({config.reshare.symbol}, user "
                f"{config.reshare.username}/{demo['secrets']['reshare_password']})  WMS registry "
                f"{config.wms.registry_id} (WSKey {config.wms.wskey}/{demo['secrets']['wskey_secret']})"
            )
            lines.append(f"        webhook secret {WEBHOOK_SECRETS[library_id]}")
        relayed = [t["tenant"] for t in sb.reshare.relay.targets()] if sb.reshare is not None else []
        if relayed:
            lines.append(
                f"ReShare relay: state changes of {', '.join(relayed)} are also pushed, signed, to "
                f"{urls['gateway']}/webhooks/reshare (the poller still runs; each change acts once)"
            )
        lines += [
            "Try first: a request pair whose lender (west) has already shipped the item to east:",
            f"  {first_request(urls['reshare'])}",
            "Then watch this terminal: the relayed webhook (or the next poll) brings the shipment in, and the",
            "lend_shipped step checks the item out in WMS to east's ILL account (ILL-EAST). See it with:",
            f"  curl -s '{urls['wms']}/_sim/loans?registry_id=262626'",
            "or as staff do, in another terminal (it finds this sandbox by itself; EAST-1 is the pair's hrid):",
            "  .venv/bin/illbridge history EAST-1      .venv/bin/illbridge attention      "
            ".venv/bin/illbridge check-config",
        ]
    lines += ["Ctrl-C stops everything.", rule]
    return "\n".join(lines)
