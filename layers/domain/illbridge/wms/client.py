"""The bridge's WMS client: NCIP (AcceptItem, CheckOutItem, CheckInItem, LookupItem, LookupUser) and the SCIM patron
search, over one pooled ``requests.Session`` with explicit (connect, read) timeouts and no automatic retries.

Every call returns a typed result or raises a typed error (``illbridge.errors``):

==========================================================  =====================================
what happened                                               error
==========================================================  =====================================
NCIP Problem (in the response or NCIPMessage/Problem)       ``WmsProblem`` (type, detail, element,
                                                            value, operation)
SCIM: no such patron                                        ``PatronNotFound``
connection refused, DNS failure, connect timeout, TLS       ``WmsUnavailable``
read timeout / connection dropped after sending             ``WmsOutcomeUnknown`` (AcceptItem,
                                                            CheckOutItem, CheckInItem);
                                                            ``WmsUnavailable`` (LookupItem, SCIM,
                                                            token: read-only, nothing to verify)
HTTP 5xx, 408, 429                                          ``WmsUnavailable`` (504 on a changing
                                                            call: ``WmsOutcomeUnknown``)
HTTP 401                                                    token dropped, a new one fetched, the
                                                            call sent once more; 401 again:
                                                            ``WmsAuthError``
HTTP 403; token endpoint refusing the WSKey                 ``WmsAuthError``
a 4xx whose body is an NCIP Problem                         ``WmsProblem``
other 4xx, 3xx, unreadable body, wrong response element     ``WmsProtocolError``
DTD / entity declaration in the answer                      ``UnsafeXml``
a URL requests cannot use (not http/https)                  ``ConfigurationError``
==========================================================  =====================================

Re-sending after a 401 is safe: WMS refused the call before acting on it. A ``WmsProtocolError`` on a
changing call (a 2xx whose body cannot be read) means WMS probably acted: verify before sending again.

Every call (success or failure) is logged once as an ``Exchange`` (operation, URL, start, duration, HTTP
status, outcome, request and response summaries without secrets, patron barcodes masked). A request's
history is the workflow's: each step writes its own line around the call (``StepContext.call``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, TypeVar, cast

import requests

from illbridge.config.library import WmsSettings
from illbridge.errors import (
    BridgeError,
    ConfigurationError,
    PatronNotFound,
    UnsafeXml,
    WmsAuthError,
    WmsOutcomeUnknown,
    WmsProblem,
    WmsProtocolError,
    WmsUnavailable,
)
from illbridge.observability import logger, mask
from illbridge.timeutil import iso, to_utc, utcnow
from illbridge.wms import ncip, scim
from illbridge.wms.auth import ALL_SCOPES, DEFAULT_TOKENS, NCIP_SCOPE, SCIM_SCOPE, TokenCache
from illbridge.wms.messages import AcceptItem, CancelRequestItem, CheckInItem, CheckOutItem, WmsMessage
from illbridge.wms.ncip import AcceptItemResult, CheckInResult, CheckOutResult, ItemStatus, UserItems
from illbridge.wms.scim import Patron
from illbridge.wms.transport import HttpAnswer, new_session, post

T = TypeVar("T")
NCIP_CONTENT_TYPE = "application/xml; charset=utf-8"
MAX_CONNECT_TIMEOUT_SECONDS = 10.0

_OUTCOMES: list[tuple[type[BaseException], str]] = [
    (WmsProblem, "problem"),
    (PatronNotFound, "not_found"),
    (WmsAuthError, "auth_error"),
    (WmsOutcomeUnknown, "outcome_unknown"),
    (WmsUnavailable, "unavailable"),
    (WmsProtocolError, "protocol_error"),
    (UnsafeXml, "unsafe_xml"),
    (ConfigurationError, "config_error"),
]


@dataclass(frozen=True)
class Exchange:
    """One call to WMS, as it is logged: no secrets, patron barcodes masked."""

    operation: str  # AcceptItem | CheckOutItem | CheckInItem | LookupItem | PatronSearch
    url: str
    started_at: datetime
    duration_ms: int
    outcome: (
        str  # ok | problem | not_found | auth_error | outcome_unknown | unavailable | protocol_error | ...
    )
    http_status: int | None
    request_summary: str
    response_summary: str
    attempts: int  # 2 when a 401 made the client fetch a new token and send again

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, object]:
        record = asdict(self)
        record["started_at"] = iso(self.started_at)
        return record


def _outcome(exc: BaseException) -> str:
    for kind, name in _OUTCOMES:
        if isinstance(exc, kind):
            return name
    return "error"


def _when(value: datetime | date | None) -> str:
    moment = to_utc(value)
    return iso(moment) if moment else "-"


class WmsClient:
    """A WMS Circulation client for one library (its ``WmsSettings``).

    ``session``: a ``requests.Session`` to use (default: a new pooled one, no retries, owned and closed by
    the client). ``tokens``: the token cache (default: the module-level ``DEFAULT_TOKENS``).
    Timeouts: (``connect_timeout``, default min(timeout_seconds, 10); timeout_seconds).
    """

    def __init__(
        self,
        settings: WmsSettings,
        *,
        session: requests.Session | None = None,
        tokens: TokenCache | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self._owns_session = session is None
        self._session = session if session is not None else new_session()
        self._tokens = tokens if tokens is not None else DEFAULT_TOKENS
        self._one_token = True  # one token for NCIP and SCIM, until the WSKey is refused both at once
        read = float(settings.timeout_seconds)
        connect = min(read, MAX_CONNECT_TIMEOUT_SECONDS) if connect_timeout is None else connect_timeout
        self.timeout: tuple[float, float] = (connect, read)

    # --- lifecycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> WmsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- NCIP -------------------------------------------------------------------------------------------

    def accept(self, message: AcceptItem) -> AcceptItemResult:
        """Create the temp item and the patron's hold (borrowing, on receipt)."""
        m = message
        summary = (
            f"request_id={ncip.ill_request_id(self.settings, m.request_id)} temp_item={m.temp_item_barcode} "
            f"patron={mask(m.patron_barcode)} lender={m.lending_agency_id} pickup={m.pickup_branch} "
            f"date_for_return={_when(m.date_for_return)}"
        )
        return self._send(m, summary, ncip.parse_accept_item_response)

    def check_out(self, message: CheckOutItem) -> CheckOutResult:
        """Check the lent item out to the borrowing institution's account (lending, on shipping)."""
        m = message
        account = (
            f"account={mask(m.user_barcode)}" if m.user_barcode else f"institution={m.institution_symbol}"
        )
        rid = ncip.ill_request_id(self.settings, m.request_id) if m.request_id else "-"
        summary = (
            f"item={m.item_barcode} {account} request_id={rid} desired_due={_when(m.desired_date_due)} "
            f"shipped={_when(m.shipped_at)}"
        )
        return self._send(m, summary, ncip.parse_check_out_item_response)

    def check_in(self, message: CheckInItem) -> CheckInResult:
        """Check an item in, by barcode or by ILL request id (hrid)."""
        m = message
        if m.item_barcode is not None:
            summary = f"item={m.item_barcode}"
        else:
            summary = f"request_id={ncip.ill_request_id(self.settings, m.request_id or '')}"
        return self._send(m, summary, ncip.parse_check_in_item_response)

    def cancel(self, message: CancelRequestItem) -> ncip.CancelRequestResult:
        """Cancel the patron's hold on a temp item (CancelRequestItem, by ILL request id + item barcode)."""
        m = message
        summary = (
            f"request_id={ncip.ill_request_id(self.settings, m.request_id)} item={m.item_barcode} "
            f"user={mask(m.patron_barcode)}"
        )
        return self._send(m, summary, ncip.parse_cancel_request_item_response)

    def _send(self, message: WmsMessage, summary: str, parse: Callable[[bytes], T]) -> T:
        """One message that changes something in WMS: its NCIP XML (``ncip.encode``), sent once."""
        body = ncip.encode(self.settings, message)
        return self._ncip(cast(ncip.Operation, message.operation), body, summary, parse, mutating=True)

    # --- the same messages from keyword arguments (the message's fields) ----------------------------------

    def accept_item(self, **fields: Any) -> AcceptItemResult:
        return self.accept(AcceptItem(**fields))

    def check_out_item(self, **fields: Any) -> CheckOutResult:
        return self.check_out(CheckOutItem(**fields))

    def check_in_item(self, **fields: Any) -> CheckInResult:
        return self.check_in(CheckInItem(**fields))

    def cancel_request_item(self, **fields: Any) -> ncip.CancelRequestResult:
        return self.cancel(CancelRequestItem(**fields))

    def lookup_item(self, barcode: str, *, current_borrower: bool = False) -> ItemStatus:
        """An item's circulation status (read-only); ``current_borrower=True`` also asks who has it."""
        body = ncip.lookup_item(self.settings, item_barcode=barcode, current_borrower=current_borrower)
        return self._ncip(
            "LookupItem", body, f"item={barcode}", ncip.parse_lookup_item_response, mutating=False
        )

    def lookup_user(self, user_barcode: str) -> UserItems:
        """A patron's or borrowing-institution account's loaned and requested items (LookupUser, read-only).

        Sent to ``ncip_patron_url`` (OCLC lists LookupUser for the patron profile), else ``ncip_url``.
        """
        body = ncip.lookup_user(self.settings, user_barcode=user_barcode)
        return self._ncip(
            "LookupUser",
            body,
            f"user={mask(user_barcode)}",
            ncip.parse_lookup_user_response,
            mutating=False,
            url=str(self.settings.ncip_patron_url or self.settings.ncip_url),
        )

    # --- SCIM -------------------------------------------------------------------------------------------

    def lookup_patron(self, barcode: str) -> Patron:
        """The patron with this barcode (SCIM search). Raises PatronNotFound."""
        body = scim.search_body(barcode)

        def read(answer: HttpAnswer) -> Patron:
            if not 200 <= answer.status < 300:
                raise scim.error_for(answer.status, answer.body)
            return scim.parse_search_response(answer.body, barcode)

        return self._call(
            "PatronSearch",
            url=str(self.settings.scim_url),
            body=body,
            headers={"Content-Type": scim.MEDIA_TYPE, "Accept": scim.MEDIA_TYPE},
            scope=SCIM_SCOPE,
            mutating=False,
            request_summary=f"patron={mask(barcode)}",
            read=read,
            summarize=lambda patron: patron.summary(),
            on_401=lambda answer: scim.error_for(401, answer.body),
        )

    # --- plumbing ---------------------------------------------------------------------------------------

    def _ncip(
        self,
        operation: ncip.Operation,
        body: bytes,
        request_summary: str,
        parse: Callable[[bytes], T],
        *,
        mutating: bool,
        url: str | None = None,
    ) -> T:
        def read(answer: HttpAnswer) -> T:
            return parse(self._ncip_body(operation, answer, mutating=mutating))

        def summarize(result: T) -> str:
            summary = getattr(result, "summary", None)
            return summary() if callable(summary) else str(result)

        return self._call(
            operation,
            url=url or str(self.settings.ncip_url),
            body=body,
            headers={"Content-Type": NCIP_CONTENT_TYPE, "Accept": "application/xml, text/xml"},
            scope=NCIP_SCOPE,
            mutating=mutating,
            request_summary=request_summary,
            read=read,
            summarize=summarize,
            on_401=lambda answer: WmsAuthError(
                f"{operation}: WMS refused a freshly fetched access token (HTTP 401): "
                f"{answer.text_excerpt(200)}"
            ),
        )

    @staticmethod
    def _ncip_body(operation: ncip.Operation, answer: HttpAnswer, *, mutating: bool) -> bytes:
        """The body of an NCIP answer, or the error its HTTP status means."""
        status = answer.status
        if 200 <= status < 300:
            return answer.body
        where = f"{operation}: WMS answered HTTP {status}"
        excerpt = answer.text_excerpt(200)
        if excerpt:
            where += f": {excerpt}"
        if status == 403:
            raise WmsAuthError(where)
        if status == 504 and mutating:
            raise WmsOutcomeUnknown(f"{where} (a gateway timed out: WMS may have acted)")
        if status in (408, 429) or status >= 500:
            raise WmsUnavailable(where)
        if 400 <= status < 500:
            problem = ncip.problem_in(answer.body, operation)  # some servers send an NCIP Problem with a 4xx
            if problem is not None:
                raise problem
        raise WmsProtocolError(where)

    def token(self, scope: str) -> str:
        """An access token for ``scope`` alone (cached as every call's is): the configuration check asks for
        each scope on its own, so a WSKey missing one is reported by name."""
        return self._fetch_token(scope)

    def _token(self, scope: str) -> tuple[str, str]:
        """A token for a call needing ``scope``, and the scope (list) it was asked for: one token for every
        scope the bridge uses (``ALL_SCOPES``: OCLC's client-credentials grant takes a space-separated list,
        docs/wms.md#transport-and-auth), so a function that looks a patron up and checks an item out fetches
        one token, not two. If the OAuth server refuses the list (a WSKey not granted every scope: OCLC does
        not document what it answers then), each scope gets a token of its own from then on."""
        if self._one_token:
            try:
                return self._fetch_token(ALL_SCOPES), ALL_SCOPES
            except WmsAuthError:
                self._one_token = False
                logger.warning(
                    "WMS refused one token for every scope: asking for a token per scope",
                    extra={"wskey": mask(self.settings.wskey), "scopes": ALL_SCOPES},
                )
        return self._fetch_token(scope), scope

    def _fetch_token(self, scope: str) -> str:
        return self._tokens.get(
            self._session,
            oauth_url=str(self.settings.oauth_url),
            wskey=self.settings.wskey,
            secret=self.settings.wskey_secret.get_secret_value(),
            scope=scope,
            timeout=self.timeout,
        )

    def _call(
        self,
        operation: str,
        *,
        url: str,
        body: bytes,
        headers: dict[str, str],
        scope: str,
        mutating: bool,
        request_summary: str,
        read: Callable[[HttpAnswer], T],
        summarize: Callable[[T], str],
        on_401: Callable[[HttpAnswer], BaseException],
    ) -> T:
        started_at = utcnow()
        started = time.perf_counter()
        attempts = 0
        status: int | None = None
        outcome = "error"
        response_summary = ""
        try:
            answer: HttpAnswer | None = None
            for attempt in (1, 2):
                token, asked = self._token(scope)
                attempts = attempt
                answer = post(
                    self._session,
                    url,
                    operation=operation,
                    data=body,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                    mutating=mutating,
                )
                status = answer.status
                if answer.status != 401:
                    break
                # Refused before acting: drop the token and send once more with a new one.
                self._tokens.invalidate(
                    oauth_url=str(self.settings.oauth_url),
                    wskey=self.settings.wskey,
                    scope=asked,
                    token=token,
                )
            assert answer is not None
            if answer.status == 401:
                raise on_401(answer)
            result = read(answer)
            outcome = "ok"
            response_summary = summarize(result)
            return result
        except BridgeError as exc:
            outcome = _outcome(exc)
            response_summary = exc.message
            raise
        except Exception as exc:  # a bug or an unexpected library error: still leave a history line
            response_summary = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(
                Exchange(
                    operation=operation,
                    url=url,
                    started_at=started_at,
                    duration_ms=round((time.perf_counter() - started) * 1000),
                    outcome=outcome,
                    http_status=status,
                    request_summary=request_summary,
                    response_summary=response_summary,
                    attempts=attempts,
                )
            )

    def _record(self, exchange: Exchange) -> None:
        log = logger.info if exchange.ok else logger.warning
        log("WMS exchange", extra={"wms_exchange": exchange.as_dict()})
