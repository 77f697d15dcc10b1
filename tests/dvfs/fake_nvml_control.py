"""FakeNvmlControl: FakeNvml (tests/exporter/fake_nvml.py) plus NVML's setting calls, at the call boundary only.

It records every set and reset in `log` (refused ones too, with their error code), checks values against the
supported lists and limit constraints as the driver does, and models what the GPU would do: a locked SM clock is
the observed clock, power follows the clock, and a power limit below that power makes the "power controller"
lower the clock and raise the sw_power_cap reason, so a setting the GPU overrode can be seen in the samples.

Its whole state can be saved to and loaded from JSON (`save`/`load`), which is what the fake `pynvml` module in
tests/dvfs/fake_pynvml/ uses so a sweep subprocess (and its exporter) share one fake GPU that outlives a kill -9.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from tests.exporter import fake_nvml
from tests.exporter.fake_nvml import (
    NVML_CLOCK_GRAPHICS,
    NVML_CLOCK_MEM,
    NVML_CLOCK_SM,
    NVML_ERROR_INVALID_ARGUMENT,
    FakeGpu,
    FakeNvml,
    NVMLError,
)

NVML_ERROR_NO_PERMISSION = 4
SW_POWER_CAP = 0x4
H100_SM_CLOCKS = [1980, 1890, 1800, 1755, 1600, 1410, 1200, 1005, 810, 600, 345]
H100_MEMORY_CLOCKS = [2619, 1593]
SETTERS = ("nvmlDeviceSetGpuLockedClocks", "nvmlDeviceResetGpuLockedClocks", "nvmlDeviceSetMemoryLockedClocks",
           "nvmlDeviceResetMemoryLockedClocks", "nvmlDeviceSetPowerManagementLimit")


def power_at(sm_mhz: float, max_mhz: float) -> float:
    """Watts of a busy fake GPU at `sm_mhz`: idle floor plus a part growing with the square of the clock."""
    return 60.0 + 320.0 * (sm_mhz / max_mhz) ** 2


@dataclass
class ControlledGpu(FakeGpu):
    supported_sm_clocks: list = field(default_factory=lambda: list(H100_SM_CLOCKS))
    supported_memory_clocks: list = field(default_factory=lambda: list(H100_MEMORY_CLOCKS))
    limit_min_mw: int = 200_000
    limit_max_mw: int = 700_000
    default_limit_mw: int = 700_000
    locked_sm: list | None = None
    locked_memory: list | None = None


_SAVED = ("name", "uuid", "power_mw", "average_mw", "energy_mj", "clocks_mhz", "max_clocks_mhz", "power_limit_mw",
          "clock_event_mask", "fail_calls", "unsupported", "live", "live_since", "supported_sm_clocks",
          "supported_memory_clocks", "limit_min_mw", "limit_max_mw", "default_limit_mw", "locked_sm",
          "locked_memory")


def h100s(n: int, live: bool = False) -> list[ControlledGpu]:
    gpus = [ControlledGpu(uuid=f"GPU-{i:08d}-fake-ctrl-0000-000000000000", live=live) for i in range(n)]
    for g in gpus:
        settle(g)
    return gpus


def settle(gpu: ControlledGpu) -> None:
    """What the GPU does under load with its current locks and limit (energy so far is banked first)."""
    now = time.time()
    gpu.energy_mj += int(gpu.power_mw * (now - gpu.live_since)) if gpu.live else 0
    gpu.live_since = now
    top = max(gpu.supported_sm_clocks)
    f = gpu.locked_sm[1] if gpu.locked_sm else top
    limit_w = gpu.power_limit_mw / 1000.0
    mask = 0
    if power_at(f, top) > limit_w:
        f = max(min(gpu.supported_sm_clocks), top * math.sqrt(max(limit_w - 60.0, 0.0) / 320.0))
        mask = SW_POWER_CAP
    gpu.clocks_mhz = {NVML_CLOCK_SM: int(f), NVML_CLOCK_GRAPHICS: int(f),
                      NVML_CLOCK_MEM: gpu.locked_memory[1] if gpu.locked_memory else max(gpu.supported_memory_clocks)}
    gpu.power_mw = gpu.average_mw = int(power_at(f, top) * 1000)
    gpu.clock_event_mask = mask


class FakeNvmlControl(FakeNvml):
    """pynvml-shaped; `log` lists every set/reset as {"call", "uuid", "args", "error"} in call order."""

    def __init__(self, gpus: list[ControlledGpu] | None = None, log: list | None = None, **kwargs) -> None:
        super().__init__(gpus if gpus is not None else h100s(1), **kwargs)
        self.NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
        self.NVML_ERROR_FUNCTION_NOT_FOUND = fake_nvml.NVML_ERROR_FUNCTION_NOT_FOUND
        self.log: list[dict] = log if log is not None else []

    # -- persistence (for the fake pynvml module of subprocess tests) ----------------------------------------
    def save(self, path: Path) -> None:
        gpus = []
        for g in self.gpus:
            d = {name: getattr(g, name) for name in _SAVED}
            d["clocks_mhz"] = {str(k): v for k, v in g.clocks_mhz.items()}
            d["max_clocks_mhz"] = {str(k): v for k, v in g.max_clocks_mhz.items()}
            d["unsupported"] = sorted(g.unsupported)
            gpus.append(d)
        tmp = Path(f"{path}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"gpus": gpus, "log": self.log}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "FakeNvmlControl":
        data = json.loads(Path(path).read_text())
        gpus = []
        known = {f.name for f in fields(ControlledGpu)}
        for d in data["gpus"]:
            d = {k: v for k, v in d.items() if k in known}
            d["clocks_mhz"] = {int(k): v for k, v in d["clocks_mhz"].items()}
            d["max_clocks_mhz"] = {int(k): v for k, v in d["max_clocks_mhz"].items()}
            d["unsupported"] = set(d["unsupported"])
            gpus.append(ControlledGpu(**d))
        return cls(gpus, data["log"])

    # -- read-only queries -------------------------------------------------------------------------------
    def nvmlDeviceGetSupportedMemoryClocks(self, gpu: ControlledGpu) -> list[int]:
        self._enter(gpu, "nvmlDeviceGetSupportedMemoryClocks")
        return list(gpu.supported_memory_clocks)

    def nvmlDeviceGetSupportedGraphicsClocks(self, gpu: ControlledGpu, memory_mhz: int) -> list[int]:
        self._enter(gpu, "nvmlDeviceGetSupportedGraphicsClocks")
        if memory_mhz not in gpu.supported_memory_clocks:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return list(gpu.supported_sm_clocks)

    def nvmlDeviceGetPowerManagementLimitConstraints(self, gpu: ControlledGpu) -> list[int]:
        self._enter(gpu, "nvmlDeviceGetPowerManagementLimitConstraints")
        return [gpu.limit_min_mw, gpu.limit_max_mw]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, gpu: ControlledGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetPowerManagementDefaultLimit")
        return gpu.default_limit_mw

    def nvmlDeviceGetPowerManagementLimit(self, gpu: ControlledGpu) -> int:
        self._enter(gpu, "nvmlDeviceGetPowerManagementLimit")
        return gpu.power_limit_mw

    # -- setters: every call logged, refused ones with their error ---------------------------------------
    def _set(self, gpu: ControlledGpu, fn: str, args: list, check: bool, change) -> None:
        entry = {"call": fn, "uuid": gpu.uuid, "args": args, "error": None}
        self.log.append(entry)
        try:
            self._enter(gpu, fn)
            if not check:
                raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        except NVMLError as exc:
            entry["error"] = exc.value
            raise
        change()
        settle(gpu)

    def nvmlDeviceSetGpuLockedClocks(self, gpu: ControlledGpu, low: int, high: int) -> None:
        self._set(gpu, "nvmlDeviceSetGpuLockedClocks", [low, high],
                  low <= high and {low, high} <= set(gpu.supported_sm_clocks),
                  lambda: setattr(gpu, "locked_sm", [low, high]))

    def nvmlDeviceResetGpuLockedClocks(self, gpu: ControlledGpu) -> None:
        self._set(gpu, "nvmlDeviceResetGpuLockedClocks", [], True, lambda: setattr(gpu, "locked_sm", None))

    def nvmlDeviceSetMemoryLockedClocks(self, gpu: ControlledGpu, low: int, high: int) -> None:
        self._set(gpu, "nvmlDeviceSetMemoryLockedClocks", [low, high],
                  low <= high and {low, high} <= set(gpu.supported_memory_clocks),
                  lambda: setattr(gpu, "locked_memory", [low, high]))

    def nvmlDeviceResetMemoryLockedClocks(self, gpu: ControlledGpu) -> None:
        self._set(gpu, "nvmlDeviceResetMemoryLockedClocks", [], True, lambda: setattr(gpu, "locked_memory", None))

    def nvmlDeviceSetPowerManagementLimit(self, gpu: ControlledGpu, limit_mw: int) -> None:
        self._set(gpu, "nvmlDeviceSetPowerManagementLimit", [limit_mw],
                  gpu.limit_min_mw <= limit_mw <= gpu.limit_max_mw, lambda: setattr(gpu, "power_limit_mw", limit_mw))


def as_found(gpu: ControlledGpu, limit_mw: int) -> bool:
    """True when the GPU is back as it was found: no locked clock, power limit `limit_mw`."""
    return gpu.locked_sm is None and gpu.locked_memory is None and gpu.power_limit_mw == limit_mw
