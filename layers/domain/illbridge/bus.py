"""Putting the bridge's events on its EventBridge bus: batched, with failed entries retried."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from illbridge.errors import BridgeError
from illbridge.models.events import EVENT_SOURCE
from illbridge.observability import logger

MAX_ENTRIES_PER_CALL = 10  # PutEvents takes at most 10 entries


class EventsNotDelivered(BridgeError):
    """Some events could not be put on the bus after retries."""

    transient = True

    def __init__(self, failed: Sequence[BaseModel], reason: str) -> None:
        super().__init__(f"{len(failed)} event(s) not put on the bus: {reason}")
        self.failed = list(failed)


class EventBus:
    def __init__(
        self,
        bus_name: str,
        *,
        client: Any = None,
        attempts: int = 4,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.bus_name = bus_name
        self._client = client
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("events")
        return self._client

    def entry(self, event: BaseModel) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": getattr(event, "DETAIL_TYPE", type(event).__name__),
            "Detail": event.model_dump_json(),
            "EventBusName": self.bus_name,
        }

    def put(self, events: Iterable[BaseModel]) -> int:
        """Put every event, 10 per call; entries that fail are retried with backoff. Returns the count."""
        batch: list[BaseModel] = []
        count = 0
        for event in events:
            batch.append(event)
            if len(batch) == MAX_ENTRIES_PER_CALL:
                count += self._put_batch(batch)
                batch = []
        if batch:
            count += self._put_batch(batch)
        return count

    def _put_batch(self, batch: list[BaseModel]) -> int:
        pending = list(batch)
        reason = ""
        for attempt in range(1, self.attempts + 1):
            answer = self.client.put_events(Entries=[self.entry(e) for e in pending])
            if not answer.get("FailedEntryCount"):
                return len(batch)
            failed = [
                (event, result)
                for event, result in zip(pending, answer["Entries"], strict=True)
                if result.get("ErrorCode")
            ]
            reason = "; ".join(sorted({f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}" for _, r in failed}))
            logger.warning("PutEvents: entries failed", extra={"failed": len(failed), "attempt": attempt})
            pending = [event for event, _ in failed]
            if attempt < self.attempts:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise EventsNotDelivered(pending, reason)
