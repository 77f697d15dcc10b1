"""benchmarks/nvml_concurrency.py tells a driver that serializes NVML reads across GPUs from one that does not.

The fake is at the NVML call boundary: FakeNvml, whose energy-counter read here waits in "the driver" without the
GIL (as a ctypes call into libnvidia-ml does), either side by side or, with `serialize`, one device at a time behind
one lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from benchmarks.nvml_concurrency import CALLS, measure, overlap, summary

from .fake_nvml import FakeGpu, FakeNvml

ROOT = Path(__file__).resolve().parents[2]
ENERGY_READ_S = 0.01


class DriverLockFakeNvml(FakeNvml):
    """FakeNvml whose energy-counter read takes ENERGY_READ_S in the driver, behind one driver-wide lock if asked."""

    def __init__(self, gpus: list[FakeGpu], serialize: bool) -> None:
        super().__init__(gpus)
        self._driver_lock = threading.Lock() if serialize else None

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        with self._driver_lock or nullcontext():
            time.sleep(ENERGY_READ_S)
        return super().nvmlDeviceGetTotalEnergyConsumption(gpu)


def _energy_rows(serialize: bool) -> list[dict]:
    nvml = DriverLockFakeNvml([FakeGpu(uuid=f"GPU-{i}") for i in range(8)], serialize)
    return measure(nvml, [1, 2, 4, 8], repetitions=12, calls=["energy_counter"])["calls"]["energy_counter"]


def test_a_driver_that_serializes_the_energy_read_shows_per_call_wall_time_growing_with_devices():
    rows = _energy_rows(serialize=True)
    assert [r["devices"] for r in rows] == [1, 2, 4, 8]
    ratios = [r["wall_median_vs_one_device"] for r in rows]
    assert ratios[0] == 1.0 and ratios[1] < ratios[2] < ratios[3]
    assert ratios[3] > 3.0  # about (8 + 1) / 2 when eight reads queue
    assert rows[3]["round_span_ms_median"] > 6 * 1000 * ENERGY_READ_S
    assert rows[3]["overlap"] == "serialized"
    assert all(r["errors"] == 0 for r in rows)


def test_a_driver_that_reads_devices_side_by_side_shows_flat_per_call_wall_time():
    rows = _energy_rows(serialize=False)
    assert all(r["wall_median_vs_one_device"] < 1.6 for r in rows)
    assert rows[3]["round_span_ms_median"] < 2 * 1000 * ENERGY_READ_S
    assert [r["overlap"] for r in rows] == ["undetermined", "concurrent", "concurrent", "concurrent"]
    # the wait is not CPU time here (a sleep); on a real GPU the driver busy-waits, and CPU time says so
    assert rows[3]["cpu_ms_median"] < 0.5 * rows[3]["wall_ms_median"]


def test_every_call_is_timed_at_the_counts_the_host_has():
    gpus = [FakeGpu(uuid=f"GPU-{i}", live=True, power_mw=300_000) for i in range(3)]
    result = measure(FakeNvml(gpus), [1, 2, 4, 8], repetitions=5)
    assert result["counts"] == [1, 2] and set(result["calls"]) == set(CALLS)
    for name, rows in result["calls"].items():
        assert [r["devices"] for r in rows] == [1, 2], name
        assert all(r["errors"] == 0 and r["wall_ms_p99"] >= r["wall_ms_median"] > 0 for r in rows), name
    assert gpus[2].calls == {}  # two devices at most: the third is never read
    assert gpus[1].calls["nvmlDeviceGetSamples"] == 5
    brief = summary(result)
    assert set(brief) == set(CALLS) and brief["energy_counter"]["devices"] == 2


def test_overlap_needs_calls_much_longer_than_the_start_skew():
    assert overlap(8, 0.004, 0.030, 0.0001) == "serialized"
    assert overlap(8, 0.004, 0.005, 0.0001) == "concurrent"
    assert overlap(8, 0.004, 0.012, 0.0001) == "partial"
    assert overlap(8, 0.000002, 0.0001, 0.00005) == "undetermined"
    assert overlap(1, 0.004, 0.004, 0.0) == "undetermined"


def test_bad_arguments_give_one_line_and_exit_2():
    for flags in (["--counts", "1,two"], ["--calls", "energy_counter,fan_speed"], ["--repetitions", "0"]):
        done = subprocess.run([sys.executable, "benchmarks/nvml_concurrency.py", "--out", "x.json", *flags],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"error: {flags[0]}" in done.stderr.strip().splitlines()[-1]
