"""Time helpers: every time the bridge stores or sends is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: Any) -> datetime | None:
    """Read a time as ReShare, WMS or our store render it: epoch ms, ISO date-time, ISO date, or datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a time: {value!r}")


def iso(value: datetime) -> str:
    """ISO 8601 UTC with a Z, second precision (what NCIP's xs:dateTime and our store use)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)
