"""Schedules: ``Schedule`` (EventBridge rule) and ``ScheduleV2`` (EventBridge Scheduler) events of functions.

Each schedule fires its function at its rate (``rate(N minute|minutes|hour|hours|day|days)``; ``tick``
overrides every rate; ``cron(...)``/``at(...)`` schedules only fire through :meth:`Scheduler.fire`). The event
is the one the service delivers: the template's ``Input`` (a JSON string) if it gives one, else for
``ScheduleV2`` EventBridge Scheduler's default notification (``source`` ``aws.scheduler``, ``detail`` the
string ``"{}"``, ``resources`` the schedule's ARN) and for ``Schedule`` an EventBridge scheduled event
(``source`` ``aws.events``, ``detail`` ``{}``, ``resources`` the rule's ARN), as ``sam local generate-event
cloudwatch scheduled-event`` shows.

A failed invocation is retried per the event's RetryPolicy (``MaximumRetryAttempts`` and
``MaximumEventAgeInSeconds``; the services' default is 185 attempts within 24 hours), with exponential backoff
in the background and none when fired by hand; then the event goes to the DeadLetterConfig queue with
Scheduler's dead-letter message attributes (ERROR_CODE, ERROR_MESSAGE, EXECUTION_ID, RETRY_ATTEMPTS,
SCHEDULE_ARN, TARGET_ARN).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .cfn import Stack
from .functions import EventSource, Functions, HandlerError

log = logging.getLogger("sandbox.runtime")

SCHEDULE_TYPES = ("Schedule", "ScheduleV2")
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
DEFAULT_RETRIES = 185
DEFAULT_MAX_AGE = 86400
MAX_BACKOFF = 60.0


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


@dataclass
class Schedule:
    function: str
    event: str
    kind: str  # Schedule | ScheduleV2
    expression: str
    period: float | None  # seconds; None = not on a rate
    input: str | None
    retry_attempts: int
    max_event_age: float
    dead_letter_arn: str | None
    enabled: bool
    name: str
    arn: str

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
    dead_lettered: bool = False


class Scheduler:
    def __init__(
        self,
        schedules: list[Schedule],
        functions: Functions,
        stack: Stack,
        sqs: Any,
        dead_letter_urls: dict[str, str],  # queue ARN -> URL
        tick: float | None = None,
    ) -> None:
        self.schedules = schedules
        self.functions = functions
        self.stack = stack
        self.sqs = sqs
        self.dead_letter_urls = dead_letter_urls
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
        """Invoke once, with the schedule's retries; ``sleep(seconds) -> stopped`` paces retries."""
        event = schedule.event_payload(self.stack.account_id, self.stack.region)
        first = time.monotonic()
        execution_id = str(uuid.uuid4())
        attempts = 0
        error: HandlerError | None = None
        for attempt in range(schedule.retry_attempts + 1):
            attempts = attempt + 1
            try:
                result = self.functions.invoke(schedule.function, event)
            except HandlerError as exc:
                error = exc
            else:
                run = ScheduleRun(schedule.function, True, attempts, result)
                self._record(run)
                return run
            if attempt == schedule.retry_attempts:
                break
            backoff = min(MAX_BACKOFF, 2.0**attempt)
            if time.monotonic() - first + (backoff if sleep else 0) > schedule.max_event_age:
                break
            if sleep is not None and sleep(backoff):
                break  # stopping
        run = ScheduleRun(schedule.function, False, attempts, error=error)
        if schedule.dead_letter_arn:
            url = self.dead_letter_urls.get(schedule.dead_letter_arn)
            if url is None:
                log.error("%s: dead-letter queue %s is unknown", schedule.name, schedule.dead_letter_arn)
            else:
                self.sqs.send_message(
                    QueueUrl=url,
                    MessageBody=json.dumps(event),
                    MessageAttributes=_dead_letter_attributes(
                        schedule, self.functions.specs[schedule.function].arn, execution_id, attempts, error
                    ),
                )
                run.dead_lettered = True
        log.error(
            "%s: %s failed %d time(s)%s",
            schedule.name,
            schedule.function,
            attempts,
            "; event sent to the dead-letter queue" if run.dead_lettered else "",
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


def _dead_letter_attributes(
    schedule: Schedule, target_arn: str, execution_id: str, attempts: int, error: HandlerError | None
) -> dict[str, Any]:
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value[:1000] or "-"}

    message = f"{error.error_type}: {error.error_message}" if error else "unknown"
    return {
        "ERROR_CODE": text("Sandbox.FunctionError"),
        "ERROR_MESSAGE": text(message),
        "EXECUTION_ID": text(execution_id),
        "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(attempts - 1)},
        "SCHEDULE_ARN": text(schedule.arn),
        "TARGET_ARN": text(target_arn),
    }
