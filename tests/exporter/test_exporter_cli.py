"""The exporter as a subprocess: bad input ends in one line and a non-zero exit; a real run serves /metrics
over HTTP and ends with complete files on SIGTERM."""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import free_port, metric_sum, scrape, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"


def run_exporter(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def start_exporter(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_backend():
    assert_one_line_error(run_exporter("--backend", "quantum", "--no-http"), "unknown backend 'quantum'")


def test_bad_gpu_id_on_replay():
    assert_one_line_error(run_exporter("--backend", f"replay:{FIXTURE}", "--gpu-ids", "7", "--no-http"),
                          "GPU id 7 does not exist")


def test_gpu_ids_not_numbers():
    assert_one_line_error(run_exporter("--gpu-ids", "zero", "--no-http"), "--gpu-ids")


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(run_exporter("--backend", f"replay:{FIXTURE}", "--listen-address", "127.0.0.1",
                                           "--port", str(port), "--duration", "1"), f"port {port}", "in use")


def test_unwritable_output(tmp_path):
    target = tmp_path / "no-such-dir" / "deeper" / "out.csv"
    assert_one_line_error(run_exporter("--backend", f"replay:{FIXTURE}", "--no-http", "--output", str(target),
                                       "--duration", "1"), "cannot write")


def test_nvml_absent_when_asked_for():
    # this machine has no NVIDIA driver: pynvml is installed but libnvidia-ml cannot be loaded
    assert_one_line_error(run_exporter("--backend", "nvml", "--no-http"), "NVML")


def test_amdsmi_absent_when_asked_for():
    assert_one_line_error(run_exporter("--backend", "amdsmi", "--no-http"), "amdsmi")


def test_malformed_replay_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,datetime,gpu_0_power\n1,x,100\n2,y,lots\n")
    assert_one_line_error(run_exporter("--backend", f"replay:{bad}", "--no-http"), "malformed replay file",
                          "'lots'")


def test_missing_replay_file(tmp_path):
    assert_one_line_error(run_exporter("--backend", f"replay:{tmp_path / 'nope.csv'}", "--no-http"),
                          "cannot read samples CSV")


def test_via_the_llm_dvfs_dispatcher():
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "exporter", "--interval", "-1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert_one_line_error(result, "llm-dvfs exporter: error", "--interval")


def test_help_lists_every_flag():
    out = run_exporter("--help").stdout
    for flag in ("--backend", "--gpu-ids", "--interval", "--port", "--listen-address", "--no-http", "--output",
                 "--json", "--duration"):
        assert flag in out


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_scraped_over_http_and_files_complete_on_signal(tmp_path, stop_signal):
    port = free_port()
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    proc = start_exporter("--backend", f"replay:{FIXTURE}", "--listen-address", "127.0.0.1", "--port", str(port),
                          "--output", str(out_csv), "--json", str(out_json))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert wait_until(lambda: _up(url), timeout=20), proc.stderr.read() if proc.poll() is not None else ""
        assert wait_until(lambda: metric_sum(scrape(url), "llm_dvfs_exporter_ticks_total") >= 15, timeout=10)
        samples = scrape(url)
        assert metric_sum(samples, "gpu_up") == 2
        assert metric_sum(samples, "gpu_info", source="replay") == 2
        assert metric_sum(samples, "gpu_power_watts", gpu="0") > 0
        assert metric_sum(samples, "gpu_energy_joules_total", gpu="1") > 0
        # a row reaches the CSV within about a second even while running
        assert wait_until(lambda: len(out_csv.read_text().splitlines()) > 5, timeout=3)
    finally:
        proc.send_signal(stop_signal)
        proc.wait(timeout=15)
    assert proc.returncode == 0, proc.stderr.read()
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads(out_json.read_text())
    assert len(doc["samples"]) == len(rows) >= 15
    assert doc["stats"]["0"]["energy_j"] == pytest.approx(float(rows[-1]["gpu_0_energy_j"]), rel=1e-4)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
