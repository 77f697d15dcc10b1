"""Sampler + store + collector over FakeNvml: what /metrics shows while GPUs work, fail, hang and recover."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llm_dvfs.exporter.backends.nvml import NvmlBackend
from llm_dvfs.exporter.collector import ExporterCollector
from llm_dvfs.exporter import sampler as sampler_module
from llm_dvfs.exporter.hang_timer import PollingTimer, TimerFd, hang_timer
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.store import Store

from tests.support import wait_until

from .fake_nvml import NVML_ERROR_GPU_IS_LOST, NVML_ERROR_UNKNOWN, FakeGpu, FakeNvml


def rig(gpus, interval=0.1):
    backend = NvmlBackend(nvml=FakeNvml(gpus))
    store = Store(backend.devices())
    sampler = Sampler(backend, store, interval=interval)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(store.snapshot, sampler.stats, interval))
    return sampler, registry


def labels(gpu: FakeGpu, index: int, **extra):
    return {"gpu": str(index), "uuid": gpu.uuid, **extra}


def test_metrics_of_a_healthy_gpu():
    gpu = FakeGpu(power_mw=250_000, energy_mj=1_000_000, clock_event_mask=0x4)
    sampler, reg = rig([gpu])
    started = time.time()
    sampler.tick()
    time.sleep(0.1)  # the driver samples 250 W five times over 100 ms, and the counter moves by 25 J
    gpu.driver_samples = [(int(started * 1e6) + 20_000 * k, 250_000) for k in range(1, 6)]
    gpu.energy_mj += 25_000
    sampler.tick()
    v = reg.get_sample_value
    assert v("gpu_up", labels(gpu, 0)) == 1
    assert v("gpu_power_watts", labels(gpu, 0)) == pytest.approx(250.0)
    assert v("gpu_power_average_watts", labels(gpu, 0)) == pytest.approx(70.0)
    assert v("gpu_energy_joules_total", labels(gpu, 0)) == pytest.approx(25.0, rel=0.02)
    assert v("gpu_clock_hertz", labels(gpu, 0, clock="sm")) == pytest.approx(345e6)
    assert v("gpu_max_clock_hertz", labels(gpu, 0, clock="sm")) == pytest.approx(1980e6)
    assert v("gpu_clock_event_active", labels(gpu, 0, reason="sw_power_cap")) == 1
    assert v("gpu_clock_event_active", labels(gpu, 0, reason="gpu_idle")) == 0
    assert v("gpu_info", labels(gpu, 0, name=gpu.name, vendor="nvidia", driver="570.86.15", backend="nvml",
                                source="hardware", energy_source="counter")) == 1
    assert v("gpu_power_samples_watts_count", labels(gpu, 0)) == 5  # the driver's samples, not the tick's reading
    assert v("llm_dvfs_exporter_ticks_total") == 2


def test_gpu_that_fails_shows_no_values_then_recovers():
    good, bad = FakeGpu(uuid="GPU-good"), FakeGpu(uuid="GPU-bad", power_mw=300_000)
    sampler, reg = rig([good, bad])
    v = reg.get_sample_value
    sampler.tick()
    bad.fail = NVML_ERROR_GPU_IS_LOST
    sampler.tick()
    assert v("gpu_up", labels(bad, 1)) == 0
    assert v("gpu_power_watts", labels(bad, 1)) is None  # gone, not a stale value and not 0 W
    assert v("gpu_energy_joules_total", labels(bad, 1)) is None
    assert v("gpu_power_watts", labels(good, 0)) == pytest.approx(72.0)
    assert v("llm_dvfs_exporter_read_errors_total", {"gpu": "1", "kind": "lost"}) == 1
    bad.fail = NVML_ERROR_UNKNOWN
    sampler.tick()
    assert v("llm_dvfs_exporter_read_errors_total", {"gpu": "1", "kind": "read"}) == 1
    bad.fail = None
    bad.energy_mj += 600_000  # energy used while unreadable is still counted by the hardware counter
    sampler.tick()
    assert v("gpu_up", labels(bad, 1)) == 1
    assert v("gpu_power_watts", labels(bad, 1)) == pytest.approx(300.0)
    # to within what the first counter read could not tell: how stale it was (up to 150 ms at 300 W)
    assert v("gpu_energy_joules_total", labels(bad, 1)) == pytest.approx(600.0, abs=0.15 * 300 + 0.01)


@pytest.fixture(params=["timerfd", "polling"])
def timer_kind(request, monkeypatch):
    """The hang guard as the system gives it (a timerfd on Linux) and the polling stand-in used elsewhere."""
    if request.param == "polling":
        monkeypatch.setattr(sampler_module, "hang_timer", lambda resolution: PollingTimer(resolution))
    else:
        assert isinstance(hang_timer(0.01), TimerFd)
    return request.param


def test_hung_gpu_does_not_stall_the_others_in_any_tick(timer_kind):
    release = threading.Event()
    hung, fine = FakeGpu(uuid="GPU-hung"), FakeGpu(uuid="GPU-fine", power_mw=123_000)
    sampler, reg = rig([hung, fine])
    seen: list[tuple[bool, bool]] = []
    sampler.subscribe(lambda snap: seen.append(tuple(d.up for d in snap.devices)))
    sampler.start()
    try:
        assert wait_until(lambda: len(seen) >= 3, timeout=5)
        hung.hang = release
        first = len(seen)
        assert wait_until(lambda: len(seen) >= first + 8, timeout=5)
        v = reg.get_sample_value
        after = seen[first:]
        assert all(fine_up for _, fine_up in after)  # the fine GPU was read in every tick, the hung one's too
        assert not any(hung_up for hung_up, _ in after[1:])
        assert v("gpu_power_watts", labels(fine, 1)) == pytest.approx(123.0)
        assert v("llm_dvfs_exporter_read_errors_total", {"gpu": "0", "kind": "timeout"}) >= 7
        assert sampler.reader_threads_started == 2  # one thread left in the hung call, one fresh: no more
        hung.hang = None
        release.set()  # the call returns, its thread ends, and the GPU is read again
        assert wait_until(lambda: seen[-1] == (True, True), timeout=5)
    finally:
        hung.hang = None
        release.set()
        sampler.stop()


def test_tick_called_directly_reads_in_the_calling_thread():
    gpu = FakeGpu(power_mw=99_000)
    sampler, reg = rig([gpu])
    snap = sampler.tick()
    assert snap.devices[0].up and snap.tick == 1
    assert sampler.reader_threads_started == 0  # no thread: tests drive ticks by hand
    assert reg.get_sample_value("gpu_power_watts", labels(gpu, 0)) == pytest.approx(99.0)


def test_failed_field_is_counted_by_kind():
    gpu = FakeGpu(fail_calls={"nvmlDeviceGetUtilizationRates": NVML_ERROR_UNKNOWN})
    sampler, reg = rig([gpu])
    sampler.tick()
    assert reg.get_sample_value("gpu_up", labels(gpu, 0)) == 1
    assert reg.get_sample_value("gpu_utilization_ratio", labels(gpu, 0)) is None
    assert reg.get_sample_value("llm_dvfs_exporter_read_errors_total", {"gpu": "0", "kind": "utilization"}) == 1


def test_schedule_does_not_drift_and_counts_ticks():
    sampler, reg = rig([FakeGpu()], interval=0.02)
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    stats = sampler.stats()
    assert 45 <= stats.ticks <= 52  # 1 s / 20 ms = 50, +1 for the tick at t=0
    assert stats.ticks + stats.missed_ticks >= 50
    assert b"llm_dvfs_exporter_tick_duration_seconds_bucket" in generate_latest(reg)


def test_tick_that_overruns_counts_missed_slots():
    sampler, _ = rig([FakeGpu()], interval=0.05)
    seen = []

    def slow_listener(snapshot):  # e.g. a recorder stuck on a slow disk for one tick
        seen.append(snapshot.tick)
        if snapshot.tick == 3:
            time.sleep(0.22)

    sampler.subscribe(slow_listener)
    sampler.start()
    time.sleep(0.6)
    sampler.stop()
    assert sampler.stats().missed_ticks >= 3
    assert seen == list(range(1, len(seen) + 1))


def test_one_hung_gpu_of_eight_stalls_no_other_on_the_running_schedule(timer_kind):
    release = threading.Event()
    gpus = [FakeGpu(uuid=f"GPU-{i}", power_mw=100_000 + i * 1000) for i in range(8)]
    sampler, reg = rig(gpus, interval=0.05)
    v = reg.get_sample_value
    sampler.start()
    try:
        assert wait_until(lambda: (v("llm_dvfs_exporter_ticks_total") or 0) >= 5, timeout=5)
        gpus[3].hang = release  # every call on GPU 3 now blocks, as a wedged driver call does
        ticks = v("llm_dvfs_exporter_ticks_total")
        time.sleep(1.0)
        assert v("llm_dvfs_exporter_ticks_total") - ticks >= 10  # ~20 slots of 50 ms; a loaded CPU gets fewer
        assert v("gpu_up", labels(gpus[3], 3)) == 0
        for i, gpu in enumerate(gpus):
            if i != 3:
                assert v("gpu_up", labels(gpu, i)) == 1
                assert v("gpu_power_watts", labels(gpu, i)) == pytest.approx(100 + i)
        assert v("llm_dvfs_exporter_read_errors_total", {"gpu": "3", "kind": "timeout"}) >= 10
        gpus[3].hang = None
        release.set()  # the call returns: GPU 3 is read again on the next ticks
        assert wait_until(lambda: v("gpu_up", labels(gpus[3], 3)) == 1, timeout=5)
    finally:
        gpus[3].hang = None
        release.set()
        sampler.stop()
