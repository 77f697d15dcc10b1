"""FakeNvml: a stand-in for the pynvml module at the NVML call boundary (and nowhere else).

It has the names, constants and return shapes of nvidia-ml-py (13.x): functions raise `NVMLError(code)` with
`.value`, nvmlDeviceGetFieldValues returns structs with fieldId/nvmlReturn/valueType/value.<union member>,
nvmlDeviceGetSamples returns (valueType, [sample(timeStamp µs, sampleValue)]) with samples newer than the given
timestamp. Each FakeGpu's state is plain data the test changes between reads (power, energy, a failure to raise),
or, with `live=True`, a free-running GPU whose counter and sample buffer follow the wall clock.

`costs` models what each call costs on real hardware: the driver busy-waits, so a call's wall time is CPU time.
H100_COSTS holds per-call times measured on an H100 (NVML 580, nvidia-ml-py) for the exporter's benchmark.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Mapping

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
    live: bool = False  # energy and driver buffer follow the wall clock at power_mw (benchmarks)
    live_since: float = field(default_factory=time.time)


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
        with self._lock:
            gpu.calls[fn] = gpu.calls.get(fn, 0) + 1
        cost = self.costs.get(fn)
        if cost:
            end = time.thread_time() + cost
            while time.thread_time() < end:  # the driver busy-waits: the call costs this much CPU time
                pass
        if gpu.hang is not None:
            gpu.hang.wait()
        if gpu.fail is not None:
            raise NVMLError(gpu.fail)
        if fn in gpu.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if fn in gpu.fail_calls:
            raise NVMLError(gpu.fail_calls[fn])

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
        NOT_SUPPORTED in its nvmlReturn. One call costs one call's time, however many fields."""
        self._enter(gpu, "nvmlDeviceGetFieldValues")
        out = []
        served = {NVML_FI_DEV_POWER_INSTANT: ("instant", gpu.power_mw),
                  NVML_FI_DEV_POWER_AVERAGE: ("average_field", gpu.average_mw),
                  NVML_FI_DEV_POWER_CURRENT_LIMIT: ("limit_field", gpu.power_limit_mw),
                  NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: ("energy_field", self._energy_mj(gpu))}
        for fid in field_ids:
            name, mw = served.get(fid, ("", 0))
            if name and name not in gpu.unsupported:
                out.append(SimpleNamespace(fieldId=fid, scopeId=0, timestamp=0, latencyUsec=0,
                                           valueType=NVML_VALUE_TYPE_UNSIGNED_INT, nvmlReturn=NVML_SUCCESS,
                                           value=SimpleNamespace(uiVal=mw)))
            else:
                out.append(SimpleNamespace(fieldId=fid, scopeId=0, timestamp=0, latencyUsec=0, valueType=0,
                                           nvmlReturn=NVML_ERROR_NOT_SUPPORTED, value=SimpleNamespace(dVal=0.0)))
        return out

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetPowerUsage")
        return gpu.average_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetTotalEnergyConsumption")
        return self._energy_mj(gpu)

    @staticmethod
    def _energy_mj(gpu: FakeGpu) -> int:
        if gpu.live:
            return gpu.energy_mj + int(gpu.power_mw * (time.time() - gpu.live_since))
        return gpu.energy_mj

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
        """Like the driver: samples newer than `last_seen_us`; NOT_FOUND when there are none."""
        self._enter(gpu, "nvmlDeviceGetSamples")
        buffer = gpu.driver_samples
        if gpu.live:
            newest = int(time.time() * 1e6) // LIVE_SAMPLE_PERIOD_US * LIVE_SAMPLE_PERIOD_US
            buffer = [(newest - LIVE_SAMPLE_PERIOD_US * k, gpu.power_mw) for k in range(LIVE_BUFFER_SAMPLES)][::-1]
        fresh = [SimpleNamespace(timeStamp=ts, sampleValue=SimpleNamespace(uiVal=mw))
                 for ts, mw in buffer if gpu.whole_buffer or ts > last_seen_us]
        if not fresh:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return NVML_VALUE_TYPE_UNSIGNED_INT, fresh
