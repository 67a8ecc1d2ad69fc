"""A sandbox per test module (module scope), with no background threads: tests run schedules and queues."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.runtime import Sandbox


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(background=False, visibility=1)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def take_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every visible message of a queue, deleted."""
    taken: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return taken
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        taken += messages
