"""The benchmark script runs and reports every figure the README needs (numbers are measured, not asserted)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_with_fake_devices_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--fake-devices", "2", "--duration", "1",
                             "--scrapes", "20", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    for key in ("cpu_percent_of_one_core", "jitter_ms_p50", "jitter_ms_p99", "scrape_ms_p50", "scrape_ms_p99"):
        assert doc[key] >= 0 and key in result.stdout
    assert doc["devices"] == 2 and doc["scrapes"] == 20 and doc["ticks"] >= 10


SCRIPT = ROOT / "benchmarks" / "gpu" / "exporter_h200.sh"


def _bench_runs() -> list[tuple[str, list[str]]]:
    """The `bench NAME FLAGS...` lines of the real-GPU script, with its loop variable filled in."""
    runs = []
    for line in SCRIPT.read_text().splitlines():
        if line.strip().startswith("bench "):
            words = shlex.split(line.strip().replace("${every}", "10").replace('"$every"', "10"))
            runs.append((words[1], words[2:]))
    return runs


def _shortened(flags: list[str]) -> list[str]:
    out, values = [], iter(flags)
    for flag in values:
        value = next(values)
        short = {"--duration": "2.5", "--scrapes": "5", "--energy-check-every": "0.5"}.get(flag, value)
        out += [flag, short]
    return out


def test_real_gpu_script_runs_each_of_its_benchmarks_on_a_fake_gpu(tmp_path):
    """The GPU script's Python side, with the one fake GPU at the NVML call boundary instead of --backend nvml:
    each run's flags are accepted, every figure is written, and the summary reads them all."""
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runs = _bench_runs()
    assert {name for name, _ in runs} >= {"new-defaults", "old-cadence", "load-energy-every-10s"}
    for name, flags in runs:
        done = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--fake-devices", "1", "--fake-costs",
                               "h200", "--label", name, "--json", str(tmp_path / f"{name}.json"),
                               *_shortened(flags)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--summarize", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(row["label"] for row in summary) == sorted(name for name, _ in runs)
    old = next(row for row in summary if row["label"] == "old-cadence")
    assert (old["energy_interval_s"], old["buffer_interval_s"]) == (1.0, 1.0)
    for row in summary:
        # 20 ms driver samples are 50/s; a 2.5 s run sees one or two 2 s drains, so its rate is coarse
        assert row["cpu_percent_of_one_core"] > 0 and row["power_samples_per_s_min"] > 30
        assert row["energy_error_pct_max_abs_20s"] != row["energy_error_pct_max_abs_20s"]  # NaN: runs too short


def test_field_check_compares_each_field_with_its_getter_and_times_the_calls():
    from benchmarks.nvml_fields_check import compare

    from .fake_nvml import NVML_ERROR_NOT_SUPPORTED, NVML_SUCCESS, FakeGpu, FakeNvml

    gpu = FakeGpu(average_mw=300_000, unsupported={"limit_field"})
    result = compare(FakeNvml([gpu]), 0, seconds=0.2, interval=0.02)
    average, limit, energy = (result["pairs"][k] for k in ("power_average_mw", "power_limit_mw", "energy_mj"))
    assert average["field_return"] == energy["field_return"] == NVML_SUCCESS and average["reads"] >= 3
    assert average["field_minus_getter_max_abs"] == 0 and average["getter_median"] == 300_000
    assert energy["field_minus_getter_max_abs"] == 0
    assert limit["field_return"] == NVML_ERROR_NOT_SUPPORTED and limit["reads"] == 0
    assert result["calls_ms"]["exporter_batch_instant_average_cpu"]["median"] >= 0
    assert "getter_energy_mj_wall" in result["calls_ms"]
    assert "benchmarks/nvml_fields_check.py" in SCRIPT.read_text()


def test_the_load_the_script_drives_is_importable():
    from benchmarks.exporter_gpu_check import torch_matmul_load

    assert "torch_matmul_load" in SCRIPT.read_text() and callable(torch_matmul_load)


def test_energy_error_over_windows():
    from benchmarks.exporter_bench import energy_errors

    # exported energy 1% high on GPU 0 and exact on GPU 1, points every 5 s
    points = [(5.0 * k, {0: (101.0 * k, 100.0 * k), 1: (50.0 * k, 50.0 * k)}) for k in range(8)]
    errors = energy_errors(points, 20.0)
    assert len(errors) == 2 * 4  # windows 0-20, 5-25, 10-30, 15-35 for each GPU
    assert sorted(set(round(e, 6) for e in errors)) == [0.0, 1.0]
