"""The state's data, its one re-entrant lock, and the set-up and reading the ``/_sim/`` API does."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from .options import Options
from .records import (
    ITEM_AVAILABLE,
    ITEM_STATUSES,
    ITEM_UNAVAILABLE,
    AmbiguousBarcode,
    Branch,
    Fault,
    Institution,
    Item,
    NotFound,
    Patron,
    Token,
    iso,
    parse_date,
    required_str,
    utcnow,
)


class StateBase:
    """All simulator data, guarded by one re-entrant lock; every public method takes it."""

    def __init__(self, token_ttl: int = 1200, options: dict[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.options = Options(options)
        self.default_token_ttl = int(token_ttl)
        self.token_ttl = int(token_ttl)
        self.institutions: dict[str, Institution] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.requests_log: list[dict[str, Any]] = []


class AdminState(StateBase):
    """Institutions, branches, policies, patrons and items: upserts and listings."""

    # -- setup (the /_sim/ API) -----------------------------------------------------------------------
    def institution(self, registry_id: str) -> Institution:
        with self.lock:
            inst = self.institutions.get(str(registry_id))
            if inst is None:
                raise NotFound(f"unknown institution (registry id) {registry_id!r}")
            return inst

    def upsert_institution(
        self,
        *,
        registry_id: str,
        wskey: str | None = None,
        secret: str | None = None,
        name: str | None = None,
        symbol: str | None = None,
        timezone: str | None = None,
        branches: Iterable[Any] | None = None,
        ill_settings: dict[str, Any] | None = None,
        policies: dict[str, Any] | None = None,
    ) -> Institution:
        registry_id = required_str(registry_id, "registry_id")
        with self.lock:
            inst = self.institutions.get(registry_id)
            if inst is None:
                if not wskey or not secret:
                    raise ValueError("a new institution needs wskey and secret")
                inst = Institution(registry_id=registry_id, wskey=str(wskey), secret=str(secret))
            if wskey is not None:
                inst.wskey = required_str(wskey, "wskey")
            if secret is not None:
                inst.secret = required_str(secret, "secret")
            for other in self.institutions.values():
                if other.registry_id != registry_id and other.wskey == inst.wskey:
                    raise ValueError(
                        f"wskey {inst.wskey!r} already belongs to institution {other.registry_id}"
                    )
            if name is not None:
                inst.name = str(name)
            if symbol is not None:
                inst.symbol = str(symbol) or None
            if timezone is not None:
                try:
                    ZoneInfo(str(timezone))
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"timezone {timezone!r} is not an IANA time zone") from exc
                inst.timezone = str(timezone)
            if branches is not None:
                if isinstance(branches, str | bytes) or not isinstance(branches, Iterable):
                    raise ValueError("branches must be a list")
                for entry in branches:
                    self._add_branch(inst, entry)
            if not inst.branches:
                self._add_branch(
                    inst, {"branch_id": registry_id, "name": inst.name or registry_id, "main": True}
                )
            if ill_settings is not None:
                if not isinstance(ill_settings, dict):
                    raise ValueError("ill_settings must be an object")
                settings = inst.ill_settings
                for key in ("holding_location", "shelving_location", "home_branch"):
                    if key in ill_settings and ill_settings[key] is not None:
                        setattr(settings, key, str(ill_settings[key]))
            if not inst.ill_settings.home_branch:
                inst.ill_settings.home_branch = inst.main_branch
            if policies is not None:
                self._apply_policy(inst, policies)
            self.institutions[registry_id] = inst
            return inst

    @staticmethod
    def _add_branch(inst: Institution, entry: Any) -> Branch:
        if isinstance(entry, str | int):
            entry = {"branch_id": str(entry)}
        if not isinstance(entry, dict):
            raise ValueError("a branch is a branch id string or an object {branch_id, name, main}")
        branch_id = required_str(entry.get("branch_id", entry.get("id")), "branch_id")
        main = bool(entry.get("main", False)) or not inst.branches
        if main:
            for other in inst.branches.values():
                other.main = False
        existing = inst.branches.get(branch_id)
        name = str(entry.get("name") or (existing.name if existing else branch_id))
        branch = Branch(branch_id=branch_id, name=name, main=main or bool(existing and existing.main))
        inst.branches[branch_id] = branch
        return branch

    def add_branch(self, registry_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            inst = self.institution(registry_id)
            return self._add_branch(inst, entry).to_dict(inst.registry_id)

    @staticmethod
    def _apply_policy(inst: Institution, policies: dict[str, Any]) -> None:
        if not isinstance(policies, dict):
            raise ValueError("policies must be an object")
        for key in ("patron_loan_days", "ill_loan_days"):
            if key in policies and policies[key] is not None:
                value = policies[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                setattr(inst.policy, key, value)

    def set_policy(self, registry_id: str, policies: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            inst = self.institution(registry_id)
            self._apply_policy(inst, policies)
            return inst.policy.to_dict(inst.registry_id)

    def upsert_patron(
        self,
        *,
        registry_id: str,
        barcode: str,
        expires: Any = None,
        blocked: Any = None,
        borrower_category: str | None = None,
        home_branch: str | None = None,
        symbol: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        barcode = required_str(barcode, "barcode")
        with self.lock:
            inst = self.institution(registry_id)
            patron = inst.patrons.get(barcode)
            if patron is None:
                patron = Patron(
                    barcode=barcode,
                    expires=date(2099, 12, 31),
                    home_branch=inst.main_branch,
                    patron_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"wms-sim:{inst.registry_id}:{barcode}")),
                )
            if expires is not None:
                patron.expires = parse_date(expires)
            if blocked is not None:
                if not isinstance(blocked, bool):
                    raise ValueError("blocked must be true or false")
                patron.blocked = blocked
            if borrower_category is not None:
                patron.borrower_category = str(borrower_category)
            if home_branch is not None:
                if str(home_branch) not in inst.branches:
                    raise ValueError(f"unknown branch {home_branch!r} for institution {inst.registry_id}")
                patron.home_branch = str(home_branch)
            if symbol is not None:
                patron.symbol = str(symbol) or None
            if given_name is not None:
                patron.given_name = str(given_name)
            if family_name is not None:
                patron.family_name = str(family_name)
            if email is not None:
                patron.email = str(email) or None
            patron.updated = utcnow()
            inst.patrons[barcode] = patron
            return patron.to_dict(inst.registry_id)

    def upsert_item(
        self,
        *,
        registry_id: str,
        barcode: str,
        branch: str | None = None,
        collection_type: str | None = None,
        call_number: str | None = None,
        title: str | None = None,
        author: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        barcode = required_str(barcode, "barcode")
        with self.lock:
            inst = self.institution(registry_id)
            item = inst.items.get(barcode)
            if item is not None and item.temporary:
                raise ValueError(f"{barcode!r} is a temporary item; it cannot be replaced")
            new = item is None
            if item is None:
                item = Item(barcode=barcode, branch=inst.main_branch)
            if branch is not None:
                if str(branch) not in inst.branches:
                    raise ValueError(f"unknown branch {branch!r} for institution {inst.registry_id}")
                item.branch = str(branch)
            if collection_type is not None:
                item.collection_type = str(collection_type)
            if call_number is not None:
                item.call_number = str(call_number)
            if title is not None:
                item.title = str(title)
            if author is not None:
                item.author = str(author)
            if new or branch is not None:
                item.location = item.branch
            if status is not None:
                if status not in ITEM_STATUSES:
                    raise ValueError(f"status must be one of {', '.join(ITEM_STATUSES)}")
                item.status = status
            elif new or (collection_type is not None and item.status in (ITEM_AVAILABLE, ITEM_UNAVAILABLE)):
                item.status = item.shelf_status
            item.updated = utcnow()
            inst.items[barcode] = item
            return item.to_dict(inst.registry_id)

    # -- reading (the /_sim/ API) ---------------------------------------------------------------------
    def _selected(self, registry_id: str | None) -> list[Institution]:
        if registry_id is None or registry_id == "":
            return list(self.institutions.values())
        return [self.institution(registry_id)]

    def list_branches(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                b.to_dict(i.registry_id) for i in self._selected(registry_id) for b in i.branches.values()
            ]

    def list_patrons(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            now = utcnow()
            return [
                p.to_dict(i.registry_id, now) for i in self._selected(registry_id) for p in i.patrons.values()
            ]

    def list_items(
        self, registry_id: str | None = None, *, temporary: bool | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                item.to_dict(i.registry_id)
                for i in self._selected(registry_id)
                for item in i.items.values()
                if temporary is None or item.temporary == temporary
            ]

    def list_policies(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [i.policy.to_dict(i.registry_id) for i in self._selected(registry_id)]

    def list_holds(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [h.to_dict(i.registry_id) for i in self._selected(registry_id) for h in i.holds]

    def list_loans(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [loan.to_dict(i.registry_id) for i in self._selected(registry_id) for loan in i.loans]

    def list_notices(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [n.to_dict(i.registry_id) for i in self._selected(registry_id) for n in i.notices]

    def list_requests_log(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(e) for e in self.requests_log if not registry_id or e.get("registry_id") == registry_id
            ]

    def item_details(self, barcode: str, registry_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            inst = self.institution_for_item(barcode, registry_id)
            item = inst.items[barcode]
            details = item.to_dict(inst.registry_id)
            details["holds"] = [h.to_dict(inst.registry_id) for h in inst.holds if h.item_barcode == barcode]
            details["loans"] = [
                loan.to_dict(inst.registry_id) for loan in inst.loans if loan.item_barcode == barcode
            ]
            active_loan = inst.active_loan(barcode)
            active_hold = inst.active_hold(barcode)
            details["active_loan"] = active_loan.to_dict(inst.registry_id) if active_loan else None
            details["active_hold"] = active_hold.to_dict(inst.registry_id) if active_hold else None
            return details

    def institution_for_item(self, barcode: str, registry_id: str | None = None) -> Institution:
        """The institution holding ``barcode``; raises NotFound / AmbiguousBarcode."""
        with self.lock:
            if registry_id:
                inst = self.institution(registry_id)
                if barcode not in inst.items:
                    raise NotFound(f"unknown item {barcode!r} in institution {inst.registry_id}")
                return inst
            owners = [i for i in self.institutions.values() if barcode in i.items]
            if not owners:
                raise NotFound(f"unknown item {barcode!r}")
            if len(owners) > 1:
                ids = ", ".join(i.registry_id for i in owners)
                raise AmbiguousBarcode(f"item {barcode!r} exists in institutions {ids}: pass registry_id")
            return owners[0]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = utcnow()
            return {
                "time": iso(now),
                "token_ttl": self.token_ttl,
                "institutions": [i.summary() for i in self.institutions.values()],
                "branches": self.list_branches(),
                "policies": self.list_policies(),
                "patrons": self.list_patrons(),
                "items": self.list_items(),
                "temp_items": self.list_items(temporary=True),
                "holds": self.list_holds(),
                "loans": self.list_loans(),
                "notices": self.list_notices(),
                "tokens": [t.to_dict() for t in self.tokens.values() if t.expires_at > now],
                "faults": self.list_faults(),  # type: ignore[attr-defined]  # FaultState's, in WmsState
                "requests_log": self.list_requests_log(),
            }
