"""FakeNvml: a stand-in for the pynvml module at the NVML call boundary (and nowhere else).

It has the names, constants and return shapes of nvidia-ml-py (13.x): functions raise `NVMLError(code)` with
`.value`, nvmlDeviceGetFieldValues returns structs with fieldId/nvmlReturn/valueType/value.<union member>,
nvmlDeviceGetSamples returns (valueType, [sample(timeStamp µs, sampleValue)]) with samples newer than the given
timestamp. Each FakeGpu's state is plain data the test changes between reads (power, energy, a failure to raise),
or, with `live=True`, a free-running GPU whose counter and sample buffer follow the wall clock: at a constant
`power_mw`, or along a `profile` (SquareWave) whose energy is known exactly. A live GPU can step its energy counter
as an H200's does (`counter_step_s`): measured on one (driver 580), the counter changes about every 100 ms, and
between steps every read returns the same value, the exact integral of power up to the latest step.

`costs` models what each call costs on real hardware: the driver busy-waits, so a call's wall time is CPU time.
H100_COSTS holds per-call times measured on an H100 (NVML 580, nvidia-ml-py) for the exporter's benchmark.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Mapping, Protocol

# Constants with the values nvml.h / pynvml define.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_TOTAL_POWER_SAMPLES = 0
NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION = 83
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_FI_DEV_POWER_CURRENT_LIMIT = 190
NVML_PSTATE_UNKNOWN = 32


# Seconds per call, measured by the lead on a real H100 (NVML 580); the last two were not measured separately and
# are taken to cost what the other simple getters cost.
H100_COSTS: dict[str, float] = {
    "nvmlDeviceGetTotalEnergyConsumption": 3.25e-3,
    "nvmlDeviceGetSamples": 0.32e-3,
    "nvmlDeviceGetFieldValues": 0.005e-3,
    "nvmlDeviceGetMemoryInfo": 0.009e-3,
    "nvmlDeviceGetPowerUsage": 0.002e-3,
    "nvmlDeviceGetClockInfo": 0.002e-3,
    "nvmlDeviceGetUtilizationRates": 0.002e-3,
    "nvmlDeviceGetTemperature": 0.002e-3,
    "nvmlDeviceGetCurrentClocksEventReasons": 0.002e-3,
    "nvmlDeviceGetEnforcedPowerLimit": 0.002e-3,
    "nvmlDeviceGetPerformanceState": 0.002e-3,
}
# The H200 was not timed call by call. Its energy-counter read is derived from two H200s costing 10.2% of a core
# with the counter read every tick (5.1 ms per GPU per tick) minus what the H100 spent per tick on everything else
# (4.66% - 3.25% = 1.41 ms): 3.7 ms. The other calls are taken to cost what they cost on the H100.
H200_COSTS: dict[str, float] = {**H100_COSTS, "nvmlDeviceGetTotalEnergyConsumption": 3.7e-3}
COST_PRESETS: dict[str, dict[str, float]] = {"h100": H100_COSTS, "h200": H200_COSTS}
LIVE_SAMPLE_PERIOD_US = 20_000  # a live GPU's driver buffer: one sample every 20 ms ...
LIVE_BUFFER_SAMPLES = 120  # ... the last 120 of them (~2.4 s)
LIVE_INSTANT_PERIOD_S = 0.1  # the H200's instant power field changes about every 100 ms


class PowerProfile(Protocol):
    """A live GPU's power over time; `t` in seconds since the GPU's `live_since`."""

    def power_mw(self, t: float) -> float: ...

    def energy_mj(self, t0: float, t1: float) -> float:
        """The exact energy between t0 and t1 (closed form: the reference a test compares against)."""
        ...


@dataclass(frozen=True)
class SquareWave:
    """`high_mw` for the first half of every `period_s`, `low_mw` for the second, from t = 0."""

    low_mw: float
    high_mw: float
    period_s: float

    def power_mw(self, t: float) -> float:
        return self.high_mw if t % self.period_s < self.period_s / 2 else self.low_mw

    def energy_mj(self, t0: float, t1: float) -> float:
        return self._energy_since_zero(t1) - self._energy_since_zero(t0)

    def _energy_since_zero(self, t: float) -> float:
        periods = math.floor(t / self.period_s)
        rest, half = t - periods * self.period_s, self.period_s / 2
        return (periods * (self.high_mw + self.low_mw) * half + self.high_mw * min(rest, half)
                + self.low_mw * max(0.0, rest - half))


class NVMLError(Exception):
    """Same shape as pynvml.NVMLError: the error code is in `.value`."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {NVML_ERROR_GPU_IS_LOST: "GPU is lost", NVML_ERROR_NOT_SUPPORTED: "Not Supported",
                NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded", NVML_ERROR_UNKNOWN: "Unknown Error",
                NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found"}.get(self.value, f"error {self.value}")


@dataclass
class FakeGpu:
    """The state one fake GPU reports; units as NVML reports them (mW, mJ, MHz, %, bytes)."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-fake-0000-0000-000000000000"
    power_mw: int = 72_000  # instant field
    average_mw: int = 70_000  # nvmlDeviceGetPowerUsage
    energy_mj: int = 1_000_000
    clocks_mhz: dict = field(default_factory=lambda: {NVML_CLOCK_SM: 345, NVML_CLOCK_MEM: 2619,
                                                      NVML_CLOCK_GRAPHICS: 345})
    max_clocks_mhz: dict = field(default_factory=lambda: {NVML_CLOCK_SM: 1980, NVML_CLOCK_MEM: 2619,
                                                          NVML_CLOCK_GRAPHICS: 1980})
    util_gpu: int = 0
    util_memory: int = 0
    temperature: int = 33
    memory_used: int = 600 * 1024 * 1024
    memory_total: int = 81_559 * 1024 * 1024
    power_limit_mw: int = 700_000
    pstate: int = 0
    clock_event_mask: int = 0x1
    driver_samples: list = field(default_factory=list)  # [(timestamp_us, mW)], the driver's ring buffer
    whole_buffer: bool = False  # answer GetSamples with the whole buffer, ignoring lastSeenTimeStamp
    fail: int | None = None  # NVML error code every call raises while set
    unsupported: set = field(default_factory=set)  # function names answering NOT_SUPPORTED
    fail_calls: dict = field(default_factory=dict)  # function name -> NVML error code it raises
    hang: threading.Event | None = None  # while set to an Event, every call blocks until it is set
    calls: dict = field(default_factory=dict)  # function name -> times called
    live: bool = False  # power, energy and driver buffer follow the wall clock (benchmarks; see `profile`)
    live_since: float = field(default_factory=time.time)
    profile: PowerProfile | None = None  # live power over time (None: a constant power_mw)
    counter_step_s: float = 0.0  # live energy counter: a new value every this many seconds (0: continuous)
    counter_phase_s: float = 0.0  # ... at live_since + counter_phase_s + k * counter_step_s

    def power_at(self, t: float) -> float:
        """Live power in mW at Unix time `t`."""
        return self.power_mw if self.profile is None else self.profile.power_mw(t - self.live_since)

    def energy_at(self, t: float) -> float:
        """The exact energy in mJ a live GPU has used by Unix time `t` (counted from `energy_mj` at live_since)."""
        if self.profile is None:
            return self.energy_mj + int(self.power_mw * (t - self.live_since))
        return self.energy_mj + self.profile.energy_mj(0.0, t - self.live_since)

    def last_counter_step(self, t: float) -> float:
        """The Unix time of the energy counter's latest step at or before `t` (`t` itself when continuous)."""
        if self.counter_step_s <= 0:
            return t
        origin = self.live_since + self.counter_phase_s
        return origin + math.floor((t - origin) / self.counter_step_s) * self.counter_step_s

    def counter_mj(self, t: float) -> int:
        """What the energy counter reports at Unix time `t`: the exact energy up to its latest step."""
        if not self.live:
            return self.energy_mj
        return int(self.energy_at(self.last_counter_step(t)))

    def average_mw_at(self, t: float) -> float:
        """The 1 s average power (nvmlDeviceGetPowerUsage on Hopper, the average field): the exact mean of the
        profile over the last second, or `average_mw` as set when there is no profile."""
        if not self.live or self.profile is None:
            return self.average_mw
        since = t - self.live_since
        return self.profile.energy_mj(since - 1.0, since)


class FakeNvml:
    """Module-like object: pass it as `NvmlBackend(nvml=FakeNvml([...]))`."""

    def __init__(self, gpus: list[FakeGpu] | None = None, driver: str = "570.86.15", init_error: int | None = None,
                 costs: Mapping[str, float] | None = None):
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.costs = dict(costs or {})
        self.driver = driver
        self.init_error = init_error
        self.initialized = False
        self._lock = threading.Lock()
        for name, value in globals().items():
            if name.startswith("NVML_"):
                setattr(self, name, value)
        self.NVMLError = NVMLError

    # -- library ------------------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def _enter(self, gpu: FakeGpu, fn: str) -> None:
        """The start of every call: count it, raise what the GPU is set to raise, spend the call's modelled cost."""
        self._spend(fn, self._check(gpu, fn))

    def _check(self, gpu: FakeGpu, fn: str) -> float:
        """Count the call and raise what the GPU is set to raise (a failing call costs its time too); returns this
        thread's CPU time at the call's start when the call has a cost (for `_spend`)."""
        started = time.thread_time() if fn in self.costs else 0.0
        with self._lock:
            gpu.calls[fn] = gpu.calls.get(fn, 0) + 1
        if gpu.hang is not None:
            gpu.hang.wait()
        code = gpu.fail if gpu.fail is not None else NVML_ERROR_NOT_SUPPORTED if fn in gpu.unsupported \
            else gpu.fail_calls.get(fn)
        if code is not None:
            self._spend(fn, started)
            raise NVMLError(code)
        return started

    def _spend(self, fn: str, started: float) -> None:
        """Busy-wait until the call has cost its modelled CPU time since `started`, so the fake's own work (its
        bookkeeping, building the answer) is part of that time rather than added to it."""
        cost = self.costs.get(fn)
        if cost:
            end = started + cost
            while time.thread_time() < end:  # the driver busy-waits: the call costs this much CPU time
                pass

    # -- device -------------------------------------------------------------------------------------------
    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:
        self._enter(gpu, "nvmlDeviceGetName")
        return gpu.name

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        self._enter(gpu, "nvmlDeviceGetUUID")
        return gpu.uuid

    def nvmlDeviceGetFieldValues(self, gpu: FakeGpu, field_ids: list[int]) -> list[SimpleNamespace]:
        """Instant and 1 s average power, the current power limit and the energy counter (unless "instant",
        "average_field", "limit_field" or "energy_field" is in `unsupported`); any other field answers
        NOT_SUPPORTED in its nvmlReturn. One call costs one call's time, however many fields. On a live GPU the
        values are taken as the call begins, and `timestamp` is the end of the call (µs), as on an H200."""
        started = self._check(gpu, "nvmlDeviceGetFieldValues")
        now = time.time()
        out = []
        for fid in field_ids:
            name = _FIELD_KEYS.get(fid)
            if name is not None and name not in gpu.unsupported:
                out.append(SimpleNamespace(fieldId=fid, scopeId=0, timestamp=0, latencyUsec=0,
                                           valueType=NVML_VALUE_TYPE_UNSIGNED_INT, nvmlReturn=NVML_SUCCESS,
                                           value=SimpleNamespace(uiVal=self._field_value(gpu, fid, now))))
            else:
                out.append(SimpleNamespace(fieldId=fid, scopeId=0, timestamp=0, latencyUsec=0, valueType=0,
                                           nvmlReturn=NVML_ERROR_NOT_SUPPORTED, value=SimpleNamespace(dVal=0.0)))
        self._spend("nvmlDeviceGetFieldValues", started)
        if gpu.live:
            ended_us, latency_us = int(time.time() * 1e6), int(self.costs.get("nvmlDeviceGetFieldValues", 0) * 1e6)
            for value in out:
                value.timestamp, value.latencyUsec = ended_us, latency_us
        return out

    @staticmethod
    def _field_value(gpu: FakeGpu, fid: int, now: float) -> int:
        if fid == NVML_FI_DEV_POWER_INSTANT:  # a live GPU's instant field holds its value for 100 ms
            return int(gpu.power_at(now // LIVE_INSTANT_PERIOD_S * LIVE_INSTANT_PERIOD_S)) if gpu.live \
                else gpu.power_mw
        if fid == NVML_FI_DEV_POWER_AVERAGE:
            return int(gpu.average_mw_at(now))
        if fid == NVML_FI_DEV_POWER_CURRENT_LIMIT:
            return gpu.power_limit_mw
        return gpu.counter_mj(now)

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetPowerUsage")
        return int(gpu.average_mw_at(time.time()))

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetTotalEnergyConsumption")
        return gpu.counter_mj(time.time())

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock: int) -> int:
        self._enter(gpu, "nvmlDeviceGetClockInfo")
        return gpu.clocks_mhz[clock]

    def nvmlDeviceGetMaxClockInfo(self, gpu: FakeGpu, clock: int) -> int:
        self._enter(gpu, "nvmlDeviceGetMaxClockInfo")
        return gpu.max_clocks_mhz[clock]

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> SimpleNamespace:
        self._enter(gpu, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=gpu.util_gpu, memory=gpu.util_memory)

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:
        self._enter(gpu, "nvmlDeviceGetTemperature")
        return gpu.temperature

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self._enter(gpu, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=gpu.memory_total, used=gpu.memory_used, free=gpu.memory_total - gpu.memory_used)

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetEnforcedPowerLimit")
        return gpu.power_limit_mw

    def nvmlDeviceGetPerformanceState(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetPerformanceState")
        return gpu.pstate

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetCurrentClocksEventReasons")
        return gpu.clock_event_mask

    def nvmlDeviceGetSamples(self, gpu: FakeGpu, sampling_type: int, last_seen_us: int):
        """Like the driver: samples newer than `last_seen_us`; NOT_FOUND when there are none. A live GPU's buffer
        holds the last LIVE_BUFFER_SAMPLES 20 ms samples, each the power at its own timestamp."""
        started = self._check(gpu, "nvmlDeviceGetSamples")
        since = -1 if gpu.whole_buffer else last_seen_us
        if gpu.live:
            period = LIVE_SAMPLE_PERIOD_US
            newest = int(time.time() * 1e6) // period * period
            first = max(newest - period * (LIVE_BUFFER_SAMPLES - 1), (since // period + 1) * period)
            fresh = [_sample(ts, int(gpu.power_at(ts / 1e6))) for ts in range(first, newest + 1, period)]
        else:
            fresh = [_sample(ts, mw) for ts, mw in gpu.driver_samples if ts > since]
        self._spend("nvmlDeviceGetSamples", started)
        if not fresh:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return NVML_VALUE_TYPE_UNSIGNED_INT, fresh


_FIELD_KEYS = {NVML_FI_DEV_POWER_INSTANT: "instant", NVML_FI_DEV_POWER_AVERAGE: "average_field",
               NVML_FI_DEV_POWER_CURRENT_LIMIT: "limit_field", NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: "energy_field"}


def _sample(timestamp_us: int, mw: int) -> SimpleNamespace:
    return SimpleNamespace(timeStamp=timestamp_us, sampleValue=SimpleNamespace(uiVal=mw))
