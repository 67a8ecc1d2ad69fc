"""A ReShare (mod-rs) patron request, as the API renders it (docs/reshare.md#request-fields).

Unknown fields are kept (``extra="allow"``): mod-rs adds fields between releases and the bridge must not break.
List results carry every scalar field and ``volumes`` too (mod-rs ``views/patronRequest/_patronRequest.gson``
renders them in lists); only ``resolvedPickupLocation`` (and audit, notifications, ...) need the single record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from illbridge.timeutil import to_utc

_CONFIG = ConfigDict(extra="allow", populate_by_name=True, frozen=False)


class RequestState(BaseModel):
    model_config = _CONFIG
    code: str
    terminal: bool = False


class VolumeStatus(BaseModel):
    model_config = _CONFIG
    value: str | None = None


class Volume(BaseModel):
    """One physical piece of a request. On the lender side ``item_id`` is the item's barcode."""

    model_config = _CONFIG
    id: str | None = None
    name: str | None = None
    item_id: str | None = Field(default=None, alias="itemId")
    temporary_item_barcode: str | None = Field(default=None, alias="temporaryItemBarcode")
    call_number: str | None = Field(default=None, alias="callNumber")
    status: VolumeStatus | None = None


class ResolvedPickupLocation(BaseModel):
    model_config = _CONFIG
    id: str | None = None
    name: str | None = None
    lms_location_code: str | None = Field(default=None, alias="lmsLocationCode")


class PatronRequest(BaseModel):
    model_config = _CONFIG

    id: str
    hrid: str | None = None
    is_requester: bool = Field(alias="isRequester")
    state: RequestState
    title: str | None = None
    author: str | None = None
    isbn: str | None = None
    publisher: str | None = None
    publication_date: str | None = Field(default=None, alias="publicationDate")
    patron_identifier: str | None = Field(default=None, alias="patronIdentifier")
    pickup_location_slug: str | None = Field(default=None, alias="pickupLocationSlug")
    pickup_location: str | None = Field(default=None, alias="pickupLocation")
    resolved_pickup_location: ResolvedPickupLocation | None = Field(
        default=None, alias="resolvedPickupLocation"
    )
    due_date_rs: str | None = Field(default=None, alias="dueDateRS")
    parsed_due_date_rs: datetime | None = Field(default=None, alias="parsedDueDateRS")
    requesting_institution_symbol: str | None = Field(default=None, alias="requestingInstitutionSymbol")
    supplying_institution_symbol: str | None = Field(default=None, alias="supplyingInstitutionSymbol")
    local_call_number: str | None = Field(default=None, alias="localCallNumber")
    last_updated: datetime | None = Field(default=None, alias="lastUpdated")
    date_created: datetime | None = Field(default=None, alias="dateCreated")
    needs_attention: bool | None = Field(default=None, alias="needsAttention")
    volumes: list[Volume] | None = None

    @field_validator("parsed_due_date_rs", "last_updated", "date_created", mode="before")
    @classmethod
    def _times(cls, value: Any) -> datetime | None:
        return to_utc(value)

    @property
    def side(self) -> str:
        return "borrowing" if self.is_requester else "lending"

    @property
    def lender_due_date(self) -> datetime | None:
        """The lender's due date: ``parsedDueDateRS``, else ``dueDateRS`` read as a date."""
        if self.parsed_due_date_rs is not None:
            return self.parsed_due_date_rs
        try:
            return to_utc(self.due_date_rs)
        except ValueError:
            return None

    def temp_item_barcodes(self) -> list[tuple[Volume | None, str]]:
        """The borrower's temporary item barcodes, one per volume (docs/reshare.md#request-fields).

        The temp barcode is the hrid for a single volume, else hrid + "-" + the last 4 characters of the
        lender's itemId. A barcode ReShare already put on the volume wins.
        """
        if not self.hrid:
            raise ValueError(f"request {self.id} has no hrid")
        volumes = self.volumes or []
        if len(volumes) <= 1:
            volume = volumes[0] if volumes else None
            given = volume.temporary_item_barcode if volume else None
            return [(volume, given or self.hrid)]
        result: list[tuple[Volume | None, str]] = []
        for volume in volumes:
            if volume.temporary_item_barcode:
                result.append((volume, volume.temporary_item_barcode))
            elif volume.item_id:
                result.append((volume, f"{self.hrid}-{volume.item_id[-4:]}"))
            else:
                raise ValueError(
                    f"request {self.hrid}: volume {volume.id} has neither itemId nor temp barcode"
                )
        return result
