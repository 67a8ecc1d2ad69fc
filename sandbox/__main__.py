"""``python -m sandbox up|demo|wms|reshare``: the whole bridge locally, the demo, or one simulator on its own.

    python -m sandbox up [--tick SECONDS] [--gateway-port 3000] [--reshare-port 9130] [--wms-port 9140]
                         [--moto-port 5055] [--time-scale 0.25] [--ports-auto] [--no-demo] [--quiet]
                         [--endpoints .sandbox/endpoints.json]
    python -m sandbox demo [--option K=V ...]      (sandbox.walkthrough; `make demo`)
    python -m sandbox wms [--port 9140] ...        (sandbox.wms.cli)
    python -m sandbox reshare [--port 9130] ...    (sandbox.reshare.cli)

Ctrl-C (SIGINT) or SIGTERM stops everything cleanly and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ENDPOINTS = Path(".sandbox") / "endpoints.json"  # illbridge_cli/target.py looks for it here


def _up(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox up",
        description="Run the bridge locally: moto, the ReShare and WMS simulators, the template's functions "
        "behind a local API gateway, their schedules and queue pollers.",
    )
    parser.add_argument("--tick", type=float, default=None, help="fire every schedule this often (seconds)")
    parser.add_argument("--gateway-port", type=int, default=3000, help="local API gateway (default 3000)")
    parser.add_argument("--reshare-port", type=int, default=9130, help="ReShare simulator (default 9130)")
    parser.add_argument("--wms-port", type=int, default=9140, help="WMS simulator (default 9140)")
    parser.add_argument("--moto-port", type=int, default=5055, help="embedded AWS, moto (default 5055)")
    parser.add_argument(
        "--ports-auto", action="store_true", help="any free ports (same as every port 0); see the banner"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.25,
        help="every timing of the template (function timeouts, step lease, client timeouts and pauses, queue "
        "visibility timeouts) times this factor, so retries show sooner and the timings still fit together "
        "(default 0.25: a failed step comes back after 90 s instead of 360 s; 1 keeps the template's)",
    )
    parser.add_argument("--no-demo", action="store_true", help="no demo data and no demo libraries")
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help="the ReShare simulator does not push state changes to the webhook (the poller alone sees them)",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--endpoints",
        default=str(ENDPOINTS),
        help="write where everything is to this file while running, for `illbridge` (default "
        f"{ENDPOINTS}; '' for none)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="K=V",
        help="a WMS simulator switch for an undocumented behaviour (repeatable; see GET /_sim/options)",
    )
    args = parser.parse_args(argv)
    from sandbox.wms.options import OptionError, parse_pairs

    try:
        wms_options = parse_pairs(args.option)
    except OptionError as exc:
        parser.error(str(exc))
    if args.tick is not None and args.tick <= 0:
        parser.error("--tick must be positive")
    if not args.time_scale > 0:
        parser.error("--time-scale must be greater than 0")

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from sandbox.runtime import Sandbox

    auto = args.ports_auto
    sb = Sandbox(
        gateway_port=0 if auto else args.gateway_port,
        reshare_port=0 if auto else args.reshare_port,
        wms_port=0 if auto else args.wms_port,
        moto_port=0 if auto else args.moto_port,
        tick=args.tick,
        background=True,
        demo=not args.no_demo,
        relay=not args.no_relay,
        wms_options=wms_options,
        visibility=None,
        time_scale=None if args.time_scale == 1 else args.time_scale,
    )
    stopping = threading.Event()

    def _terminate(signum: int, frame: Any) -> None:
        stopping.set()

    # explicit handlers: a shell starts background jobs with SIGINT ignored, and Python keeps it ignored
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sb.start()
        except OSError as exc:
            print(f"cannot start the sandbox: {exc} (a port in use? try --ports-auto)", file=sys.stderr)
            return 2
        if args.endpoints:
            sb.write_endpoints(args.endpoints)
        print(sb.banner(), flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        began = time.monotonic()
        if args.endpoints:
            Path(args.endpoints).unlink(missing_ok=True)
        sb.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(f"sandbox stopped ({time.monotonic() - began:.1f} s)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "up": "run the whole bridge",
        "demo": "one interlibrary loan told as staff live it (make demo)",
        "wms": "the WMS simulator",
        "reshare": "the ReShare simulator",
    }
    if not argv or argv[0] not in commands:
        usage = "\n".join(f"  {name:8} {text}" for name, text in commands.items())
        print(f"usage: python -m sandbox {{up,demo,wms,reshare}} [options]\n{usage}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "up":
        return _up(rest)
    if command == "demo":
        from sandbox.walkthrough import main as demo_main

        return demo_main(rest)
    if command == "wms":
        from sandbox.wms.cli import main as wms_main

        return wms_main(rest)
    from sandbox.reshare.cli import main as reshare_main

    return reshare_main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
