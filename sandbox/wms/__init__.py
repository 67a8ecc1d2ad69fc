"""OCLC WMS Circulation simulator (sandbox): a real HTTP server on loopback, standard library + lxml only.

Public API::

    from sandbox.wms import WmsSimulator
    sim = WmsSimulator(host="127.0.0.1", port=0, token_ttl=1200)  # port 0 = pick a free port
    sim.start()      # serves in a background thread; returns base_url, e.g. "http://127.0.0.1:54321"
    sim.base_url; sim.port
    sim.seed_demo()  # the demo institutions East (128807) and West (262626); also POST /_sim/seed-demo
    sim.stop()       # shuts down, closes sockets, joins threads

Layout: :mod:`.server` (HTTP, faults, the ``/_sim/`` API), :mod:`.state` (the circulation model and its
decisions), :mod:`.ncip` (NCIP parsing/building, Problem types, LookupItem circulation statuses),
:mod:`.scim` (patron look-up), :mod:`.cli` (``main(argv)`` for ``python -m sandbox wms``).
"""

from .server import WmsSimulator

__all__ = ["WmsSimulator"]
