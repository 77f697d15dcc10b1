"""The whole monitoring path, real end to end: Debian's Prometheus (built from the committed prometheus.yml and
rules.yml) scrapes the exporter replaying the committed trace, a bounded headless Locust run, vLLM (CPU build)
and, for the disaggregated case, the proxy; then every query of every generated panel and annotation, with the
template variables set to All, must return at least one finite point over the test window."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.dashboards.panel_queries import ROOT, Query, grouped, load_dashboards, needs_hardware, substitute
from tests.dashboards.stack import (PrometheusServer, config_for_test, finite_points, start_exporter, start_locust,
                              start_process, stop, trace_with_power_average)
from tests.support import free_port, wait_until

TRACE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
LOAD_SECONDS = 45  # covers the 30 s rule windows with room to spare

pytestmark = [pytest.mark.vllm, pytest.mark.prometheus, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")]


def _run_and_query(tmp_path: Path, targets: dict[str, str], exporter_port: int, locustfile: str, host: str,
                   metrics_port: int, checked: list[Query]) -> None:
    exporter = start_exporter(trace_with_power_average(TRACE, tmp_path / "trace.csv"), exporter_port,
                              tmp_path / "exporter.log")
    prometheus = PrometheusServer(config_for_test(targets), tmp_path).start()
    locust = None
    try:
        start = time.time()
        locust = start_locust(locustfile, host, metrics_port, LOAD_SECONDS, 4, tmp_path / "locust.log",
                              tmp_path / "results")
        # Every target must be up while the test runs (the load generator only exists while Locust runs).
        assert wait_until(lambda: all(prometheus.targets_up().get(job) for job in targets), timeout=60), \
            f"targets not up: {prometheus.targets_up()}\n{prometheus.log_tail()}"
        locust.wait(timeout=LOAD_SECONDS + 120)
        time.sleep(3)  # a last rule evaluation after the final scrape
        end = time.time()
        missing = []
        for q in checked:
            result = prometheus.query_range(substitute(q.expr, range_s=int(end - start)), start, end)
            if finite_points(result) == 0:
                missing.append(str(q))
        assert not missing, "queries without data:\n" + "\n".join(missing) + \
            f"\n--- locust log ---\n{(tmp_path / 'locust.log').read_text(errors='replace')[-3000:]}"
        ok = prometheus.query_range('sum(llm_requests_total{status="ok"})', start, end)
        assert max(float(v) for s in ok for _, v in s["values"]) > 0, "no request succeeded"
    finally:
        if locust is not None:
            stop(locust)
        prometheus.stop()
        stop(exporter)


def _replayable(qs: list[Query]) -> list[Query]:
    return [q for q in qs if not needs_hardware(q)]


def test_single_server_panels_return_data(vllm_server, tmp_path):
    """Overview and exporter-health dashboards against one vLLM."""
    exporter_port, metrics_port = free_port(), free_port()
    targets = {"exporter": f"127.0.0.1:{exporter_port}", "loadgen": f"127.0.0.1:{metrics_port}",
               "vllm": f"127.0.0.1:{vllm_server.port}"}
    checked = _replayable(grouped(load_dashboards(), disaggregated=False))
    assert len(checked) > 40
    _run_and_query(tmp_path, targets, exporter_port, "loadgen/single.py", vllm_server.url, metrics_port, checked)


def test_disaggregated_panels_return_data(vllm_pair, tmp_path):
    """Every dashboard (prefill-vs-decode included) against the prefill/decode pair behind the proxy; GPU 0 and 1
    of the replayed trace take the prefill and decode roles through the committed relabelling."""
    prefill, decode = vllm_pair
    exporter_port, metrics_port, proxy_port = free_port(), free_port(), free_port()
    proxy = start_process([sys.executable, "-m", "llm_dvfs.cli", "proxy", "--port", str(proxy_port),
                    "--prefill", prefill.url, "--decode", decode.url], tmp_path / "proxy.log")
    try:
        def proxy_up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{proxy_port}/health", timeout=2).ok
            except requests.RequestException:
                return False

        assert wait_until(proxy_up, timeout=60), (tmp_path / "proxy.log").read_text(errors="replace")[-2000:]
        targets = {"exporter": f"127.0.0.1:{exporter_port}", "loadgen": f"127.0.0.1:{metrics_port}",
                   "vllm-prefill": f"127.0.0.1:{prefill.port}", "vllm-decode": f"127.0.0.1:{decode.port}",
                   "proxy": f"127.0.0.1:{proxy_port}"}
        dashboards = load_dashboards()
        checked = _replayable(grouped(dashboards, True) + grouped(dashboards, False))
        _run_and_query(tmp_path, targets, exporter_port, "loadgen/disagg.py", f"http://127.0.0.1:{proxy_port}",
                       metrics_port, checked)
    finally:
        stop(proxy)
