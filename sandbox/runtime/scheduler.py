"""Schedules: ``Schedule`` (EventBridge rule) and ``ScheduleV2`` (EventBridge Scheduler) events of functions.

Each schedule fires its function at its rate (``rate(N minute|minutes|hour|hours|day|days)``; ``tick``
overrides every rate; ``cron(...)``/``at(...)`` schedules only fire through :meth:`Scheduler.fire`). The event
is the one the service delivers: the template's ``Input`` (a JSON string) if it gives one, else for
``ScheduleV2`` EventBridge Scheduler's default notification (``source`` ``aws.scheduler``, ``detail`` the
string ``"{}"``, ``resources`` the schedule's ARN) and for ``Schedule`` an EventBridge scheduled event
(``source`` ``aws.events``, ``detail`` ``{}``, ``resources`` the rule's ARN), as ``sam local generate-event
cloudwatch scheduled-event`` shows.

Scheduler (and an EventBridge rule) invokes the function asynchronously, so the schedule's RetryPolicy and
DeadLetterConfig only cover failures to *deliver* the invocation, which do not happen locally (the function is
in-process). A handler error is Lambda's to handle, per the function's ``EventInvokeConfig`` (``Globals`` merged
under the function's own; Lambda's defaults are 2 retries and 6 hours): the same event is retried up to
``MaximumRetryAttempts`` times (Lambda waits about 1 then 2 minutes; the sandbox 1 then 2 seconds in the
background and not at all when fired by hand), unless the event grows older than ``MaximumEventAgeInSeconds``.
Then the invocation record Lambda sends to an ``OnFailure`` destination (``version``, ``timestamp``,
``requestContext`` with ``condition`` ``RetriesExhausted`` or ``EventAgeExceeded``, ``requestPayload`` the event,
``responseContext`` with ``functionError`` ``Unhandled``, ``responsePayload`` the error) becomes the body of a
message to the destination queue. Only ``Type: SQS`` destinations are emulated; without one the event is dropped
(logged), as Lambda drops it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .cfn import Stack
from .functions import EventSource, Functions, HandlerError

log = logging.getLogger("sandbox.runtime")

SCHEDULE_TYPES = ("Schedule", "ScheduleV2")
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# the schedule's RetryPolicy defaults (delivery failures only)
DEFAULT_RETRIES = 185
DEFAULT_MAX_AGE = 86400
# Lambda's asynchronous invocation defaults, and the sandbox's waits before the 1st and 2nd retry (Lambda's are
# about 60 s and 120 s)
ASYNC_DEFAULT_RETRIES = 2
ASYNC_DEFAULT_MAX_AGE = 21600
RETRY_WAITS = (1.0, 2.0)


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a ``rate(...)`` expression; None for cron/at expressions."""
    match = _RATE.match(expression.strip())
    if match is None:
        if expression.strip().startswith(("cron(", "at(")):
            return None
        raise ValueError(f"not a schedule expression: {expression!r}")
    value = int(match.group(1))
    if value <= 0:
        raise ValueError(f"rate must be positive: {expression!r}")
    return float(value * _UNIT_SECONDS[match.group(2).rstrip("s")])


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's ``EventInvokeConfig``: what Lambda does when an asynchronous invocation fails."""

    retry_attempts: int = ASYNC_DEFAULT_RETRIES
    max_event_age: float = ASYNC_DEFAULT_MAX_AGE
    on_failure_type: str | None = None  # SQS | SNS | S3 | Lambda | EventBridge
    on_failure_arn: str | None = None

    @classmethod
    def of_function(cls, function: str, stack: Stack) -> AsyncInvokeConfig:
        globals_ = (stack.template.get("Globals") or {}).get("Function") or {}
        props = (stack.resources.get(function) or {}).get("Properties") or {}
        raw = {**(globals_.get("EventInvokeConfig") or {}), **(props.get("EventInvokeConfig") or {})}
        config = stack.resolve(raw, f"{function}.EventInvokeConfig")
        on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
        return cls(
            retry_attempts=int(config.get("MaximumRetryAttempts", ASYNC_DEFAULT_RETRIES)),
            max_event_age=float(config.get("MaximumEventAgeInSeconds", ASYNC_DEFAULT_MAX_AGE)),
            on_failure_type=on_failure.get("Type"),
            on_failure_arn=on_failure.get("Destination"),
        )


@dataclass
class Schedule:
    function: str
    event: str
    kind: str  # Schedule | ScheduleV2
    expression: str
    period: float | None  # seconds; None = not on a rate
    input: str | None
    # the schedule's RetryPolicy and DeadLetterConfig: for failures to deliver the invocation (none locally)
    retry_attempts: int
    max_event_age: float
    dead_letter_arn: str | None
    enabled: bool
    name: str
    arn: str
    invoke_config: AsyncInvokeConfig = field(default_factory=AsyncInvokeConfig)

    @classmethod
    def from_event(cls, source: EventSource, stack: Stack) -> Schedule:
        props = source.properties
        expression = str(props.get("ScheduleExpression") or props.get("Schedule") or "")
        retry = props.get("RetryPolicy") or {}
        dead_letter = props.get("DeadLetterConfig") or {}
        state = str(props.get("State", "ENABLED")).upper()
        enabled = bool(props.get("Enabled", True)) and state == "ENABLED"
        name = str(props.get("Name") or f"{stack.stack_name}-{source.function}{source.name}")[:64]
        if source.type == "ScheduleV2":
            group = props.get("GroupName", "default")
            arn = f"arn:{stack.partition}:scheduler:{stack.region}:{stack.account_id}:schedule/{group}/{name}"
        else:
            arn = f"arn:{stack.partition}:events:{stack.region}:{stack.account_id}:rule/{name}"
        invoke_config = AsyncInvokeConfig.of_function(source.function, stack)
        if invoke_config.on_failure_type not in (None, "SQS") or (
            invoke_config.on_failure_type == "SQS" and not invoke_config.on_failure_arn
        ):
            log.warning(
                "%s: OnFailure %s destination %s is not emulated: failed events are dropped",
                source.function,
                invoke_config.on_failure_type,
                invoke_config.on_failure_arn or "(generated by SAM)",
            )
        return cls(
            function=source.function,
            event=source.name,
            kind=source.type,
            expression=expression,
            period=rate_seconds(expression),
            input=props.get("Input"),
            retry_attempts=int(retry.get("MaximumRetryAttempts", DEFAULT_RETRIES)),
            max_event_age=float(retry.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE)),
            dead_letter_arn=dead_letter.get("Arn"),
            enabled=enabled,
            name=name,
            arn=arn,
            invoke_config=invoke_config,
        )

    def event_payload(self, account_id: str, region: str) -> Any:
        if self.input is not None:
            return json.loads(self.input) if isinstance(self.input, str) else self.input
        scheduler = self.kind == "ScheduleV2"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler" if scheduler else "aws.events",
            "account": account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [self.arn],
            "detail": "{}" if scheduler else {},
        }


@dataclass
class ScheduleRun:
    function: str
    ok: bool
    attempts: int
    result: Any = None
    error: HandlerError | None = None
    dead_lettered: bool = False  # the invocation record was sent to the OnFailure destination queue
    record: dict[str, Any] | None = None  # the invocation record of a failed run


class Scheduler:
    def __init__(
        self,
        schedules: list[Schedule],
        functions: Functions,
        stack: Stack,
        sqs: Any,
        queue_urls: dict[str, str],  # queue ARN -> URL (OnFailure destinations)
        tick: float | None = None,
    ) -> None:
        self.schedules = schedules
        self.functions = functions
        self.stack = stack
        self.sqs = sqs
        self.queue_urls = queue_urls
        self.tick = tick
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runs: list[ScheduleRun] = []

    def for_function(self, function: str, event: str | None = None) -> Schedule:
        for schedule in self.schedules:
            if schedule.function == function and (event is None or schedule.event == event):
                return schedule
        known = ", ".join(f"{s.function}.{s.event}" for s in self.schedules) or "none"
        raise KeyError(f"{function} has no schedule{f' {event}' if event else ''} (schedules: {known})")

    def fire(self, schedule: Schedule, sleep: Callable[[float], bool] | None = None) -> ScheduleRun:
        """Invoke once, asynchronously as Lambda does: its EventInvokeConfig retries, then its OnFailure queue.

        ``sleep(seconds) -> stopped`` paces the retries; without it they follow at once.
        """
        event = schedule.event_payload(self.stack.account_id, self.stack.region)
        config = schedule.invoke_config
        request_id = str(uuid.uuid4())  # one asynchronous invocation, whatever its attempts
        queued = time.monotonic()
        attempts = 0
        condition = "RetriesExhausted"
        error: HandlerError | None = None
        for attempt in range(config.retry_attempts + 1):
            attempts = attempt + 1
            try:
                result = self.functions.invoke(schedule.function, event)
            except HandlerError as exc:
                error = exc
            else:
                run = ScheduleRun(schedule.function, True, attempts, result)
                self._record(run)
                return run
            if attempt == config.retry_attempts:
                break
            wait = RETRY_WAITS[min(attempt, len(RETRY_WAITS) - 1)] if sleep else 0.0
            if time.monotonic() - queued + wait > config.max_event_age:
                condition = "EventAgeExceeded"
                break
            if sleep is not None and sleep(wait):
                log.warning("%s: stopping; %s is not retried", schedule.name, schedule.function)
                run = ScheduleRun(schedule.function, False, attempts, error=error)
                self._record(run)
                return run
        assert error is not None
        spec = self.functions.specs[schedule.function]
        record = invocation_record(spec.arn, request_id, condition, attempts, event, error)
        run = ScheduleRun(schedule.function, False, attempts, error=error, record=record)
        url = self.queue_urls.get(config.on_failure_arn or "") if config.on_failure_type == "SQS" else None
        if url is not None:
            self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
            run.dead_lettered = True
        elif config.on_failure_type == "SQS" and config.on_failure_arn:
            log.error("%s: OnFailure queue %s is unknown", schedule.function, config.on_failure_arn)
        log.error(
            "%s: %s failed %d time(s) (%s); %s",
            schedule.name,
            schedule.function,
            attempts,
            condition,
            f"invocation record sent to {config.on_failure_arn}" if run.dead_lettered else "event dropped",
        )
        self._record(run)
        return run

    def _record(self, run: ScheduleRun) -> None:
        self.runs.append(run)
        del self.runs[:-100]

    # --- background -----------------------------------------------------------------------------------

    def start(self) -> None:
        for schedule in self.schedules:
            period = self.tick or schedule.period
            if not schedule.enabled:
                log.info("%s is disabled: not scheduled", schedule.name)
                continue
            if not period:
                log.warning("%s (%s) is not a rate: fire it by hand", schedule.name, schedule.expression)
                continue
            thread = threading.Thread(
                target=self._run,
                args=(schedule, period),
                name=f"sandbox-schedule-{schedule.function}-{schedule.event}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, schedule: Schedule, period: float) -> None:
        due = time.monotonic() + period
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            try:
                self.fire(schedule, sleep=self._stop.wait)
            except Exception as exc:  # e.g. moto gone while stopping
                if self._stop.is_set():
                    return
                log.error("schedule %s: %s", schedule.name, exc, exc_info=exc)
            due += period
            now = time.monotonic()
            if due < now:  # a run took longer than the period: skip the missed ones
                due = now + period

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []


def invocation_record(
    function_arn: str, request_id: str, condition: str, attempts: int, event: Any, error: HandlerError
) -> dict[str, Any]:
    """What Lambda sends an OnFailure destination for an asynchronous invocation that failed."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {**error.payload(), "requestId": request_id},
    }
