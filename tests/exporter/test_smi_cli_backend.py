"""SmiCliBackend running a fake rocm-smi / hy-smi (a script printing outputs in the tools' documented format)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from llm_dvfs.exporter.backends.base import BackendUnavailableError, DeviceLostError, DeviceNotFoundError
from llm_dvfs.exporter.backends.smi_cli import SmiCliBackend, first_json_object

SMI = Path(__file__).resolve().parents[1] / "fixtures" / "exporter" / "smi"
ROCM = SMI / "rocm-smi_6.2_mi300x_2gpu.json"
HYSMI = SMI / "hy-smi_dcu_k100ai_1dcu.txt"


def fake_cli(output: Path) -> list[str]:
    return [sys.executable, str(SMI / "fake_smi.py"), str(output)]


def test_rocm_smi_json():
    backend = SmiCliBackend(fake_cli(ROCM))
    assert [(d.index, d.name, d.uuid, d.vendor, d.energy_source) for d in backend.devices()] == [
        (0, "AMD Instinct MI300X", "0x18ea2a3e4f2c4b8d", "amd", "counter"),
        (1, "AMD Instinct MI300X", "0x4c1b3f7a99e2d610", "amd", "counter")]
    s = backend.read(0)
    assert s.power_w == 356.0 and s.power_average_w is None
    assert s.energy_j == pytest.approx(16775.200047)
    assert (s.utilization, s.memory_utilization) == (0.74, 0.31)
    assert s.temperature_c == 48.0  # junction; edge is N/A on MI300X
    assert s.clocks_hz == {"graphics": 2100e6, "memory": 1300e6}
    assert s.memory_total_bytes == 206141652992 and s.power_limit_w == 750.0
    assert backend.read(1).power_w == 131.0


def test_hy_smi_output_with_non_json_noise():
    backend = SmiCliBackend(fake_cli(HYSMI))
    (info,) = backend.devices()
    assert (info.name, info.vendor, info.energy_source) == ("K100_AI", "hygon", "integrated")
    s = backend.read(0)
    assert s.power_w == 187.0 and s.power_average_w == 187.0 and s.energy_j is None
    assert (s.utilization, s.memory_utilization, s.temperature_c) == (0.88, 0.42, 51.0)


def test_first_json_object_skips_noise_and_broken_braces():
    assert first_json_object('warn {not json\n{"card0": {"a": "1"}}\ntrailer }') == {"card0": {"a": "1"}}


def test_one_run_serves_all_devices_of_a_tick(tmp_path):
    counter = tmp_path / "runs"
    script = tmp_path / "counting_smi.sh"
    script.write_text(f"#!/bin/sh\necho x >> {counter}\ncat {ROCM}\n")
    script.chmod(0o755)
    backend = SmiCliBackend([str(script)], max_age=10.0)
    backend.read(0)
    backend.read(1)
    assert len(counter.read_text().splitlines()) == 1


def test_tool_failing_mid_run_is_a_lost_device_then_recovers(tmp_path):
    output = tmp_path / "out.json"
    shutil.copy(ROCM, output)
    backend = SmiCliBackend(fake_cli(output), max_age=0.0)
    output.unlink()
    with pytest.raises(DeviceLostError):
        backend.read(0)
    shutil.copy(ROCM, output)
    assert backend.read(0).power_w == 356.0


def test_bad_gpu_id_and_missing_tool(tmp_path):
    with pytest.raises(DeviceNotFoundError):
        SmiCliBackend(fake_cli(ROCM), gpu_ids=[5])
    with pytest.raises(BackendUnavailableError):
        SmiCliBackend([str(tmp_path / "no-such-smi")])
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("ROCm SMI: no devices\n")
    with pytest.raises(BackendUnavailableError, match="no usable output"):
        SmiCliBackend(fake_cli(garbage))
