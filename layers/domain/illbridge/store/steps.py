"""Step records (``STEP#<step>``: claim, outcome, staff release) and the request's history lines."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from illbridge.errors import StepAlreadyClaimed, StepAlreadyDone, StoreError
from illbridge.models.mapping import HistoryEntry, StepName, StepRecord, StepStatus
from illbridge.store import keys
from illbridge.store.dynamo import (
    DynamoTable,
    _ConditionFailed,
    _decode,
    _dynamodb,
    _Expression,
    _fields,
    _name,
)

_CLAIM_ROUNDS = 5  # a claim that loses this many races in a row reports the step as claimed


def is_reclaim(record: StepRecord, now: datetime, *, force: bool, where: str) -> bool:
    """The claim rule for a step that has a record: done (SUCCEEDED, SKIPPED, or FAILED unless ``force``) ->
    ``StepAlreadyDone``; IN_PROGRESS under a live lease -> ``StepAlreadyClaimed``; True: IN_PROGRESS whose
    lease ran out (a re-claim: the engine verifies before re-sending); False: claimable (RETRYABLE, or FAILED
    with ``force``). The step-rule unit tests' fake store claims by the same rule."""
    if record.status.is_final or (record.status == StepStatus.FAILED and not force):
        raise StepAlreadyDone(f"{where} is {record.status.value} (attempt {record.attempt})")
    if record.status != StepStatus.IN_PROGRESS:
        return False
    if record.lease_until is not None and record.lease_until >= now:
        raise StepAlreadyClaimed(
            f"{where} is in progress (attempt {record.attempt}, lease until {keys.timestamp(record.lease_until)})"
        )
    return True


class StepRecords(DynamoTable):
    def claim_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        trigger: str,
        lease_seconds: float,
        force: bool = False,
    ) -> StepRecord:
        """Take the step for one attempt, or raise ``StepAlreadyClaimed`` / ``StepAlreadyDone``.

        absent -> attempt 1; RETRYABLE (or FAILED with ``force``) -> attempt + 1; IN_PROGRESS whose lease
        ran out -> attempt + 1 with ``result["reclaimed_after_lease"]`` (verify before re-sending).
        """
        pk, sk = keys.request_pk(tenant, request_id), keys.step_sk(_name(step))
        claimable = [StepStatus.RETRYABLE, *([StepStatus.FAILED] if force else [])]
        for _ in range(_CLAIM_ROUNDS):
            now = self._now()
            expr = _Expression()
            status = expr.n("status")
            condition = "attribute_not_exists(pk) OR " + " OR ".join(
                f"{status} = {expr.v(s)}" for s in claimable
            )
            try:
                return self._claim(pk, sk, step, expr, condition, trigger, now, lease_seconds, reclaim=False)
            except _ConditionFailed as failed:
                current = failed.item if failed.item is not None else self._get(pk, sk)
            if current is None:
                continue  # deleted since: try again
            record = _step_from_row(current)
            if not is_reclaim(record, now, force=force, where=f"{_name(step)} of {tenant}/{request_id}"):
                continue  # became claimable since the write was refused
            expr = _Expression()
            lease = expr.n("lease_until")
            condition = (
                f"{expr.n('status')} = {expr.v(StepStatus.IN_PROGRESS)}"
                f" AND {expr.n('attempt')} = {expr.v(record.attempt)}"
                f" AND (attribute_not_exists({lease}) OR {lease} < {expr.v(keys.timestamp(now))})"
            )
            try:
                return self._claim(pk, sk, step, expr, condition, trigger, now, lease_seconds, reclaim=True)
            except _ConditionFailed:
                continue  # another worker reclaimed it first: look again
        raise StepAlreadyClaimed(f"{_name(step)} of {tenant}/{request_id} is contended; try again later")

    def _claim(
        self,
        pk: str,
        sk: str,
        step: StepName,
        expr: _Expression,
        condition: str,
        trigger: str,
        now: datetime,
        lease_seconds: float,
        *,
        reclaim: bool,
    ) -> StepRecord:
        attempt = expr.n("attempt")
        expr.set("kind", "step").set("step", _name(step)).set("status", StepStatus.IN_PROGRESS)
        expr.set_raw(f"{attempt} = if_not_exists({attempt}, {expr.v(0)}) + {expr.v(1)}")
        expr.set("lease_until", now + timedelta(seconds=lease_seconds))
        expr.set("trigger", trigger).set("claimed_at", now).set("updated_at", now)
        expr.set("result", {"reclaimed_after_lease": True} if reclaim else {})
        return _step_from_row(self._update_if(self._key(pk, sk), expr, condition, ReturnValues="ALL_NEW"))

    def complete_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        attempt: int,
        status: StepStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> StepRecord:
        """Record how ``attempt`` ended; ``StepAlreadyClaimed`` if that attempt no longer holds the step."""
        if status == StepStatus.IN_PROGRESS:
            raise StoreError("complete_step needs the outcome of the attempt, not IN_PROGRESS")
        pk, sk = keys.request_pk(tenant, request_id), keys.step_sk(_name(step))
        expr = _Expression()
        condition = f"{expr.n('status')} = {expr.v(StepStatus.IN_PROGRESS)} AND {expr.n('attempt')} = {expr.v(attempt)}"
        expr.set("status", status).set("updated_at", self._now())
        if result is not None:
            expr.set("result", result)
        expr.remove("lease_until")
        if error:
            expr.set("last_error", error)
        else:
            expr.remove("last_error")
        if status == StepStatus.RETRYABLE:  # waiting: keep when it began, count the waits (for the backoff)
            since, waits = expr.n("waiting_since"), expr.n("waits")
            expr.set_raw(f"{since} = if_not_exists({since}, {expr.v(self._now())})")
            expr.set_raw(f"{waits} = if_not_exists({waits}, {expr.v(0)}) + {expr.v(1)}")
        else:
            expr.remove("waiting_since").remove("waits")
        try:
            answer = self._update_if(self._key(pk, sk), expr, condition, ReturnValues="ALL_NEW")
        except _ConditionFailed as failed:
            current = failed.item if failed.item is not None else self._get(pk, sk)
            now_holds = (
                f"{current.get('status')} attempt {_decode(current.get('attempt'))}" if current else "absent"
            )
            raise StepAlreadyClaimed(
                f"attempt {attempt} of {_name(step)} for {tenant}/{request_id} no longer holds the step "
                f"(now {now_holds})"
            ) from failed
        return _step_from_row(answer)

    def release_step(self, tenant: str, request_id: str, step: StepName) -> bool:
        """Staff retry: turn a FAILED step into RETRYABLE, so the next delivery of its trigger claims it
        (attempt + 1). Whether it was released: a step in any other status is left alone."""
        expr = _Expression()
        condition = f"{expr.n('status')} = {expr.v(StepStatus.FAILED)}"
        now = self._now()
        expr.set("status", StepStatus.RETRYABLE).set("released_at", now).set("updated_at", now)
        return self._updated_if(
            self._key(keys.request_pk(tenant, request_id), keys.step_sk(_name(step))), expr, condition
        )

    def get_step(self, tenant: str, request_id: str, step: StepName) -> StepRecord | None:
        row = self._get(keys.request_pk(tenant, request_id), keys.step_sk(_name(step)))
        return _step_from_row(row) if row else None

    def steps(self, tenant: str, request_id: str) -> list[StepRecord]:
        rows = self._partition(keys.request_pk(tenant, request_id), keys.STEP_PREFIX)
        return [_step_from_row(row) for row in rows]

    # -- history

    def add_history(self, tenant: str, request_id: str, entry: HistoryEntry) -> None:
        """Append one line (sorted by ``entry.at``, then by order of writing); expires after the TTL."""
        pk = keys.request_pk(tenant, request_id)
        row = {
            "pk": pk,
            "kind": "history",
            **_fields(entry),
            keys.TTL_ATTRIBUTE: int((self._now() + self._history_ttl).timestamp()),
        }
        for _ in range(10):
            row["sk"] = keys.log_sk(entry.at, next(self._seq) % 1_000_000)
            try:
                with _dynamodb("PutItem"):
                    self._table.put_item(Item=row, ConditionExpression="attribute_not_exists(pk)")
                return
            except _ConditionFailed:
                continue  # same time and sequence number from another writer: take the next number
        raise StoreError(f"could not add a history line to {tenant}/{request_id}")

    def history(self, tenant: str, request_id: str) -> list[HistoryEntry]:
        rows = self._partition(keys.request_pk(tenant, request_id), keys.LOG_PREFIX)
        return [HistoryEntry.model_validate(_decode(row)) for row in rows]


def _step_from_row(row: dict[str, Any]) -> StepRecord:
    return StepRecord.model_validate(_decode(row))
