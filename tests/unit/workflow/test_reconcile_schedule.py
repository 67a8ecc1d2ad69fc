"""When reconciliation looks at a mapping again: the library's first interval, doubled per check, capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from illbridge.workflow.common import next_check_time
from sandbox.demo import library_settings, validate


def test_the_next_check_doubles_from_the_first_interval_up_to_the_ceiling() -> None:
    settings, secret = library_settings("east", "http://127.0.0.1:9130", "http://127.0.0.1:9140")
    config = validate(
        {**settings, "reconcile_first_check_minutes": 15, "reconcile_max_interval_hours": 6}, secret
    )
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    waits = [next_check_time(config, count, now) - now for count in range(8)]
    assert waits[:5] == [timedelta(minutes=m) for m in (15, 30, 60, 120, 240)]
    assert waits[5:] == [timedelta(hours=6)] * 3  # 480 min would pass the 6 h ceiling
    # a mapping checked very many times neither overflows nor passes the ceiling
    assert next_check_time(config, 10_000, now) - now == timedelta(hours=6)
