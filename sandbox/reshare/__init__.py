"""ReShare (mod-rs via Okapi) simulator: a real HTTP server on loopback for the bridge's tests and sandbox.

    from sandbox.reshare import ReShareSimulator
    sim = ReShareSimulator(host="127.0.0.1", port=0, token_ttl=600)
    base_url = sim.start()
    sim.seed_demo()
    ...
    sim.stop()

See server.py for the endpoints, state.py for the state machine and query.py for list queries.
"""

from .server import ReShareSimulator

__all__ = ["ReShareSimulator"]
