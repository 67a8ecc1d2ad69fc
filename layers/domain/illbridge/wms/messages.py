"""The messages the bridge sends to WMS, as values: built once by a step, sent by ``WmsClient`` (its
``accept``, ``check_out``, ``check_in`` and ``cancel``), written to the request's history from the same value
(``logged``: the patron's barcode masked, dates as ISO text). The NCIP XML each becomes is ``illbridge.wms.ncip``
(``ncip.encode``), which reads the same value: the fields are spelt here only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from illbridge.observability import mask


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime | date) else value


@dataclass(frozen=True, kw_only=True)
class WmsMessage:
    operation: ClassVar[str]
    private: ClassVar[tuple[str, ...]] = ()  # fields that name a person: masked in the history
    # fields the steps never set (other NCIP options, or the other way of naming an item or account): left
    # out of the history while unset
    optional: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> dict[str, Any]:
        """The message's fields by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def logged(self) -> dict[str, Any]:
        """The message as its history line keeps it."""
        return {
            name: (mask(value) or "(none)") if name in self.private else _plain(value)
            for name, value in self.fields().items()
            if value is not None or name not in self.optional
        }


@dataclass(frozen=True, kw_only=True)
class AcceptItem(WmsMessage):
    """AcceptItem (borrowing, on receipt): a temporary item for the lender's copy and the patron's hold."""

    operation: ClassVar[str] = "AcceptItem"
    private: ClassVar[tuple[str, ...]] = ("patron_barcode",)
    request_id: str  # the ReShare hrid (WMS gets it prefixed, as the ILL request id)
    temp_item_barcode: str
    lending_agency_id: str
    lending_agency_scheme: Literal["symbol", "institution"] | None = None
    patron_barcode: str
    pickup_branch: str
    date_for_return: datetime | date | None = None
    title: str | None = None
    author: str | None = None
    publisher: str | None = None
    publication_date: str | None = None
    call_number: str | None = None
    edition: str | None = None
    bibliographic_level: str | None = None
    medium_type: str | None = None
    pickup_expiry: datetime | date | None = None
    optional: ClassVar[tuple[str, ...]] = ("edition", "bibliographic_level", "medium_type", "pickup_expiry")


@dataclass(frozen=True, kw_only=True)
class CheckOutItem(WmsMessage):
    """CheckOutItem (lending, on shipment): the lent item out to the borrowing institution's account, named
    by exactly one of ``user_barcode`` (a patron account, what ReShare sends) and ``institution_symbol``."""

    operation: ClassVar[str] = "CheckOutItem"
    optional: ClassVar[tuple[str, ...]] = ("institution_symbol",)
    item_barcode: str
    user_barcode: str | None = None
    institution_symbol: str | None = None
    request_id: str | None = None
    desired_date_due: datetime | date | None = None
    shipped_at: datetime | date | None = None


@dataclass(frozen=True, kw_only=True)
class CheckInItem(WmsMessage):
    """CheckInItem by item barcode (a temp item on return, a lent item on completion), or by the ILL request
    id (the hrid; exactly one of the two); ``occurred_at``: when the return happened."""

    operation: ClassVar[str] = "CheckInItem"
    optional: ClassVar[tuple[str, ...]] = ("request_id", "occurred_at")
    item_barcode: str | None = None
    request_id: str | None = None
    occurred_at: datetime | date | None = None


@dataclass(frozen=True, kw_only=True)
class CancelRequestItem(WmsMessage):
    """CancelRequestItem: the patron's hold on one temp item (by ILL request id, the hrid, and item barcode)."""

    operation: ClassVar[str] = "CancelRequestItem"
    private: ClassVar[tuple[str, ...]] = ("patron_barcode",)
    request_id: str
    patron_barcode: str
    item_barcode: str
