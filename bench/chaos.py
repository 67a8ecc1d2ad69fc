"""The chaos suite (issue 12, deliverable 10): whole lives of N request pairs under faults, duplicates and outages.

In one sandbox (moto, both simulators over HTTP, the template's functions; simulated time), seeded:

- N request pairs, borrowing and lending in both directions (even pairs east borrows from west, odd ones west
  from east), every third one multi-volume (two items), each through its whole life: the lender ships, the
  borrower receives (temp items and holds in WMS), staff check the temp items in at the pickup branch and out
  to the patron, the patron returns (half of the pairs in ReShare first, half in WMS first: the reconciler
  notices), the borrower ships it back, the lender checks it out of ReShare (the lent item is checked in);
- the WMS simulator fails 10 % of all calls with a 5xx, applies 5 % and closes the connection without an answer
  (applied, answer lost) and holds 5 % past the bridge's read timeout, then closes them (not applied); the
  ReShare simulator fails 10 % of all calls with a 5xx, and every ReShare token expires at each round of the
  bridge (each poll and reconciliation run);
- every event reaches its step queue at least twice, each copy after a random delay of up to 5 minutes, so out
  of order (``Sandbox.redeliver``);
- in the middle, WMS is down for 30 minutes (right after the borrowers received: every temp item waits) and
  ReShare is down for 30 minutes (right after the patrons returned).

Then it counts, from the systems themselves: duplicates (a lent item checked out more than once, more temp
items or holds than volumes), losses (a request not complete at either end, a lent item not back on the shelf,
a borrower's mapping still open, a step not succeeded), attention items, messages in any dead-letter queue and
events left in an outbox. What must hold: all zero.

``python -m bench chaos --pairs 300 --seed 1`` runs it and adds its line to bench/RESULTS.md;
``tests/e2e/test_chaos.py`` runs 60 pairs (``pytest -m chaos``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

MINUTE = 60
OUTAGE_SECONDS = 30 * MINUTE
REGISTRY = {"east": "128807", "west": "262626"}
PATRON = {"east": "EAST-P-0001", "west": "WEST-P-0001"}
PICKUP = {"east": "east-main", "west": "west-main"}
ILL_ACCOUNT = {"east": "ILL-EAST", "west": "ILL-WEST"}  # the borrowing institution's account at the lender
WMS_READ_TIMEOUT = 0.5  # each library's wms.timeout_seconds for the run: a held call times out quickly
WINDOW = 60  # simulated seconds of delayed copies and retries run together in one round of the queues
WMS_HOLD = 1.0  # a "timeout" fault holds the call this long (past the read timeout), then closes it


def wms_faults(seed: int) -> list[dict[str, Any]]:
    """10 % 5xx, 5 % applied then lost, 5 % timeouts, of all WMS calls (each probability is of the calls the
    faults before it passed over: 0.10, 0.05 / 0.90, 0.05 / 0.85)."""
    return [
        {
            "operation": "*",
            "kind": "http_error",
            "status": 503,
            "times": -1,
            "probability": 0.10,
            "seed": seed,
        },
        {
            "operation": "*",
            "kind": "drop_response",
            "times": -1,
            "probability": 0.05 / 0.90,
            "seed": seed + 1,
        },
        {
            "operation": "*",
            "kind": "timeout",
            "timeout_s": WMS_HOLD,
            "times": -1,
            "probability": 0.05 / 0.85,
            "seed": seed + 2,
        },
    ]


def reshare_faults(seed: int) -> list[dict[str, Any]]:
    """10 % 5xx of all ReShare calls. Token expiries are not a per-call fault here: a fault that expires the
    token on 3 % of calls also expires, now and then, the token the client has just been given, which Okapi
    never does (a first run found one step failed on "refused a fresh token"). Every token expires instead at
    each round of the bridge (``Chaos.expire_tokens``), as tokens run out between runs."""
    return [
        {
            "path_prefix": "*",
            "kind": "http_error",
            "status": 503,
            "times": -1,
            "probability": 0.10,
            "seed": seed,
        },
    ]


@dataclass
class Pair:
    n: int
    borrower: str  # tenant
    lender: str
    items: list[str]
    wms_first: bool
    ids: dict[str, str] = field(default_factory=dict)  # {"borrower": id, "lender": id}
    hrid: str = ""


class Chaos:
    def __init__(self, sb: Any, pairs: int, seed: int) -> None:
        from illbridge.reshare.client import ReShareClient

        self.sb = sb
        self.seed = seed
        self.rng = random.Random(seed)
        self.http = requests.Session()
        self.staff = {
            tenant: ReShareClient(config.reshare, backoff=0) for tenant, config in sb.libraries.items()
        }
        self.pairs = [
            Pair(
                n=n,
                borrower="east" if n % 2 == 0 else "west",
                lender="west" if n % 2 == 0 else "east",
                items=[
                    f"{('WEST' if n % 2 == 0 else 'EAST')}-CHAOS{seed}-{n:04d}-V{v:03d}"
                    for v in range(1, 3 if n % 3 == 2 else 2)
                ],
                wms_first=n % 4 >= 2,
            )
            for n in range(pairs)
        ]
        self.staff_retries = 0
        self.token_expiries = 0
        self.phases: dict[str, float] = {}  # wall-clock seconds per phase of the lives
        self._mark = 0.0
        self.late: list[int] = []  # pairs that did not reach a state the bridge should have brought them to
        self.refused: list[str] = []  # staff actions ReShare refused (a state the bridge should have reached)
        self.schedule_failures = 0

    # --- the systems ------------------------------------------------------------------------------------

    def sim(self, system: str, method: str, path: str, **body: Any) -> Any:
        answer = self.http.request(
            method, f"{self.sb.urls[system]}/_sim/{path}", json=body or None, timeout=30
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"{system} /_sim/{path}: {answer.status_code} {answer.text}")
        return answer.json()

    def act(self, tenant: str, request_id: str, action: str, params: dict[str, Any] | None = None) -> None:
        """Staff perform an action in ReShare, trying again after a fault (a 5xx or 401 applies nothing); an
        action ReShare refuses in the request's state is noted (``refused``: the bridge left it behind)."""
        error: Exception | None = None
        for _ in range(50):
            try:
                self.staff[tenant].perform_action(request_id, action, params or {})
                return
            except Exception as exc:
                error = exc
                self.staff_retries += 1
                if "A valid action was not supplied" in str(exc):
                    break
        state = self.state(tenant, request_id)
        self.refused.append(f"{tenant} {request_id}: {action} refused at {state}: {error}")

    def state(self, tenant: str, request_id: str) -> str:
        for _ in range(50):
            try:
                return str(self.staff[tenant].get_request(request_id).state.code)
            except Exception:
                self.staff_retries += 1
        raise RuntimeError(f"{tenant} could not read {request_id}")

    def faults_on(self) -> None:
        for spec in wms_faults(self.seed * 10):
            self.sim("wms", "POST", "faults", **spec)
        for spec in reshare_faults(self.seed * 10 + 5):
            self.sim("reshare", "POST", "faults", **spec)

    def faults_off(self, system: str) -> None:
        self.http.delete(f"{self.sb.urls[system]}/_sim/faults", timeout=30).raise_for_status()

    # --- the bridge ---------------------------------------------------------------------------------------

    def settle(self, rounds: int = 12) -> None:
        """Poll, reconcile and run every step queue (delayed copies and retries included) until quiet."""
        for _ in range(rounds):
            processed = self._schedules()
            processed += self.sb.drain(max_rounds=1000, wait_invisible=True, window=WINDOW)
            if processed == 0:
                return

    def expire_tokens(self) -> None:
        """Every ReShare token the bridge (and staff) hold expires: the next call is refused (401)."""
        self.token_expiries += int(self.sim("reshare", "POST", "expire-tokens")["expired"])

    def _schedules(self) -> int:
        self.expire_tokens()
        ran = 0
        for function in ("ReSharePollerFunction", "WmsReconcilerFunction"):
            run = self.sb.run_schedule(function)
            ran += 1
            if not run.ok:
                self.schedule_failures += 1
        self.sb.drain(max_rounds=200)
        return 0 if ran == 0 else self._queued()

    def _queued(self) -> int:
        sqs = self.sb.boto3_client("sqs")
        total = 0
        for poller in self.sb.pollers.values():
            attributes = sqs.get_queue_attributes(
                QueueUrl=poller.source.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            total += sum(int(v) for v in attributes.values())
        return total

    def states(self) -> dict[str, str]:
        """Every request's state, from the ReShare simulator's own view (no faults there)."""
        return {r["id"]: r["state"]["code"] for r in self.sim("reshare", "GET", "requests")}

    def wait_for(self, side: str, state: str, pairs: list[Pair], hours: int = 96, step: int = 4) -> None:
        """Time goes on (``step`` hours at a time: polls, reconciliations, queues) until each pair's ``side`` is
        at ``state``, as a bridge running for days would; at most ``hours``."""
        for _ in range(hours // step):
            states = self.states()
            if all(states.get(pair.ids[side]) == state for pair in pairs):
                return
            self.sb.advance(step * 3600)
            self.settle()
        self.late += [p.n for p in pairs if self.states().get(p.ids[side]) != state]

    def pass_time(self, hours: int, step: int = 12) -> None:
        """``hours`` go by, the schedules running every ``step`` hours (and the queues after them)."""
        for _ in range(hours // step):
            self.sb.advance(step * 3600)
            self._schedules()

    def outage(self, system: str) -> None:
        """``system`` answers every call 503 for 30 minutes (simulated) while the bridge keeps running."""
        self.faults_off(system)
        if system == "wms":
            self.sim("wms", "POST", "faults", operation="*", kind="http_error", status=503, times=-1)
        else:
            self.sim("reshare", "POST", "faults", path_prefix="*", kind="http_error", status=503, times=-1)
        began = self.sb.now()
        while (self.sb.now() - began).total_seconds() < OUTAGE_SECONDS:
            self.expire_tokens()
            for function in ("ReSharePollerFunction", "WmsReconcilerFunction"):
                if not self.sb.run_schedule(function).ok:
                    self.schedule_failures += 1
            self.sb.drain(max_rounds=200)
            self.sb.advance(5 * MINUTE)
        self.faults_off(system)
        for spec in wms_faults(self.seed * 10 + 1) if system == "wms" else reshare_faults(self.seed * 10 + 6):
            self.sim(system, "POST", "faults", **spec)

    # --- the lives ------------------------------------------------------------------------------------------

    def create(self) -> None:
        for pair in self.pairs:
            for item in pair.items:
                registry = REGISTRY[pair.lender]
                self.sim(
                    "wms", "POST", "items", registry_id=registry, barcode=item, branch=registry, title="Chaos"
                )
            made = self.sim(
                "reshare",
                "POST",
                "requests",
                borrower_tenant=pair.borrower,
                lender_tenant=pair.lender,
                title=f"Chaos title {pair.n}",
                patron_barcode=PATRON[pair.borrower],
                pickup_location_slug=PICKUP[pair.borrower],
                volumes=[{"item_barcode": item} for item in pair.items],
                lender_state="RES_AWAIT_PICKING",
            )
            pair.ids = {"borrower": made["borrower"]["id"], "lender": made["lender"]["id"]}
            pair.hrid = made["hrid"]

    def shuffled(self) -> list[Pair]:
        pairs = list(self.pairs)
        self.rng.shuffle(pairs)
        return pairs

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self._mark, 1)
        self._mark = now

    def life(self) -> None:
        self._mark = time.perf_counter()
        self.create()
        self.lap("create")
        self.settle()
        for pair in self.shuffled():  # the lenders ship
            self.act(
                pair.lender,
                pair.ids["lender"],
                "supplierCheckInToReshareAndSupplierMarkShipped",
                {"itemBarcodes": [{"itemId": item} for item in pair.items]},
            )
        self.settle()
        for pair in self.shuffled():  # the borrowers receive ...
            self.act(pair.borrower, pair.ids["borrower"], "requesterReceived", {"note": "arrived"})
        self.lap("ship")
        self._schedules()
        self.outage("wms")  # ... and WMS is down while their temp items are to be made
        self.lap("wms outage")
        self.settle()
        self.lap("receive")
        for pair in self.shuffled():  # staff check each temp item in at pickup, and out to the patron
            for temp in self.temp_items(pair):
                self.sim("wms", "POST", "checkin", barcode=temp["barcode"], branch=REGISTRY[pair.borrower])
                self.sim(
                    "wms",
                    "POST",
                    "checkout",
                    item_barcode=temp["barcode"],
                    patron_barcode=PATRON[pair.borrower],
                )
        self.settle()
        self.lap("check out")
        self.pass_time(hours=72)  # the patrons keep them three days (reconciliation sees them on loan)
        self.lap("on loan")
        for pair in self.shuffled():  # the patrons return: in ReShare first, or at the WMS desk first
            if pair.wms_first:
                for temp in self.temp_items(pair):
                    self.sim(
                        "wms", "POST", "checkin", barcode=temp["barcode"], branch=REGISTRY[pair.borrower]
                    )
            else:
                self.act(pair.borrower, pair.ids["borrower"], "patronReturnedItem")
        self._schedules()
        self.outage("reshare")  # ReShare is down while the returns are noticed and acted on
        self.lap("reshare outage")
        self.settle()
        self.wait_for("borrower", "REQ_AWAITING_RETURN_SHIPPING", self.pairs)
        self.lap("return")
        for pair in self.shuffled():  # the borrowers ship it back
            self.act(pair.borrower, pair.ids["borrower"], "shippedReturn")
        self.settle()
        for pair in self.shuffled():  # the lenders receive it and complete
            self.act(pair.lender, pair.ids["lender"], "supplierCheckOutOfReshare")
        self.settle()
        self.lap("complete")

    def story(self, numbers: list[int]) -> dict[str, list[str]]:
        """The bridge's history and steps of a few pairs (what to look at when one is late)."""
        from illbridge.wiring import current_services

        store = current_services().store
        told: dict[str, list[str]] = {}
        for pair in (p for p in self.pairs if p.n in numbers):
            lines = [
                f"{h.at:%d %H:%M} {h.step} {h.operation} {h.outcome.value} {h.summary or ''}"[:200]
                for h in store.history(pair.borrower, pair.ids["borrower"])
            ]
            lines += [
                f"step {s.step} {s.status} attempt {s.attempt} waits {s.waits} {s.last_error or ''}"[:200]
                for s in store.steps(pair.borrower, pair.ids["borrower"])
            ]
            told[f"{pair.n} {pair.hrid} wms_first={pair.wms_first}"] = lines
        return told

    def temp_items(self, pair: Pair) -> list[dict[str, Any]]:
        every = self.sim("wms", "GET", f"temp-items?registry_id={REGISTRY[pair.borrower]}")
        return [t for t in every if t["request_id"] == f"ReShareRequest{pair.hrid}"]

    # --- what the systems show afterwards ------------------------------------------------------------------

    def count(self) -> dict[str, Any]:
        from illbridge.models import StepStatus
        from illbridge.wiring import current_services

        store = current_services().store
        self.faults_off("wms")
        self.faults_off("reshare")
        duplicates: list[str] = []
        losses: list[str] = []
        loans = {
            tenant: Counter(
                (loan["item_barcode"], loan["patron_barcode"])
                for loan in self.sim("wms", "GET", f"loans?registry_id={registry}")
            )
            for tenant, registry in REGISTRY.items()
        }
        holds = {
            tenant: Counter(
                h["item_barcode"] for h in self.sim("wms", "GET", f"holds?registry_id={registry}")
            )
            for tenant, registry in REGISTRY.items()
        }
        states = self.states()
        for pair in self.pairs:
            where = f"pair {pair.n} ({pair.hrid}, {pair.borrower} borrows from {pair.lender})"
            if (state := states[pair.ids["borrower"]]) != "REQ_REQUEST_COMPLETE":
                losses.append(f"{where}: borrower at {state}")
            if (state := states[pair.ids["lender"]]) != "RES_COMPLETE":
                losses.append(f"{where}: lender at {state}")
            for item in pair.items:
                lent = loans[pair.lender][(item, ILL_ACCOUNT[pair.borrower])]
                if lent != 1:
                    (duplicates if lent > 1 else losses).append(f"{where}: {item} lent {lent} times")
                details = self.sim("wms", "GET", f"items/{item}?registry_id={REGISTRY[pair.lender]}")
                if details["status"] != "Available" or details["active_loan"]:
                    losses.append(f"{where}: {item} is {details['status']}, not back on the shelf")
            temps = self.temp_items(pair)
            if len(temps) != len(pair.items):
                (duplicates if len(temps) > len(pair.items) else losses).append(
                    f"{where}: {len(temps)} temp items for {len(pair.items)} volumes"
                )
            for temp in temps:
                if holds[pair.borrower][temp["barcode"]] != 1:
                    duplicates.append(
                        f"{where}: {holds[pair.borrower][temp['barcode']]} holds on {temp['barcode']}"
                    )
            mapping = store.get_mapping(pair.borrower, pair.ids["borrower"])
            if mapping is None or mapping.open:
                losses.append(
                    f"{where}: the borrower's mapping is {'missing' if mapping is None else 'open'}"
                )
            for side, tenant in (("borrower", pair.borrower), ("lender", pair.lender)):
                for step in store.steps(tenant, pair.ids[side]):
                    if step.status != StepStatus.SUCCEEDED:
                        losses.append(f"{where}: {side} step {step.step} {step.status} ({step.last_error})")
        attention = [
            f"{a.tenant} {a.request_id} {a.step}: {a.reason}"
            for tenant in REGISTRY
            for a in store.list_attention(tenant)
        ]
        dead = self.dead_letters()
        outbox = sum(len(store.pending_events(tenant)) for tenant in REGISTRY)
        wms_log = self.sim("wms", "GET", "requests-log")
        reshare_log = self.sim("reshare", "GET", "calls")
        return {
            "duplicates": duplicates,
            "losses": losses,
            "attention": attention,
            "dead_letters": dead,
            "outbox": outbox,
            "wms_calls": len(wms_log),
            "wms_faults": dict(Counter(e.get("fault") for e in wms_log if e.get("fault"))),
            "reshare_calls": len(reshare_log),
            "reshare_faults": dict(Counter(c.get("fault") for c in reshare_log if c.get("fault"))),
        }

    def dead_letters(self) -> dict[str, int]:
        sqs = self.sb.boto3_client("sqs")
        counts = {}
        for logical_id in self.sb.resources.queues:
            if logical_id.endswith("DeadLetterQueue"):
                attributes = sqs.get_queue_attributes(
                    QueueUrl=self.sb.queue_url(logical_id),
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                if total := sum(int(v) for v in attributes.values()):
                    counts[logical_id] = total
        return counts


def slow_wms_answers(sb: Any) -> None:
    """Each library's ``wms.timeout_seconds`` set to WMS_READ_TIMEOUT (so a held WMS call times out quickly)."""
    from illbridge.config.loader import settings_parameter
    from illbridge.wiring import current_services

    ssm = sb.boto3_client("ssm")
    for library_id in sb.libraries:
        name = settings_parameter(sb.env.get("CONFIG_PREFIX", "/reshare-wms-bridge"), library_id)
        settings = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        settings["wms"]["timeout_seconds"] = WMS_READ_TIMEOUT
        ssm.put_parameter(Name=name, Value=json.dumps(settings), Type="String", Overwrite=True)
    current_services().configs.ssm.clear_cache()


def invocation_totals(sb: Any) -> dict[str, list[float]]:
    """Per function: [invocations, seconds in its handler] (where the run's time went)."""
    totals: dict[str, list[float]] = {}
    for function, elapsed, _ in list(sb.functions.invocations):
        total = totals.setdefault(function, [0, 0.0])
        total[0] += 1
        total[1] = round(total[1] + elapsed, 1)
    return totals


def pauses_in_simulated_time(sb: Any) -> None:
    """The bridge's ReShare clients pause between read tries in simulated time (``sb.advance``), not real time:
    the pauses are part of the budget the timings test checks; here they would only make the run slower."""
    from illbridge.wiring import current_services

    services = current_services()
    factory = services.reshare_factory

    def client(config: Any) -> Any:
        made = factory(config)
        made._sleep = sb.advance
        return made

    services.reshare_factory = client
    services._reshare.clear()


def run(pairs: int = 300, seed: int = 1, sandbox: Any = None) -> dict[str, Any]:
    """One chaos run; in ``sandbox`` if given (it must be a fresh one: counts are over all of its state)."""
    from sandbox.runtime import Sandbox

    own = sandbox is None
    sb = sandbox if sandbox is not None else Sandbox(background=False, visibility=None).start()
    began = time.perf_counter()
    try:
        slow_wms_answers(sb)
        pauses_in_simulated_time(sb)
        redelivery = sb.redeliver(copies=2, max_delay=5 * MINUTE, seed=seed)
        chaos = Chaos(sb, pairs, seed)
        chaos.faults_on()
        chaos.life()
        sb.deliver_once()
        counted = chaos.count()
        return {
            "seed": seed,
            "pairs": pairs,
            "multi_volume": sum(len(p.items) > 1 for p in chaos.pairs),
            "wms_first": sum(p.wms_first for p in chaos.pairs),
            "event_copies": redelivery.made,
            "staff_retries": chaos.staff_retries,
            "token_expiries": chaos.token_expiries,
            "late": chaos.late,
            "refused": chaos.refused,
            "late_history": chaos.story(chaos.late[:3]),
            "phases": chaos.phases,
            "invocations": invocation_totals(sb),
            "schedule_failures": chaos.schedule_failures,
            "simulated_hours": round(sb.offset / 3600, 1),
            "seconds": round(time.perf_counter() - began, 1),
            **counted,
        }
    finally:
        if own:
            sb.stop()


def line(r: dict[str, Any]) -> str:
    wms, reshare = r["wms_faults"], r["reshare_faults"]
    return (
        f"| {r['seed']} | {r['pairs']} ({r['multi_volume']} multi-volume, {r['wms_first']} returned in WMS first)"
        f" | {r['wms_calls']}: {wms.get('http_error', 0)} 5xx, {wms.get('drop_response', 0)} applied then lost,"
        f" {wms.get('timeout', 0)} timeouts | {r['reshare_calls']}: {reshare.get('http_error', 0)} 5xx,"
        f" {r.get('token_expiries', 0)} tokens expired | {r['event_copies']} | 30 min each"
        f" | {len(r['duplicates'])} | {len(r['losses'])} | {len(r['attention'])}"
        f" | {sum(r['dead_letters'].values())} | {r['outbox']} | {r['seconds']} s |"
    )


HEADER = (
    "| seed | pairs | WMS calls: faults | ReShare calls: faults | event copies delivered | outages "
    "| duplicates | losses | attention items | dead letters | outbox left | time |\n"
    "|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"
)


SECTION_START = "<!-- chaos rows -->"
SECTION_END = "<!-- /chaos rows -->"
SECTION_INTRO = """## The chaos suite (`bench/chaos.py`)

Whole lives of N request pairs (borrowing and lending in both directions, every third pair multi-volume, half
returned in WMS first) under WMS 10 % 5xx + 5 % applied-then-lost + 5 % timeouts, ReShare 10 % 5xx + every
token expired at each round of the bridge, every event delivered to its step queue twice after random delays of
up to 5 minutes (out of order), and a 30-minute outage of WMS (while the temp items are to be made) and of
ReShare (while the returns are noticed), in simulated time. Counted from the systems afterwards: duplicates (a
lent item checked out twice, more temp items or holds than volumes), losses (a request not complete at either
end, a lent item not back on the shelf, a borrower's mapping open, a step not succeeded), attention items, dead
letters, events left in an outbox. What must hold: all zero. `python -m bench chaos --pairs 300 --seed N` adds
or replaces its row. Time is wall-clock on a shared machine (loose)."""


def section(current: str, row: str | None = None) -> str:
    """The chaos section of bench/RESULTS.md, the file's last generated section: the rows already there
    (``current``'s), ``row`` added or put in place of the row of the same seed and size, then whatever
    ``current`` has after the rows (notes on the runs, sections written by hand) kept as it is."""
    rows: list[str] = []
    tail = "\n"
    if SECTION_START in current and SECTION_END in current:
        body, after = current.split(SECTION_START, 1)[1].split(SECTION_END, 1)
        rows = [line for line in body.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
        tail = after if after.startswith("\n") else "\n" + after
    if row is not None:
        key = row.split("|")[1:3]
        key = [key[0].strip(), key[1].split("(")[0].strip()]
        rows = [r for r in rows if [r.split("|")[1].strip(), r.split("|")[2].split("(")[0].strip()] != key]
        rows.append(row)
    return f"\n{SECTION_INTRO}\n\n{SECTION_START}\n{HEADER}\n" + "\n".join(rows) + f"\n{SECTION_END}" + tail


def main(argv: list[str] | None = None, results: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    with contextlib.redirect_stdout(io.StringIO()):  # the functions' metrics (EMF) go to stdout
        result = run(args.pairs, args.seed)
    print(HEADER)
    print(line(result))
    for kind in ("duplicates", "losses", "attention", "refused"):
        for entry in result[kind][:20]:
            print(f"{kind}: {entry}")
    print(json.dumps(result))
    if results is not None:  # bench/RESULTS.md: the chaos section replaced, the rest kept
        current = results.read_text() if results.exists() else "# Benchmark results\n"
        head = current.split("\n## The chaos suite", 1)[0].rstrip("\n") + "\n"
        results.write_text(head + section(current, line(result)))
    return 0 if result_ok(result) else 1


def result_ok(result: dict[str, Any]) -> bool:
    return not (
        result["refused"]
        or result["late"]
        or result["duplicates"]
        or result["losses"]
        or result["attention"]
        or result["dead_letters"]
        or result["outbox"]
    )


if __name__ == "__main__":
    raise SystemExit(main())
