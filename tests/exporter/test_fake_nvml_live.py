"""A live FakeGpu behaves like the H200 measured on driver 580: a power profile with exact energy, an energy counter
that steps every ~100 ms, 20 ms driver samples that follow the power, an instant field that holds for 100 ms."""

from __future__ import annotations

import math
import time

import pytest

from .fake_nvml import (
    NVML_FI_DEV_POWER_AVERAGE,
    NVML_FI_DEV_POWER_INSTANT,
    NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
    NVML_TOTAL_POWER_SAMPLES,
    FakeGpu,
    FakeNvml,
    SquareWave,
)

SQUARE = SquareWave(low_mw=100_000, high_mw=700_000, period_s=4.0)


def _numeric_mj(profile: SquareWave, t0: float, t1: float, steps: int = 200_000) -> float:
    dt = (t1 - t0) / steps
    return sum(profile.power_mw(t0 + (k + 0.5) * dt) for k in range(steps)) * dt


def test_square_wave_is_high_first_and_its_energy_is_exact():
    assert SQUARE.power_mw(0.0) == SQUARE.power_mw(1.999) == 700_000
    assert SQUARE.power_mw(2.0) == SQUARE.power_mw(3.999) == SQUARE.power_mw(-0.5) == 100_000
    assert SQUARE.power_mw(4.0) == 700_000
    assert SQUARE.energy_mj(0.0, 4.0) == 1_600_000  # 700 W for 2 s + 100 W for 2 s
    assert SQUARE.energy_mj(1.0, 3.0) == 800_000
    for t0, t1 in ((0.3, 9.7), (-1.25, 2.5), (5.9, 6.1)):
        assert SQUARE.energy_mj(t0, t1) == pytest.approx(_numeric_mj(SQUARE, t0, t1), rel=1e-4)


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _field(nvml: FakeNvml, gpu: FakeGpu, fid: int) -> int:
    (value,) = nvml.nvmlDeviceGetFieldValues(gpu, [fid])
    return value.value.uiVal


def test_the_counter_steps_and_holds_the_exact_energy_up_to_its_latest_step():
    gpu = FakeGpu(live=True, live_since=time.time() - 10.0, profile=SQUARE, counter_step_s=0.5,
                  counter_phase_s=0.123)
    nvml = FakeNvml([gpu])
    origin = gpu.live_since + gpu.counter_phase_s
    for _ in range(2):
        step = origin + math.ceil((time.time() - origin) / 0.5) * 0.5  # the next step instant
        _sleep_until(step + 0.01)
        first = nvml.nvmlDeviceGetTotalEnergyConsumption(gpu)
        time.sleep(0.05)  # still before the next step, 0.5 s later
        reads = [nvml.nvmlDeviceGetTotalEnergyConsumption(gpu), _field(nvml, gpu, NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION)]
        assert reads == [first, first]
        assert first == int(gpu.energy_mj + SQUARE.energy_mj(0.0, step - gpu.live_since))
    assert gpu.calls["nvmlDeviceGetTotalEnergyConsumption"] == 4


def test_a_continuous_counter_is_as_before():
    gpu = FakeGpu(live=True, live_since=time.time() - 2.0, power_mw=300_000)
    before = time.time()
    value = FakeNvml([gpu]).nvmlDeviceGetTotalEnergyConsumption(gpu)
    after = time.time()
    assert gpu.energy_mj + 300_000 * (before - gpu.live_since) - 1 <= value <= \
        gpu.energy_mj + 300_000 * (after - gpu.live_since)


def test_driver_samples_follow_the_profile():
    gpu = FakeGpu(live=True, live_since=time.time() - 1.0, profile=SQUARE)  # buffer: 1.4 s low, then high
    nvml = FakeNvml([gpu])
    _, samples = nvml.nvmlDeviceGetSamples(gpu, NVML_TOTAL_POWER_SAMPLES, 0)
    stamps = [s.timeStamp for s in samples]
    assert len(samples) == 120 and {b - a for a, b in zip(stamps, stamps[1:])} == {20_000}
    for s in samples:
        assert s.sampleValue.uiVal == SQUARE.power_mw(s.timeStamp / 1e6 - gpu.live_since)
    assert {s.sampleValue.uiVal for s in samples} == {100_000, 700_000}
    _, newer = nvml.nvmlDeviceGetSamples(gpu, NVML_TOTAL_POWER_SAMPLES, stamps[99])
    assert [s.timeStamp for s in newer][:20] == stamps[100:]


def test_the_instant_field_holds_its_value_for_100_ms_and_the_average_is_the_last_second():
    fast = SquareWave(low_mw=100_000, high_mw=700_000, period_s=0.04)  # changes every 20 ms
    gpu = FakeGpu(live=True, live_since=time.time() - 1.5, profile=SQUARE)
    nvml = FakeNvml([gpu])
    assert _field(nvml, gpu, NVML_FI_DEV_POWER_AVERAGE) == 700_000  # 0.5-1.5 s after the start: all high
    assert nvml.nvmlDeviceGetPowerUsage(gpu) == 700_000
    gpu.profile = fast
    by_slot: dict[int, set[int]] = {}
    end = time.time() + 0.35
    while time.time() < end:
        before = time.time()
        value = _field(nvml, gpu, NVML_FI_DEV_POWER_INSTANT)
        slot = math.floor(before / 0.1)
        if math.floor(time.time() / 0.1) == slot:  # the read did not straddle a 100 ms boundary
            assert value == fast.power_mw(slot * 0.1 - gpu.live_since)
            by_slot.setdefault(slot, set()).add(value)
        time.sleep(0.003)
    assert len(by_slot) >= 3 and all(len(values) == 1 for values in by_slot.values())


def test_a_gpu_that_is_not_live_ignores_the_profile():
    gpu = FakeGpu(profile=SQUARE, counter_step_s=0.1, power_mw=412_345, average_mw=300_000, energy_mj=5_000)
    nvml = FakeNvml([gpu])
    assert _field(nvml, gpu, NVML_FI_DEV_POWER_INSTANT) == 412_345
    assert nvml.nvmlDeviceGetPowerUsage(gpu) == 300_000
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(gpu) == 5_000
