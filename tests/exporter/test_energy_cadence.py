"""The costly NVML reads on their own cadence: the energy counter every --energy-interval with power samples
integrated in between, the driver sample buffer every --buffer-interval. Scripted clocks and FakeNvml only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llm_dvfs.exporter.backends.base import GpuSample, PowerSample
from llm_dvfs.exporter.backends.cadence import Cadence, ReadCadence
from llm_dvfs.exporter.backends.nvml import NvmlBackend
from llm_dvfs.exporter.cli import main as exporter_main
from llm_dvfs.exporter.samples_csv import read_trace
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.energy import EnergyCounter
from llm_dvfs.exporter.store import Store
from llm_dvfs.common.errors import UsageError

from .fake_nvml import FakeGpu, FakeNvml

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "exporter"
EPOCH = 1_700_000_000.0  # scripted wall clock = EPOCH + scripted monotonic time


class ScriptedLoad:
    """Drives one FakeGpu along a scripted time line like a real driver would: power follows `watts(t)`, the
    energy counter integrates it exactly (mJ), the sample buffer keeps the last 120 samples, 20 ms apart."""

    def __init__(self, gpu: FakeGpu, watts=lambda t: 300.0, counter_start_mj: int = 5_000_000) -> None:
        self.gpu, self.watts, self.t = gpu, watts, 0.0
        self._energy_j = counter_start_mj / 1000.0
        self._k = 0  # driver samples taken so far
        self.all_samples: list[tuple[int, int]] = []
        self.advance(0.0)

    def advance(self, dt: float, step: float = 0.001) -> None:
        end = self.t + dt
        while self.t < end - 1e-12:
            h = min(step, end - self.t)
            self._energy_j += h * (self.watts(self.t) + self.watts(self.t + h)) / 2
            self.t += h
        while 0.02 * self._k <= self.t + 1e-9:
            ts = 0.02 * self._k
            self.all_samples.append((round((EPOCH + ts) * 1e6), round(self.watts(ts) * 1000)))
            self._k += 1
        self.gpu.driver_samples = self.all_samples[-120:]
        self.gpu.power_mw = round(self.watts(self.t) * 1000)
        self.gpu.energy_mj = round(self._energy_j * 1000)

    def clock(self) -> float:
        return self.t

    def wall(self) -> float:
        return EPOCH + self.t


def backend_for(load: ScriptedLoad, energy_interval: float, buffer_interval: float) -> NvmlBackend:
    return NvmlBackend(nvml=FakeNvml([load.gpu]), energy_interval=energy_interval,
                       buffer_interval=buffer_interval, clock=load.clock, wall=load.wall)


def test_energy_counter_and_buffer_are_read_at_their_cadence():
    load = ScriptedLoad(FakeGpu(whole_buffer=True))
    backend = backend_for(load, energy_interval=1.0, buffer_interval=0.5)
    calls = load.gpu.calls
    energy0, buffer0 = calls["nvmlDeviceGetTotalEnergyConsumption"], calls["nvmlDeviceGetSamples"]
    with_counter = []
    for k in range(30):  # 3 s of 100 ms ticks
        if k:
            load.advance(0.1)
        if backend.read(0).energy_j is not None:
            with_counter.append(k)
    assert with_counter == [0, 10, 20]
    assert calls["nvmlDeviceGetTotalEnergyConsumption"] - energy0 == 3
    assert calls["nvmlDeviceGetSamples"] - buffer0 == 6
    assert calls["nvmlDeviceGetFieldValues"] == 30  # instant power still every tick
    assert backend.devices()[0].energy_source == "counter_interpolated"


def test_cadence_tolerates_a_late_tick_and_restarts_after_a_stall():
    now = [0.0]
    cadence = Cadence(1.0, clock=lambda: now[0])
    due = []
    for t in (0.0, 0.5, 0.995, 1.5, 2.004, 2.5, 9.0, 9.5, 10.0):  # 0.995: a tick 5 ms early is still the slot
        now[0] = t
        due.append(cadence.due())
    assert due == [True, False, True, False, True, False, True, False, True]


def test_intervals_up_to_one_tick_mean_every_tick():
    assert ReadCadence.for_tick(0.1, 0.1, 0.05, 0.1) == ReadCadence(0.0, 0.0, 0.0)
    assert ReadCadence.for_tick(0.1, 1.0, 2.0) == ReadCadence(1.0, 2.0, 1.0)  # slow values once a second
    assert ReadCadence.for_tick(1.0, 10.0, 2.0).slow_interval == 0.0  # a 1 s tick reads them every tick
    backend = NvmlBackend(nvml=FakeNvml([FakeGpu()]), energy_interval=0.0)
    assert backend.devices()[0].energy_source == "counter"


def test_slow_values_are_read_once_a_second_and_repeated_in_between():
    load = ScriptedLoad(FakeGpu(temperature=40))
    backend = NvmlBackend(nvml=FakeNvml([load.gpu]), slow_interval=1.0, clock=load.clock, wall=load.wall)
    temperatures, memory_used = [], []
    for k in range(25):  # 2.5 s of 100 ms ticks; the GPU's temperature and memory change every tick
        if k:
            load.advance(0.1)
        load.gpu.temperature, load.gpu.memory_used = 40 + k, (1 + k) * 2**30
        s = backend.read(0)
        temperatures.append(s.temperature_c)
        memory_used.append(s.memory_used_bytes)
        assert s.power_limit_w == 700.0 and s.performance_state == 0 and s.memory_total_bytes is not None
    assert temperatures == [40] * 10 + [50] * 10 + [60] * 5
    assert memory_used == [2**30] * 10 + [11 * 2**30] * 10 + [21 * 2**30] * 5
    calls = load.gpu.calls
    for slow in ("nvmlDeviceGetTemperature", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetEnforcedPowerLimit",
                 "nvmlDeviceGetPerformanceState"):
        assert calls[slow] == 3, slow
    # power, the SM clock, throttle reasons and utilization stay at every tick (memory, graphics clocks: slow)
    assert calls["nvmlDeviceGetFieldValues"] == calls["nvmlDeviceGetCurrentClocksEventReasons"] == 25
    assert calls["nvmlDeviceGetUtilizationRates"] == 25 and calls["nvmlDeviceGetClockInfo"] == 25 + 2 * 3  # SM each tick


def test_buffer_drained_every_second_loses_no_sample_and_repeats_none():
    load = ScriptedLoad(FakeGpu(), watts=lambda t: 200.0 + 100.0 * math.sin(t))
    backend = backend_for(load, energy_interval=1.0, buffer_interval=1.0)
    start = len(load.all_samples)  # what was in the buffer before the exporter started is skipped
    seen: list[PowerSample] = []
    for k in range(100):  # 10 s of 100 ms ticks, with one failed drain in the middle
        if k:
            load.advance(0.1)
        load.gpu.fail_calls = {"nvmlDeviceGetSamples": 999} if k == 40 else {}
        seen += backend.read(0).power_samples
    expected = load.all_samples[start:]
    assert [round(p.timestamp * 1e6) for p in seen] == [ts for ts, _ in expected][:len(seen)]
    assert len(seen) >= len(expected) - 50  # all but the last second's samples, still in the buffer
    assert len({p.timestamp for p in seen}) == len(seen)


def test_histogram_counts_only_driver_samples_on_a_buffered_gpu():
    load = ScriptedLoad(FakeGpu())
    backend = backend_for(load, energy_interval=1.0, buffer_interval=1.0)
    store = Store(backend.devices())
    sampler = Sampler(backend, store, interval=0.1, clock=load.clock, wall=load.wall)
    first = len(load.all_samples)
    for k in range(50):
        if k:
            load.advance(0.1)
        snap = sampler.tick()
    drained = sum(1 for ts, _ in load.all_samples[first:] if ts <= (EPOCH + 4.0) * 1e6)
    assert snap.devices[0].power_histogram.count == drained  # no tick reading counted on top


def test_exported_energy_never_goes_backwards_when_the_integral_ran_ahead():
    e = EnergyCounter()
    e.add(0.0, GpuSample(power_w=400.0, energy_j=1000.0))
    values = []
    for k in range(1, 31):  # the tick readings say 400 W, the counter says 300 W
        t = k / 10
        e.add(t, GpuSample(power_w=400.0, energy_j=1000.0 + 300.0 * t if k % 10 == 0 else None))
        values.append(e.total)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[8] == pytest.approx(360.0)  # 0.9 s integrated at 400 W
    assert values[9] == pytest.approx(360.0)  # the counter says 300 J: re-anchored, but held, not back to 300
    assert values[10] == pytest.approx(360.0)  # 300 J + 0.1 s x 400 W is still behind: still held
    assert values[11] == pytest.approx(380.0)  # 300 J + 0.2 s x 400 W passes the held value: counts on
    assert values[29] == pytest.approx(960.0)  # counter 900 J: ahead by at most one interval's overshoot


def test_counter_read_re_anchors_upwards_when_the_integral_fell_behind():
    e = EnergyCounter()
    e.add(0.0, GpuSample(power_w=100.0, energy_j=50.0))
    for k in range(1, 11):
        e.add(k / 10, GpuSample(power_w=100.0, energy_j=550.0 if k == 10 else None))
        if k == 9:
            assert e.total == pytest.approx(90.0)
    assert e.total == pytest.approx(500.0)


def test_counter_reset_between_sparse_reads_is_survived():
    e = EnergyCounter()
    for k in range(0, 31):  # 300 W steady; counter read every second; the driver restarts it just after 1.5 s
        t = k / 10
        counter = (80_000.0 + 300.0 * t) if t < 1.5 else 300.0 * (t - 1.5)
        e.add(t, GpuSample(power_w=300.0, energy_j=counter if k % 10 == 0 else None))
    assert e.resets == 1
    assert e.total == pytest.approx(900.0, rel=1e-6)  # 1 s from the integral across the reset, 2 s of counter


@pytest.mark.parametrize("energy_interval", [1.0, 5.0, 30.0])
def test_energy_over_any_window_matches_the_counter_within_one_percent(energy_interval):
    # a steady serving load: 300 W with a 40 W ripple faster than the tick
    load = ScriptedLoad(FakeGpu(), watts=lambda t: 300.0 + 40.0 * math.sin(2 * math.pi * t / 0.37))
    backend = backend_for(load, energy_interval=energy_interval, buffer_interval=1.0)
    store = Store(backend.devices())
    sampler = Sampler(backend, store, interval=0.1, clock=load.clock, wall=load.wall)
    exported, counter = {}, {}
    for k in range(700):  # 70 s
        if k:
            load.advance(0.1)
        exported[k] = sampler.tick().devices[0].energy_j
        counter[k] = load.gpu.energy_mj / 1000.0
    for a, b in [(100, 633), (57, 444), (3, 699), (250, 550), (305, 377)]:  # not aligned with counter reads
        assert exported[b] - exported[a] == pytest.approx(counter[b] - counter[a], rel=0.01)
    assert all(exported[k + 1] >= exported[k] for k in range(699))


def test_buffer_interval_beyond_the_driver_buffer_is_refused():
    with pytest.raises(UsageError, match="--buffer-interval"):
        exporter_main(["--backend", "host", "--buffer-interval", "3", "--no-http", "--duration", "0.1"])


def test_real_h100_load_step_with_the_counter_read_once_a_second():
    """The lead's real H100 run (benchmarks/exporter_gpu_check.py: idle 5 s, matmul 15 s, idle 10 s; NVML 580),
    recorded with the counter read every tick, replayed with the counter visible every 10th tick only."""
    trace = read_trace(FIXTURE_DIR / "h100_load_step_gpu_check.csv")
    rows, times = trace.devices[0], trace.timestamps
    e, exported = EnergyCounter(), []
    for k, (t, row) in enumerate(zip(times, rows)):
        e.add(t, GpuSample(power_w=row["power"], energy_j=row["energy_j"] if k % 10 == 0 else None))
        exported.append(e.total)
    counter = [row["energy_j"] - rows[0]["energy_j"] for row in rows]
    assert all(b >= a for a, b in zip(exported, exported[1:]))
    peak = max(row["power"] for row in rows)
    assert max(abs(x - c) for x, c in zip(exported, counter)) <= 0.1 * peak  # the counter itself moves every ~100 ms
    for a in range(0, len(rows), 5):
        for b in range(a + 200, len(rows), 5):  # every window of 20 s or more
            assert exported[b] - exported[a] == pytest.approx(counter[b] - counter[a], rel=0.01)
