"""Time helpers shared by the simulator: epoch milliseconds, ISO 8601 strings, due dates."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_MS = re.compile(r"^-?\d{1,16}$")


def now_ms() -> int:
    """Wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


def iso_from_ms(ms: int, *, millis: bool = True) -> str:
    """`2026-01-02T03:04:05.678Z` (or without the milliseconds)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def ms_from_text(text: str) -> int:
    """Epoch milliseconds from an integer string, an ISO datetime or an ISO date (midnight UTC).

    Raises ValueError when the text is none of those.
    """
    text = text.strip()
    if _EPOCH_MS.match(text):
        return int(text)
    if _DATE_ONLY.match(text):
        return ms_from_date(date.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_due_date(text: str) -> date:
    """A due date given as `YYYY-MM-DD` (an ISO datetime is accepted and cut to its UTC date)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a due date must be a non-empty string YYYY-MM-DD")
    text = text.strip()
    if _DATE_ONLY.match(text):
        return date.fromisoformat(text)
    return datetime.fromtimestamp(ms_from_text(text) / 1000, UTC).date()


def ms_from_date(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def default_due_date(days: int = 28) -> date:
    return (datetime.now(UTC) + timedelta(days=days)).date()
