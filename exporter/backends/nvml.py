"""NVIDIA GPUs through NVML (pynvml from nvidia-ml-py), imported only when this backend is chosen.

Instant power comes from the NVML_FI_DEV_POWER_INSTANT field because on Hopper nvmlDeviceGetPowerUsage is a
1 s average that lags a load step; that average is exported separately. The energy counter costs ~3-4 ms per
read (the driver busy-waits), so it is read every `energy_interval` seconds, not every tick; the store integrates
power samples in between. The driver's power-sample buffer (20 ms apart, ~2.4 s deep) is drained by timestamp every
`buffer_interval` seconds, so every driver sample reaches the histogram without paying for a drain every tick,
and early when the power steps (the 20 ms samples then replace the lagging 100 ms readings at once). Instant and
averaged power come from one nvmlDeviceGetFieldValues call per tick (a getter stands in where a field is not
supported); values that change slowly (temperature, memory, power limit, P-state, the memory and graphics clocks)
are read every `slow_interval` seconds and repeated in between (issue 16: fewer driver calls, less Python a tick).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Mapping, Sequence

from llm_dvfs.exporter.backends.base import (
    Backend,
    BackendUnavailableError,
    DeviceInfo,
    DeviceLostError,
    DeviceReadError,
    GpuSample,
    PowerSample,
    select_indices,
)
from llm_dvfs.exporter.backends.cadence import spread

# Clock-event (throttle) reason bits, named as nvmlClocksEventReason* in nvml.h.
CLOCK_EVENT_REASONS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}

# The energy counter's value changes in steps 67-133 ms apart (H200, driver 580; benchmarks/nvml_counter_timing.py)
COUNTER_STALENESS_S = 0.15
_VALUE_FIELDS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")  # index = NVML_VALUE_TYPE_*
_PSTATE_UNKNOWN = 32
# A tick-to-tick change of instant power beyond this share of the power limit drains the sample buffer early
# (a prefill burst, a load starting or stopping), but never sooner than EARLY_DRAIN_GAP_S after the last drain:
# at most two drains a second per GPU however jumpy the load.
POWER_STEP_FRACTION = 0.1
POWER_STEP_DEFAULT_LIMIT_W = 500.0
EARLY_DRAIN_GAP_S = 0.5
_TIMESTAMP = attrgetter("timeStamp")


@dataclass(frozen=True)
class SlowValues:
    """The values read every `slow_interval` (None = not supported or the read failed), repeated until the next."""

    temperature_c: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    power_limit_w: float | None = None
    performance_state: int | None = None
    # memory and graphics clocks: HBM's clock moves only when an operator sets it, and the graphics clock follows
    # the SM clock on datacenter GPUs; the SM clock, the one DVFS and power capping move, is read every tick
    clocks_hz: Mapping[str, float] = field(default_factory=dict)


_DECODED: dict[int, Mapping[str, bool]] = {}  # mask -> reasons; the mask rarely changes, so decode each once


def decode_clock_events(mask: int) -> Mapping[str, bool]:
    """Named throttle reasons from nvmlDeviceGetCurrentClocksEventReasons' bit mask (read-only, shared)."""
    decoded = _DECODED.get(mask)
    if decoded is None:
        decoded = MappingProxyType({name: bool(mask & bit) for name, bit in CLOCK_EVENT_REASONS.items()})
        if len(_DECODED) < 4096:
            _DECODED[mask] = decoded
    return decoded


def nvml_value(value_type: int, value: Any) -> float:
    """The number inside an nvmlValue_t union, chosen by its NVML_VALUE_TYPE_*."""
    return float(getattr(value, _VALUE_FIELDS[value_type]))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def load_pynvml() -> ModuleType:
    """Import pynvml, or say clearly that it is missing."""
    try:
        import pynvml
    except ImportError as exc:
        raise BackendUnavailableError("NVML backend needs nvidia-ml-py (pip install 'llm-dvfs[nvidia]')") from exc
    return pynvml


class NvmlBackend(Backend):
    """Reads every selected NVIDIA GPU through an injected pynvml-compatible module."""

    name = "nvml"

    def __init__(self, nvml: ModuleType | Any | None = None, gpu_ids: Sequence[int] | None = None,
                 energy_interval: float = 0.0, buffer_interval: float = 0.0, slow_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        """`energy_interval` / `buffer_interval` / `slow_interval`: seconds between energy-counter reads /
        sample-buffer drains / reads of the slow values (0 = every read)."""
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._wall, self._clock = wall, clock
        self._clocks = [(f"clock_{label}", label, clock) for label, clock in self._clock_ids()]
        self._tick_clocks = [c for c in self._clocks if c[1] == "sm"]
        self._slow_clocks = [c for c in self._clocks if c[1] != "sm"]
        self._energy_interval = energy_interval
        n = self._nvml
        self._not_supported = (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_FUNCTION_NOT_FOUND)
        # (key in the unsupported set, name a failure is counted under, field id): one call reads them all
        self._power_fields = (("power", "power", n.NVML_FI_DEV_POWER_INSTANT),
                              ("power_average_field", "power_average", n.NVML_FI_DEV_POWER_AVERAGE))
        try:
            n.nvmlInit()
        except n.NVMLError as exc:
            raise BackendUnavailableError(f"NVML is not usable here: {exc}") from exc
        try:
            count = n.nvmlDeviceGetCount()
            self._indices = select_indices(range(count), gpu_ids) if count else []
            if not self._indices:
                raise BackendUnavailableError("NVML found no GPU")
            driver = _text(n.nvmlSystemGetDriverVersion())
            self._handles = {i: n.nvmlDeviceGetHandleByIndex(i) for i in self._indices}
            self._info = [self._describe(i, driver) for i in self._indices]
        except n.NVMLError as exc:
            n.nvmlShutdown()
            raise BackendUnavailableError(f"NVML could not list GPUs: {exc}") from exc
        except BackendUnavailableError:
            n.nvmlShutdown()
            raise
        selected = len(self._indices)
        self._energy_due = {i: spread(energy_interval, k, selected, clock) for k, i in enumerate(self._indices)}
        self._buffer_due = {i: spread(buffer_interval, k, selected, clock) for k, i in enumerate(self._indices)}
        self._slow_due = {i: spread(slow_interval, k, selected, clock) for k, i in enumerate(self._indices)}
        self._slow = {i: SlowValues() for i in self._indices}
        self._last_sample_us = {i: 0 for i in self._indices}
        self._last_instant: dict[int, float | None] = {i: None for i in self._indices}
        self._drained_at = {i: -float("inf") for i in self._indices}
        self._stepped: set[int] = set()  # devices whose power stepped since their last drain
        self._unsupported: dict[int, set[str]] = {i: set() for i in self._indices}
        self._fields_left = {i: self._fields_supported(set()) for i in self._indices}
        for i in self._indices:  # skip the ~2.4 s of driver samples taken before the exporter started
            try:
                self._new_power_samples(i, self._handles[i])
            except n.NVMLError as exc:
                if getattr(exc, "value", None) in self._not_supported:
                    self._unsupported[i].add("power_samples")

    def _describe(self, index: int, driver: str) -> DeviceInfo:
        n, h = self._nvml, self._handles[index]
        max_clocks: dict[str, float] = {}
        for label, clock in self._clock_ids():
            try:
                max_clocks[label] = n.nvmlDeviceGetMaxClockInfo(h, clock) * 1e6
            except n.NVMLError:
                pass
        try:
            n.nvmlDeviceGetTotalEnergyConsumption(h)
            energy_source = "counter_interpolated" if self._energy_interval > 0 else "counter"
        except n.NVMLError:
            energy_source = "integrated"
        return DeviceInfo(index=index, name=_text(n.nvmlDeviceGetName(h)), uuid=_text(n.nvmlDeviceGetUUID(h)),
                          vendor="nvidia", driver=driver, backend=self.name, energy_source=energy_source,
                          max_clocks_hz=max_clocks, counter_staleness_s=COUNTER_STALENESS_S)

    def _clock_ids(self) -> tuple[tuple[str, int], ...]:
        n = self._nvml
        return ("sm", n.NVML_CLOCK_SM), ("memory", n.NVML_CLOCK_MEM), ("graphics", n.NVML_CLOCK_GRAPHICS)

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def read(self, index: int) -> GpuSample:
        n, h = self._nvml, self._handles[index]
        unsupported = self._unsupported[index]
        failed: list[str] = []

        def get(field: str, call: Callable[..., Any], *args: Any) -> Any:
            """One NVML call: None when unsupported (remembered), lost GPUs raise, other errors are counted."""
            if field in unsupported:
                return None
            try:
                return call(*args)
            except n.NVMLError as exc:
                self._failure(index, getattr(exc, "value", None), field, field, unsupported, failed)
                return None

        # the counter and instant power first, timed: their time anchors the energy (the middle of the ~3 ms
        # counter read; a thread descheduled in between shows as a longer read, never as a wrong time)
        before = self._wall()
        energy_mj = get("energy", n.nvmlDeviceGetTotalEnergyConsumption, h) \
            if self._energy_due[index].due() else None
        read_at = (before + self._wall()) / 2 if energy_mj is not None else before
        watts = self._power(index, h, unsupported, failed)
        instant, average = watts.get("power"), watts.get("power_average_field")
        if average is None and "power_average_field" in unsupported:
            average_mw = get("power_average", n.nvmlDeviceGetPowerUsage, h)
            average = average_mw / 1000.0 if average_mw is not None else None
        util = get("utilization", n.nvmlDeviceGetUtilizationRates, h)
        events = get("clock_events", self._clock_event_mask, h)
        if self._slow_due[index].due():
            self._slow[index] = self._read_slow(h, get)
        slow = self._slow[index]
        clocks = {**slow.clocks_hz, **self._read_clocks(h, self._tick_clocks, get)}
        samples = (get("power_samples", self._new_power_samples, index, h) or ()) \
            if self._drain_due(index, instant, slow.power_limit_w) else ()

        if instant is None and "power" in unsupported:
            instant = average  # pre-Hopper: no instant field; the plain power reading is the best there is
        if instant is None and average is None and energy_mj is None and util is None:
            raise DeviceReadError(f"GPU {index}: every read failed ({', '.join(failed) or 'unsupported'})")
        return GpuSample(
            power_w=instant,
            power_average_w=average,
            energy_j=energy_mj / 1000.0 if energy_mj is not None else None,
            utilization=util.gpu / 100.0 if util is not None else None,
            memory_utilization=util.memory / 100.0 if util is not None else None,
            temperature_c=slow.temperature_c,
            memory_used_bytes=slow.memory_used_bytes,
            memory_total_bytes=slow.memory_total_bytes,
            clocks_hz=clocks,
            power_limit_w=slow.power_limit_w,
            performance_state=slow.performance_state,
            clock_events=decode_clock_events(events) if events is not None else None,
            power_samples=tuple(samples),
            buffered="power_samples" not in unsupported,
            failed_fields=tuple(failed),
            read_at=read_at,
        )

    def _drain_due(self, index: int, instant: float | None, limit_w: float | None) -> bool:
        """On the buffer's cadence, and early when the power stepped since the last tick: until the next drain the
        total rests on 100 ms readings that lag a step, so the 20 ms samples should replace them at once."""
        now = self._clock()
        previous, self._last_instant[index] = self._last_instant[index], instant
        if instant is not None and previous is not None and \
                abs(instant - previous) > POWER_STEP_FRACTION * (limit_w or POWER_STEP_DEFAULT_LIMIT_W):
            self._stepped.add(index)  # drained as soon as the gap allows
        due = self._buffer_due[index].due()
        if due or (index in self._stepped and now - self._drained_at[index] >= EARLY_DRAIN_GAP_S):
            self._drained_at[index] = now
            self._stepped.discard(index)
            return True
        return False

    def _failure(self, index: int, code: int | None, key: str, name: str, unsupported: set[str],
                 failed: list[str]) -> None:
        """Sort one failed read: a lost GPU raises, "not supported" is remembered under `key` (never asked
        again), NOT_FOUND (GetSamples: no new samples) is nothing, anything else is counted as `name`."""
        if code == self._nvml.NVML_ERROR_GPU_IS_LOST:
            raise DeviceLostError(f"GPU {index} is lost")
        if code in self._not_supported:
            unsupported.add(key)
        elif code != self._nvml.NVML_ERROR_NOT_FOUND:
            failed.append(name)

    def _power(self, index: int, handle: Any, unsupported: set[str], failed: list[str]) -> dict[str, float]:
        """The power fields still supported, in watts by key, from one nvmlDeviceGetFieldValues call."""
        n = self._nvml
        fields, ids = self._fields_left[index]
        if not fields:
            return {}
        try:
            values = n.nvmlDeviceGetFieldValues(handle, ids)
        except n.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in self._not_supported:  # no field API at all (old driver): every field is unsupported
                unsupported.update(f[0] for f in self._power_fields)
            else:
                self._failure(index, code, "power", "power", unsupported, failed)
            self._fields_left[index] = self._fields_supported(unsupported)
            return {}
        watts: dict[str, float] = {}
        for (key, name, _), value in zip(fields, values):
            if value.nvmlReturn == n.NVML_SUCCESS:
                watts[key] = nvml_value(value.valueType, value.value) / 1000.0
            else:
                self._failure(index, value.nvmlReturn, key, name, unsupported, failed)
                self._fields_left[index] = self._fields_supported(unsupported)
        return watts

    def _fields_supported(self, unsupported: set[str]) -> tuple[list[tuple[str, str, int]], list[int]]:
        """The power fields not found unsupported, and their ids (the list one call asks for)."""
        fields = [f for f in self._power_fields if f[0] not in unsupported]
        return fields, [f[2] for f in fields]

    def _read_clocks(self, handle: Any, which: Sequence[tuple[str, str, int]],
                     get: Callable[..., Any]) -> dict[str, float]:
        clocks = {}
        for name, label, clock in which:
            mhz = get(name, self._nvml.nvmlDeviceGetClockInfo, handle, clock)
            if mhz is not None:
                clocks[label] = mhz * 1e6
        return clocks

    def _read_slow(self, handle: Any, get: Callable[..., Any]) -> SlowValues:
        n = self._nvml
        memory = get("memory", n.nvmlDeviceGetMemoryInfo, handle)
        limit_mw = get("power_limit", n.nvmlDeviceGetEnforcedPowerLimit, handle)
        pstate = get("performance_state", n.nvmlDeviceGetPerformanceState, handle)
        return SlowValues(
            temperature_c=_float(get("temperature", n.nvmlDeviceGetTemperature, handle, n.NVML_TEMPERATURE_GPU)),
            memory_used_bytes=float(memory.used) if memory is not None else None,
            memory_total_bytes=float(memory.total) if memory is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            performance_state=pstate if pstate is not None and pstate != _PSTATE_UNKNOWN else None,
            clocks_hz=self._read_clocks(handle, self._slow_clocks, get))

    def _clock_event_mask(self, handle: Any) -> int:
        n = self._nvml
        getter = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if getter is None:  # nvidia-ml-py before the "event" rename
            getter = n.nvmlDeviceGetCurrentClocksThrottleReasons
        return int(getter(handle))

    def _new_power_samples(self, index: int, handle: Any) -> list[PowerSample]:
        """Driver samples newer than the last one seen (timestamps are µs), oldest first."""
        n = self._nvml
        value_type, raw = n.nvmlDeviceGetSamples(handle, n.NVML_TOTAL_POWER_SAMPLES, self._last_sample_us[index])
        last = self._last_sample_us[index]
        fresh = sorted((s for s in raw if s.timeStamp > last), key=_TIMESTAMP)
        if fresh:
            self._last_sample_us[index] = fresh[-1].timeStamp
        member = _VALUE_FIELDS[value_type]
        return [PowerSample(s.timeStamp / 1e6, getattr(s.sampleValue, member) / 1000.0) for s in fresh]

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass
