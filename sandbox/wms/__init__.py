"""OCLC WMS Circulation simulator (sandbox): a real HTTP server on loopback, standard library + lxml only.

Public API::

    from sandbox.wms import WmsSimulator
    sim = WmsSimulator(host="127.0.0.1", port=0, token_ttl=1200)  # port 0 = pick a free port
    sim.start()      # serves in a background thread; returns base_url, e.g. "http://127.0.0.1:54321"
    sim.base_url; sim.port
    sim.seed_demo()  # the demo institutions East (128807) and West (262626); also POST /_sim/seed-demo
    sim.stop()       # shuts down, closes sockets, joins threads

Layout: :mod:`.server` (HTTP, faults, the ``/_sim/`` API), :mod:`.state` (``WmsState``, the one lock-holding
front, built along its seams: :mod:`.records` (statuses, records, errors, time helpers), :mod:`.admin` (data,
lock, set-up and listings), :mod:`.tokens`, :mod:`.faults` (and the request log), :mod:`.circulation` (the
operations and the behaviour the switches choose), :mod:`.seeding` (demo and OCLC-sample institutions)),
:mod:`.options` (the switches for undocumented WMS behaviour), :mod:`.ncip` (NCIP parsing with schema
validation, building, Problem types, circulation statuses), :mod:`.scim` (patron look-up), :mod:`.cli`
(``main(argv)`` for ``python -m sandbox wms``).
"""

from .server import WmsSimulator

__all__ = ["WmsSimulator"]
