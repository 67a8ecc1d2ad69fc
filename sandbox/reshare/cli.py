"""Run the ReShare simulator from a shell: `python -m sandbox.reshare [--host H] [--port P] [--no-demo]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .server import ReShareSimulator


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sandbox.reshare", description="ReShare (mod-rs via Okapi) simulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=9130, help="port to bind (default 9130, Okapi's; 0 = any)"
    )
    parser.add_argument("--no-demo", action="store_true", help="start without the demo tenants east and west")
    parser.add_argument(
        "--token-ttl", type=float, default=600, help="token lifetime in seconds (default 600)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every call")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s"
    )

    sim = ReShareSimulator(host=args.host, port=args.port, token_ttl=args.token_ttl)
    try:
        url = sim.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):  # a flag, not KeyboardInterrupt: stop() runs whole
            signal.signal(signum, lambda *_: done.set())
    try:
        if not args.no_demo:
            sim.seed_demo()
        tenants = ", ".join(sorted(sim.store.tenants)) or "none"
        print(f"ReShare simulator on {url} (tenants: {tenants}); Ctrl-C stops", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print("ReShare simulator stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
