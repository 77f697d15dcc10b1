"""What operators get from any client_python exporter, from the running exporter (issue 13): gzip when asked,
OpenMetrics when asked, IPv6 listen addresses, process metrics; and the page made once per tick, not per scrape."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from .exporter_process import ExporterProcess
from tests.support import metric_sum, scrape, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
# what Prometheus 2.42 sends
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.fixture(scope="module")
def exporter():
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--interval", "1")
    assert wait_until(lambda: metric_sum(scrape(e.url), "llm_dvfs_exporter_ticks_total") >= 1, timeout=10)
    yield e
    assert e.stop() == 0


def raw(url: str, **headers: str) -> requests.Response:
    """The response with its body exactly as sent (requests would gunzip it)."""
    r = requests.get(url, headers=headers, timeout=5, stream=True)
    r.raw_body = r.raw.read(decode_content=False)
    return r


def ticks(text: str) -> float:
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "llm_dvfs_exporter_ticks_total")


def same_tick(url: str, first: dict[str, str], second: dict[str, str]) -> tuple[requests.Response, requests.Response]:
    """Two responses from the same tick (1 s apart), retried when a tick fell between them."""
    for _ in range(10):
        a, b = raw(url, **first), raw(url, **second)
        decoded = [gzip.decompress(r.raw_body) if r.headers.get("Content-Encoding") == "gzip" else r.raw_body
                   for r in (a, b)]
        if ticks(decoded[0].decode()) == ticks(decoded[1].decode()):
            return a, b
    raise AssertionError("no two scrapes fell in the same tick")


def test_gzip_when_asked_and_the_same_page(exporter):
    zipped, plain = same_tick(exporter.url, {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert int(zipped.headers["Content-Length"]) == len(zipped.raw_body) < len(plain.raw_body) / 3
    assert gzip.decompress(zipped.raw_body) == plain.raw_body
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_page_is_rendered_once_per_tick_not_per_scrape(exporter):
    # process_cpu_seconds_total and the GC counters move between renderings; scrapes in one tick get the same bytes
    a, b = same_tick(exporter.url, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "identity"})
    assert a.raw_body == b.raw_body
    a, b = same_tick(exporter.url, {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "gzip"})
    assert a.raw_body == b.raw_body


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=1.0.0", PROMETHEUS_ACCEPT])
def test_openmetrics_when_asked(exporter, accept):
    om, text = same_tick(exporter.url, {"Accept": accept, "Accept-Encoding": "identity"},
                         {"Accept-Encoding": "identity"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    body = om.raw_body.decode()
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(body)}
    assert families["gpu_energy_joules"].type == "counter"
    assert {s.name for s in families["gpu_energy_joules"].samples} == {"gpu_energy_joules_total"}
    assert families["process_cpu_seconds"].type == "counter"
    assert {s.name for s in families["llm_dvfs_exporter_ticks"].samples} == {"llm_dvfs_exporter_ticks_total"}
    # the same collector, the same series, in both formats
    def series(fams):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams for s in f.samples}
    assert series(families.values()) == series(text_string_to_metric_families(text.raw_body.decode()))


def test_process_metrics_show_the_exporters_own_cost(exporter):
    samples = scrape(exporter.url)
    assert metric_sum(samples, "process_cpu_seconds_total") > 0
    assert metric_sum(samples, "process_resident_memory_bytes") > 10e6
    assert metric_sum(samples, "process_open_fds") > 0
    assert metric_sum(samples, "process_start_time_seconds") > 1.6e9
    assert metric_sum(samples, "python_gc_collections_total") > 0


def test_other_paths_methods_and_head(exporter):
    assert requests.get(exporter.url.replace("/metrics", "/nope"), timeout=5).status_code == 404
    assert requests.post(exporter.url, data=b"x", timeout=5).status_code == 405
    head = requests.head(exporter.url, headers={"Accept-Encoding": "identity"}, timeout=5)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 1000
    assert requests.get(exporter.url + "?name[]=gpu_up", timeout=5).status_code == 200


def test_malformed_request_gets_400_and_is_closed(exporter):
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("address", ["::1", "[::1]"])
def test_ipv6_listen_address(address):
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", host=address)
    try:
        assert requests.get(e.url, timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):  # a specific IPv6 address listens on itself only
            requests.get(f"http://127.0.0.1:{e.port}/metrics", timeout=5)
    finally:
        assert e.stop() == 0


@pytest.mark.parametrize("args, fragment", [
    (["--listen-address", "no-such-host.invalid"], "cannot listen on no-such-host.invalid"),
    (["--listen-address", "192.0.2.1"], "cannot listen on 192.0.2.1"),
    (["--http-timeout", "inf"], "must be a finite number of seconds"),
    (["--http-timeout", "0"], "--http-timeout"),
])
def test_bad_listen_options_are_one_line_errors(args, fragment):
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}", "--port",
                             "0", "--duration", "1", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
