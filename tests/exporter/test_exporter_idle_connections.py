"""Issue 11.1: idle and slow (slowloris) connections must not stop /metrics for everyone else, and are closed
after `--http-timeout`. Before the fix eight idle connections held every scrape thread forever."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from .exporter_process import ExporterProcess

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


def open_connections(port: int, idle: int, half: int) -> list[socket.socket]:
    """`idle` connections that send nothing and `half` that send a request head without its final blank line."""
    socks = []
    for k in range(idle + half):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if k >= idle:
            s.sendall(HALF_REQUEST)
        socks.append(s)
    return socks


def closed_after(socks: list[socket.socket], within: float, since: float | None = None) -> dict[socket.socket, float]:
    """Seconds from `since` (default now) until the server closed each connection (EOF or reset), for those it
    closed within `within`."""
    start, closed = time.monotonic() if since is None else since, {}
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while len(closed) < len(socks) and time.monotonic() - start < within:
            for key, _ in sel.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    closed[key.fileobj] = time.monotonic() - start
                    sel.unregister(key.fileobj)
    return closed


def trickle(port: int, result: dict) -> None:
    """A slowloris that sends one more header byte every 0.2 s: activity must not extend the deadline."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        try:
            while time.monotonic() - start < 20:
                s.sendall(b"a")
                time.sleep(0.2)
        except OSError:
            pass
    result["closed_after"] = time.monotonic() - start


@pytest.mark.timeout(90)
def test_scrapes_answered_with_hundreds_of_idle_and_half_sent_connections_open():
    exporter = ExporterProcess("--backend", f"replay:{FIXTURE}")
    socks = []
    try:
        socks = open_connections(exporter.port, idle=300, half=30)
        time.sleep(0.5)  # the server has accepted them all by now
        for _ in range(5):
            r = requests.get(exporter.url, timeout=5, headers={"Connection": "close"})
            assert r.status_code == 200 and b"gpu_power_watts" in r.content
        assert closed_after(socks, within=0.5) == {}  # the default timeout (30 s) has not run out yet
    finally:
        for s in socks:
            s.close()
        assert exporter.stop() == 0


@pytest.mark.timeout(90)
def test_idle_half_sent_and_trickling_connections_are_closed_after_the_timeout():
    timeout = 1.5
    exporter = ExporterProcess("--backend", f"replay:{FIXTURE}", "--http-timeout", str(timeout))
    socks = []
    try:
        trickled: dict = {}
        trickler = threading.Thread(target=trickle, args=(exporter.port, trickled))
        trickler.start()
        opened = time.monotonic()
        socks = open_connections(exporter.port, idle=100, half=20)
        closed = closed_after(socks, within=timeout + 10, since=opened)
        assert len(closed) == len(socks)
        assert min(closed.values()) >= timeout * 0.95  # not before the timeout
        trickler.join(timeout=25)
        assert trickled["closed_after"] < timeout + 10
        with requests.Session() as session:  # a kept-alive scraper reconnects after its idle connection was closed
            assert session.get(exporter.url, timeout=5).status_code == 200
            time.sleep(timeout + 1)
            assert session.get(exporter.url, timeout=5).status_code == 200
    finally:
        for s in socks:
            s.close()
        assert exporter.stop() == 0
