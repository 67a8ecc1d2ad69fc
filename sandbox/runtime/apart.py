"""moto and the two simulators in processes of their own (``Sandbox(apart=True)``).

By default the sandbox runs everything in one Python process: moto, both simulators, the functions. That is
the cheapest way to run the suite, but whatever the bridge's process measures (its CPU, its memory) then
includes moto's and the simulators'. With ``apart=True`` each of the three servers runs in a child process
(``sandbox.runtime.apart.main``: moto, reshare or wms), the same code on loopback over the same HTTP, and the
sandbox's process holds only the functions, their schedules and queue pollers: what a Lambda function instance
holds. The benchmarks use it (``bench/poller.py``: the poller's own memory; ``bench/queues.py``: the step
queue's rate, not the simulators' CPU).

What needs the servers in the sandbox's process is refused in this mode: simulated time (``Sandbox.advance``:
moto's SQS clock is patched in its process) and the simulators' webhook relay (configured on the object).

A child prints one line, ``listening <url>``, once it serves, and stops (its server closed) when its standard
input closes or on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
READY = "listening "
CHILD = "import sys; from sandbox.runtime.apart import main; raise SystemExit(main(sys.argv[1:]))"


class ServerProcess:
    """One server in a child process: its ``url``; ``reset()`` (moto), ``seed_demo()`` and ``stop()``."""

    def __init__(self, kind: str, host: str, port: int, options: dict[str, str] | None = None) -> None:
        self.kind = kind
        argv = [sys.executable, "-c", CHILD, kind, "--host", host, "--port", str(port)]
        if options:
            argv += ["--options", json.dumps(options)]
        self._process = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError(f"{kind} in its own process did not start (it said {line!r})")
        self.url = line[len(READY) :].strip()
        self.pid = self._process.pid

    def start(self) -> str:
        return self.url

    def reset(self) -> None:
        """Empty every moto backend (moto only)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def seed_demo(self) -> None:
        """The demo tenants or libraries (a simulator: its ``/_sim/seed-demo``, as in its own process)."""
        requests.post(f"{self.url}/_sim/seed-demo", timeout=30).raise_for_status()

    def stop(self) -> None:
        process = self._process
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()  # the child's cue to stop
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sandbox.runtime.apart")
    parser.add_argument("kind", choices=("moto", "reshare", "wms"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--options", default="{}", help="WMS simulator switches, as JSON")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.CRITICAL)
    server: Any
    if args.kind == "moto":
        from sandbox.runtime.aws import MotoServer

        server = MotoServer(args.port, args.host)
    elif args.kind == "reshare":
        from sandbox.reshare import ReShareSimulator

        server = ReShareSimulator(host=args.host, port=args.port)
    else:
        from sandbox.wms import WmsSimulator

        server = WmsSimulator(host=args.host, port=args.port, options=json.loads(args.options))
    url = server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print(f"{READY}{url}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
    return 0
