"""NvmlBackend against FakeNvml: units, field values, the driver sample buffer, clock events, failures."""

from __future__ import annotations

import pytest

from llm_dvfs.exporter.backends.base import BackendUnavailableError, DeviceLostError, DeviceNotFoundError, DeviceReadError
from llm_dvfs.exporter.backends.nvml import CLOCK_EVENT_REASONS, NvmlBackend, decode_clock_events

from .fake_nvml import (NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_GPU_IS_LOST, NVML_ERROR_UNKNOWN, FakeGpu,
                        FakeNvml)


def test_reads_every_field_in_si_units():
    gpu = FakeGpu(power_mw=412_345, average_mw=300_000, energy_mj=5_000_000, util_gpu=87, util_memory=40,
                  temperature=61, clocks_mhz={0: 1755, 1: 1980, 2: 2619}, pstate=0, power_limit_mw=700_000)
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    (info,) = backend.devices()
    assert (info.name, info.uuid, info.vendor, info.driver, info.energy_source) == (
        "NVIDIA H100 80GB HBM3", gpu.uuid, "nvidia", "570.86.15", "counter")
    assert info.max_clocks_hz == {"sm": 1980e6, "memory": 2619e6, "graphics": 1980e6}
    s = backend.read(0)
    assert s.power_w == pytest.approx(412.345)  # the instant field, not the 1 s average
    assert s.power_average_w == pytest.approx(300.0)
    assert s.energy_j == pytest.approx(5000.0)
    assert (s.utilization, s.memory_utilization) == (pytest.approx(0.87), pytest.approx(0.40))
    assert s.temperature_c == 61
    assert s.clocks_hz == {"sm": 1980e6, "memory": 2619e6, "graphics": 1755e6}
    assert s.memory_total_bytes == 81_559 * 1024 * 1024
    assert s.power_limit_w == 700.0 and s.performance_state == 0
    assert s.failed_fields == ()


def test_energy_counter_is_read_once_per_tick():
    gpu = FakeGpu()
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    before = gpu.calls["nvmlDeviceGetTotalEnergyConsumption"]
    for _ in range(5):
        backend.read(0)
    assert gpu.calls["nvmlDeviceGetTotalEnergyConsumption"] - before == 5


def test_driver_sample_buffer_is_deduplicated_by_timestamp():
    gpu = FakeGpu(whole_buffer=True)  # a driver that answers with its whole ring buffer every time
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    gpu.driver_samples = [(1_000_000 + 20_000 * k, 100_000 + k) for k in range(5)]
    first = backend.read(0).power_samples
    gpu.driver_samples += [(1_000_000 + 20_000 * k, 100_000 + k) for k in range(5, 10)]
    second = backend.read(0).power_samples
    third = backend.read(0).power_samples
    assert [p.watts for p in first] == pytest.approx([100.0 + k / 1000 for k in range(5)])
    assert [p.timestamp for p in second] == pytest.approx([1.0 + 0.02 * k for k in range(5, 10)])
    assert third == ()  # nothing new: nothing repeated


def test_no_new_driver_samples_is_not_an_error():
    backend = NvmlBackend(nvml=FakeNvml([FakeGpu(driver_samples=[])]))
    s = backend.read(0)
    assert s.power_samples == () and s.failed_fields == ()


@pytest.mark.parametrize("mask, active", [
    (0x0, set()),
    (0x1, {"gpu_idle"}),
    (0x4 | 0x20, {"sw_power_cap", "sw_thermal_slowdown"}),
    (0x8 | 0x40 | 0x80, {"hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}),
])
def test_clock_event_decoding(mask, active):
    decoded = decode_clock_events(mask)
    assert set(decoded) == set(CLOCK_EVENT_REASONS)
    assert {k for k, v in decoded.items() if v} == active


def test_clock_events_come_from_the_device():
    backend = NvmlBackend(nvml=FakeNvml([FakeGpu(clock_event_mask=0x4)]))
    events = backend.read(0).clock_events
    assert events["sw_power_cap"] and not events["gpu_idle"]


def test_unsupported_fields_are_none_and_not_asked_again():
    gpu = FakeGpu(unsupported={"nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetSamples", "instant",
                               "average_field"})
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    assert backend.devices()[0].energy_source == "integrated"
    s = backend.read(0)
    backend.read(0)
    assert s.energy_j is None and s.power_samples == () and s.failed_fields == ()
    assert s.power_w == pytest.approx(70.0)  # no instant field: falls back to nvmlDeviceGetPowerUsage
    assert gpu.calls["nvmlDeviceGetSamples"] == 1


def test_instant_and_average_power_come_from_one_field_call_per_read():
    gpu = FakeGpu(power_mw=412_345, average_mw=300_000)
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    before = gpu.calls.get("nvmlDeviceGetFieldValues", 0)
    for _ in range(5):
        s = backend.read(0)
    assert gpu.calls["nvmlDeviceGetFieldValues"] - before == 5
    assert "nvmlDeviceGetPowerUsage" not in gpu.calls
    assert s.power_w == pytest.approx(412.345) and s.power_average_w == pytest.approx(300.0)


def test_average_power_falls_back_to_the_getter_where_its_field_is_not_supported():
    gpu = FakeGpu(power_mw=412_345, average_mw=300_000, unsupported={"average_field"})
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    for _ in range(3):
        s = backend.read(0)
    assert s.power_w == pytest.approx(412.345) and s.power_average_w == pytest.approx(300.0)
    assert s.failed_fields == () and gpu.calls["nvmlDeviceGetPowerUsage"] == 3


def test_a_failing_field_call_is_counted_as_power():
    gpu = FakeGpu()
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    gpu.fail_calls["nvmlDeviceGetFieldValues"] = NVML_ERROR_UNKNOWN
    s = backend.read(0)
    assert s.power_w is None and s.power_average_w is None and s.failed_fields == ("power",)
    gpu.fail_calls.clear()
    assert backend.read(0).power_average_w == pytest.approx(70.0)  # not taken for unsupported


def test_lost_gpu_raises_device_lost_then_recovers():
    gpu = FakeGpu()
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    gpu.fail = NVML_ERROR_GPU_IS_LOST
    with pytest.raises(DeviceLostError):
        backend.read(0)
    gpu.fail = NVML_ERROR_UNKNOWN
    with pytest.raises(DeviceReadError):
        backend.read(0)
    gpu.fail = None
    assert backend.read(0).power_w == pytest.approx(72.0)


def test_one_failing_call_is_reported_not_fatal():
    gpu = FakeGpu()
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    gpu.fail_calls["nvmlDeviceGetTemperature"] = NVML_ERROR_UNKNOWN
    s = backend.read(0)
    assert s.temperature_c is None and s.failed_fields == ("temperature",)
    assert s.power_w == pytest.approx(72.0)


def test_gpu_ids_select_and_check():
    nvml = FakeNvml([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")])
    assert [d.uuid for d in NvmlBackend(nvml=nvml, gpu_ids=[1]).devices()] == ["GPU-b"]
    with pytest.raises(DeviceNotFoundError, match="GPU id 2 does not exist"):
        NvmlBackend(nvml=nvml, gpu_ids=[2])


def test_no_driver_is_backend_unavailable():
    with pytest.raises(BackendUnavailableError, match="Driver Not Loaded"):
        NvmlBackend(nvml=FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED))


def test_driver_samples_from_before_the_start_are_skipped():
    gpu = FakeGpu(driver_samples=[(1_000_000 + 20_000 * k, 90_000) for k in range(120)])
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    assert backend.read(0).power_samples == ()
    gpu.driver_samples.append((1_000_000 + 20_000 * 120, 95_000))
    assert [p.watts for p in backend.read(0).power_samples] == [95.0]
