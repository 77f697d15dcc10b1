"""benchmarks/exporter_gpu_check.py: its analysis on hand-made ticks, and the whole check driven through the
exporter's nvml backend against a FakeNvml GPU whose power, 1 s average, energy counter and driver sample buffer
follow a simulated load step."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

from llm_dvfs.exporter.backends.base import GpuSample, PowerSample
from llm_dvfs.exporter.backends.nvml import NvmlBackend

from .fake_nvml import FakeGpu, FakeNvml

_spec = importlib.util.spec_from_file_location(
    "exporter_gpu_check", Path(__file__).resolve().parents[2] / "benchmarks" / "exporter_gpu_check.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["exporter_gpu_check"] = check
_spec.loader.exec_module(check)


def _ticks(powers, dt=0.1, t0=0.0, average=None):
    return [check.Tick(t0 + k * dt, GpuSample(power_w=p, power_average_w=None if average is None else average[k]))
            for k, p in enumerate(powers)]


def test_ticks_to_follow_counts_from_the_step():
    powers = [100.0] * 40 + [150.0, 600.0] + [700.0] * 58 + [120.0] + [100.0] * 39
    ticks = _ticks(powers)
    phases = check.Phases(0.0, 4.0, 10.0, 14.0)
    assert check.ticks_to_follow(ticks, "power_w", 4.0, (1.0, 4.0), (7.0, 10.0), 0.5) == 2
    assert check.ticks_to_follow(ticks, "power_w", 4.0, (1.0, 4.0), (7.0, 10.0), 0.9) == 3
    result = check.step_response(ticks, phases)
    assert result["instant"]["idle_w"] == 100.0 and result["instant"]["load_w"] == 700.0
    assert result["instant"]["down_ticks_90"] == 1
    assert result["average"] is None


def test_energy_agreement_and_driver_buffer():
    samples = [GpuSample(power_w=300.0, energy_j=1000.0 + 30.0 * k,
                         power_samples=tuple(PowerSample(k * 0.1 + 0.02 * j, 300.0) for j in range(5)))
               for k in range(301)]
    ticks = [check.Tick(k * 0.1, s) for k, s in enumerate(samples)]
    energy = check.energy_agreement(ticks)
    assert energy["window_s"] == pytest.approx(30.0)
    assert energy["counter_j"] == pytest.approx(9000.0) and energy["percent_diff"] == pytest.approx(0.0)
    assert energy["driver_samples_mean_w"] == pytest.approx(300.0)
    buf = check.driver_buffer(ticks)
    assert buf["samples"] == 1505 and buf["per_tick_mean"] == 5
    assert buf["spacing_ms_median"] == pytest.approx(20.0) and buf["duplicates"] == 0


class SimulatedGpu:
    """Moves a FakeGpu's readings like a GPU under a load step: instant power jumps, the 1 s average lags,
    the energy counter integrates, the driver buffer gets a sample every 20 ms."""

    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu, self.target_w = gpu, 70.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.time()
        next_sample = last
        energy = float(self.gpu.energy_mj)
        history: list[tuple[float, float]] = []
        while not self._stop.wait(0.005):
            now = time.time()
            energy += self.target_w * (now - last) * 1000
            history = [(t, w) for t, w in history if t > now - 1.0] + [(now, self.target_w)]
            self.gpu.power_mw = int(self.target_w * 1000)
            self.gpu.energy_mj = int(energy)
            self.gpu.average_mw = int(1000 * sum(w for _, w in history) / len(history))
            if now >= next_sample:
                self.gpu.driver_samples = (self.gpu.driver_samples + [(int(now * 1e6), self.gpu.power_mw)])[-120:]
                next_sample += 0.02
            last = now

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_check_end_to_end_on_a_simulated_gpu(tmp_path):
    gpu = FakeGpu()
    backend = NvmlBackend(nvml=FakeNvml([gpu]))
    with SimulatedGpu(gpu) as sim:
        def load(stop: threading.Event) -> None:
            sim.target_w = 650.0
            stop.wait()
            sim.target_w = 70.0

        ticks, phases = check.run_check(backend, 0, load, idle_before=3.5, load_s=4.0, idle_after=4.0,
                                        interval=0.1, csv_path=tmp_path / "samples.csv")
    report = check.analyse(ticks, phases, 0.1)
    instant, average = report["step_response"]["instant"], report["step_response"]["average"]
    assert instant["up_ticks_90"] <= 2 and instant["down_ticks_90"] <= 2
    assert average["up_ticks_90"] > instant["up_ticks_90"] + 3  # the 1 s average lags by several ticks
    assert abs(report["energy"]["percent_diff"]) < 3.0
    buf = report["driver_buffer"]
    assert buf["duplicates"] == 0 and buf["out_of_order"] == 0
    assert 15.0 <= buf["spacing_ms_median"] <= 25.0
    assert len((tmp_path / "samples.csv").read_text().splitlines()) == len(ticks) + 1
