"""AMD GPUs and Hygon DCUs through the amdsmi Python API: the power cap only (amdsmi_get_power_cap_info,
amdsmi_set_power_cap, microwatts). Locking SM or memory clocks is NVIDIA-only here: amdsmi sets clock ranges and
performance levels, not one locked clock with a matching reset, so the sweep refuses those settings on AMD.
Untested on hardware; written against amdsmi's documented names and units.
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
from llm_dvfs.exporter.backends import amdsmi as amdsmi_backend
from llm_dvfs.exporter.backends.base import BackendUnavailableError

T = TypeVar("T")
_NOT_SUPPORTED = 2  # amdsmi_status_t
_NO_PERM = 10
NVIDIA_ONLY = "locking clocks is NVIDIA-only in llm-dvfs"


def load_amdsmi() -> ModuleType:
    """The exporter's loader, its error said as a settings error."""
    try:
        return amdsmi_backend.load_amdsmi()
    except BackendUnavailableError as exc:
        raise ControlError(f"AMD settings: {exc}") from None


class AmdSmiControl:
    vendor = "amd"

    def __init__(self, amdsmi: ModuleType | Any | None = None) -> None:
        self._smi = amdsmi if amdsmi is not None else load_amdsmi()
        smi = self._smi
        try:
            smi.amdsmi_init()
            self._handles = list(smi.amdsmi_get_processor_handles())
            self._gpus = [GpuIdentity(i, str(smi.amdsmi_get_gpu_device_uuid(h)),
                                      str(smi.amdsmi_get_gpu_asic_info(h).get("market_name", "AMD GPU")), self.vendor)
                          for i, h in enumerate(self._handles)]
        except smi.AmdSmiException as exc:
            raise ControlError(f"amdsmi could not list GPUs: {exc}") from None

    def _call(self, what: str, index: int, fn: Callable[..., T], *args: Any) -> T:
        if not 0 <= index < len(self._handles):
            raise ControlError(f"no AMD GPU with index {index} (amdsmi lists {len(self._handles)})")
        try:
            return fn(self._handles[index], *args)
        except self._smi.AmdSmiException as exc:
            code = getattr(exc, "err_code", None)
            if code == _NO_PERM:
                raise NoPermissionError(f"GPU {index}: {what}: no permission; setting the power cap needs root") \
                    from None
            if code == _NOT_SUPPORTED:
                raise NotSupportedError(f"GPU {index} does not support {what}") from None
            raise ControlError(f"GPU {index}: {what} failed: {exc}") from None

    def _cap(self, index: int) -> dict | None:
        try:
            return self._call("reading the power cap", index, self._smi.amdsmi_get_power_cap_info)
        except NotSupportedError:
            return None

    def gpus(self) -> Sequence[GpuIdentity]:
        return self._gpus

    def limits(self, index: int) -> Limits:
        cap = self._cap(index)
        if not cap:
            return Limits(None, None, None, None)
        return Limits(None, None, (cap["min_power_cap"] / 1e6, cap["max_power_cap"] / 1e6),
                      cap["default_power_cap"] / 1e6)

    def current(self, index: int) -> dict[str, float | None]:
        cap = self._cap(index)
        return {"sm_clock": None, "memory_clock": None, "power_limit": cap["power_cap"] / 1e6 if cap else None}

    def privilege(self) -> str:
        return "running as root, which amdsmi requires to set the power cap" if os.geteuid() == 0 else \
            "not root: setting the power cap needs root (run the sweep as root, e.g. with sudo)"

    def lock_sm_clock(self, index: int, mhz: int) -> None:
        raise NotSupportedError(NVIDIA_ONLY)

    def reset_sm_clock(self, index: int) -> None:
        raise NotSupportedError(NVIDIA_ONLY)

    def lock_memory_clock(self, index: int, mhz: int) -> None:
        raise NotSupportedError(NVIDIA_ONLY)

    def reset_memory_clock(self, index: int) -> None:
        raise NotSupportedError(NVIDIA_ONLY)

    def set_power_limit(self, index: int, watts: float) -> None:
        self._call(f"setting the power cap to {watts:g} W", index, self._smi.amdsmi_set_power_cap, 0,
                   int(round(watts * 1e6)))

    def close(self) -> None:
        try:
            self._smi.amdsmi_shut_down()
        except self._smi.AmdSmiException:
            pass
