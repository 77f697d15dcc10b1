"""The two read-only GPU probes behind issue 16's energy and cadence choices, run at the NVML call boundary on a
fake GPU whose counter steps like an H200's: what they record is what a real run's analysis relies on."""

from __future__ import annotations

import time

import pytest

from benchmarks.nvml_counter_timing import _reads
from benchmarks.nvml_update_periods import changes, readers

from .fake_nvml import FakeGpu, FakeNvml, SquareWave


def test_counter_timing_records_the_steps_and_the_power_samples():
    gpu = FakeGpu(live=True, profile=SquareWave(100_000, 700_000, 1.0), counter_step_s=0.1)
    nvml = FakeNvml([gpu])
    rows, samples = [], []
    _reads(nvml, gpu, 0.6, rows, samples, [int(time.time() * 1e6)])
    steps = [b for a, b in zip(rows, rows[1:]) if b[2] != a[2]]
    assert 4 <= len(steps) <= 7  # one every 100 ms
    assert all(r[5] == r[5] for r in rows) and all(r[0] <= r[1] <= r[4] for r in rows)  # getter, then field
    assert len(samples) >= 15 and {w for _, w in samples} <= {100.0, 700.0}


def test_update_periods_counts_changes_and_their_spacing():
    figures = changes([(0.0, 1.0), (0.1, 1.0), (0.2, 2.0), (0.3, 2.0), (0.5, 3.0), (0.9, 4.0)])
    assert (figures["reads"], figures["changes"]) == (6, 3)  # changes seen at 0.1, 0.3 and 0.5 s
    assert figures["median_s_between_changes"] == pytest.approx(0.2)
    gpu = FakeGpu(live=True, profile=SquareWave(100_000, 700_000, 1.0))
    values = {name: read() for name, read in readers(FakeNvml([gpu]), gpu).items()}
    assert values["power_instant_field"] in (100_000.0, 700_000.0) and values["sm_clock"] == 345
