"""What the bridge has seen of ReShare: the last-seen state of each request (``SEEN``, the one conditional
write that decides a transition) and the poll cursors.

A ReShare transition's event is put on the bus BEFORE its state is recorded here (``illbridge.intake.seen``):
ReShare itself is the durable record of a request's state, so a transition that is not recorded is listed
again by the next poll, and no outbox entry is needed. Recording is one conditional ``UpdateItem``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from illbridge.store import keys
from illbridge.store.dynamo import DynamoTable, _ConditionFailed, _Expression, _name
from illbridge.timeutil import epoch_ms, to_utc


@dataclass(frozen=True, slots=True)
class StateChange:
    """What ``record_state_change`` decided: ``changed`` is True for exactly one observer of a transition."""

    changed: bool
    previous_state: str | None


@dataclass(frozen=True, slots=True)
class SeenState:
    """The stored last-seen state of a request: the state, the ``lastUpdated`` it was seen at, and every
    state seen at exactly that ``lastUpdated`` (mod-rs renders it to the second: several changes can share
    one)."""

    state: str
    last_updated: datetime
    states_at: frozenset[str]

    def covers(self, state: str, last_updated: datetime) -> bool:
        """Whether an observation adds nothing: older than the stored one, or of a state already seen then."""
        observed = epoch_ms(last_updated)
        stored = epoch_ms(self.last_updated)
        return observed < stored or (observed == stored and state in self.states_at)


# --- encoding ------------------------------------------------------------------------------------------


class SeenRecords(DynamoTable):
    # -- last seen ReShare state

    def record_state_change(
        self,
        tenant: str,
        request_id: str,
        state: str,
        last_updated: datetime,
        *,
        stored: SeenState | None = None,
    ) -> StateChange:
        """Remember ``state`` as seen at ``last_updated``; ``changed`` only for a real, new transition.

        One conditional write decides, so of two observers that see the same transition exactly one gets
        ``changed=True``. A transition is a state other than the stored one, seen either later than the stored
        observation or at the very same ``lastUpdated`` but not yet seen then: mod-rs renders ``lastUpdated``
        to the second, so two changes inside one second share it, and the item keeps ``states_at``, every
        state seen at its ``last_updated``, so that neither is lost and a stale read of the first never counts
        again. (A request that leaves a state and comes back to it inside one second shows nothing new.)

        The caller (``illbridge.intake.seen.Transitions``) has already put the transition's event on the bus:
        a transition is recorded only once the bus has it, so whatever fails before this write, the next poll
        lists the request again and puts it again. One ``UpdateItem`` (1 write unit), no outbox entry.

        ``stored``: the last-seen state the caller read just before (``seen_state``), if it did. The three
        conditional writes below are then tried in the order that read makes likely, so the happy path makes
        no write DynamoDB refuses; each keeps its condition, so a read that is stale by now only costs a
        refused write, never a wrong decision.
        """
        key = self._key(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        observed = to_utc(last_updated)
        assert observed is not None
        millis = epoch_ms(observed)
        now = self._now()

        def later() -> StateChange:
            # 1. later than what is stored (or nothing stored): a transition if the state differs
            expr = _Expression()
            state_n, millis_n = expr.n("state"), expr.n("last_updated_ms")
            newer = f"{state_n} <> {expr.v(state)} AND {millis_n} < {expr.v(millis)}"
            condition = f"attribute_not_exists(pk) OR ({newer})"
            expr.set("kind", "seen").set("state", state).set("last_updated", observed)
            expr.set("last_updated_ms", millis).set("changed_at", now).set("states_at", {state})
            return self._transition(key, expr, condition)

        def same_second() -> StateChange:
            # 2. in the same second as what is stored, a state not yet seen in it: a transition too
            expr = _Expression()
            states_n = expr.n("states_at")
            condition = (
                f"{expr.n('state')} <> {expr.v(state)} AND {expr.n('last_updated_ms')} = {expr.v(millis)} "
                f"AND NOT contains({states_n}, {expr.v(state)})"
            )
            expr.set("state", state).set("changed_at", now)
            expr.set_raw(
                f"{states_n} = list_append(if_not_exists({states_n}, {expr.v([])}), {expr.v([state])})"
            )
            return self._transition(key, expr, condition)

        def watermark() -> StateChange:
            # 3. not a transition: if it is the same state seen later, move the watermark silently
            expr = _Expression()
            millis_n = expr.n("last_updated_ms")
            condition = f"{expr.n('state')} = {expr.v(state)} AND {millis_n} < {expr.v(millis)}"
            expr.set("last_updated", observed).set("last_updated_ms", millis).set("states_at", [state])
            self._update_if(key, expr, condition)
            return StateChange(False, state)

        attempts = [later, same_second, watermark]
        if stored is not None and stored.state == state:
            attempts = [watermark, later, same_second]
        elif stored is not None and epoch_ms(stored.last_updated) == millis:
            attempts = [same_second, later, watermark]
        failed: _ConditionFailed | None = None
        for attempt in attempts:
            try:
                return attempt()
            except _ConditionFailed as refused:
                failed = refused if attempt is watermark else failed or refused
        stored_state = failed.item.get("state") if failed is not None and failed.item else None
        return StateChange(False, str(stored_state) if stored_state is not None else None)

    def _transition(self, key: dict[str, str], expr: _Expression, condition: str) -> StateChange:
        """Write a transition of the SEEN item if ``condition`` holds (else ``_ConditionFailed``)."""
        previous = self._update_if(key, expr, condition, ReturnValues="UPDATED_OLD").get("state")
        return StateChange(True, str(previous) if previous is not None else None)

    def seen_state(self, tenant: str, request_id: str) -> SeenState | None:
        """The stored last-seen state, with every state seen at its ``lastUpdated``."""
        row = self._get(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        if not row:
            return None
        at = to_utc(row["last_updated"])
        assert at is not None
        state = str(row["state"])
        states = frozenset(str(value) for value in row.get("states_at") or [state])
        return SeenState(state, at, states | {state})

    def last_seen(self, tenant: str, request_id: str) -> tuple[str, datetime] | None:
        row = self._get(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        if not row:
            return None
        at = to_utc(row["last_updated"])
        assert at is not None
        return str(row["state"]), at

    # -- poll cursors

    def get_cursor(self, tenant: str, side: str) -> datetime | None:
        row = self._get(keys.cursor_pk(tenant, _name(side)), keys.CURSOR_SK)
        return to_utc(row["cursor_at"]) if row else None

    def advance_cursor(self, tenant: str, side: str, value: datetime) -> bool:
        """Move the cursor to ``value`` if that is later than the stored one; whether it moved."""
        expr = _Expression()
        cursor = expr.n("cursor_at")
        condition = f"attribute_not_exists(pk) OR {cursor} < {expr.v(value)}"
        expr.set("kind", "cursor").set("cursor_at", value).set("updated_at", self._now())
        return self._updated_if(
            self._key(keys.cursor_pk(tenant, _name(side)), keys.CURSOR_SK), expr, condition
        )
