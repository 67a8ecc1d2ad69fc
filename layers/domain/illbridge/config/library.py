"""The configuration of one library (docs/configuration.md#settings).

Settings live in SSM Parameter Store as JSON at ``<prefix>/libraries/<library_id>``; secrets (WSKey secret,
ReShare password, webhook secrets) in Secrets Manager at ``<prefix>/libraries/<library_id>`` (leading slash
dropped). Every switch has a safe default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

BRANCH_ID = r"^\d{6}$"  # a WMS branch registry id is six digits
REGISTRY_ID = r"^\d{3,8}$"
_STRICT = ConfigDict(extra="forbid", frozen=True)


class ReShareSettings(BaseModel):
    model_config = _STRICT
    base_url: HttpUrl  # the Okapi gateway
    tenant: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    username: str = Field(min_length=1)
    password: SecretStr
    symbol: str = Field(min_length=1, description="this library's ReShare symbol, e.g. RESHARE:EAST")


class WmsSettings(BaseModel):
    model_config = _STRICT
    registry_id: str = Field(pattern=REGISTRY_ID, description="the main branch's registry id")
    ncip_url: HttpUrl
    oauth_url: HttpUrl
    scim_url: HttpUrl
    wskey: str = Field(min_length=1)
    wskey_secret: SecretStr
    # The CircILL dialect (docs/wms.md#the-circill-dialect); every value configurable, ReShare's defaults.
    from_system_id: str = "ReShare"
    to_system_id: str = "WMS Circ"
    requested_action_type: str = "Hold For Fulfillment"
    requested_action_type_scheme: str = (
        "http://www.oclc.org/ncip/schemes/ws-illv1_0requestedactiontype/requestedactiontype.scm"
    )
    request_id_prefix: str = "ReShareRequest"
    # How the lending library is named on a temp item's ItemId/AgencyId: "symbol" (OCLC symbol scheme) or
    # "institution" (registry id scheme). The value comes from partner_agency_ids, else the ReShare symbol's
    # part after the colon.
    lending_agency_scheme: Literal["symbol", "institution"] = "symbol"
    # Which fields the NCIP messages carry (docs/wms.md#the-circill-dialect): "circill" follows OCLC's CircILL
    # samples (DateForReturn, PickupExpiryDate, the lender on ItemId/AgencyId, MandatedAction, DesiredDateDue);
    # "reshare" sends exactly what ReShare's production WMS adapter sends (lib-ncip-client NCIP2WMS2Client with
    # its AcceptItem/CheckoutItem/CheckinItem classes), which WMS accepts today: a fallback if WMS refuses an
    # element of the other.
    message_profile: Literal["circill", "reshare"] = "circill"
    # Where LookupUser goes (OCLC lists it for the patron profile); None: ncip_url.
    ncip_patron_url: HttpUrl | None = None
    # How the bridge notices WMS check-ins (docs/wms.md#no-callbacks): NCIP LookupUser (documented for the patron profile:
    # one call per patron or partner account), LookupItem (not documented for WMS), or nothing (webhook
    # feed only; reminders when the lender's due date passes). See docs/architecture.md.
    checkin_probe: Literal["lookup_user", "lookup_item", "none"] = "lookup_user"
    timeout_seconds: float = Field(default=20.0, gt=0, le=120)


class StepSwitches(BaseModel):
    """A switch per step, as Tipasa and ReShare offer. All on by default: that is what the bridge is for."""

    model_config = _STRICT
    create_temp_item_on_received: bool = True
    check_in_on_returned: bool = True
    check_out_on_shipped: bool = True
    check_in_on_complete: bool = True
    update_reshare_when_wms_checks_in_first: bool = True


class LibraryConfig(BaseModel):
    model_config = _STRICT

    library_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1)
    reshare: ReShareSettings
    wms: WmsSettings
    pickup_branches: dict[str, str] = Field(
        default_factory=dict, description="pickup location (slug, name or code) -> WMS branch registry id"
    )
    partner_accounts: dict[str, str] = Field(
        default_factory=dict, description="partner symbol -> borrowing-institution patron barcode in WMS"
    )
    default_partner_account: str | None = None
    partner_agency_ids: dict[str, str] = Field(
        default_factory=dict, description="partner symbol -> the agency id WMS knows the lender by"
    )
    timezone: str = Field(
        default="UTC",
        description="the library's IANA time zone: WMS due dates are compared as its calendar dates",
    )
    return_buffer_days: int = Field(default=0, ge=0, le=60)
    steps: StepSwitches = Field(default_factory=StepSwitches)
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    reconcile_first_check_minutes: int = Field(default=15, ge=1)
    reconcile_max_interval_hours: int = Field(default=24, ge=1)
    # how long a step waits out an outage (or an earlier step) before it asks staff: docs/operations.md#outages-are-waited-out
    outage_deadline_hours: float = Field(default=24, gt=0, le=24 * 14)

    @field_validator("pickup_branches")
    @classmethod
    def _branch_ids(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for location, branch in value.items():
            if not re.fullmatch(BRANCH_ID, branch):
                raise ValueError(
                    f"pickup location {location!r} maps to {branch!r}, which is not a 6-digit branch registry id"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"timezone {value!r} is not an IANA time zone (e.g. America/New_York)") from exc
        return value

    def branch_for(self, *candidates: str | None) -> str | None:
        """The WMS branch for a pickup location, trying the candidates (code, slug, name) in order."""
        for candidate in candidates:
            if candidate and candidate in self.pickup_branches:
                return self.pickup_branches[candidate]
        return None

    def account_for_partner(self, symbol: str | None) -> str | None:
        if symbol and symbol in self.partner_accounts:
            return self.partner_accounts[symbol]
        return self.default_partner_account

    def lending_agency_id(self, symbol: str | None) -> str | None:
        """The agency id WMS knows the lender by: ``partner_agency_ids``, else (``symbol`` scheme only) the
        ReShare symbol's part after the colon; None when neither applies (a configuration error, never a
        placeholder sent to WMS)."""
        if symbol and symbol in self.partner_agency_ids:
            return self.partner_agency_ids[symbol]
        if not symbol or self.wms.lending_agency_scheme != "symbol":
            return None
        return symbol.split(":", 1)[-1] or None
