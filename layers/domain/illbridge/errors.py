"""Typed errors of the bridge: every error the bridge raises on purpose is declared here, and nowhere else.

Every error says whether retrying can help (``transient``) so the queue-driven steps know whether to let the
message come back (backoff through the visibility timeout) or to hand over to staff at once.

Three shared bases cut across the systems (WMS, ReShare, the store and the bus alike); the engine and the
intake classify with ``isinstance`` on them, never by a type's name:

- ``Refused``: the other side answered and said no (an NCIP Problem, a rejected action, an unknown record).
  Nothing was done; sending the same again gets the same answer.
- ``OutcomeUnknown``: a change was sent and no answer came back: it may have been done. Verify before
  re-sending.
- ``Unavailable``: the other side could not be reached, was overloaded or failed before acting: nothing was
  done, try again later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(BridgeError):
    """The other system answered and said no: nothing was done, and the same request gets the same answer."""


class OutcomeUnknown(BridgeError):
    """A change was sent but no answer came back: it may have been done; verify before re-sending."""

    transient = True


class Unavailable(BridgeError):
    """The other system could not be reached or failed before acting: nothing was done, safe to retry."""

    transient = True


# --- configuration -------------------------------------------------------------------------------------


class ConfigurationError(BridgeError):
    """A library's configuration is missing or invalid: staff must fix it, retrying will not help."""

    def __init__(self, message: str, *, library_id: str | None = None, field: str | None = None) -> None:
        prefix = f"library {library_id!r}: " if library_id else ""
        where = f"{field}: " if field else ""
        super().__init__(f"{prefix}{where}{message}")
        self.library_id = library_id
        self.field = field


class UnknownLibrary(ConfigurationError):
    """No configuration exists for this library id."""


class InvalidSettings(ConfigurationError):
    """The function's environment settings are invalid (a deployment error)."""


# --- WMS ------------------------------------------------------------------------------------------------


class WmsError(BridgeError):
    """Base of errors talking to WMS."""


class WmsProblem(WmsError, Refused):
    """WMS answered, and said no: an NCIP Problem (or a SCIM error) with its type and detail."""

    def __init__(
        self,
        problem_type: str,
        detail: str | None = None,
        *,
        element: str | None = None,
        value: str | None = None,
        operation: str | None = None,
    ) -> None:
        text = problem_type + (f": {detail}" if detail else "")
        if operation:
            text = f"{operation}: {text}"
        super().__init__(text)
        self.problem_type = problem_type
        self.detail = detail
        self.element = element
        self.value = value
        self.operation = operation


class WmsAuthError(WmsError):
    """The WSKey was refused (bad key or secret, or missing scope)."""


class WmsUnavailable(WmsError, Unavailable):
    """WMS could not be reached or answered 5xx before acting: safe to retry."""


class WmsOutcomeUnknown(WmsError, OutcomeUnknown):
    """The request was sent but no answer came back (timeout, connection lost): verify before re-sending."""


class WmsProtocolError(WmsError):
    """WMS answered something the bridge cannot read (not NCIP, not the expected response)."""

    transient = True


class PatronNotFound(WmsError, Refused):
    """WMS does not know this patron barcode."""


# --- ReShare --------------------------------------------------------------------------------------------


class ReShareError(BridgeError):
    """Base of errors talking to ReShare."""


class ReShareActionRejected(ReShareError, Refused):
    """ReShare refused a performAction (not valid in the request's current state, or bad parameters)."""

    def __init__(self, action: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"ReShare rejected {action}: {message}")
        self.action = action
        self.reason = message
        self.status = status


class ReShareBusy(ReShareError):
    """ReShare refused an action only because the request waits for its partner's answer (networkStatus
    Waiting or Retry): nothing was done, and the same action will be accepted once the answer is in."""

    transient = True


class ReShareNotFound(ReShareError, Refused):
    """ReShare does not know this request."""


class ReShareAuthError(ReShareError):
    """ReShare refused the service user's credentials."""


class ReShareUnavailable(ReShareError, Unavailable):
    """ReShare could not be reached or answered 5xx: safe to retry."""


class ReShareOutcomeUnknown(ReShareError, OutcomeUnknown):
    """An action was sent but no answer came back: re-read the request before sending again."""


class ReShareProtocolError(ReShareError):
    """ReShare answered something the bridge cannot read."""

    transient = True


# --- store ----------------------------------------------------------------------------------------------


class StoreError(BridgeError):
    """Base of errors of the bridge's DynamoDB store."""


class StoreUnavailable(StoreError, Unavailable):
    """DynamoDB throttled, failed (5xx) or could not be reached: safe to retry."""


class StepAlreadyClaimed(StoreError):
    """Another worker holds a live lease on this step."""

    transient = True


class StepAlreadyDone(StoreError):
    """This step already finished (succeeded or was skipped): nothing to do."""


class StaleMapping(StoreError):
    """The mapping changed since it was read: re-read and try again."""

    transient = True


# --- the bus --------------------------------------------------------------------------------------------


class EventsNotDelivered(Unavailable):
    """Some events could not be put on the bus after retries (failed entries, or the call itself failed)."""

    def __init__(self, failed: Sequence[Any], reason: str) -> None:
        super().__init__(f"{len(failed)} event(s) not put on the bus: {reason}")
        self.failed = list(failed)


class WaitingForEarlierStep(StaleMapping):
    """An earlier step of this request has not finished: try again later (events arrived out of order)."""


# --- input ----------------------------------------------------------------------------------------------


class BadInput(BridgeError):
    """Input from outside (a webhook, an event) is malformed: answer 400 and change nothing."""


class Unauthorized(BadInput):
    """A webhook delivery is not signed by a configured secret (or is stale)."""


class TooLarge(BadInput):
    """A webhook delivery's body is over the size limit."""


class UnsafeXml(BadInput):
    """XML with a DOCTYPE, entities or external references: refused without expansion."""


# --- workflow -------------------------------------------------------------------------------------------


class NeedsStaff(BridgeError):
    """The step cannot go on without a human: what is wrong and what to fix (it becomes an attention item)."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class HostLmsIntegrationOn(BridgeError):
    """The ReShare tenant calls WMS itself (or cannot be asked): the bridge must not act as well.

    Transient: once staff set the tenant to ``manual`` the next poll, or the webhook sender's next try (503),
    goes through."""

    transient = True


class PollFailed(BridgeError):
    """A poll run could not poll some library for a reason other than an outage: the run fails (and is retried,
    then dead-lettered with an alarm)."""

    transient = True


class ReconcileFailed(BridgeError):
    """A reconciliation run could not ask WMS about some request (WMS refused to answer): the run fails."""

    transient = True


class StepDeferred(BridgeError):
    """The step could not finish for now (an outage, or an earlier step still running): run it again after
    ``delay_seconds``. The queue handler sends the record back to its queue with that delay, so waiting uses
    no SQS receives (docs/operations.md#outages-are-waited-out)."""

    transient = True

    def __init__(self, message: str, delay_seconds: int) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds
