"""A site's Kafka-to-HTTP relay, played by the ReShare simulator (docs/reshare.md#events).

mod-rs (``service/grails-app/services/org/olf/rs/AppListenerService.groovy``) publishes to its tenant's
``<tenant>_mod_rs_PatronRequestEvents`` topic: after a request is inserted ``{event:
"Req_New_Patron_Request_ind" | "Resp_New_Patron_Request_ind", tenant, oid, payload: {id, title}}`` (no
state), and after an update that changed the state ``{event: "STATUS_<STATE>_ind", tenant, oid:
"org.olf.rs.PatronRequest:<id>", payload: {id, title, state, dueDate}}``, unless the request was closed by hand
(``manuallyClosed``: nothing). ``tenant`` is ``Tenants.currentId``: the tenant's schema name,
``<tenant>_mod_rs``. It has no webhooks. A site that wants pushes runs a relay that posts those events to the bridge's
``POST /webhooks/reshare``, signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). This is that relay: per tenant a target URL and secret; each state change is queued
when it happens (under the store's lock, so in order) and delivered by one background thread, outside the
lock (the bridge reads the request back from the simulator while it handles the delivery). A delivery that
fails (connection error or a non-2xx answer) is retried with the same ``webhook-id``, as a Standard Webhooks
sender does; every delivery is logged for tests and staff to look at.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

log = logging.getLogger("sandbox.reshare.relay")

OID_PREFIX = "org.olf.rs.PatronRequest:"


@dataclass
class Target:
    tenant: str
    url: str
    secret: str
    attempts: int = 3

    def summary(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "url": self.url, "attempts": self.attempts}


@dataclass
class Delivery:
    webhook_id: str
    tenant: str
    event: str
    request_id: str
    state: str | None
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    statuses: list[int | str] = field(default_factory=list)
    delivered: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "tenant": self.tenant,
            "event": self.event,
            "request_id": self.request_id,
            "state": self.state,
            "delivered": self.delivered,
            "statuses": list(self.statuses),
            "headers": dict(self.headers),
            "body": self.body,
        }


NEW_REQUEST_EVENTS = {True: "Req_New_Patron_Request_ind", False: "Resp_New_Patron_Request_ind"}


def schema_name(tenant: str) -> str:
    """The tenant as mod-rs's events name it: its database schema, ``<tenant>_mod_rs``."""
    return f"{tenant}_mod_rs"


def reshare_event(
    tenant: str,
    request_id: str,
    title: str | None,
    state: str | None,
    due: str | None,
    is_requester: bool = True,
) -> dict:
    """The event mod-rs puts on its Kafka topic: a new request (``state`` None) or a state change."""
    common = {"tenant": schema_name(tenant), "oid": f"{OID_PREFIX}{request_id}"}
    if state is None:
        return {
            "event": NEW_REQUEST_EVENTS[is_requester],
            **common,
            "payload": {"id": request_id, "title": title},
        }
    return {
        "event": f"STATUS_{state}_ind",
        **common,
        "payload": {"id": request_id, "title": title, "state": state, "dueDate": due},
    }


def signed_headers(secret: str, body: str, webhook_id: str | None = None, at: datetime | None = None) -> dict:
    """Standard Webhooks headers for ``body`` signed with ``secret`` (``whsec_...``)."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


class WebhookRelay:
    """Queue state changes per configured tenant and post them, signed, from one background thread."""

    def __init__(self, retry_pause: float = 0.2) -> None:
        self.retry_pause = retry_pause
        self._lock = threading.Lock()
        self._targets: dict[str, Target] = {}
        self._log: list[Delivery] = []
        self._outbox: queue.Queue[Delivery | None] = queue.Queue()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------------------------------

    def configure(self, tenant: str, url: str, secret: str, attempts: int = 3) -> Target:
        Webhook(secret)  # a malformed secret fails here, not at the first delivery
        target = Target(tenant, url, secret, attempts)
        with self._lock:
            self._targets[tenant] = target
        return target

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._targets)
            self._targets.clear()
            self._log.clear()
            return cleared

    def targets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.summary() for t in self._targets.values()]

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.summary() for d in self._log]

    @property
    def pending(self) -> int:
        with self._lock:
            return self._busy

    # -- the store calls this on every state change (under its lock) -------------------------------------

    def state_changed(
        self,
        tenant: str,
        request_id: str,
        title: str | None,
        state: str | None,
        due: str | None,
        is_requester: bool = True,
    ) -> None:
        with self._lock:
            if tenant not in self._targets:
                return
            event = reshare_event(tenant, request_id, title, state, due, is_requester)
            body = json.dumps(event)
            delivery = Delivery(f"msg_{uuid.uuid4().hex}", tenant, event["event"], request_id, state, body)
            self._log.append(delivery)
            self._busy += 1
        self._outbox.put(delivery)

    def wait_idle(self, timeout: float = 30) -> bool:
        """Block until every queued delivery has been tried to the end; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- the delivery thread ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="reshare-relay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while (delivery := self._outbox.get()) is not None:
            try:
                self._deliver(delivery)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        with self._lock:
            target = self._targets.get(delivery.tenant)
        if target is None:
            return
        for attempt in range(1, target.attempts + 1):
            headers = signed_headers(target.secret, delivery.body, delivery.webhook_id)
            delivery.headers = headers
            try:
                answer = requests.post(target.url, data=delivery.body, headers=headers, timeout=30)
                status: int | str = answer.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with self._lock:
                delivery.statuses.append(status)
            if isinstance(status, int) and 200 <= status < 300:
                delivery.delivered = True
                return
            log.warning(
                "relay: %s to %s answered %s (try %d)", delivery.webhook_id, target.url, status, attempt
            )
            if attempt < target.attempts:
                time.sleep(self.retry_pause * attempt)
