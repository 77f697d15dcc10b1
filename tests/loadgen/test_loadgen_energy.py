"""--exporter-url against a real llm-dvfs exporter process (replay backend over a recorded-format CSV)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from tests.support import free_port, metric_sum, scrape, wait_until

from tests.loadgen.locust_run import ROOT, read_run, run_locust
from tests.loadgen.scripted_server import Script, ScriptedServer

REPLAY = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"


@pytest.fixture
def exporter():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{REPLAY}",
                             "--listen-address", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"

    def up() -> bool:
        try:
            return metric_sum(scrape(url), "gpu_energy_joules_total") > 0
        except requests.RequestException:
            return False

    try:
        assert wait_until(up, timeout=30), "exporter did not serve gpu_energy_joules_total"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def per_gpu(url: str) -> dict[str, float]:
    return {dict(labels)["gpu"]: v for (name, labels), v in scrape(url).items() if name == "gpu_energy_joules_total"}


@pytest.mark.skipif(not REPLAY.exists(), reason="exporter replay fixture missing")
def test_energy_per_gpu_token_and_request(exporter, tmp_path):
    before, t0 = per_gpu(exporter), time.time()
    with ScriptedServer(Script(ttft=0.02, itl=0.01, tokens=10)) as server:
        done = run_locust(server.url, tmp_path, "--exporter-url", exporter, users=2, run_time="3s")
    after, t1 = per_gpu(exporter), time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    summary, _, _ = read_run(tmp_path)
    by_gpu = summary["energy_joules_by_gpu"]
    assert set(by_gpu) == set(before) == {"0", "1"}
    for gpu, joules in by_gpu.items():
        assert 0 < joules <= after[gpu] - before[gpu]  # the test window lies inside our two readings
    energy = summary["energy_joules"]
    assert energy == pytest.approx(sum(by_gpu.values()))
    assert summary["avg_watts"] == pytest.approx(energy / summary["energy_window_s"])
    outer_watts = sum(after[g] - before[g] for g in after) / (t1 - t0)
    assert 0.5 * outer_watts <= summary["avg_watts"] <= 1.5 * outer_watts
    assert summary["joules_per_output_token"] == pytest.approx(energy / summary["total_output_tokens"])
    assert summary["joules_per_request"] == pytest.approx(energy / summary["completed"])


def test_unreachable_exporter_is_one_line(tmp_path):
    done = run_locust(f"http://127.0.0.1:{free_port()}", tmp_path, "--exporter-url",
                      f"http://127.0.0.1:{free_port()}/metrics", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("locust: error: --exporter-url")]
