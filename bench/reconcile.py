"""What one reconciliation run costs in WMS calls, per check-in probe, in the sandbox (moto server + simulators).

For each size N and probe, in a fresh process: N lender requests of west shipped to east (so west's bridge has
N lent items on loan to one partner account, ILL-EAST) and N borrower requests of east received (N temp items
held for one patron, EAST-P-0001); then one reconciliation run of each library with every check due, counting
the look-up calls the WMS simulator logged (`/_sim/requests-log`) and the token requests. LookupUser costs one
call per patron or partner account whatever N; LookupItem one per item. Ratios within one run only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import requests

from bench.pairs import create_shipped_pairs

SIZES = (10, 40)
PROBES = ("lookup_user", "lookup_item")


def measure(size: int, probe: str) -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    sb = Sandbox(background=False, visibility=1, wms_options={"lookup_item": "supported"}).start()
    try:
        from illbridge.intake.reconcile import reconcile_library
        from illbridge.wiring import current_services

        with requests.Session() as http:
            for n in range(size):
                http.post(
                    f"{sb.urls['wms']}/_sim/items",
                    json={"registry_id": "262626", "barcode": f"WEST-RC-{n:05d}", "branch": "262626"},
                    timeout=30,
                ).raise_for_status()
            pairs = create_shipped_pairs(http, sb.urls["reshare"], size, "WEST-RC")
        services = current_services()
        from illbridge.intake.polling import poll_all

        poll_all(services.ports)  # west checks each item out to ILL-EAST
        sb.drain()
        reshare = services.reshare(services.configs.get("east"))
        for pair in pairs:  # east receives each: a temp item + a hold for EAST-P-0001
            reshare.perform_action(pair["borrower"]["id"], "requesterReceived", {"note": "bench"})
        poll_all(services.ports)
        sb.drain()
        real_clock = services.clock
        services.clock = lambda: real_clock() + timedelta(hours=2)
        before = len(requests.get(f"{sb.urls['wms']}/_sim/requests-log", timeout=30).json())
        row: dict[str, Any] = {"size": size, "probe": probe}
        for library in ("west", "east"):
            config = services.configs.get(library)
            config = config.model_copy(update={"wms": config.wms.model_copy(update={"checkin_probe": probe})})
            began = time.perf_counter()
            report = reconcile_library(services.ports, config)
            row[f"{library}_s"] = round(time.perf_counter() - began, 3)
            row[f"{library}_checked"] = report.checked
            row[f"{library}_calls"] = report.calls
        log = requests.get(f"{sb.urls['wms']}/_sim/requests-log", timeout=30).json()[before:]
        row["lookups_logged"] = sum(1 for e in log if e["operation"] in ("LookupUser", "LookupItem"))
        row["tokens_logged"] = sum(1 for e in log if e["operation"] == "token")
        services.clock = real_clock
        return row
    finally:
        sb.stop()


def run() -> list[dict[str, Any]]:
    results = []
    for size in SIZES:
        for probe in PROBES:
            out = subprocess.run(
                [sys.executable, "-m", "bench.reconcile", str(size), probe],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| items per side | probe | lending run (west): requests checked, calls, time | borrowing run (east): "
        "requests checked, calls, time | look-ups WMS logged | token requests |",
        "|---:|---|---|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | `{r['probe']}` | {r['west_checked']}, {r['west_calls']}, {r['west_s']} s | "
            f"{r['east_checked']}, {r['east_calls']}, {r['east_s']} s | {r['lookups_logged']} | "
            f"{r['tokens_logged']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)
    print(json.dumps(measure(int(sys.argv[1]), sys.argv[2])))
