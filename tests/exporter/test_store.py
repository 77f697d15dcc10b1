"""Energy accounting and the power histogram."""

from __future__ import annotations

import pytest

from llm_dvfs.exporter.backends.base import DeviceInfo, DeviceLostError, GpuSample, PowerSample
from llm_dvfs.exporter.energy import EnergyCounter
from llm_dvfs.exporter.store import PowerHistogram, Store

INFO = DeviceInfo(index=0, name="g", uuid="GPU-0", vendor="nvidia", driver="1", backend="nvml")


def test_hardware_counter_deltas_are_summed():
    e = EnergyCounter()
    for t, counter in [(0.0, 1000.0), (0.1, 1030.0), (0.2, 1065.0)]:
        e.add(t, GpuSample(power_w=300.0, energy_j=counter))
    assert e.total == pytest.approx(65.0)


def test_counter_reset_falls_back_to_power_times_time():
    e = EnergyCounter()
    e.add(0.0, GpuSample(power_w=300.0, energy_j=5000.0))
    e.add(1.0, GpuSample(power_w=300.0, energy_j=5300.0))
    e.add(2.0, GpuSample(power_w=200.0, energy_j=12.0))  # driver reload: counter restarted
    e.add(3.0, GpuSample(power_w=200.0, energy_j=212.0))
    assert e.resets == 1
    assert e.total == pytest.approx(300.0 + 250.0 + 200.0)  # reset tick: trapezoid of 300 W -> 200 W over 1 s


def test_without_counter_power_samples_are_integrated():
    e = EnergyCounter()
    e.add(0.0, GpuSample(power_w=100.0))
    samples = tuple(PowerSample(0.02 * k, 100.0 + 100.0 * (k >= 3)) for k in range(1, 6))
    e.add(0.1, GpuSample(power_w=200.0, power_samples=samples))
    # 0 -> 0.04 at 100 W, one 20 ms ramp 100 -> 200, 0.06 -> 0.1 at 200 W
    assert e.total == pytest.approx(0.04 * 100 + 0.02 * 150 + 0.04 * 200)


def test_failed_read_is_not_integrated_across():
    e = EnergyCounter()
    e.add(0.0, GpuSample(power_w=100.0))
    e.gap()
    e.add(10.0, GpuSample(power_w=100.0))
    e.add(11.0, GpuSample(power_w=100.0))
    assert e.total == pytest.approx(100.0)


def test_histogram_counts_driver_samples_when_present():
    store = Store([INFO], bounds=(100, 200))
    store.update(1, 0.1, {0: GpuSample(power_w=150.0)})
    samples = tuple(PowerSample(0.1 + 0.02 * k, w) for k, w in enumerate([90.0, 150.0, 250.0, 260.0, 80.0]))
    snap = store.update(2, 0.2, {0: GpuSample(power_w=180.0, power_samples=samples)})
    h = snap.devices[0].power_histogram
    assert h.counts == (2, 4, 6) and h.count == 6
    assert h.total == pytest.approx(150 + 90 + 150 + 250 + 260 + 80)


def test_snapshot_keeps_the_error_and_the_energy_of_a_failed_device():
    store = Store([INFO])
    store.update(1, 0.0, {0: GpuSample(power_w=100.0, energy_j=10.0)})
    store.update(2, 0.1, {0: GpuSample(power_w=100.0, energy_j=20.0)})
    snap = store.update(3, 0.2, {0: DeviceLostError("gone")})
    (state,) = snap.devices
    assert not state.up and isinstance(state.error, DeviceLostError) and state.energy_j == pytest.approx(10.0)
    assert store.snapshot() is snap


def test_power_histogram_buckets_are_upper_inclusive():
    h = PowerHistogram((100, 200))
    for w in (100.0, 100.5, 200.0, 1000.0):
        h.observe(w)
    assert h.frozen().counts == (1, 3, 4)
