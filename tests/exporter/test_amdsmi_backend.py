"""AmdSmiBackend against FakeAmdSmi (no AMD hardware here)."""

from __future__ import annotations

import pytest

from llm_dvfs.exporter.backends.amdsmi import AmdSmiBackend
from llm_dvfs.exporter.backends.base import DeviceLostError, DeviceNotFoundError, DeviceReadError

from .fake_amdsmi import (AMDSMI_STATUS_NOT_FOUND, AMDSMI_STATUS_UNKNOWN_ERROR, FakeAmdGpu, FakeAmdSmi)


def test_reads_in_si_units():
    gpu = FakeAmdGpu()
    backend = AmdSmiBackend(amdsmi=FakeAmdSmi([gpu]))
    (info,) = backend.devices()
    assert (info.name, info.vendor, info.driver, info.energy_source) == ("AMD Instinct MI300X", "amd", "6.8.5",
                                                                         "counter")
    assert info.max_clocks_hz == {"graphics": 2100e6, "memory": 1300e6}
    s = backend.read(0)
    assert s.power_w == 356 and s.power_average_w is None
    assert s.energy_j == pytest.approx(1_000_000 * 15.3 / 1e6)
    assert (s.utilization, s.memory_utilization) == (0.75, 0.30)
    assert s.temperature_c == 58 and s.power_limit_w == 750.0
    assert s.memory_total_bytes == 196_592 * 1024 * 1024
    assert s.clocks_hz == {"graphics": 2100e6, "memory": 1300e6}


def test_older_parts_report_only_the_average():
    backend = AmdSmiBackend(amdsmi=FakeAmdSmi([FakeAmdGpu(current_socket_power="N/A", average_socket_power=210)]))
    s = backend.read(0)
    assert s.power_w == 210 and s.power_average_w == 210


def test_hygon_dcu_is_named_as_such():
    dcu = FakeAmdGpu(market_name="K100_AI", vendor_name="Chengdu Haiguang IC Design Co., Ltd. (Hygon)")
    assert AmdSmiBackend(amdsmi=FakeAmdSmi([dcu])).devices()[0].vendor == "hygon"


def test_failures_translate_to_project_errors_and_recover():
    gpu = FakeAmdGpu()
    backend = AmdSmiBackend(amdsmi=FakeAmdSmi([gpu]))
    gpu.fail = AMDSMI_STATUS_NOT_FOUND
    with pytest.raises(DeviceLostError):
        backend.read(0)
    gpu.fail = AMDSMI_STATUS_UNKNOWN_ERROR
    with pytest.raises(DeviceReadError):
        backend.read(0)
    gpu.fail = None
    assert backend.read(0).power_w == 356


def test_unsupported_energy_means_integrated():
    gpu = FakeAmdGpu(unsupported={"amdsmi_get_energy_count"})
    backend = AmdSmiBackend(amdsmi=FakeAmdSmi([gpu]))
    assert backend.devices()[0].energy_source == "integrated"
    assert backend.read(0).energy_j is None and backend.read(0).failed_fields == ()


def test_bad_gpu_id():
    with pytest.raises(DeviceNotFoundError):
        AmdSmiBackend(amdsmi=FakeAmdSmi(), gpu_ids=[4])
