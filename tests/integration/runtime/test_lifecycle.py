"""Starting and stopping the runtime in-process: nothing is left behind (threads, ports, environment), and a
second sandbox cannot start while one runs (the environment and moto's backends are process-wide)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

from sandbox.runtime import Sandbox


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_background_sandbox_stops_without_leaving_threads_ports_or_environment() -> None:
    # Given the threads and environment before, and a sandbox with its scheduler and pollers running
    before = set(threading.enumerate())
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    sb = Sandbox(gateway_port=0, reshare_port=0, wms_port=0, moto_port=0, tick=0.5, background=True)
    started = time.monotonic()
    sb.start()
    try:
        startup = time.monotonic() - started
        assert startup < 30
        assert os.environ["AWS_ENDPOINT_URL"] == sb.urls["moto"]
        names = {t.name for t in threading.enumerate()}
        assert any(n.startswith("sandbox-schedule-ReSharePollerFunction") for n in names)
        assert sum(n.startswith("sandbox-sqs-BorrowReceivedFunction") for n in names) == 2
        # and a second sandbox in the same process is refused
        with pytest.raises(RuntimeError, match="already running"):
            Sandbox().start()
        time.sleep(1.2)  # a couple of scheduled runs
    finally:
        # When it stops
        sb.stop()
    # Then no thread it started is left, every port is free, and the environment is as it was
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()
    for url in sb.urls.values():
        with socket.socket() as probe:  # as a restarted server binds (connections may be in TIME_WAIT)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", _port(url)))
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before
    # and stopping twice is harmless, and a new sandbox can start (from an empty moto) and stop again
    sb.stop()
    again = Sandbox(gateway_port=0, reshare_port=0, wms_port=0, moto_port=0, demo=False)
    again.start()
    try:
        assert again.boto3_client("ssm").describe_parameters()["Parameters"] == []
        tables = again.boto3_client("dynamodb").list_tables()["TableNames"]
        assert sorted(tables) == [again.physical_name("BridgeTable")]
    finally:
        again.stop()


def test_apart_the_servers_run_in_processes_of_their_own_and_stop_with_the_sandbox() -> None:
    # Given a sandbox with moto and both simulators apart (what the benchmarks measure the bridge with)
    sb = Sandbox(apart=True, visibility=1)
    sb.start()
    try:
        children = {"moto": sb._moto, "reshare": sb.reshare, "wms": sb.wms}
        pids = {name: child.pid for name, child in children.items()}  # type: ignore[union-attr]
        assert os.getpid() not in pids.values() and len(set(pids.values())) == 3
        # Then the bridge works against them as in one process: the demo libraries are there, a poll runs
        tenants = requests.get(f"{sb.urls['reshare']}/_sim/tenants", timeout=10)
        assert tenants.ok and {t["tenant"] for t in tenants.json()} >= {"east", "west"}
        assert sb.run_schedule("ReSharePollerFunction").ok
        # and what needs the servers in this process is refused
        with pytest.raises(RuntimeError, match="simulated time"):
            sb.advance(1)
    finally:
        sb.stop()
    # And stopping ends the three processes
    for pid in pids.values():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid)
    with pytest.raises(ValueError, match="relay"):
        Sandbox(apart=True, relay=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
