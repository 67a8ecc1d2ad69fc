"""How every workflow step runs: claim, act, record, announce (architecture.md, "Exactly once").

- **claim**: a conditional write makes the step ``IN_PROGRESS`` for one worker (a duplicate delivery finds it
  done or claimed and stops there);
- **act**: the step's own function calls WMS or ReShare, writing one history line per call;
- **record**: the step ends ``SUCCEEDED``/``SKIPPED``; or ``RETRYABLE`` after a transient fault (an outage,
  an earlier step still running), and ``StepDeferred`` sends the record back to its queue with exponential
  backoff (``retry_delay``: 30 s doubling to 15 min) until the library's ``outage_deadline_hours`` (24 h) have
  passed since the step began waiting - waiting consumes no SQS receives and no attempts; or ``FAILED`` with
  an attention item when a human is needed or the deadline has passed;
- **announce**: a new attention item is published once to staff's SNS topic (``illbridge/announce.py``); an
  ``AttentionRaised`` event goes to the bus as well.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from illbridge.announce import put_on_list
from illbridge.config import LibraryConfig
from illbridge.errors import (
    BridgeError,
    ConfigurationError,
    NeedsStaff,
    OutcomeUnknown,
    Refused,
    ReShareActionRejected,
    StepAlreadyClaimed,
    StepAlreadyDone,
    StepDeferred,
    WaitingForEarlierStep,
    WmsAuthError,
    WmsProblem,
)
from illbridge.models import (
    AttentionItem,
    HistoryEntry,
    MappedItem,
    Mapping,
    Outcome,
    PatronRequest,
    StepName,
    StepRecord,
    StepStatus,
)
from illbridge.models.events import AttentionRaised, ReShareRequestChanged
from illbridge.observability import OUTAGE_METRIC, logger, mask, metrics, redact
from illbridge.workflow.declaration import StepDeclaration
from illbridge.workflow.ports import ReSharePort, StepPorts, StorePort, WmsPort


@dataclass
class Exchange:
    """One call to WMS or ReShare as its history line keeps it: what was asked (``request``), what came back
    (``summary``, ``response``), how it ended (``outcome``: success unless the body says otherwise or it
    raises) and how long it took. ``StepContext.call`` yields it; the body fills in the answer."""

    system: str
    operation: str
    request: dict[str, Any]
    summary: str | None = None
    response: dict[str, Any] | None = None
    outcome: Outcome = Outcome.SUCCESS
    duration_ms: int | None = None


@dataclass
class StepResult:
    status: StepStatus
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """One run of one step for one request: what it needs to act and to write its history."""

    ports: StepPorts
    config: LibraryConfig
    tenant: str
    request_id: str
    hrid: str
    step: StepName
    record: StepRecord | None = None
    # personal data this run has seen (the patron's barcode): masked in every history line and attention item
    private: set[str] = field(default_factory=set)
    declaration: StepDeclaration | None = None
    trigger: str = ""  # what started this run: the ReShare state, or the WMS check-in
    # what this run has read already (the ReShare request, a probe): asked once per run
    cache: dict[str, Any] = field(default_factory=dict)

    def keep_private(self, *values: str | None) -> None:
        self.private.update(v for v in values if v)

    def redacted(self, value: Any) -> Any:
        return redact(value, self.private)

    @property
    def attempt(self) -> int:
        return self.record.attempt if self.record else 0

    @property
    def reclaimed(self) -> bool:
        """A previous attempt may have sent something whose outcome is unknown: verify before re-sending."""
        return bool(self.record and (self.record.attempt > 1))

    @property
    def wms(self) -> WmsPort:
        """The library's WMS (NCIP and SCIM), within the function's budget."""
        return self.ports.wms(self.config)

    @property
    def reshare(self) -> ReSharePort:
        """The library's ReShare tenant."""
        return self.ports.reshare(self.config)

    @property
    def store(self) -> StorePort:
        return self.ports.store

    def clock(self) -> datetime:
        """The function's clock (the sandbox's simulated one in tests)."""
        return self.ports.clock()

    def reshare_request(self) -> PatronRequest:
        """The full request, re-read from ReShare once per run (never trust an event's payload)."""
        if "request" not in self.cache:
            reshare = self.reshare
            with self.call("reshare", "GET patron request", {"id": self.request_id}) as answer:
                request = reshare.get_request(self.request_id)
                self.keep_private(request.patron_identifier)
                answer.summary = f"{request.hrid} is {request.state.code}"
                answer.response = {"state": request.state.code, "volumes": len(request.volumes or [])}
            self.cache["request"] = request
        return cast(PatronRequest, self.cache["request"])

    def already_done(self, mapping: Mapping, item: MappedItem) -> bool:
        """Verify before re-sending: after an attempt whose outcome is unknown (this is a re-claim), the step's
        declared ``verify`` hook asks WMS whether the item's message was applied already. False: send it."""
        verify = self.declaration.verify if self.declaration else None
        return bool(self.reclaimed and verify is not None and verify(self, mapping, item))

    def note(self, operation: str, summary: str, outcome: Outcome = Outcome.INFO, **extra: Any) -> None:
        self.ports.store.add_history(
            self.tenant,
            self.request_id,
            HistoryEntry(
                at=self.ports.clock(),
                step=self.step.value,
                system="bridge",
                operation=operation,
                outcome=outcome,
                summary=self.redacted(summary),
                attempt=self.attempt,
                response=self.redacted(extra),
            ),
        )

    @contextmanager
    def call(self, system: str, operation: str, request: dict[str, Any]) -> Iterator[Exchange]:
        """Time one external call and write its history line (an ``Exchange``), whatever happens."""
        exchange = Exchange(system, operation, request)
        started = time.perf_counter()
        try:
            yield exchange
        except BaseException as exc:
            exchange.outcome = outcome_of(exc)
            if exchange.summary is None:
                exchange.summary = str(exc)
            if exchange.response is None:
                exchange.response = describe_error(exc)
            raise
        finally:
            exchange.duration_ms = int((time.perf_counter() - started) * 1000)
            self.ports.store.add_history(
                self.tenant,
                self.request_id,
                HistoryEntry(
                    at=self.ports.clock(),
                    step=self.step.value,
                    system=exchange.system,
                    operation=exchange.operation,
                    outcome=exchange.outcome,
                    summary=self.redacted(exchange.summary or ""),
                    request=self.redacted(exchange.request),
                    response=self.redacted(exchange.response or {}),
                    duration_ms=exchange.duration_ms,
                    attempt=self.attempt,
                ),
            )


def outcome_of(exc: BaseException) -> Outcome:
    # NeedsStaff raised inside a call: the answer was a definite "no" (e.g. an unknown patron), not a fault
    if isinstance(exc, Refused | NeedsStaff):
        return Outcome.PROBLEM
    if isinstance(exc, OutcomeUnknown):
        return Outcome.UNKNOWN
    return Outcome.ERROR


USER_ELEMENTS = ("user", "patron", "authentication")  # NCIP elements whose ProblemValue identifies a person


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An error as a history line keeps it; a ProblemValue that names a patron (UserIdentifierValue,
    AuthenticationInputData, ...) is masked, whatever the patron's barcode looks like."""
    described: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, WmsProblem):
        value = exc.value
        element = (exc.element or "").lower()
        if value and (any(word in element for word in USER_ELEMENTS) or not element):
            described["message"] = str(exc).replace(value, mask(value))
            value = mask(value)
        described.update(problem_type=exc.problem_type, problem_detail=exc.detail, problem_value=value)
    return described


def retry_command(library_id: str, hrid: str, step: StepName) -> str:
    """What staff run once the cause is fixed (the operator's ``illbridge`` command, or the page's button)."""
    return f"illbridge retry {hrid} --library {library_id} --step {step.value}"


def staff_guidance(exc: BaseException, ctx: StepContext) -> tuple[str, str]:
    """What went wrong and what staff should do about it, for errors that retrying will not fix."""
    if isinstance(exc, NeedsStaff):
        return exc.reason, exc.fix
    if isinstance(exc, ConfigurationError):
        return str(exc), "Correct the library's configuration (see docs/configuration.md), then retry."
    if isinstance(exc, WmsAuthError):
        return f"WMS refused the WSKey: {exc}", "Check the library's WSKey and secret and its scopes."
    if isinstance(exc, WmsProblem):
        return (
            f"WMS said no to {exc.operation or 'the request'}: {exc.problem_type}"
            + (f" ({exc.detail})" if exc.detail else ""),
            "Fix the item, patron or branch in WMS (or do this step by hand in WMS), then retry.",
        )
    if isinstance(exc, ReShareActionRejected):
        return str(exc), f"Check request {ctx.hrid} in ReShare and do the step by hand if needed."
    return f"{type(exc).__name__}: {exc}", "See the request's history; fix the cause, then retry."


FIRST_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds; also: a recovered system is noticed within 15 minutes


def retry_delay(waits: int) -> int:
    """Seconds before the ``waits``-th retry of a waiting step: 30, 60, 120, ... up to 900."""
    return int(min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** min(max(waits - 1, 0), 16)))


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f} h" if hours >= 1 else f"{span.total_seconds() / 60:.0f} min"


def run_step(
    ports: StepPorts,
    config: LibraryConfig,
    *,
    tenant: str,
    request_id: str,
    hrid: str,
    step: StepName,
    trigger: str,
    act: Callable[[StepContext], StepResult],
    force: bool = False,
) -> StepResult:
    """Run ``act`` exactly once for (request, step); see the module docstring."""
    store = ports.store
    ctx = StepContext(ports, config, tenant, request_id, hrid, step, trigger=trigger)
    try:
        ctx.record = store.claim_step(
            tenant,
            request_id,
            step,
            trigger=trigger,
            lease_seconds=ports.step_lease_seconds,
            force=force,
        )
    except StepAlreadyDone:
        logger.info("step already done: duplicate delivery", extra={"step": step.value, "hrid": hrid})
        metrics.add_metric(name="DuplicateDeliveries", unit="Count", value=1)
        return StepResult(StepStatus.SUCCEEDED, {"duplicate": True})
    except StepAlreadyClaimed as exc:  # another worker runs it now: look again once its lease could be over
        lease = math.ceil(ports.step_lease_seconds)
        raise StepDeferred(str(exc), min(MAX_DELAY_SECONDS, lease)) from exc

    attempt = ctx.attempt
    started = ports.clock()
    try:
        result = act(ctx)
    except BridgeError as exc:
        message = ctx.redacted(describe_error(exc)["message"])  # no patron barcode in the step row or logs
        waiting_since = (ctx.record.waiting_since if ctx.record else None) or started
        waited = started - waiting_since
        deadline = timedelta(hours=config.outage_deadline_hours)
        if exc.transient and waited < deadline:
            record = store.complete_step(
                tenant, request_id, step, attempt=attempt, status=StepStatus.RETRYABLE, error=message
            )
            delay = retry_delay(record.waits)
            logger.warning(
                "step waits",
                extra={"step": step.value, "hrid": hrid, "error": message, "retry_in_seconds": delay},
            )
            metrics.add_metric(name=OUTAGE_METRIC, unit="Count", value=1)
            raise StepDeferred(message, delay) from exc
        reason, fix = staff_guidance(exc, ctx)
        if exc.transient:
            reason = f"still failing after {_hours(waited)} (the library waits {_hours(deadline)}): {reason}"
            fix = "Make sure the system is reachable again (or the earlier step is done), then retry."
        reason = ctx.redacted(reason)
        _fail(ctx, reason, fix, error=message)
        return StepResult(StepStatus.FAILED, {"reason": reason})
    store.complete_step(tenant, request_id, step, attempt=attempt, status=result.status, result=result.detail)
    store.resolve_attention(tenant, request_id, step.value, raised_before=started)  # keep this run's warnings
    metrics.add_metric(name=f"Step{result.status.value.title()}", unit="Count", value=1)
    return result


# Steps that are still going to happen (a later step must wait for them rather than skip their work).
PENDING = frozenset({StepStatus.IN_PROGRESS, StepStatus.RETRYABLE})


def skipped_by_configuration(ctx: StepContext, switch: str) -> StepStatus:
    ctx.note("skipped by configuration", f"the library's switch {switch} is off", Outcome.SKIPPED)
    return StepStatus.SKIPPED


def declared_rules(declaration: StepDeclaration, ctx: StepContext) -> StepResult | None:
    """What the engine does for every step before its action, as its declaration says: the switch, the waits
    for earlier steps, the late-delivery guard. A result ends the run there; None: the action runs."""
    store = ctx.store
    switch = declaration.switch
    if switch is not None and switch.skip and not getattr(ctx.config.steps, switch.name):
        return StepResult(skipped_by_configuration(ctx, switch.name))
    for wait in declaration.waits_for:
        record = store.get_step(ctx.tenant, ctx.request_id, wait.step)
        if record is not None and record.status in PENDING:
            raise WaitingForEarlierStep(f"{wait.step.value} of {ctx.hrid} is still running")
        if record is None and wait.until_done:
            if wait.unless_unseen and store.get_mapping(ctx.tenant, ctx.request_id) is None:
                continue  # the bridge never saw the earlier change and made nothing: nothing to wait for
            raise WaitingForEarlierStep(f"{wait.step.value} has not finished for {ctx.hrid} yet")
    late = declaration.late
    if late is not None:
        state = ctx.reshare_request().state.code
        if state in late.states and store.get_mapping(ctx.tenant, ctx.request_id) is None:
            ctx.note(late.operation, f"ReShare already shows {state}: {late.consequence}", Outcome.SKIPPED)
            return StepResult(StepStatus.SKIPPED, {"reshare_state": state})
    return None


def run_declared(
    ports: StepPorts,
    declaration: StepDeclaration,
    config: LibraryConfig,
    *,
    tenant: str,
    request_id: str,
    hrid: str,
    trigger: str,
) -> StepResult:
    """Run a declared step: its declared rules (``declared_rules``), then its action, exactly once."""

    def act(ctx: StepContext) -> StepResult:
        ctx.declaration = declaration
        return declared_rules(declaration, ctx) or declaration.action(ctx)

    return run_step(
        ports,
        config,
        tenant=tenant,
        request_id=request_id,
        hrid=hrid,
        step=declaration.name,
        trigger=trigger,
        act=act,
    )


def run_for_change(
    ports: StepPorts, change: ReShareRequestChanged, declaration: StepDeclaration
) -> StepResult:
    """Run a declared step triggered by a ReShare state change, for the library the change belongs to."""
    return run_declared(
        ports,
        declaration,
        ports.configs.get(change.library_id),
        tenant=change.tenant,
        request_id=change.request_id,
        hrid=change.hrid,
        trigger=change.state,
    )


def _fail(ctx: StepContext, reason: str, fix: str, *, error: str) -> None:
    ctx.store.complete_step(
        ctx.tenant, ctx.request_id, ctx.step, attempt=ctx.attempt, status=StepStatus.FAILED, error=error
    )
    raise_attention(ctx, reason, fix)


def raise_attention(ctx: StepContext, reason: str, fix: str) -> AttentionItem:
    """Put the request on the staff attention list and announce it."""
    ports = ctx.ports
    reason, fix = ctx.redacted(reason), ctx.redacted(fix)
    item = AttentionItem(
        library_id=ctx.config.library_id,
        tenant=ctx.tenant,
        request_id=ctx.request_id,
        hrid=ctx.hrid,
        step=ctx.step.value,
        reason=reason,
        fix=fix,
        retry=retry_command(ctx.config.library_id, ctx.hrid, ctx.step),
        raised_at=ports.clock(),
    )
    put_on_list(ports.store, ports.topic, item, ctx.config.name)
    ctx.note("attention raised", reason, Outcome.PROBLEM, fix=fix)
    ports.bus.put([AttentionRaised(**item.model_dump(include=set(AttentionRaised.model_fields)))])
    logger.warning("attention raised", extra={"hrid": ctx.hrid, "step": ctx.step.value, "reason": reason})
    metrics.add_metric(name="AttentionRaised", unit="Count", value=1)
    return item
