"""``python -m bench``: run every benchmark and rewrite bench/RESULTS.md with the figures of this run."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import poller

RESULTS = Path(__file__).with_name("RESULTS.md")


def main() -> int:
    results = poller.run()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    text = f"""# Benchmark results

Written by `make bench` (`python -m bench`) on {datetime.now(UTC):%Y-%m-%d} ({machine}). Compare the ratios
within one run: these machines are shared and absolute times move from run to run.

## The ReShare poller (`bench/poller.py`)

One poll of every library and side in the sandbox (moto server, ReShare simulator over HTTP), after N request
pairs whose lender has shipped were created. The first poll finds every transition and puts it on the bus;
the repeat poll re-reads the same changes (cursor overlap) and finds none: that is the steady cost per
changed request, which must stay flat as N grows, with memory that does not grow with N.

{poller.table(results)}

History: before the poller skipped requests already seen at their `lastUpdated` (2026-11-29), a repeat poll
made three DynamoDB calls per request (a read and two refused conditional writes) and cost 13.5 ms per
request at 50 and 200 pairs on this kind of machine; it is one read now.
"""
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
