"""Request pairs for the benchmarks: one borrower request of east whose lender, west, has already shipped."""

from __future__ import annotations

from typing import Any

import requests


def create_shipped_pairs(
    http: requests.Session, reshare_url: str, size: int, barcode: str
) -> list[dict[str, Any]]:
    """Create ``size`` pairs in the ReShare simulator, lent item ``<barcode>-<n>``; the simulator's answers."""
    pairs = []
    for n in range(size):
        answer = http.post(
            f"{reshare_url}/_sim/requests",
            json={
                "title": f"Bench title {n}",
                "patron_barcode": "EAST-P-0001",
                "pickup_location_slug": "east-main",
                "volumes": [{"item_barcode": f"{barcode}-{n:05d}"}],
                "lender_state": "RES_ITEM_SHIPPED",
            },
            timeout=30,
        )
        answer.raise_for_status()
        pairs.append(answer.json())
    return pairs
