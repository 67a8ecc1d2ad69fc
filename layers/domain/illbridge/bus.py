"""Putting the bridge's events on its EventBridge bus: batched, with failed entries retried."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from illbridge.errors import EventsNotDelivered
from illbridge.models.events import EVENT_SOURCE
from illbridge.observability import logger

MAX_ENTRIES_PER_CALL = 10  # PutEvents takes at most 10 entries


@dataclass(frozen=True, slots=True)
class BusTimings:
    """How long one PutEvents may take: botocore's own timeouts and tries, then the bridge's entry retries.

    ``worst_case_seconds`` is what a call to ``put``/``send`` can cost at most, the figure the template test
    fits into each function's timeout (docs/reliability.md, "Timings").
    """

    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    sdk_attempts: int = 2  # botocore "standard" retry mode: total attempts of one PutEvents call
    entry_attempts: int = 2  # calls, the later ones re-sending only the entries PutEvents reported as failed
    backoff_seconds: float = 0.2

    @property
    def worst_case_seconds(self) -> float:
        per_call = (self.connect_timeout + self.read_timeout) * self.sdk_attempts
        backoff = sum(self.backoff_seconds * 2 ** (n - 1) for n in range(1, self.entry_attempts))
        return per_call * self.entry_attempts + backoff


class EventBus:
    def __init__(
        self,
        bus_name: str,
        *,
        client: Any = None,
        timings: BusTimings | None = None,
        attempts: int | None = None,
        backoff_seconds: float | None = None,
    ) -> None:
        self.bus_name = bus_name
        self._client = client
        self.timings = timings or BusTimings()
        self.attempts = attempts if attempts is not None else self.timings.entry_attempts
        self.backoff_seconds = (
            backoff_seconds if backoff_seconds is not None else self.timings.backoff_seconds
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            t = self.timings
            self._client = boto3.client(
                "events",
                config=Config(
                    connect_timeout=t.connect_timeout,
                    read_timeout=t.read_timeout,
                    retries={"mode": "standard", "total_max_attempts": t.sdk_attempts},
                ),
            )
        return self._client

    def entry(self, event: BaseModel) -> dict[str, Any]:
        return self._entry(getattr(event, "DETAIL_TYPE", type(event).__name__), event.model_dump_json())

    def _entry(self, detail_type: str, detail: str) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type,
            "Detail": detail,
            "EventBusName": self.bus_name,
        }

    def put(self, events: Iterable[BaseModel]) -> int:
        """Put every event, 10 per call; entries that fail are retried with backoff. Returns the count.

        Raises ``EventsNotDelivered`` with the events that are not on the bus (as far as the bridge knows).
        """
        sent = 0
        undelivered: list[BaseModel] = []
        reasons: list[str] = []
        for batch in _batches(events):
            failed, reason = self._put_batch([(e, self.entry(e)) for e in batch])
            sent += len(batch) - len(failed)
            undelivered += failed
            if reason:
                reasons.append(reason)
        if undelivered:
            raise EventsNotDelivered(undelivered, "; ".join(reasons))
        return sent

    def send[T](self, items: Sequence[tuple[T, str, str]]) -> tuple[list[T], list[T], str]:
        """Put pre-serialised events ``(key, detail-type, detail)``, 10 per call, retrying failed entries.

        Never raises for the bus's own failures: returns (keys put, keys not put, why). A key is "not put"
        when PutEvents reported its entry failed after every retry, or the call itself failed (ClientError,
        a connection error, a timeout: then the event may or may not be on the bus, and is sent again later).
        """
        put: list[T] = []
        not_put: list[T] = []
        reasons: list[str] = []
        for batch in _batches(items):
            failed, reason = self._put_batch([(n, self._entry(t, d)) for n, (_, t, d) in enumerate(batch)])
            put += [key for n, (key, _, _) in enumerate(batch) if n not in failed]
            not_put += [batch[n][0] for n in failed]
            if reason:
                reasons.append(reason)
        return put, not_put, "; ".join(reasons)

    def _put_batch[T](self, batch: list[tuple[T, dict[str, Any]]]) -> tuple[list[T], str]:
        """Put one batch; the keys whose entries are not on the bus, and why (empty when all went out)."""
        pending = list(batch)
        reason = ""
        for attempt in range(1, self.attempts + 1):
            try:
                answer = self.client.put_events(Entries=[entry for _, entry in pending])
            except (ClientError, BotoCoreError) as exc:
                # botocore already retried the call (its own tries and timeouts): give up on the batch
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                reason = f"PutEvents failed: {type(exc).__name__}{f' {code}' if code else ''}"
                logger.warning("PutEvents failed", extra={"error": reason, "entries": len(pending)})
                return [key for key, _ in pending], reason
            if not answer.get("FailedEntryCount"):
                return [], ""
            failed = [
                (item, result)
                for item, result in zip(pending, answer["Entries"], strict=True)
                if result.get("ErrorCode")
            ]
            reason = "; ".join(sorted({f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}" for _, r in failed}))
            logger.warning("PutEvents: entries failed", extra={"failed": len(failed), "attempt": attempt})
            pending = [item for item, _ in failed]
            if attempt < self.attempts:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        return [key for key, _ in pending], reason


def _batches[T](items: Iterable[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == MAX_ENTRIES_PER_CALL:
            yield batch
            batch = []
    if batch:
        yield batch
