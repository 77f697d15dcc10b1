"""The benchmark script runs and reports every figure the README needs (numbers are measured, not asserted)."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
import time
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
    assert {name for name, _ in runs} >= {"new-defaults", "idle-energy-every-30s", "load-energy-every-10s"}
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
    every_30s = next(row for row in summary if row["label"] == "idle-energy-every-30s")
    assert (every_30s["energy_interval_s"], every_30s["buffer_interval_s"]) == (30.0, 2.0)
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
    from benchmarks.exporter_gpu_check import square_load

    assert "from benchmarks.exporter_gpu_check import square_load" in SCRIPT.read_text() and callable(square_load)


def test_energy_error_over_windows():
    from benchmarks.exporter_bench import energy_errors

    # exported energy 1% high on GPU 0 and exact on GPU 1, points every 5 s
    points = [(5.0 * k, {0: (101.0 * k, 100.0 * k), 1: (50.0 * k, 50.0 * k)}) for k in range(8)]
    errors = energy_errors(points, 20.0)
    assert len(errors) == 2 * 4  # windows 0-20, 5-25, 10-30, 15-35 for each GPU
    assert sorted(set(round(e, 6) for e in errors)) == [0.0, 1.0]


def _perfect_points(gpu, dated: list[tuple[float, float]]) -> list[tuple[float, dict[int, tuple[float, float]]]]:
    """Check points of a perfect exporter: its energy at each dated time is the fake GPU's exact energy then."""
    return [(at, {0: (gpu.energy_at(at) / 1000.0, value)}) for at, value in dated]


def test_the_step_dated_reference_dates_each_value_at_the_counters_step():
    """On a fake GPU whose counter steps every 100 ms under the square load: every value is dated within its
    uncertainty of the step it holds, and a perfect exporter is ~0% off over windows against it, while the same
    counter read once at random moments (the value dated at the read) is off by the counter's staleness."""
    from benchmarks.exporter_bench import EnergyCheck, energy_errors_by_gpu, fake_counter, fake_gpus

    (gpu,) = fake_gpus(1, "square", counter_step_s=0.1)
    counter = fake_counter([gpu])
    check = EnergyCheck(counter, every=0.15)
    check.start([0])
    undated, end = [], time.time() + 4.5
    while time.time() < end:  # the undated single read, at random moments, meanwhile
        t0 = time.time()
        value = counter(0)
        undated.append(((t0 + time.time()) / 2, value))
        time.sleep(random.uniform(0.1, 0.2))
    check.stop_reading()
    reads = [r[0] for r in check.rounds]
    assert len(reads) >= 20 and check.fallbacks == 0 and check.continuous == {0: False}
    late = 1e-4  # a fake read takes µs: its value is from a little before the read's end
    for read in reads:
        step = gpu.last_counter_step(read.at + read.uncertainty + late)
        assert read.at - read.uncertainty - late <= step  # the step lies in the dating interval ...
        assert read.value == int(gpu.energy_at(step)) / 1000.0  # ... and the value is the energy up to it
        # so a perfect exporter's energy at the dated time is off by at most 700 W times that interval
        assert abs(gpu.energy_at(read.at) / 1000.0 - read.value) <= 700.0 * (read.uncertainty + late) + 0.002
    dated_errors = energy_errors_by_gpu(_perfect_points(gpu, [(r.at, r.value) for r in reads]), 2.0)[0]
    undated_errors = energy_errors_by_gpu(_perfect_points(gpu, undated), 2.0)[0]
    assert len(dated_errors) >= 10 and len(undated_errors) >= 10
    # ~2 s windows: a dating error under a few ms at 700 W is under 0.5%; 0-100 ms of staleness is several %
    assert max(map(abs, dated_errors)) < 0.5, dated_errors
    assert max(map(abs, undated_errors)) > 1.0, undated_errors


def test_a_continuous_counter_is_read_once_per_round_and_a_frozen_one_falls_back():
    from benchmarks.exporter_bench import EnergyCheck, fake_counter, fake_gpus

    reads = []
    continuous = fake_counter(fake_gpus(2, counter_step_s=0.0))

    def counting(index: int) -> float:
        reads.append(index)
        return continuous(index)

    check = EnergyCheck(counting, every=0.05)
    check.start([0, 1])
    time.sleep(0.4)
    check.stop_reading()
    assert check.continuous == {0: True, 1: True} and check.fallbacks == 0
    # the first round reads each GPU three times (old value, new value, changed again: continuous), then once
    assert len(reads) == 2 * 3 + 2 * (len(check.rounds) - 1) and len(check.rounds) >= 4
    assert all(r.uncertainty is not None and r.uncertainty < 0.01 for round_ in check.rounds for r in round_.values())

    frozen = EnergyCheck(lambda index: 123.0, every=1.0, give_up_s=0.05)
    read = frozen.read_dated(0)
    assert (read.value, read.uncertainty, frozen.fallbacks) == (123.0, None, 1)


def test_bench_records_the_fake_load_and_counter_step_and_refuses_a_negative_step(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--fake-devices", "1", "--fake-load",
                             "square", "--fake-counter-step", "0.05", "--duration", "1", "--scrapes", "2",
                             "--energy-check-every", "0.5", "--json", str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert (doc["fake_load"], doc["fake_counter_step_s"], doc["energy_reference"]) == \
        ("square", 0.05, "counter, step-dated")
    assert doc["energy_check_fallbacks"] == 0 and doc["energy_check_continuous_counters"] == 0
    assert 0 < doc["energy_check_dating_uncertainty_ms_median"] <= doc["energy_check_dating_uncertainty_ms_max"]
    bad = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--fake-devices", "1",
                          "--fake-counter-step", "-1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--fake-counter-step must be 0 or more" in bad.stderr
    assert "Traceback" not in bad.stderr
