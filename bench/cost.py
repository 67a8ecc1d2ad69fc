"""What 1,000 request pairs cost on AWS, from the calls ``bench/calls.py`` counted and the durations it measured.

List prices (us-east-1, on-demand, without free tiers), written down on the date below; nothing here reads the
network. Lambda bills each invocation's duration (rounded up to the millisecond) times its memory, plus a per
request price; DynamoDB on demand bills write request units (1 per item written up to 1 KB, 2 in a
transaction) and read request units (1 per strongly consistent read up to 4 KB, 0.5 eventually consistent; the
bridge reads strongly consistent); EventBridge bills each custom event put (64 KB chunks); SQS each request
(the bridge's SendMessage, plus for each record the bus's SendMessage, the event source mapping's receive and
its delete, counted per record since the mapping receives and deletes in batches); CloudWatch Logs bills the
bytes ingested (the functions' log lines and metrics, plus Lambda's own START/END/REPORT lines); Secrets
Manager each GetSecretValue. Parameter Store's standard GetParameter is free.
"""

from __future__ import annotations

from typing import Any

PRICES_TAKEN = "2026-11-30"
REGION = "us-east-1"
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000
DYNAMO_WRU = 0.625 / 1_000_000
DYNAMO_RRU = 0.125 / 1_000_000
EVENTBRIDGE_EVENT = 1.00 / 1_000_000
SQS_REQUEST = 0.40 / 1_000_000
LOGS_GB = 0.50
SECRETS_CALL = 0.05 / 10_000
LAMBDA_PLATFORM_LOG_BYTES = 350  # START, END and REPORT lines Lambda writes per invocation
PAIRS = 1000


def cost(
    result: dict[str, Any], memory_mb: dict[str, int], external_latency_s: float = 0.0
) -> dict[str, Any]:
    """Dollars per 1,000 pairs, per service, with the quantities and unit prices behind each figure.

    ``external_latency_s``: seconds added to the functions' duration per WMS or ReShare call (the sandbox's
    simulators answer in about a millisecond; the real systems do not)."""
    n = result["pairs"]
    scale = PAIRS / n
    calls = result["calls"]
    external: dict[str, int] = {}
    for function, system, _, count in calls:
        if system in ("wms", "reshare"):
            external[function] = external.get(function, 0) + count
    gb_seconds = sum(
        (seconds + external_latency_s * external.get(function, 0)) * memory_mb.get(function, 256) / 1024
        for function, seconds in result["seconds_by_function"].items()
    )
    invocations = sum(result["invocations"].values())
    wru = rru = 0.0
    for _function, kind, items in result["dynamo_items"]:  # items, not calls, are what DynamoDB bills
        if kind == "write":
            wru += items
        elif kind == "read":
            rru += items
    transact_items = result.get("transact_items", 0)
    wru += transact_items  # a transactional write costs two units per item: the second one
    put_events = sum(c for _, s, o, c in calls if s == "events" and o == "PutEvents")
    event_entries = result.get("event_entries", put_events)
    sqs_sends = sum(c for _, s, _, c in calls if s == "sqs")
    records = sum(result["records"].values())
    sqs_requests = sqs_sends + 3 * records
    log_bytes = result.get("log_bytes", 0) + LAMBDA_PLATFORM_LOG_BYTES * invocations
    secrets = sum(c for _, s, o, c in calls if s == "secretsmanager")
    lines = [
        ("Lambda duration", gb_seconds, "GB-s", LAMBDA_ARM_GB_SECOND),
        ("Lambda requests", invocations, "requests", LAMBDA_REQUEST),
        ("DynamoDB writes", wru, "WRU", DYNAMO_WRU),
        ("DynamoDB reads", rru, "RRU", DYNAMO_RRU),
        ("EventBridge events", event_entries, "events", EVENTBRIDGE_EVENT),
        ("SQS requests", sqs_requests, "requests", SQS_REQUEST),
        ("CloudWatch Logs", log_bytes / 1e9, "GB", LOGS_GB),
        ("Secrets Manager", secrets, "calls", SECRETS_CALL),
    ]
    rows = [
        {"service": s, "per_pair": q / n, "unit": u, "price": p, "dollars": q * scale * p}
        for s, q, u, p in lines
    ]
    return {"rows": rows, "total": sum(r["dollars"] for r in rows), "latency": external_latency_s}


def table(costs: list[dict[str, Any]]) -> str:
    head = "| service | unit price | " + " | ".join(
        f"per pair ({c['latency'] * 1000:.0f} ms per external call) | $ per 1,000 pairs" for c in costs
    )
    lines = [head + " |", "|---|---:|" + "---:|---:|" * len(costs)]
    for i, row in enumerate(costs[0]["rows"]):
        unit = {"GB-s": "GB-s", "GB": "GB"}.get(row["unit"], row["unit"].rstrip("s"))
        cells = [f"| {row['service']} | ${row['price']:.4g} per {unit} "]
        for c in costs:
            r = c["rows"][i]
            cells.append(f"| {r['per_pair']:.4g} {r['unit']} | {r['dollars']:.4f} ")
        lines.append("".join(cells) + "|")
    lines.append("| **total** | " + "".join(f"| | **{c['total']:.4f}** " for c in costs) + "|")
    return "\n".join(lines)
