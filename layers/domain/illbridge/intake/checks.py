"""The bridge checks a library's configuration against ReShare and WMS before acting for it
(docs/configuration.md#checking-a-library-before-first-use).

- ReShare: the bridge's user can log in to the tenant, and the tenant's ``host_lms_integration`` is
  ``manual``. Any other value (``wms2``, ...) means mod-rs calls WMS itself at the same staff actions
  (docs/reshare.md#host-lms-integration), so both would create temp items and check items out: the poller refuses to poll such a
  library (its run fails, retries, and ends in the schedule's dead-letter queue, whose alarm tells staff).
- Secrets: the WSKey secret and the ReShare password are there, webhook secrets are ``whsec_<base64>``.
- WMS: the WSKey gets a token for every scope the bridge uses, and every partner account (the patron a lent
  item is checked out to) is a patron WMS knows, neither expired nor blocked.
- Pickup branches cannot be checked: WMS offers no branch look-up to a WSKey (docs/wms.md#branches), so each
  mapped branch is a row of its own marked "check by hand" (``checked`` false), never a silent pass; a branch
  WMS does not know shows later as AcceptItem's refusal (an attention item naming it).

``illbridge check-config [LIBRARY]`` runs every check and prints what to fix (``illbridge/staff.check``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, HostLmsIntegrationOn, PatronNotFound, ReShareError
from illbridge.intake.ports import LibraryClients, ReShareClients

MANUAL = "manual"
SETTING = "host_lms_integration"


@dataclass
class Finding:
    library_id: str
    check: str
    ok: bool
    detail: str
    fix: str = ""
    checked: bool = True  # False: nothing the bridge can ask tells; ``fix`` says what to check by hand

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_lms_finding(ports: ReShareClients, config: LibraryConfig, *, outage_raises: bool = False) -> Finding:
    """Whether the tenant is ``manual``. With ``outage_raises``, ReShare being unreachable (a transient ReShare
    fault) raises it as it is, so a poll during an outage waits instead of failing as misconfigured."""
    tenant = config.reshare.tenant
    try:
        value = ports.reshare(config).app_setting(SETTING)
    except BridgeError as exc:
        if outage_raises and isinstance(exc, ReShareError) and exc.transient:
            raise
        return Finding(
            config.library_id,
            "reshare",
            False,
            f"cannot read ReShare tenant {tenant!r}: {exc}",
            "Check the ReShare URL, tenant, user and password in the library's configuration and secret.",
        )
    if value != MANUAL:
        return Finding(
            config.library_id,
            "reshare",
            False,
            f"ReShare tenant {tenant!r} has {SETTING} = {value!r}: mod-rs would also call WMS at the same "
            "staff actions, so temp items and check-outs would happen twice",
            f"In ReShare set {SETTING} to '{MANUAL}' for tenant {tenant!r} (Settings > Resource sharing > "
            "Host LMS integration); the bridge starts polling it at the next run.",
        )
    return Finding(config.library_id, "reshare", True, f"tenant {tenant!r}: logged in, {SETTING} = {MANUAL}")


def secret_findings(config: LibraryConfig) -> list[Finding]:
    """The library's secret holds what the bridge needs: the WSKey secret, the ReShare password, and webhook
    secrets in the Standard Webhooks form (``whsec_`` + base64) when the library has any."""
    from illbridge.intake.webhooks import _key

    missing = [
        name
        for name, value in (
            ("wskey_secret", config.wms.wskey_secret.get_secret_value()),
            ("reshare_password", config.reshare.password.get_secret_value()),
        )
        if not value.strip()
    ]
    unreadable = [n for n, s in enumerate(config.webhook_secrets, 1) if _key(s.get_secret_value()) is None]
    if missing or unreadable:
        what = [f"{', '.join(missing)} empty"] if missing else []
        what += (
            [f"webhook secret(s) #{', #'.join(map(str, unreadable))} not whsec_<base64>"]
            if unreadable
            else []
        )
        return [
            Finding(
                config.library_id,
                "secrets",
                False,
                "; ".join(what),
                "Put the value(s) in the library's secret in Secrets Manager (docs/configuration.md); the functions "
                "read it again within CONFIG_MAX_AGE_SECONDS.",
            )
        ]
    webhooks = f", {len(config.webhook_secrets)} webhook secret(s)" if config.webhook_secrets else ""
    return [
        Finding(config.library_id, "secrets", True, f"WSKey secret and ReShare password present{webhooks}")
    ]


def token_findings(ports: LibraryClients, config: LibraryConfig) -> list[Finding]:
    """The WSKey gets a token for every scope the bridge uses (NCIP circulation, SCIM patron look-ups)."""
    from illbridge.wms.auth import NCIP_SCOPE, SCIM_SCOPE

    wms = ports.wms(config)
    findings = []
    for scope in (NCIP_SCOPE, SCIM_SCOPE):
        try:
            wms.token(scope)
        except BridgeError as exc:
            findings.append(
                Finding(
                    config.library_id,
                    "wms-token",
                    False,
                    f"no token for scope {scope}: {exc}",
                    f"Check the WSKey and its secret, and add the scope {scope} to the WSKey in OCLC's WSKey "
                    "management.",
                )
            )
        else:
            findings.append(Finding(config.library_id, "wms-token", True, f"token for scope {scope}"))
    return findings


def wms_findings(ports: LibraryClients, config: LibraryConfig) -> list[Finding]:
    wms = ports.wms(config)
    accounts = sorted({*config.partner_accounts.values(), *filter(None, [config.default_partner_account])})
    findings = []
    today = ports.clock().date()
    for account in accounts:
        try:
            patron = wms.lookup_patron(account)
        except PatronNotFound:
            findings.append(
                Finding(
                    config.library_id,
                    "wms",
                    False,
                    f"partner account {account!r} is not a patron in WMS registry {config.wms.registry_id}",
                    "Create the partner library's ILL patron in WMS, or correct partner_accounts.",
                )
            )
        except BridgeError as exc:
            findings.append(
                Finding(
                    config.library_id,
                    "wms",
                    False,
                    f"cannot look up patrons in WMS registry {config.wms.registry_id}: {exc}",
                    "Check the WSKey, its secret and its scopes (SCIM, NCIP) in the library's secret.",
                )
            )
            return findings
        else:
            if patron.is_expired(today) or patron.blocked:
                state = "blocked" if patron.blocked else f"expired on {patron.expires}"
                findings.append(
                    Finding(
                        config.library_id,
                        "wms",
                        False,
                        f"partner account {account!r} is {state} in WMS registry {config.wms.registry_id}: "
                        "items lent to that library cannot be checked out to it",
                        "Renew or unblock the partner library's ILL patron in WMS.",
                    )
                )
            else:
                findings.append(Finding(config.library_id, "wms", True, f"partner account {account!r} found"))
    return findings


def branch_findings(config: LibraryConfig) -> list[Finding]:
    """One "check by hand" row per mapped pickup branch. WMS documents no service that names its branches to
    a WSKey: NCIP's LookupAgency is in the schema but not among the services OCLC lists for WMS, OCLC's Circ/ILL
    profile (circill-toolkit's circillv2_0 binding) has no LookupAgency, and SCIM reads patrons only
    (docs/wms.md#branches). So the check shows each branch and says where to confirm it, and passes nothing."""
    locations: dict[str, list[str]] = {}
    for location, branch in sorted(config.pickup_branches.items()):
        locations.setdefault(branch, []).append(location)
    return [
        Finding(
            config.library_id,
            "wms-branch",
            True,
            f"pickup branch {branch} ({', '.join(names)}): not checkable, WMS offers no branch look-up",
            f"Check by hand in WMS that {branch} is a branch registry id of institution "
            f"{config.wms.registry_id} and a pickup location for holds, or correct pickup_branches.",
            checked=False,
        )
        for branch, names in sorted(locations.items())
    ]


def agency_id_findings(config: LibraryConfig) -> list[Finding]:
    """Every partner needs an agency id WMS knows the lender by (AcceptItem's ItemId/AgencyId): with the
    ``institution`` scheme that is a registry id from ``partner_agency_ids``; with ``symbol`` the ReShare
    symbol's part after the colon serves. The bridge never sends a placeholder."""
    missing = [
        symbol for symbol in sorted(config.partner_accounts) if config.lending_agency_id(symbol) is None
    ]
    if not missing:
        return []
    return [
        Finding(
            config.library_id,
            "wms",
            False,
            f"no WMS agency id ({config.wms.lending_agency_scheme} scheme) for partner(s) {', '.join(missing)}: "
            "temp items for their loans cannot name the lender",
            "Add each partner's registry id to partner_agency_ids (or use lending_agency_scheme 'symbol').",
        )
    ]


PROBE_CHECK_BARCODE = (
    "ILLBRIDGE-CONFIG-CHECK"  # an item no library has: "Unknown Item" means LookupItem works
)


def probe_findings(ports: LibraryClients, config: LibraryConfig) -> list[Finding]:
    """Which look-up WMS answers for this WSKey, against the library's ``checkin_probe``.

    LookupUser is asked about a partner account, LookupItem about an item no library has; ``Unsupported
    Service`` (or an HTTP refusal) means no. When WMS answers neither, WMS-side check-ins can only come in
    through the WMS webhook feed, and the reconciler reminds staff when a lender's due date passes.
    """
    from illbridge.errors import WmsProblem
    from illbridge.wms.probe import UNKNOWN_ITEM_PROBLEMS, UNKNOWN_USER_PROBLEMS, UNSUPPORTED_PROBLEMS

    wms = ports.wms(config)
    account = config.default_partner_account or next(iter(sorted(config.partner_accounts.values())), None)

    def answers(call: Any, fine: frozenset[str]) -> bool | str:
        try:
            call()
        except WmsProblem as problem:
            kind = problem.problem_type.strip().lower()
            if kind in UNSUPPORTED_PROBLEMS:
                return False
            return True if kind in fine else f"{problem.problem_type}: {problem.detail or ''}"
        except BridgeError as exc:
            return f"{type(exc).__name__}: {exc}"
        return True

    user = (
        answers(lambda: wms.lookup_user(account), UNKNOWN_USER_PROBLEMS)
        if account
        else "no partner account to ask about"
    )
    item = answers(lambda: wms.lookup_item(PROBE_CHECK_BARCODE), UNKNOWN_ITEM_PROBLEMS)
    said = f"LookupUser: {'answered' if user is True else user or 'Unsupported Service'}; LookupItem: " + (
        "answered" if item is True else str(item or "Unsupported Service")
    )
    chosen = config.wms.checkin_probe
    if user is not True and item is not True:
        return [
            Finding(
                config.library_id,
                "wms-probe",
                chosen == "none",
                f"WMS answers neither LookupUser nor LookupItem ({said}): a check-in at the WMS desk is noticed "
                "only through the WMS webhook feed; otherwise the bridge reminds staff on the attention list "
                "('Update ReShare request ...') when the lender's due date passes",
                "Feed WMS check-ins to POST /webhooks/wms if you can, and set checkin_probe to 'none'.",
            )
        ]
    works = {"lookup_user": user is True, "lookup_item": item is True, "none": True}
    if works[chosen]:
        return [Finding(config.library_id, "wms-probe", True, f"check-in probe {chosen}: {said}")]
    better = "lookup_user" if user is True else "lookup_item"
    return [
        Finding(
            config.library_id,
            "wms-probe",
            False,
            f"check-in probe {chosen} does not work with this WMS ({said})",
            f"Set the library's wms.checkin_probe to '{better}'.",
        )
    ]


def check_library(ports: LibraryClients, config: LibraryConfig) -> list[Finding]:
    findings = [
        *secret_findings(config),
        host_lms_finding(ports, config),
        *token_findings(ports, config),
    ]
    findings += wms_findings(ports, config)
    return [
        *findings,
        *branch_findings(config),
        *agency_id_findings(config),
        *probe_findings(ports, config),
    ]


RECHECK_SECONDS = 900.0  # a warm instance asks ReShare again this often: a switched setting is seen soon
_verified: dict[str, float] = {}  # library/tenant -> when it was last seen "manual" (monotonic)
_verified_lock = threading.Lock()


def require_manual_integration(ports: ReShareClients, config: LibraryConfig) -> None:
    """Raise HostLmsIntegrationOn unless the tenant is ``manual`` (asked at most every RECHECK_SECONDS)."""
    key = f"{config.library_id}/{config.reshare.tenant}"
    with _verified_lock:
        if time.monotonic() - _verified.get(key, -RECHECK_SECONDS) < RECHECK_SECONDS:
            return
    finding = host_lms_finding(ports, config, outage_raises=True)  # an outage: the caller waits
    if not finding.ok:
        with _verified_lock:
            _verified.pop(key, None)
        raise HostLmsIntegrationOn(f"{finding.detail}. {finding.fix}")
    with _verified_lock:
        _verified[key] = time.monotonic()
