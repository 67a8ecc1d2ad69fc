"""The demo institutions and the institution OCLC's sample messages address."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .circulation import CirculationState
from .records import (
    CIRCULATING,
    NON_CIRCULATING,
    Institution,
    utcnow,
)


class SeedingState(CirculationState):
    def seed_demo(self) -> None:
        """(Re)create the demo institutions East (128807) and West (262626) from scratch."""
        with self.lock:
            for registry_id in ("128807", "262626"):
                self.institutions.pop(registry_id, None)
            self.upsert_institution(
                registry_id="128807",
                name="East",
                symbol="EAST",
                timezone="America/New_York",
                wskey="east-wskey",
                secret="east-secret",
                branches=[
                    {"branch_id": "128807", "name": "Main", "main": True},
                    {"branch_id": "262630", "name": "Science Library"},
                ],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "128807",
                },
                policies={"patron_loan_days": 28, "ill_loan_days": 42},
            )
            east: list[dict[str, Any]] = [
                {
                    "barcode": "EAST-P-0001",
                    "expires": "2030-12-31",
                    "given_name": "Erin",
                    "family_name": "Good",
                },
                {
                    "barcode": "EAST-P-0002",
                    "expires": "2030-12-31",
                    "blocked": True,
                    "given_name": "Blake",
                    "family_name": "Blocked",
                },
                {
                    "barcode": "EAST-P-0003",
                    "expires": "2020-01-31",
                    "given_name": "Ezra",
                    "family_name": "Expired",
                },
                {
                    "barcode": "ILL-WEST",
                    "expires": "2027-06-30",
                    "borrower_category": "ILL",
                    "symbol": "WEST",
                },
                {"barcode": "ILL-DEFAULT", "expires": "2030-12-31", "borrower_category": "ILL"},
                {"barcode": "ILL-EXPIRED", "expires": "2021-12-31", "borrower_category": "ILL"},
            ]
            self._seed_library("128807", east, "East", lambda n: f"QA76.{n} .E37 2020")
            self.upsert_item(
                registry_id="128807",
                barcode="EAST-REF-0001",
                branch="128807",
                collection_type=NON_CIRCULATING,
                call_number="REF Z1035 .E37",
                title="East Reference Work",
                author="Demo, East",
            )

            self.upsert_institution(
                registry_id="262626",
                name="West",
                symbol="WEST",
                timezone="America/New_York",
                wskey="west-wskey",
                secret="west-secret",
                branches=[{"branch_id": "262626", "name": "West Main", "main": True}],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "262626",
                },
                policies={"patron_loan_days": 28, "ill_loan_days": 42},
            )
            west = [
                {
                    "barcode": "WEST-P-0001",
                    "expires": "2030-12-31",
                    "given_name": "Wendy",
                    "family_name": "Good",
                },
                {
                    "barcode": "ILL-EAST",
                    "expires": "2030-12-31",
                    "borrower_category": "ILL",
                    "symbol": "EAST",
                },
                {"barcode": "ILL-DEFAULT", "expires": "2030-12-31", "borrower_category": "ILL"},
            ]
            self._seed_library("262626", west, "West", lambda n: f"PS35{n:02d} .W47 2019")

    def _seed_library(
        self, registry_id: str, patrons: list[dict[str, Any]], name: str, call_number: Callable[[int], str]
    ) -> None:
        """A demo library's patrons (at its main branch) and its ten circulating books, ``<NAME>-ITEM-0001``..."""
        for patron in patrons:
            self.upsert_patron(registry_id=registry_id, home_branch=registry_id, **patron)
        for n in range(1, 11):
            self.upsert_item(
                registry_id=registry_id,
                barcode=f"{name.upper()}-ITEM-{n:04d}",
                branch=registry_id,
                collection_type=CIRCULATING,
                call_number=call_number(n),
                title=f"{name} Demo Book {n}",
                author=f"Demo, {name}",
            )

    def seed_oclc_samples(self, *, patron: bool = True, item: bool = True) -> Institution:
        """(Re)create an institution matching OCLC's CircILL sample messages, so they run unmodified: registry
        id 91475, symbol OCWMS (the samples' ToAgencyId), patron ZYXWV, the borrowing institution NDOSU's account
        (by symbol), item ABCDE (``patron``/``item`` False leave them out, for the Unknown User/Item samples)."""
        with self.lock:
            self.institutions.pop("91475", None)
            inst = self.upsert_institution(
                registry_id="91475",
                symbol="OCWMS",
                name="OCLC sample library",
                wskey="ocwms-key",
                secret="ocwms-secret",
                branches=[{"branch_id": "91475", "name": "Main", "main": True}, "91476"],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "91475",
                },
            )
            expires = (utcnow().date() + timedelta(days=3650)).isoformat()
            if patron:
                self.upsert_patron(registry_id="91475", barcode="ZYXWV", expires=expires)
            self.upsert_patron(registry_id="91475", barcode="ILL-NDOSU", expires=expires, symbol="NDOSU")
            if item:
                self.upsert_item(registry_id="91475", barcode="ABCDE", title="The Hobbit")
            return inst
