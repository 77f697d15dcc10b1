"""NVIDIA GPUs through NVML (pynvml from nvidia-ml-py), imported only when this backend is chosen.

Instant power comes from the NVML_FI_DEV_POWER_INSTANT field because on Hopper nvmlDeviceGetPowerUsage is a
1 s average that lags a load step; that average is exported separately. The energy counter costs ~3-4 ms per
read (the driver busy-waits), so it is read every `energy_interval` seconds, not every tick; the store integrates
power samples in between. The driver's power-sample buffer (20 ms apart, ~2.4 s deep) is drained by timestamp every
`buffer_interval` seconds, so every driver sample reaches the histogram without paying for a drain every tick.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable, Sequence

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
from llm_dvfs.exporter.backends.cadence import Cadence

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

_VALUE_FIELDS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")  # index = NVML_VALUE_TYPE_*
_PSTATE_UNKNOWN = 32


def decode_clock_events(mask: int) -> dict[str, bool]:
    """Named throttle reasons from nvmlDeviceGetCurrentClocksEventReasons' bit mask."""
    return {name: bool(mask & bit) for name, bit in CLOCK_EVENT_REASONS.items()}


def nvml_value(value_type: int, value: Any) -> float:
    """The number inside an nvmlValue_t union, chosen by its NVML_VALUE_TYPE_*."""
    return float(getattr(value, _VALUE_FIELDS[value_type]))


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
                 energy_interval: float = 0.0, buffer_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`energy_interval` / `buffer_interval`: seconds between energy-counter reads / sample-buffer drains
        (0 = every read)."""
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._energy_interval = energy_interval
        n = self._nvml
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
        self._energy_due = {i: Cadence(energy_interval, clock) for i in self._indices}
        self._buffer_due = {i: Cadence(buffer_interval, clock) for i in self._indices}
        self._last_sample_us = {i: 0 for i in self._indices}
        self._unsupported: dict[int, set[str]] = {i: set() for i in self._indices}
        for i in self._indices:  # skip the ~2.4 s of driver samples taken before the exporter started
            try:
                self._new_power_samples(i, self._handles[i])
            except n.NVMLError as exc:
                if getattr(exc, "value", None) in (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_FUNCTION_NOT_FOUND):
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
                          max_clocks_hz=max_clocks)

    def _clock_ids(self) -> tuple[tuple[str, int], ...]:
        n = self._nvml
        return ("sm", n.NVML_CLOCK_SM), ("memory", n.NVML_CLOCK_MEM), ("graphics", n.NVML_CLOCK_GRAPHICS)

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def read(self, index: int) -> GpuSample:
        n, h = self._nvml, self._handles[index]
        unsupported = self._unsupported[index]
        failed: list[str] = []

        def get(field: str, call: Callable[[], Any]) -> Any:
            """One NVML call: None when unsupported (remembered), lost GPUs raise, other errors are counted."""
            if field in unsupported:
                return None
            try:
                return call()
            except n.NVMLError as exc:
                code = getattr(exc, "value", None)
                if code == n.NVML_ERROR_GPU_IS_LOST:
                    raise DeviceLostError(f"GPU {index} is lost") from exc
                if code in (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_FUNCTION_NOT_FOUND):
                    unsupported.add(field)
                elif code != n.NVML_ERROR_NOT_FOUND:  # NOT_FOUND from GetSamples = no new samples
                    failed.append(field)
                return None

        instant = get("power", lambda: self._instant_power(h))
        average_mw = get("power_average", lambda: n.nvmlDeviceGetPowerUsage(h))
        average = average_mw / 1000.0 if average_mw is not None else None
        energy_mj = get("energy", lambda: n.nvmlDeviceGetTotalEnergyConsumption(h)) \
            if self._energy_due[index].due() else None
        util = get("utilization", lambda: n.nvmlDeviceGetUtilizationRates(h))
        memory = get("memory", lambda: n.nvmlDeviceGetMemoryInfo(h))
        clocks = {}
        for label, clock in self._clock_ids():
            mhz = get(f"clock_{label}", lambda c=clock: n.nvmlDeviceGetClockInfo(h, c))
            if mhz is not None:
                clocks[label] = mhz * 1e6
        limit_mw = get("power_limit", lambda: n.nvmlDeviceGetEnforcedPowerLimit(h))
        pstate = get("performance_state", lambda: n.nvmlDeviceGetPerformanceState(h))
        events = get("clock_events", lambda: self._clock_event_mask(h))
        samples = (get("power_samples", lambda: self._new_power_samples(index, h)) or ()) \
            if self._buffer_due[index].due() else ()

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
            temperature_c=get("temperature", lambda: float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))),
            memory_used_bytes=float(memory.used) if memory is not None else None,
            memory_total_bytes=float(memory.total) if memory is not None else None,
            clocks_hz=clocks,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            performance_state=pstate if pstate is not None and pstate != _PSTATE_UNKNOWN else None,
            clock_events=decode_clock_events(events) if events is not None else None,
            power_samples=tuple(samples),
            buffered="power_samples" not in unsupported,
            failed_fields=tuple(failed),
        )

    def _instant_power(self, handle: Any) -> float:
        n = self._nvml
        value = n.nvmlDeviceGetFieldValues(handle, [n.NVML_FI_DEV_POWER_INSTANT])[0]
        if value.nvmlReturn != n.NVML_SUCCESS:
            raise n.NVMLError(value.nvmlReturn)
        return nvml_value(value.valueType, value.value) / 1000.0

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
        fresh = sorted((s for s in raw if s.timeStamp > last), key=lambda s: s.timeStamp)
        if fresh:
            self._last_sample_us[index] = fresh[-1].timeStamp
        return [PowerSample(s.timeStamp / 1e6, nvml_value(value_type, s.sampleValue) / 1000.0) for s in fresh]

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass
