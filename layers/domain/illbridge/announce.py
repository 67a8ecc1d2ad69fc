"""Putting an item on the attention list, and telling staff once: a notice on the attention topic (SNS).

Every new attention item is published to the topic (``ATTENTION_TOPIC_ARN``) once, with the subject
``<HRID>: <reason>`` (what staff see in their mail list) and a body giving the library, the step, the fix
and the retry command. A repeat of the same failure (the item for that request and step is still open, with
the same reason, and its notice went out) replaces the item on the list but sends nothing: a step retried
without its cause fixed does not mail staff again. A different reason, or the same one after the item was
resolved, is new and is published.

The item carries ``notified_at`` once its notice went out. When publishing fails (SNS unreachable after the
client's retries), the item stays on the list without it, the failure is logged with metric
``NoticesNotSent``, and the next raise of that item publishes it.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from illbridge.models.mapping import AttentionItem
from illbridge.observability import logger, metrics

SUBJECT_LIMIT = 100  # SNS: at most 100 printable ASCII characters, no line breaks
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def subject(item: AttentionItem) -> str:
    """``<HRID>: <reason>``, fitted to what SNS takes as a subject."""
    text = _NOT_PRINTABLE.sub(" ", f"{item.hrid}: {item.reason}")
    text = re.sub(r" {2,}", " ", text).strip()
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3].rstrip() + "..."


def body(item: AttentionItem, library_name: str | None = None) -> str:
    library = f"{library_name} ({item.library_id})" if library_name else item.library_id
    return "\n".join(
        [
            f"Request {item.hrid} at {library} needs attention (step {item.step}).",
            "",
            f"What is wrong: {item.reason}",
            f"What to do: {item.fix}",
            f"Then retry: {item.retry}",
            "",
            f"Raised at {item.raised_at.isoformat()}. The request's timeline: illbridge history {item.hrid} "
            f"--library {item.library_id}, or the staff page (GET /ops/).",
        ]
    )


class AttentionTopic:
    """The SNS topic staff subscribe to."""

    def __init__(self, topic_arn: str, client: Any = None, botocore_config: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self._config = botocore_config

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sns", config=self._config)
        return self._client

    def publish(self, item: AttentionItem, library_name: str | None = None) -> str:
        answer = self.client.publish(
            TopicArn=self.topic_arn,
            Subject=subject(item),
            Message=body(item, library_name),
            MessageAttributes={
                "library_id": {"DataType": "String", "StringValue": item.library_id},
                "hrid": {"DataType": "String", "StringValue": item.hrid},
                "step": {"DataType": "String", "StringValue": item.step},
            },
        )
        return str(answer.get("MessageId", ""))


def is_repeat(previous: AttentionItem | None, item: AttentionItem) -> bool:
    """The same failure again, already announced: the item is still open with the same reason."""
    return (
        previous is not None
        and not previous.resolved
        and previous.notified_at is not None
        and previous.reason == item.reason
    )


class Publisher(Protocol):
    """Where staff's notices go (``AttentionTopic``, or a fake)."""

    def publish(self, item: AttentionItem, library_name: str | None = None) -> str: ...


def put_on_list(store: Any, topic: Publisher | None, item: AttentionItem, library_name: str | None) -> bool:
    """Put ``item`` on the list; publish it unless it repeats an open, announced item. Whether it was published."""
    previous = store.get_attention(item.tenant, item.request_id, item.step)
    if is_repeat(previous, item):
        assert previous is not None
        store.raise_attention(item.model_copy(update={"notified_at": previous.notified_at}))
        metrics.add_metric(name="NoticesRepeated", unit="Count", value=1)
        return False
    store.raise_attention(item)
    if topic is None:
        logger.warning("no attention topic: notice not sent", extra={"hrid": item.hrid, "step": item.step})
        return False
    try:
        message_id = topic.publish(item, library_name)
    except (BotoCoreError, ClientError) as exc:
        logger.error(
            "attention notice not sent (the next raise of this item sends it)",
            extra={"hrid": item.hrid, "step": item.step, "error": str(exc)},
        )
        metrics.add_metric(name="NoticesNotSent", unit="Count", value=1)
        return False
    store.raise_attention(item.model_copy(update={"notified_at": item.raised_at}))
    logger.info(
        "attention notice sent", extra={"hrid": item.hrid, "step": item.step, "message_id": message_id}
    )
    metrics.add_metric(name="NoticesSent", unit="Count", value=1)
    return True
