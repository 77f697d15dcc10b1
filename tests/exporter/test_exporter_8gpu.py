"""Issue 18's 8-GPU script and what it needs from exporter_bench.py, on FakeNvml GPUs at the NVML call boundary.

The figures are measured, not asserted: these tests check that every figure the next session needs is written,
for every one of 8 GPUs, and that the benchmark's own counter reads stay out of the exporter's cost."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

from benchmarks.exporter_bench import energy_errors_by_gpu, fake_backend, measure
from llm_dvfs.exporter.backends.cadence import ReadCadence

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu" / "exporter_8gpu.sh"


def test_the_8gpu_script_measures_and_packs_everything_on_eight_fake_gpus(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "FAKE_GPUS": "8", "DURATION": "3", "SCRAPES": "5", "CHECK_EVERY": "1", "REPETITIONS": "10"}
    done = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout, done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["concurrency-summary.json", "exporter-8gpu.tgz", "summary.json"]
    with tarfile.open(out / "exporter-8gpu.tgz") as tar:
        names = {name.removeprefix("./") for name in tar.getnames()}
    assert {"bench/idle-defaults.json", "bench/idle-energy-every-1s.json", "concurrency-idle.json",
            "load.txt"} <= names
    rows = {row["label"]: row for row in json.loads((out / "summary.json").read_text())}
    assert set(rows) == {"idle-defaults", "idle-energy-every-1s"}
    assert rows["idle-energy-every-1s"]["energy_interval_s"] == 1.0 and rows["idle-defaults"]["energy_interval_s"] > 1
    for row in rows.values():
        assert row["devices"] == 8 and sorted(row["power_samples_per_s_per_gpu"]) == [str(i) for i in range(8)]
        assert row["tick_duration_ms_p99"] >= row["tick_duration_ms_p50"] > 0
        assert row["jitter_ms_p99"] >= row["jitter_ms_p50"] >= 0 and row["scrape_ms_p99"] > 0
    concurrency = json.loads((out / "concurrency-summary.json").read_text())
    assert set(concurrency["idle"]) >= {"driver", "energy_counter", "power_sample_buffer", "power_instant_field",
                                        "sm_clock", "utilization"}
    assert concurrency["idle"]["energy_counter"]["devices"] == 8


_BLOCK = bytes(64 * 1024)


def _busy(seconds: float) -> float:
    """Burn `seconds` of CPU time without holding the GIL, as the driver's busy-wait inside a ctypes call does
    (hashlib lets go of the GIL while it hashes more than 2 KiB); returns the Unix time it started."""
    started, end = time.time(), time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(_BLOCK)
    return started


def test_energy_is_checked_on_every_gpu_and_the_checks_cpu_is_not_the_exporters():
    """A counter that busy-waits 5 ms a read, as the real one does, read for 8 GPUs four times a second: 16% of a
    core that must show up as the check's, not the exporter's, and must not lengthen any tick."""
    backend, counter = fake_backend(8, ReadCadence.for_tick(0.1, 10.0, 2.0), None)

    def costly_counter(index: int) -> float:
        started = _busy(0.005)
        now = time.time()
        return counter(index) - 300.0 * (now - started) / 2  # 300 W: the value as of the call's midpoint

    result = measure(backend, 0.1, duration=4.0, scrapes=5, counter=costly_counter, check_every=0.25)
    assert result["energy_check_cpu_s"] > 0.3
    # a counter that changes on every read is found continuous and read once a round, not until it steps
    assert result["energy_check_continuous_counters"] == 8 and result["energy_check_fallbacks"] == 0
    assert result["cpu_percent_of_one_core"] < 8.0
    assert result["tick_duration_ms_p99"] < 25.0  # a tick that made the check's reads would last 40 ms
    points = [(t, {int(g): tuple(v) for g, v in p.items()}) for t, p in result["energy_check_points"]]
    assert all(len(p) == 8 for _, p in points) and len(points) >= 10
    errors = energy_errors_by_gpu(points, 2.0)
    assert sorted(errors) == list(range(8))
    # each read paired with its own GPU's ticks at its own time: dated a tick (100 ms) off, a 2 s window at a
    # steady 300 W is 5% off; what remains is the exporter's own dating (its integral ends at its latest power
    # sample, a driver sample or a tick's reading, not exactly at the tick's read)
    assert all(max(map(abs, e)) < 2.0 for e in errors.values()), errors


def test_the_8gpu_script_only_reads_the_gpus():
    text = SCRIPT.read_text()
    assert "export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1" in text
    code = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    calls = [line for line in code if "nvidia-smi" in line]
    assert calls and all(line.startswith(("nvidia-smi --query-gpu=", "nvidia-smi topo -m")) for line in calls), calls
    for path in (SCRIPT, ROOT / "benchmarks" / "nvml_concurrency.py", ROOT / "benchmarks" / "exporter_bench.py"):
        assert not re.search(r"nvmlDevice(Set|Reset|Clear)", path.read_text()), path
