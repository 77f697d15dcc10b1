"""The Energy view's routes on real Locust processes, over HTTP: several exporters (repeated and comma-separated
--exporter-url) summed as results.json sums them, a separate --master/--worker pair under --web-base-path, and
Locust's own Energy tab rows in /stats/requests."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from tests.loadgen.locust_run import LOCUST, ROOT
from tests.loadgen.scripted_server import Script, ScriptedServer
from tests.loadgen.webui_run import (DISAGG_TRACE, H100_CAPPED_FROM_ROW, H100_TRACE, locust_web, replay_exporter,
                                     trace_slice)
from tests.support import free_port, wait_until

SERVED = Script(ttft=0.05, itl=0.02, tokens=20)


def data(base: str) -> dict:
    return requests.get(base + "/energy/data", timeout=10).json()


@pytest.mark.parametrize("joined", [True, False], ids=["comma-separated", "repeated"])
def test_several_exporters_are_summed_like_results_json(tmp_path, joined):
    out = tmp_path / "run"
    capped = trace_slice(H100_TRACE, H100_CAPPED_FROM_ROW, 400, tmp_path / "capped.csv")
    with ScriptedServer(SERVED) as server, replay_exporter(capped) as one, replay_exporter(DISAGG_TRACE) as two:
        urls = ["--exporter-url", f"{one},{two}"] if joined else ["--exporter-url", one, "--exporter-url", two]
        with locust_web(server.url, out, *urls, run_time="5s") as base:
            assert wait_until(lambda: len(data(base)["gpus"]) == 3 and data(base)["points"], timeout=20)
            running = data(base)
            assert requests.get(base + "/energy/download/results.json", timeout=10).status_code == 404
            assert wait_until(lambda: data(base)["final"] is not None, timeout=30)
            final = data(base)
    hosts = {one.split("/")[2], two.split("/")[2]}
    assert {g["host"] for g in running["gpus"]} == hosts
    assert sorted(g["key"] for g in running["gpus"]) == sorted(
        [f"{one.split('/')[2]} gpu 0", f"{two.split('/')[2]} gpu 0", f"{two.split('/')[2]} gpu 1"])
    assert len(running["points"][-1]["watts"]) == 3
    summary = json.loads((out / "results.json").read_text())
    assert sorted(summary["energy_joules_by_gpu"]) == sorted(
        [f"{one.split('/')[2]}/0", f"{two.split('/')[2]}/0", f"{two.split('/')[2]}/1"])
    assert final["final"]["energy_joules"] == summary["energy_joules"] > 0
    # the live sum over the test agrees with the start/stop counter readings within a second of power
    assert final["totals"]["energy_joules"] == pytest.approx(summary["energy_joules"], rel=0.25)


def test_master_and_worker_under_a_base_path(tmp_path):
    """A real --master with the web UI under --web-base-path and a real --worker process: the view is on the
    master, fed by the worker's forwarded requests; Locust's own page lists the Energy tab and its rows."""
    out, port = tmp_path / "run", str(free_port())
    master = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", "1",
              "--web-base-path", "/locust"]
    with ScriptedServer(SERVED) as server, replay_exporter(DISAGG_TRACE) as exporter:
        worker = subprocess.Popen([LOCUST, "-f", "loadgen/disagg.py", "--worker", "--master-host", "127.0.0.1",
                                   "--master-port", port], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            with locust_web(server.url, out, "--exporter-url", exporter, *master, run_time="6s",
                            locustfile="loadgen/disagg.py", base_path="/locust") as base:
                page = requests.get(base + "/", timeout=10).text
                assert '"extended_tabs": [{"key": "energy", "title": "Energy"}]' in page
                assert wait_until(lambda: (data(base)["totals"].get("completed") or 0) > 0, timeout=30)
                view = data(base)
                assert [(g["key"], g["role"]) for g in view["gpus"]] == [("gpu 0", "prefill"), ("gpu 1", "decode")]
                stats = requests.get(base + "/stats/requests", timeout=10).json()
                [tab] = [t for t in stats["extended_stats"] if t["key"] == "energy"]
                rows = {r["name"]: r["value"] for r in tab["data"]}
                assert rows["Charts"] == "open /locust/energy" and rows["J per output token"].endswith(" J")
                assert "gpu 0 (prefill)" in rows and "throttle: none" in rows["gpu 1 (decode)"]
                assert requests.get(base + "/energy", timeout=10).text.startswith("<!doctype html>")
                assert wait_until(lambda: data(base)["downloads"], timeout=40)
                final = data(base)
                assert [d["href"] for d in final["downloads"]] == [
                    "/locust/energy/download/results.json", "/locust/energy/download/requests.jsonl"]
                summary = json.loads((out / "results.json").read_text())
                assert final["final"]["completed"] == summary["completed"] == len(
                    (out / "requests.jsonl").read_text().splitlines())
                assert final["final"]["energy_joules"] == summary["energy_joules"]
        finally:
            if worker.poll() is None:
                worker.terminate()
            worker.wait(30)


def test_prefill_workload_prices_prompt_tokens_live_and_at_the_end(tmp_path):
    out = tmp_path / "run"
    with ScriptedServer(Script(ttft=0.05, itl=0.02, tokens=1)) as server, replay_exporter(DISAGG_TRACE) as exporter:
        with locust_web(server.url, out, "--exporter-url", exporter, "--workload", "prefill", run_time="4s") as base:
            assert wait_until(lambda: (data(base)["totals"].get("joules_per_prompt_token") or 0) > 0, timeout=20)
            live = data(base)["totals"]
            assert live["joules_per_prompt_token"] == pytest.approx(
                live["energy_joules"] / live["total_input_tokens"])
            assert wait_until(lambda: data(base)["final"] is not None, timeout=30)
            final = data(base)["final"]
    summary = json.loads((out / "results.json").read_text())
    assert final["joules_per_prompt_token"] == summary["joules_per_prompt_token"] > 0
