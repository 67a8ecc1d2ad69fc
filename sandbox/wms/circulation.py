"""Circulation: AcceptItem, check-out, check-in, the look-ups; the behaviour the switches choose."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .faults import FaultState
from .records import (
    HOLD_CANCELLED,
    HOLD_FILLED,
    HOLD_PENDING,
    HOLD_READY,
    ITEM_IN_TRANSIT,
    ITEM_ON_HOLD_SHELF,
    ITEM_ON_LOAN,
    ITEM_ON_ORDER,
    CheckInResult,
    CheckOutResult,
    CircError,
    Hold,
    Institution,
    Item,
    Loan,
    Notice,
    Patron,
    _new_id,
    utcnow,
)


def known_patron(inst: Institution, value: str, *, by_symbol: bool = False) -> Patron:
    """The patron (or borrowing-institution account, ``by_symbol``) ``value`` names, else NCIP's Unknown User."""
    patron = inst.find_patron(value, by_symbol=by_symbol)
    if patron is None:
        raise CircError(
            "Unknown User",
            "UNKNOWN_USER",
            f"no patron {'with symbol' if by_symbol else 'with barcode'} {value!r}",
            element="UserIdentifierValue",
            value=f"{inst.registry_id}/{value}",
        )
    return patron


class CirculationState(FaultState):
    # -- circulation ----------------------------------------------------------------------------------
    def accept_item(
        self,
        registry_id: str,
        *,
        request_id: str,
        item_barcode: str,
        patron_barcode: str,
        pickup_branch: str | None,
        lending_library: str | None = None,
        lending_library_scheme: str | None = None,
        date_for_return: datetime | None = None,
        pickup_expiry: datetime | None = None,
        requested_action: str | None = None,
        title: str = "",
        author: str = "",
        publisher: str = "",
        publication_date: str = "",
        edition: str = "",
        call_number: str = "",
    ) -> tuple[Item, Hold]:
        with self.lock:
            inst = self.institution(registry_id)
            if item_barcode in inst.items:
                if self.options.is_("duplicate_temp_barcode", "problem_other_wording"):
                    raise CircError(
                        "Resource Cannot Be Provided",
                        "BARCODE_IN_USE",
                        f"Barcode {item_barcode} is already in use",
                        element="ItemIdentifierValue",
                        value=item_barcode,
                    )
                raise CircError(
                    "Duplicate Item",
                    "DUPLICATE_ITEM",
                    f"an item with barcode {item_barcode!r} already exists",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            patron = known_patron(inst, patron_barcode)
            pickup = pickup_branch or (
                patron.home_branch if patron.home_branch in inst.branches else inst.main_branch
            )
            if pickup not in inst.branches:
                raise CircError(
                    "Unknown Agency",
                    "UNKNOWN_PICKUP_LOCATION",
                    f"pickup location {pickup!r} is not a branch of institution {inst.registry_id}",
                    element="PickupLocation",
                    value=pickup,
                )
            now = utcnow()
            settings = inst.ill_settings
            home = settings.home_branch if settings.home_branch in inst.branches else inst.main_branch
            item = Item(
                barcode=item_barcode,
                branch=home,
                collection_type="ILL",
                call_number=call_number,
                title=title,
                author=author,
                publisher=publisher,
                publication_date=publication_date,
                edition=edition,
                status=ITEM_ON_ORDER,
                location=home,
                temporary=True,
                request_id=request_id,
                lending_library=lending_library,
                lending_library_scheme=lending_library_scheme,
                date_for_return=date_for_return,
                holding_location=settings.holding_location,
                shelving_location=settings.shelving_location,
                requested_action=requested_action,
                created=now,
                updated=now,
            )
            hold = Hold(
                hold_id=_new_id("hold"),
                item_barcode=item_barcode,
                patron_barcode=patron.barcode,
                pickup_branch=pickup,
                request_id=request_id,
                pickup_expiry=pickup_expiry,
                created=now,
                updated=now,
            )
            inst.items[item_barcode] = item
            inst.holds.append(hold)
            return item, hold

    def check_out(
        self,
        registry_id: str,
        *,
        item_barcode: str,
        patron_value: str,
        by_symbol: bool = False,
        desired_due: datetime | None = None,
        request_id: str | None = None,
        source: str = "ncip",
        mandated: bool = False,
    ) -> CheckOutResult:
        """Check an item out. ``mandated``: the request carried MandatedAction (the item has left already).

        Switches: ``repeat_checkout_same_account`` (item already on loan to this patron),
        ``expired_account_when_mandated``, ``desired_due_date`` (DesiredDateDue without MandatedAction),
        ``due_date_style``.
        """
        with self.lock:
            inst = self.institution(registry_id)
            now = utcnow()
            patron = known_patron(inst, patron_value, by_symbol=by_symbol)
            item = inst.items.get(item_barcode)
            if item is None:
                raise CircError(
                    "Unknown Item",
                    "UNKNOWN_ITEM",
                    f"no item with barcode {item_barcode!r}",
                    element="ItemIdentifierValue",
                    value=f"{inst.registry_id}/{item_barcode}",
                )
            loan = inst.active_loan(item_barcode)
            if loan is not None:
                if loan.patron_barcode == patron.barcode:
                    repeat = self.options.get("repeat_checkout_same_account")
                    if repeat == "problem":
                        raise CircError(
                            "Resource Cannot Be Provided",
                            "ITEM_ALREADY_ON_LOAN_TO_USER",
                            f"item {item_barcode!r} is already checked out to this patron",
                            element="ItemIdentifierValue",
                            value=item_barcode,
                        )
                    if repeat == "renews":
                        loan.due = self._due(inst, patron, item, now, desired_due, mandated)
                        loan.renewals += 1
                    return CheckOutResult(item=item, patron=patron, loan=loan, existing=True)
                raise CircError(
                    "Resource Cannot Be Provided",
                    "ITEM_ON_LOAN_TO_ANOTHER_USER",
                    f"item {item_barcode!r} is on loan to another patron",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            if patron.blocked:
                raise CircError(
                    "User Blocked",
                    "USER_BLOCKED",
                    f"patron {patron.barcode!r} is blocked",
                    element="UserIdentifierValue",
                    value=patron_value,
                )
            if patron.is_expired(now) and not (
                mandated and self.options.is_("expired_account_when_mandated", "honoured")
            ):
                raise CircError(
                    "User Ineligible To Check Out This Item",
                    "USER_EXPIRED",
                    f"patron {patron.barcode!r} expired on {patron.expires.isoformat()}",
                    element="UserIdentifierValue",
                    value=patron_value,
                )
            hold = inst.active_hold(item_barcode)
            if hold is not None and hold.patron_barcode != patron.barcode:
                raise CircError(
                    "Resource Cannot Be Provided",
                    "ITEM_ON_HOLD_FOR_ANOTHER_USER",
                    f"item {item_barcode!r} is on hold for another patron",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            ill = patron.is_ill_account
            due = self._due(inst, patron, item, now, desired_due, mandated)
            loan = Loan(
                loan_id=_new_id("loan"),
                item_barcode=item_barcode,
                patron_barcode=patron.barcode,
                due=due,
                checked_out_at=now,
                request_id=request_id or (item.request_id if item.temporary else None),
                desired_due=desired_due,
                kind="ill" if ill else "patron",
                source=source,
            )
            inst.loans.append(loan)
            if hold is not None:
                hold.status = HOLD_FILLED
                hold.filled_at = now
                hold.updated = now
            item.status = ITEM_ON_LOAN
            item.in_transit_to = None
            item.updated = now
            return CheckOutResult(item=item, patron=patron, loan=loan, hold=hold)

    def _due(
        self,
        inst: Institution,
        patron: Patron,
        item: Item,
        now: datetime,
        desired_due: datetime | None,
        mandated: bool,
    ) -> datetime:
        """The loan's due date. DesiredDateDue is honoured with MandatedAction (CheckOutItemToInstitutionForILL.xml)
        and, without it, per ``desired_due_date``; else now + policy days. Never past a temp item's DateForReturn
        nor the patron's expiry (Integration Workflow page). Rendered per ``due_date_style``."""
        honour = desired_due is not None and (
            mandated or self.options.is_("desired_due_date", "honoured_capped_at_expiry")
        )
        if honour:
            assert desired_due is not None
            due = desired_due
        else:
            days = inst.policy.ill_loan_days if patron.is_ill_account else inst.policy.patron_loan_days
            due = now + timedelta(days=days)
        if item.temporary and item.date_for_return is not None:
            due = min(due, item.date_for_return)
        due = min(due, max(patron.expires_at, now))
        if self.options.is_("due_date_style", "end_of_day_local"):
            zone = ZoneInfo(inst.timezone)
            due = datetime.combine(due.astimezone(zone).date(), time(23, 59, 59), tzinfo=zone)
        return due

    def check_in(
        self,
        registry_id: str,
        *,
        barcode: str | None = None,
        request_id: str | None = None,
        branch: str | None = None,
    ) -> CheckInResult:
        """Check an item in. ``branch`` None = NCIP (no location: the item arrives where it is routed)."""
        with self.lock:
            inst = self.institution(registry_id)
            if branch is not None and branch not in inst.branches:
                raise CircError(
                    "Unknown Agency",
                    "UNKNOWN_BRANCH",
                    f"{branch!r} is not a branch of institution {inst.registry_id}",
                    element="Branch",
                    value=branch,
                )
            by_request = barcode is None
            if by_request:
                item = inst.find_by_request_id(request_id or "")
                if item is None:
                    return CheckInResult(found=False)
            else:
                item = inst.items.get(barcode or "")
                if item is None:
                    raise CircError(
                        "Unknown Item",
                        "UNKNOWN_ITEM",
                        f"no item with barcode {barcode!r}",
                        element="ItemIdentifierValue",
                        value=f"{inst.registry_id}/{barcode}",
                    )
            now = utcnow()
            loan = inst.active_loan(item.barcode)
            hold = inst.active_hold(item.barcode)
            result = CheckInResult(found=True, item=item)
            if loan is not None:
                loan.returned_at = now
                item.last_borrower = loan.patron_barcode
                result.loan = loan
                waiting = hold if hold is not None and hold.status == HOLD_PENDING else None
                destination = waiting.pickup_branch if waiting else item.branch
                self._route(inst, item, branch, destination, waiting, result, now)
            elif (
                hold is not None
                and branch is not None
                and hold.status == HOLD_PENDING
                and item.status in (ITEM_ON_ORDER, ITEM_IN_TRANSIT)
            ):
                self._route(inst, item, branch, hold.pickup_branch, hold, result, now)
            elif hold is not None and self.options.is_("checkin_of_held_temp_item", "keeps_hold"):
                # keeps_hold: the item goes (back) to the hold shelf of the pickup branch, hold kept.
                if hold.status == HOLD_READY:
                    result.hold = hold
                    result.destination = hold.pickup_branch
                    item.location = hold.pickup_branch
                    item.status = ITEM_ON_HOLD_SHELF
                else:
                    self._route(inst, item, branch, hold.pickup_branch, hold, result, now)
            elif hold is not None:
                hold.status = HOLD_CANCELLED
                hold.cancelled_at = now
                hold.updated = now
                result.hold = hold
                self._route(inst, item, branch, item.branch, None, result, now)
            elif branch is not None and item.status == ITEM_IN_TRANSIT and item.in_transit_to:
                self._route(inst, item, branch, item.in_transit_to, None, result, now)
            elif by_request:
                result.destination = item.location or item.branch
            else:
                raise CircError(
                    "Item Not Checked Out",
                    "ITEM_NOT_CHECKED_OUT",
                    f"item {item.barcode!r} is not checked out",
                    element="ItemIdentifierValue",
                    value=f"{inst.registry_id}/{item.barcode}",
                )
            item.updated = now
            return result

    @staticmethod
    def _route(
        inst: Institution,
        item: Item,
        at_branch: str | None,
        destination: str,
        hold: Hold | None,
        result: CheckInResult,
        now: datetime,
    ) -> None:
        result.destination = destination
        if hold is not None:
            result.hold = hold
        if at_branch is not None and at_branch != destination:
            item.status = ITEM_IN_TRANSIT
            item.location = at_branch
            item.in_transit_to = destination
            result.in_transit = True
            return
        item.location = destination
        item.in_transit_to = None
        if hold is not None and hold.status == HOLD_PENDING and hold.pickup_branch == destination:
            hold.status = HOLD_READY
            hold.ready_at = now
            hold.updated = now
            item.status = ITEM_ON_HOLD_SHELF
            notice = Notice(
                notice_id=_new_id("notice"),
                patron=hold.patron_barcode,
                item=item.barcode,
                kind="hold_ready",
                time=now,
                hold_id=hold.hold_id,
                request_id=hold.request_id,
                pickup_branch=hold.pickup_branch,
            )
            inst.notices.append(notice)
            result.notice = notice
        else:
            item.status = item.shelf_status

    def cancel_request(
        self,
        registry_id: str,
        *,
        patron_barcode: str,
        request_id: str | None = None,
        item_barcode: str | None = None,
    ) -> tuple[list[Hold], Item | None]:
        """CancelRequestItem (OCLC lists it for the staff and the patron profile): cancel the patron's active
        hold(s) named by the request id and/or item barcode. An item on the hold shelf goes back to its shelf
        status (staff route a temp item home). Unknown User / Unknown Request otherwise, as NCIP's problem
        types name them; a hold already filled or cancelled is no longer a request to cancel."""
        with self.lock:
            inst = self.institution(registry_id)
            patron = known_patron(inst, patron_barcode)
            holds = [
                hold
                for hold in inst.holds
                if hold.active
                and hold.patron_barcode == patron.barcode
                and (request_id is None or hold.request_id == request_id)
                and (item_barcode is None or hold.item_barcode == item_barcode)
            ]
            if not holds:
                value = request_id if request_id is not None else item_barcode
                raise CircError(
                    "Unknown Request",
                    "UNKNOWN_REQUEST",
                    f"patron {patron.barcode!r} has no active request {value!r}",
                    element="RequestIdentifierValue" if request_id is not None else "ItemIdentifierValue",
                    value=f"{inst.registry_id}/{value}",
                )
            now = utcnow()
            item = None
            for hold in holds:
                hold.status = HOLD_CANCELLED
                hold.cancelled_at = now
                hold.updated = now
                item = inst.items.get(hold.item_barcode)
                if item is not None and item.status == ITEM_ON_HOLD_SHELF:
                    item.status = item.shelf_status
                    item.updated = now
            return holds, item

    def lookup_user(
        self, registry_id: str, value: str, *, by_symbol: bool = False
    ) -> tuple[Patron, list[Loan], list[Hold]]:
        """A patron (or borrowing-institution account) with its active loans and active holds."""
        with self.lock:
            inst = self.institution(registry_id)
            patron = known_patron(inst, value, by_symbol=by_symbol)
            loans = [loan for loan in inst.loans if loan.patron_barcode == patron.barcode and loan.active]
            holds = [hold for hold in inst.holds if hold.patron_barcode == patron.barcode and hold.active]
            return patron, loans, holds

    def lookup_item(
        self, registry_id: str, *, barcode: str | None = None, request_id: str | None = None
    ) -> tuple[Item, Loan | None, Hold | None]:
        with self.lock:
            inst = self.institution(registry_id)
            item = inst.find_by_request_id(request_id) if barcode is None and request_id else None
            if barcode is not None:
                item = inst.items.get(barcode)
            if item is None:
                value = barcode if barcode is not None else request_id
                raise CircError(
                    "Unknown Item",
                    "UNKNOWN_ITEM",
                    f"no item for {value!r}",
                    element="ItemIdentifierValue" if barcode is not None else "RequestIdentifierValue",
                    value=f"{inst.registry_id}/{value}",
                )
            return item, inst.active_loan(item.barcode), inst.active_hold(item.barcode)
