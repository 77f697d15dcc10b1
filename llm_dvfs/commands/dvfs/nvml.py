"""NVIDIA settings through NVML (pynvml from nvidia-ml-py), the module injected so tests pass a fake at the call
boundary.

Calls made: nvmlDeviceGetSupportedMemoryClocks, nvmlDeviceGetSupportedGraphicsClocks (for the highest memory
clock), nvmlDeviceGetPowerManagementLimitConstraints, nvmlDeviceGetPowerManagementDefaultLimit,
nvmlDeviceGetPowerManagementLimit, nvmlDeviceGetClockInfo, and to change settings nvmlDeviceSetGpuLockedClocks /
nvmlDeviceResetGpuLockedClocks, nvmlDeviceSetMemoryLockedClocks / nvmlDeviceResetMemoryLockedClocks and
nvmlDeviceSetPowerManagementLimit (milliwatts).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Callable, Sequence, TypeVar

from llm_dvfs.commands.dvfs.control import (
    ControlError,
    GpuIdentity,
    Limits,
    NoPermissionError,
    NotSupportedError,
)
from llm_dvfs.exporter.backends import nvml as nvml_backend
from llm_dvfs.exporter.backends.base import BackendUnavailableError

T = TypeVar("T")
NEEDS = "changing GPU clocks and power limits needs root (run the sweep as root, e.g. with sudo)"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def load_pynvml() -> ModuleType:
    """The exporter's loader, its error said as a settings error."""
    try:
        return nvml_backend.load_pynvml()
    except BackendUnavailableError as exc:
        raise ControlError(f"NVIDIA settings: {exc}") from None


class NvmlControl:
    """GPU settings of every NVIDIA GPU NVML lists, by NVML index."""

    vendor = "nvidia"

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        self._n = nvml if nvml is not None else load_pynvml()
        n = self._n
        try:
            n.nvmlInit()
        except n.NVMLError as exc:
            raise ControlError(f"NVML is not usable here: {exc}") from exc
        try:
            self._handles = [n.nvmlDeviceGetHandleByIndex(i) for i in range(n.nvmlDeviceGetCount())]
            self._gpus = [GpuIdentity(i, _text(n.nvmlDeviceGetUUID(h)), _text(n.nvmlDeviceGetName(h)), self.vendor)
                          for i, h in enumerate(self._handles)]
        except n.NVMLError as exc:
            n.nvmlShutdown()
            raise ControlError(f"NVML could not list GPUs: {exc}") from exc

    def _call(self, what: str, index: int, fn: Callable[..., T], *args: Any) -> T:
        """One NVML call on GPU `index`, its error translated to ours."""
        n = self._n
        try:
            return fn(self._handle(index), *args)
        except n.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code == getattr(n, "NVML_ERROR_NO_PERMISSION", 4):
                raise NoPermissionError(f"GPU {index}: {what}: no permission; {NEEDS}") from exc
            if code in (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_FUNCTION_NOT_FOUND):
                raise NotSupportedError(f"GPU {index} does not support {what}") from exc
            raise ControlError(f"GPU {index}: {what} failed: {exc}") from exc

    def _handle(self, index: int) -> Any:
        if not 0 <= index < len(self._handles):
            raise ControlError(f"no NVIDIA GPU with index {index} (NVML lists {len(self._handles)})")
        return self._handles[index]

    def _optional(self, what: str, index: int, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return self._call(what, index, fn, *args)
        except NotSupportedError:
            return None

    def gpus(self) -> Sequence[GpuIdentity]:
        return self._gpus

    def limits(self, index: int) -> Limits:
        n = self._n
        memory = self._optional("listing memory clocks", index, n.nvmlDeviceGetSupportedMemoryClocks)
        sm = None
        if memory:
            sm = self._optional("listing graphics clocks", index, n.nvmlDeviceGetSupportedGraphicsClocks, max(memory))
        span = self._optional("power limit constraints", index, n.nvmlDeviceGetPowerManagementLimitConstraints)
        default = self._optional("the default power limit", index, n.nvmlDeviceGetPowerManagementDefaultLimit)
        return Limits(tuple(sorted(set(sm))) if sm else None, tuple(sorted(set(memory))) if memory else None,
                      (span[0] / 1000.0, span[1] / 1000.0) if span else None,
                      default / 1000.0 if default is not None else None)

    def current(self, index: int) -> dict[str, float | None]:
        n = self._n
        limit = self._optional("reading the power limit", index, n.nvmlDeviceGetPowerManagementLimit)
        return {"sm_clock": self._optional("reading the SM clock", index, n.nvmlDeviceGetClockInfo, n.NVML_CLOCK_SM),
                "memory_clock": self._optional("reading the memory clock", index, n.nvmlDeviceGetClockInfo,
                                               n.NVML_CLOCK_MEM),
                "power_limit": limit / 1000.0 if limit is not None else None}

    def privilege(self) -> str:
        if os.geteuid() == 0:
            return "running as root, which NVML requires to change clocks and power limits"
        return f"not root: {NEEDS}"

    def lock_sm_clock(self, index: int, mhz: int) -> None:
        self._call(f"locking the SM clock at {mhz} MHz", index, self._n.nvmlDeviceSetGpuLockedClocks, mhz, mhz)

    def reset_sm_clock(self, index: int) -> None:
        self._call("resetting the locked SM clock", index, self._n.nvmlDeviceResetGpuLockedClocks)

    def lock_memory_clock(self, index: int, mhz: int) -> None:
        self._call(f"locking the memory clock at {mhz} MHz", index, self._n.nvmlDeviceSetMemoryLockedClocks, mhz, mhz)

    def reset_memory_clock(self, index: int) -> None:
        self._call("resetting the locked memory clock", index, self._n.nvmlDeviceResetMemoryLockedClocks)

    def set_power_limit(self, index: int, watts: float) -> None:
        self._call(f"setting the power limit to {watts:g} W", index, self._n.nvmlDeviceSetPowerManagementLimit,
                   int(round(watts * 1000)))

    def close(self) -> None:
        try:
            self._n.nvmlShutdown()
        except self._n.NVMLError:
            pass
