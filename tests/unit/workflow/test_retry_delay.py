"""The backoff of a waiting step: 30 s, doubling, never more than SQS's 15 minutes (so a recovered system is
noticed within 15 minutes however long the outage was)."""

from __future__ import annotations

from illbridge.workflow.engine import MAX_DELAY_SECONDS, retry_delay


def test_the_delay_doubles_from_30_seconds_up_to_15_minutes() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 900, 900, 900]
    assert retry_delay(0) == 30
    assert retry_delay(10_000) == MAX_DELAY_SECONDS == 900
