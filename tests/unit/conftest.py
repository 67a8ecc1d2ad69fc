"""Unit tests do not reach the network (pytest-socket): the step rules and everything else here cannot open a
socket at all; the HTTP clients' and the store's own unit tests talk only to the servers they start on
127.0.0.1 (a WMS/ReShare stand-in, a moto server), never to another host."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LOOPBACK_ONLY = {
    "wms",
    "reshare",
    "store",
    "bus",
    "staff",
}  # folders whose tests run their own 127.0.0.1 servers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if HERE not in path.parents:
            continue
        folder = path.relative_to(HERE).parts[0]
        if folder in LOOPBACK_ONLY:
            item.add_marker(pytest.mark.allow_hosts(["127.0.0.1"]))
        else:
            item.add_marker(pytest.mark.disable_socket)
