"""Command line for the WMS simulator: ``main(["--port", "9140"])`` serves until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from .options import OptionError, parse_pairs
from .server import WmsSimulator


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sandbox wms", description="OCLC WMS Circulation simulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9140, help="port (default 9140; 0 = any free port)")
    parser.add_argument("--no-demo", action="store_true", help="start empty, without the demo data")
    parser.add_argument(
        "--token-ttl", type=int, default=1200, help="token lifetime in seconds (default 1200)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="K=V",
        help="set a switch for an undocumented WMS behaviour (repeatable; see GET /_sim/options)",
    )
    args = parser.parse_args(argv)
    try:
        options = parse_pairs(args.option)
    except OptionError as exc:
        parser.error(str(exc))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim = WmsSimulator(host=args.host, port=args.port, token_ttl=args.token_ttl, options=options)
    if not args.no_demo:
        sim.seed_demo()
    try:
        url = sim.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", flush=True)
        return 2
    print(f"WMS simulator listening on {url}" + ("" if args.no_demo else " (demo data loaded)"), flush=True)

    stopped = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stopped.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)  # a flag, not KeyboardInterrupt: stop() always runs whole
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        print("WMS simulator stopped", flush=True)
    return 0
