"""The exporter's scrape reader (`llm_dvfs.exporter.scrape`) against a real exporter process replaying a trace."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from llm_dvfs.exporter.scrape import ScrapeError, fetch, parse
from tests.exporter.exporter_process import ROOT, ExporterProcess
from tests.support import free_port

REPLAY = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
FIELDS = {"gpu_power_watts": "power_watts", "gpu_power_average_watts": "power_average_watts",
          "gpu_energy_joules_total": "energy_joules", "gpu_utilization_ratio": "utilization_ratio",
          "gpu_temperature_celsius": "temperature_celsius", "gpu_memory_used_bytes": "memory_used_bytes",
          "gpu_memory_total_bytes": "memory_total_bytes", "gpu_power_limit_watts": "power_limit_watts",
          "gpu_performance_state": "performance_state"}


@pytest.fixture(scope="module")
def exporter():
    proc = ExporterProcess("--backend", f"replay:{REPLAY}", "--interval", "0.1")
    yield proc.url
    proc.stop()


def test_every_device_series_of_a_live_page_lands_in_its_reading(exporter):
    text = requests.get(exporter, timeout=5).text
    snap = parse(text, exporter)
    assert [(d.kind, d.index) for d in snap.devices] == [("gpu", 0), ("gpu", 1)]
    checked = 0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "gpu" not in s.labels or not s.name.startswith("gpu_"):
                continue
            d = snap.device(int(s.labels["gpu"]))
            assert d is not None and d.uuid == s.labels["uuid"]
            if s.name in FIELDS:
                assert getattr(d, FIELDS[s.name]) == s.value, s.name
            elif s.name == "gpu_clock_hertz":
                assert d.clocks_hertz[s.labels["clock"]] == s.value
            elif s.name == "gpu_clock_event_active":
                assert d.clock_events[s.labels["reason"]] is (s.value == 1)
            elif s.name == "gpu_info":
                assert d.name == s.labels["name"] and d.labels["backend"] == "replay"
                assert d.labels["energy_source"] == "counter"
            elif s.name == "gpu_up":
                assert d.up is True
            else:
                continue
            checked += 1
    assert checked >= 2 * 15
    gpu0 = snap.device(0)
    assert gpu0.sm_clock_hertz in (345e6, 1980e6) and 40 < gpu0.power_watts < 700
    assert gpu0.clock_events_active <= {"gpu_idle", "sw_power_cap"} and set(gpu0.clock_events) == {"gpu_idle",
                                                                                                     "sw_power_cap"}
    assert gpu0.role is None  # the exporter itself serves no role; Prometheus' relabelling adds it


def test_fetch_takes_the_time_and_the_sample_round_trips_to_the_csv_units(exporter):
    snap = fetch(exporter, timeout=5)
    d = snap.device(1)
    sample = d.sample()
    assert sample.power_w == d.power_watts and sample.clocks_hz["sm"] == d.sm_clock_hertz
    assert sample.utilization == d.utilization_ratio and sample.performance_state == 0
    assert sample.clock_events == dict(d.clock_events)
    assert snap.time > 1.7e9 and snap.url == exporter


def test_role_and_host_backend_series_are_read():
    text = ('cpu_info{cpu="0",uuid="cpu-0",name="pkg",role="prefill",backend="host"} 1\n'
            'cpu_power_watts{cpu="0",uuid="cpu-0",role="prefill"} 42.5\n'
            'cpu_up{cpu="1",uuid="cpu-1"} 1\n')  # no cpu_info: not a device the exporter lists
    snap = parse(text)
    assert [(d.kind, d.index, d.role, d.power_watts) for d in snap.devices] == [("cpu", 0, "prefill", 42.5)]
    assert snap.devices[0].energy_joules is None and snap.devices[0].clock_events_active == frozenset()


class _Html(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<html><body>not metrics</body></html>" if self.path == "/metrics" else b"gone"
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_unreachable_error_status_and_not_metrics_are_scrape_errors():
    with pytest.raises(ScrapeError, match="cannot read"):
        fetch(f"http://127.0.0.1:{free_port()}/metrics", timeout=2)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(ScrapeError, match="404"):
            fetch(f"{base}/other", timeout=2)
        with pytest.raises(ScrapeError, match="is not Prometheus metrics"):
            fetch(f"{base}/metrics", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
