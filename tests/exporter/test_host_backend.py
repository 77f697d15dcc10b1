"""HostBackend on a fixture powercap tree (RAPL energy_uj with wrap-around) and this machine's real psutil; and
the exporter on the host backend saying there is no GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from llm_dvfs.exporter.backends.host import HostBackend
from llm_dvfs.exporter.collector import ExporterCollector
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.store import Store


class ScriptedClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make_zone(root: Path, name: str, energy_uj: int, max_range: int = 262_143_328_850) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def test_rapl_power_energy_and_wraparound(tmp_path):
    zone = make_zone(tmp_path, "intel-rapl:0", 1_000_000_000, max_range=1_010_000_000)
    make_zone(tmp_path, "intel-rapl:0:0", 5)  # a sub-zone (core): not a package
    clock = ScriptedClock()
    backend = HostBackend(powercap_root=tmp_path, clock=clock)
    (info,) = backend.devices()
    assert (info.kind, info.energy_source, info.uuid) == ("cpu", "counter", "cpu-package-0")
    first = backend.read(0)
    assert first.power_w is None  # RAPL has no instant power: needs two reads
    clock.now += 1.0
    (zone / "energy_uj").write_text("1005000000\n")
    second = backend.read(0)
    assert second.power_w == pytest.approx(5.0) and second.energy_j == pytest.approx(5.0)
    clock.now += 1.0
    (zone / "energy_uj").write_text("3000000\n")  # wrapped at 1_010_000_000
    third = backend.read(0)
    assert third.power_w == pytest.approx(8.0) and third.energy_j == pytest.approx(13.0)
    assert 0.0 <= third.utilization <= 1.0


def test_without_rapl_there_is_one_cpu_device_and_no_energy_series(tmp_path):
    backend = HostBackend(powercap_root=tmp_path / "missing")
    (info,) = backend.devices()
    assert info.energy_source == "none"
    store = Store(backend.devices())
    sampler = Sampler(backend, store)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(store.snapshot, sampler.stats, 0.1))
    sampler.tick()
    sampler.stop()
    labels = {"cpu": "0", "uuid": "cpu-package-0"}
    assert registry.get_sample_value("cpu_up", labels) == 1
    assert registry.get_sample_value("cpu_utilization_ratio", labels) is not None
    assert registry.get_sample_value("cpu_energy_joules_total", labels) is None  # no fake 0 J
    assert registry.get_sample_value("cpu_power_watts", labels) is None
    assert registry.get_sample_value("llm_dvfs_exporter_gpus") == 0
    assert registry.get_sample_value("gpu_up", {"gpu": "0", "uuid": "cpu-package-0"}) is None


def test_exporter_on_host_says_no_gpu(tmp_path):
    out = tmp_path / "host.csv"
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", "host", "--no-http", "--duration", "0.5",
                             "--output", str(out)], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "no GPU found" in result.stderr
    header = out.read_text().splitlines()[0]
    assert header.startswith("timestamp,datetime,cpu_0_power") and "gpu_" not in header
