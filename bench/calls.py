"""The calls a request pair's life costs, counted per system and operation, in the sandbox (moto + simulators).

N request pairs live their whole lives as in the chaos suite (``bench/chaos.py``: borrowing and lending in both
directions, every third pair multi-volume, half returned in WMS first) but on the happy path: no faults, no
outages, no redelivered copies, tokens expiring only when their lifetime runs out. Every call a function makes
while it runs is counted from the client side (the sandbox's own calls, staff's actions and the simulators'
control API are not): each outbound HTTP request (``requests.Session.send``: WMS token, NCIP by message, SCIM;
ReShare by method and path) and each AWS call (``BaseClient._make_api_call``: DynamoDB split into reads, writes
and refused conditional writes, EventBridge PutEvents, SQS, SSM, Secrets Manager, SNS).

WMS tokens are counted per function instance: in the sandbox every function shares one process and so one
token cache, where Lambda gives each function instance its own; here each function gets a cache of its own, so
a token fetched by the poller is not reused by a step, as on Lambda.

Each function's invocations and the seconds they took are kept too: the cost per 1,000 pairs (``bench/cost.py``)
is computed from them. The schedules (the poller and the reconciler) run on the same rounds as in the chaos
suite; what they spend is shared by every pair alive at the time, so it is divided by N like the rest.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

PAIRS = 12
FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_function", default=None)

DYNAMO_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
DYNAMO_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
NCIP_MESSAGE = re.compile(rb"<(?:\w+:)?NCIPMessage\b[^>]*>\s*<(?:\w+:)?(\w+)")
ID_SEGMENT = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f-]{27,}|\d+)(?=/|$)")


class Counts:
    """Every call counted, by (system, operation), per function, and the functions' invocations."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (function, system, operation)
        self.dynamo_items: Counter[tuple[str, str]] = Counter()  # (function, "read"/"write"): items touched
        self.refused: Counter[tuple[str, str]] = (
            Counter()
        )  # (function, operation): refused conditional writes
        self.invocations: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.records: Counter[str] = Counter()  # SQS records delivered per step function
        self.transact_items = 0  # items written inside TransactWriteItems (DynamoDB bills them twice)
        self.event_entries = 0  # entries put on the bus (PutEvents bills each)
        self.written: Counter[tuple[str, str, str]] = Counter()  # (function, operation, what): items written

    def add(self, system: str, operation: str) -> None:
        function = FUNCTION.get()
        if function is not None:
            self.calls[(function, system, operation)] += 1


def dynamo_items(operation: str, params: dict[str, Any]) -> int:
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchWriteItem":
        return sum(len(v) for v in params.get("RequestItems", {}).values())
    if operation == "TransactGetItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchGetItem":
        return sum(len(v.get("Keys", [])) for v in params.get("RequestItems", {}).values())
    return 1


def item_kind(table: str, key: dict[str, Any]) -> str:
    """What a written item is: the bridge table's kind of row (its sort key up to the first ``#``: STEP, LOG (a
    history line), MAPPING, ITEM, SEEN, EVENT (outbox), ATTN, CURSOR)."""
    sk = key.get("sk", {})
    value = sk.get("S", "") if isinstance(sk, dict) else str(sk)
    return value.split("#", 1)[0] or "?"


def written(operation: str, params: dict[str, Any]) -> list[str]:
    if operation == "TransactWriteItems":
        found = []
        for entry in params.get("TransactItems", []):
            (action, body), *_ = entry.items()
            found.append(
                f"{item_kind(body.get('TableName', ''), body.get('Item') or body.get('Key') or {})} "
                f"({action} in a transaction)"
            )
        return found
    if operation == "BatchWriteItem":
        return [
            item_kind(
                table,
                (r.get("PutRequest") or {}).get("Item") or (r.get("DeleteRequest") or {}).get("Key") or {},
            )
            for table, requests in params.get("RequestItems", {}).items()
            for r in requests
        ]
    return [item_kind(params.get("TableName", ""), params.get("Item") or params.get("Key") or {})]


def refused(error: Any) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = error.response.get("CancellationReasons") or []
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or "ConditionalCheck" in str(
            error
        )
    return False


@contextlib.contextmanager
def counting(sb: Any, counts: Counts) -> Iterator[None]:
    """Count the functions' outbound calls while the block runs (patches undone after)."""
    import botocore.client
    import requests
    from botocore.exceptions import ClientError

    from illbridge.wms import auth

    real_call = botocore.client.BaseClient._make_api_call
    real_send = requests.Session.send
    real_invoke = sb.functions.invoke
    wms, reshare = sb.urls["wms"].rstrip("/"), sb.urls["reshare"].rstrip("/")

    def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        function = FUNCTION.get()
        if function is None:
            return real_call(client, operation, params)
        service = client.meta.service_model.service_name
        if service == "dynamodb":
            kind = "write" if operation in DYNAMO_WRITES else "read" if operation in DYNAMO_READS else "other"
            counts.dynamo_items[(function, kind)] += dynamo_items(operation, params)
            if operation == "TransactWriteItems":
                counts.transact_items += len(params.get("TransactItems", []))
            if kind == "write":
                for what in written(operation, params):
                    counts.written[(function, operation, what)] += 1
        if service == "events" and operation == "PutEvents":
            counts.event_entries += len(params.get("Entries", []))
        counts.add(service, operation)
        try:
            return real_call(client, operation, params)
        except ClientError as error:
            if service == "dynamodb" and refused(error):
                counts.refused[(function, operation)] += 1
            raise

    def send(session: Any, request: Any, **kwargs: Any) -> Any:
        if FUNCTION.get() is not None:
            url = str(request.url).split("?", 1)[0]
            if url.startswith(wms):
                path = url[len(wms) :]
                if path.endswith("/token"):
                    operation = "token"
                elif "scim" in path:
                    operation = "SCIM search"
                else:
                    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
                    found = NCIP_MESSAGE.search(body or b"")
                    operation = f"NCIP {found.group(1).decode()}" if found else f"NCIP {path}"
                counts.add("wms", operation)
            elif url.startswith(reshare):
                counts.add("reshare", f"{request.method} {ID_SEGMENT.sub('/{id}', url[len(reshare) :])}")
        return real_send(session, request, **kwargs)

    def invoke(logical_id: str, event: Any) -> Any:
        token = FUNCTION.set(logical_id)
        began = time.perf_counter()
        try:
            return real_invoke(logical_id, event)
        finally:
            counts.seconds[logical_id] += time.perf_counter() - began
            counts.invocations[logical_id] += 1
            if isinstance(event, dict) and isinstance(event.get("Records"), list):
                counts.records[logical_id] += len(event["Records"])
            FUNCTION.reset(token)

    # one token cache per function (Lambda: per function instance; the sandbox runs one instance at a time
    # here, so one per function): what each fetches is counted by the cache
    caches: dict[str, auth.TokenCache] = {}
    shared = auth.DEFAULT_TOKENS
    real_get, real_invalidate = shared.get, shared.invalidate

    def cache() -> auth.TokenCache:
        function = FUNCTION.get() or "(outside a function)"
        return caches.setdefault(function, auth.TokenCache())

    shared.get = lambda *a, **k: cache().get(*a, **k)  # type: ignore[method-assign]
    shared.invalidate = lambda *a, **k: cache().invalidate(*a, **k)  # type: ignore[method-assign]
    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    requests.Session.send = send  # type: ignore[method-assign]
    sb.functions.invoke = invoke
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = real_call  # type: ignore[method-assign]
        requests.Session.send = real_send  # type: ignore[method-assign]
        sb.functions.invoke = real_invoke
        shared.get, shared.invalidate = real_get, real_invalidate  # type: ignore[method-assign]


def measure(pairs: int = PAIRS) -> dict[str, Any]:
    from bench.chaos import Chaos
    from sandbox.runtime import Sandbox

    class Calm(Chaos):
        """The chaos suite's lives without chaos: no faults, no outages, tokens kept."""

        def outage(self, system: str) -> None:
            self.settle()

        def expire_tokens(self) -> None:
            return None

    sb = Sandbox(background=False, visibility=None).start()
    counts = Counts()
    began = time.perf_counter()
    try:
        life = Calm(sb, pairs, seed=7)
        with counting(sb, counts):
            life.life()
        checked = life.count()
        memory = {spec.logical_id: spec.memory_size for spec in sb.functions.specs.values()}
        quiet = Counts()  # a poll that finds nothing new, after one that found the last changes
        sb.run_schedule("ReSharePollerFunction")
        with counting(sb, quiet):
            sb.run_schedule("ReSharePollerFunction")
    finally:
        sb.stop()
    ok = not (checked["duplicates"] or checked["losses"] or checked["attention"] or life.late or life.refused)
    tokens = defaultdict(int)
    for (function, system, operation), n in counts.calls.items():
        if system == "wms" and operation == "token":
            tokens[function] += n
    return {
        "pairs": pairs,
        "multi_volume": sum(len(p.items) > 1 for p in life.pairs),
        "ok": ok,
        "problems": (checked["duplicates"] + checked["losses"] + checked["attention"] + life.refused)[:10],
        "late": life.late,
        "seconds": round(time.perf_counter() - began, 1),
        "calls": [[f, s, o, n] for (f, s, o), n in sorted(counts.calls.items())],
        "dynamo_items": [[f, k, n] for (f, k), n in sorted(counts.dynamo_items.items())],
        "refused": [[f, o, n] for (f, o), n in sorted(counts.refused.items())],
        "invocations": dict(counts.invocations),
        "records": dict(counts.records),
        "seconds_by_function": {f: round(s, 3) for f, s in counts.seconds.items()},
        "tokens_by_function": dict(tokens),
        "transact_items": counts.transact_items,
        "written": [[f, o, w, n] for (f, o, w), n in sorted(counts.written.items())],
        "event_entries": counts.event_entries,
        "memory_mb": memory,
        "quiet_poll": {
            "reads": sum(n for (_, kind), n in quiet.dynamo_items.items() if kind == "read"),
            "writes": sum(n for (_, kind), n in quiet.dynamo_items.items() if kind == "write"),
            "reshare_calls": sum(n for (_, system, _), n in quiet.calls.items() if system == "reshare"),
        },
    }


# --- the tables ---------------------------------------------------------------------------------------------


def by_operation(result: dict[str, Any]) -> dict[tuple[str, str], int]:
    totals: Counter[tuple[str, str]] = Counter()
    for _, system, operation, n in result["calls"]:
        totals[(system, operation)] += n
    return dict(totals)


def summary(result: dict[str, Any]) -> dict[str, float]:
    """The figures of the issue's table, per pair."""
    n = result["pairs"]
    ops = by_operation(result)
    dynamo_writes = sum(k_n[2] for k_n in result["dynamo_items"] if k_n[1] == "write")
    dynamo_reads = sum(k_n[2] for k_n in result["dynamo_items"] if k_n[1] == "read")
    dynamo_write_calls = sum(v for (s, o), v in ops.items() if s == "dynamodb" and o in DYNAMO_WRITES)
    dynamo_read_calls = sum(v for (s, o), v in ops.items() if s == "dynamodb" and o in DYNAMO_READS)
    return {
        "wms_tokens": sum(result["tokens_by_function"].values()),
        "functions_with_tokens": len(result["tokens_by_function"]),
        "lookup_item": ops.get(("wms", "NCIP LookupItem"), 0) / n,
        "lookup_user": ops.get(("wms", "NCIP LookupUser"), 0) / n,
        "wms_calls": sum(v for (s, o), v in ops.items() if s == "wms" and o != "token") / n,
        "reshare_calls": sum(v for (s, _), v in ops.items() if s == "reshare") / n,
        "dynamo_read_calls": dynamo_read_calls / n,
        "dynamo_write_calls": dynamo_write_calls / n,
        "dynamo_reads": dynamo_reads / n,
        "dynamo_writes": dynamo_writes / n,
        "dynamo_refused": sum(r[2] for r in result["refused"]) / n,
        "put_events": ops.get(("events", "PutEvents"), 0) / n,
        "sqs_calls": sum(v for (s, _), v in ops.items() if s == "sqs") / n,
        "records": sum(result["records"].values()) / n,
        "invocations": sum(result["invocations"].values()) / n,
    }


def table(result: dict[str, Any]) -> str:
    """Calls per pair by system and operation, and by function for the WMS tokens and DynamoDB writes."""
    n = result["pairs"]
    ops = by_operation(result)
    lines = ["| system | operation | calls in the run | per pair |", "|---|---|---:|---:|"]
    for (system, operation), total in sorted(ops.items()):
        lines.append(f"| {system} | {operation} | {total} | {total / n:.2f} |")
    for function, operation, total in result["refused"]:
        lines.append(
            f"| dynamodb | {operation} refused (condition), {function} | {total} | {total / n:.2f} |"
        )
    return "\n".join(lines)


def functions_table(result: dict[str, Any]) -> str:
    n = result["pairs"]
    writes: Counter[str] = Counter()
    reads: Counter[str] = Counter()
    for function, kind, total in result["dynamo_items"]:
        (writes if kind == "write" else reads if kind == "read" else Counter())[function] += total
    refused_by: Counter[str] = Counter()
    for function, _, total in result["refused"]:
        refused_by[function] += total
    lines = [
        "| function | invocations | SQS records | seconds in handler | WMS tokens | DynamoDB items read "
        "| items written (refused) | per pair: written |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for function in sorted(result["invocations"]):
        lines.append(
            f"| {function} | {result['invocations'][function]} | {result['records'].get(function, 0)} | "
            f"{result['seconds_by_function'].get(function, 0):.2f} | "
            f"{result['tokens_by_function'].get(function, 0)} | {reads[function]} | {writes[function]} "
            f"({refused_by[function]}) | {writes[function] / n:.2f} |"
        )
    return "\n".join(lines)


def run(pairs: int = PAIRS) -> dict[str, Any]:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "bench.calls", str(pairs)], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):  # the functions' log lines and metrics (EMF) go to stdout
        measured = measure(int(sys.argv[1]) if len(sys.argv) > 1 else PAIRS)
    measured["log_bytes"] = len(output.getvalue().encode())
    print(table(measured))
    print(functions_table(measured))
    print(json.dumps(summary(measured)))
    print(json.dumps(measured))


STEP_FUNCTIONS = (
    "BorrowReceivedFunction",
    "BorrowReturnedFunction",
    "LendShippedFunction",
    "LendReturnedFunction",
    "RequestClosedFunction",
)


def targets(result: dict[str, Any]) -> str:
    """The issue's figures, per pair, against their targets."""
    n = result["pairs"]
    s = summary(result)
    step_writes = sum(c for f, k, c in result["dynamo_items"] if k == "write" and f in STEP_FUNCTIONS)
    step_refused = sum(c for f, _, c in result["refused"] if f in STEP_FUNCTIONS)
    all_refused = sum(c for _, _, c in result["refused"])
    tokens = result["tokens_by_function"]
    quiet = result["quiet_poll"]
    rows = [
        (
            "WMS tokens",
            f"{s['wms_tokens']} in the run: "
            + ", ".join(f"{f.removesuffix('Function')} {c}" for f, c in sorted(tokens.items()))
            + " (two libraries, so two WSKeys)",
            "≤ 1 per function instance and WSKey per token lifetime",
        ),
        ("NCIP LookupItem per pair (reconciler)", f"{s['lookup_item']:.2f}", "≤ 6"),
        ("NCIP LookupUser per pair (reconciler's probe)", f"{s['lookup_user']:.2f}", "(the probe's calls)"),
        (
            "DynamoDB items written per pair by the steps (refused)",
            f"{step_writes / n:.2f} ({step_refused / n:.2f})",
            "≤ 20, none refused",
        ),
        (
            "DynamoDB refused conditional writes per pair, every function",
            f"{all_refused / n:.2f}",
            "0 on the happy path",
        ),
        (
            "the poller's quiet run",
            f"{quiet['writes']} writes, {quiet['reads']} reads, {quiet['reshare_calls']} ReShare listings",
            "no write",
        ),
    ]
    lines = ["| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def section(result: dict[str, Any]) -> str:
    from bench import cost

    costs = [cost.cost(result, result["memory_mb"]), cost.cost(result, result["memory_mb"], 0.2)]
    return f"""## Calls per pair's life (`bench/calls.py`)

{result["pairs"]} request pairs ({result["multi_volume"]} multi-volume) live whole lives as in the chaos suite
(both directions, half returned in WMS first) with no faults, outages or redelivered copies; every call a
function makes is counted from the client side, per system and operation. The poller and the reconciler run
{result["invocations"].get("ReSharePollerFunction", 0)} times each (the chaos suite's rounds); their calls are
divided among the pairs too. Lives {
        "all complete, nothing duplicated or lost"
        if result["ok"]
        else "NOT all complete: " + "; ".join(result["problems"] + [str(n) for n in result["late"]])
    }.

{targets(result)}

The steps' writes, by what they write (`docs/performance.md` says why each is there):

{writes_table(result)}

Every call, by system and operation:

{table(result)}

{functions_table(result)}

## Cost per 1,000 pairs (`bench/cost.py`)

From the calls and durations above, at list prices ({cost.REGION}, taken {
        cost.PRICES_TAKEN
    }; on demand, no free
tier). The sandbox's simulators answer in about a millisecond; the second pair of columns adds 200 ms of
function duration per WMS or ReShare call. Log bytes are what the functions wrote in the run
({result.get("log_bytes", 0)} bytes) plus Lambda's START/END/REPORT lines.

{cost.table(costs)}
"""


def writes_table(result: dict[str, Any]) -> str:
    """The steps' DynamoDB writes per pair, by what is written and in which call (docs/performance.md justifies
    each row)."""
    n = result["pairs"]
    rows: Counter[tuple[str, str]] = Counter()
    by_function: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for function, operation, what, count in result.get("written", []):
        if function not in STEP_FUNCTIONS:
            continue
        rows[(what, operation)] += count
        by_function[(what, operation)][function.removesuffix("Function")] += count
    lines = ["| item written | call | per pair | by step function (in the run) |", "|---|---|---:|---|"]
    for (what, operation), total in sorted(rows.items(), key=lambda kv: -kv[1]):
        where = ", ".join(f"{f} {c}" for f, c in sorted(by_function[(what, operation)].items()))
        lines.append(f"| {what} | {operation} | {total / n:.2f} | {where} |")
    lines.append(f"| **all** | | **{sum(rows.values()) / n:.2f}** | |")
    return "\n".join(lines)
