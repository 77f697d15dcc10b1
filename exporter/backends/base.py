"""The one interface every power source implements, the sample it returns, and the errors it may raise.

Backends translate vendor units and vendor errors at the boundary, so the sampler, store and collector only ever
see SI units (W, J, Hz, bytes, ratios) and the project's own exception types. A field that a device cannot report
is None (or absent from a mapping): "not supported" must never be faked as 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence


class DeviceError(Exception):
    """A device could not be read this time; `kind` labels the read-error counter."""

    kind = "read"


class DeviceLostError(DeviceError):
    """The device fell off the bus or the driver lost it (e.g. NVML_ERROR_GPU_IS_LOST)."""

    kind = "lost"


class DeviceReadError(DeviceError):
    """Any other failed read (unknown error, timeout, malformed vendor output)."""

    kind = "read"


class BackendUnavailableError(Exception):
    """The backend cannot start here: library or tool missing, no driver, no device, unreadable input."""


class DeviceNotFoundError(BackendUnavailableError):
    """A requested device index does not exist on this backend."""


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is; fixed for the life of the exporter. `kind` is "gpu" or "cpu" (host backend)."""

    index: int
    name: str
    uuid: str
    vendor: str
    driver: str
    backend: str
    source: str = "hardware"  # "hardware" or "replay"
    # how the energy total is held to the hardware (exporter/energy.py): "counter": its counter read every tick;
    # "counter_interpolated": read every few ticks; "integrated": power samples only (no counter)
    energy_source: str = "counter"
    kind: str = "gpu"
    max_clocks_hz: Mapping[str, float] = field(default_factory=dict)
    # how old a counter value may be when read: it changes in steps (NVML: ~100 ms, up to 133 ms measured on an
    # H200), so a read tells the energy as of some moment up to this long before it (exporter/energy.py)
    counter_staleness_s: float = 0.0


class PowerSample(NamedTuple):
    """One power reading with its own timestamp (Unix seconds), e.g. from the driver's sample buffer (a tuple:
    an 8-GPU host makes 400 of them a second, and a frozen dataclass costs four times as much to build)."""

    timestamp: float
    watts: float


@dataclass(frozen=True)
class GpuSample:
    """One read of one device, in SI units. None means "this device does not report it"."""

    power_w: float | None = None  # latest instant power
    power_average_w: float | None = None  # the driver's own averaged power, where it has one
    energy_j: float | None = None  # raw hardware energy counter (may reset); None = not read this time
    utilization: float | None = None  # 0-1
    memory_utilization: float | None = None  # 0-1 (memory-controller busy ratio)
    temperature_c: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    clocks_hz: Mapping[str, float] = field(default_factory=dict)  # keys among "sm", "memory", "graphics"
    power_limit_w: float | None = None
    performance_state: int | None = None
    clock_events: Mapping[str, bool] | None = None  # named throttle reasons -> active
    power_samples: tuple[PowerSample, ...] = ()  # samples not seen before (driver buffer, replayed rows)
    # True when the device has a sample buffer: power_samples are then its only histogram samples (none on ticks
    # the buffer is not drained), so power_w is not counted a second time
    buffered: bool = False
    failed_fields: tuple[str, ...] = ()  # fields whose read failed (other than "not supported")
    replay_position_s: float | None = None  # trace seconds replayed so far (replay backend only)
    # Unix time the power and energy were read, where the backend knows it better than the tick's start (one
    # thread reads the GPUs one after another, so the last is read milliseconds after the tick began)
    read_at: float | None = None


class Backend(ABC):
    """A source of device samples. `read` is called once per tick per device, from a worker thread."""

    name: str = "base"
    has_gpu: bool = True
    # the part of a tick one device's read may take before it counts as hung and the others are read without it
    read_budget: float = 0.5

    @abstractmethod
    def devices(self) -> Sequence[DeviceInfo]:
        """The selected devices, in index order."""

    @abstractmethod
    def read(self, index: int) -> GpuSample:
        """Read one device now; raise a DeviceError subclass when it cannot be read."""

    def close(self) -> None:
        """Release the vendor library or files."""


def select_indices(available: Sequence[int], requested: Sequence[int] | None) -> list[int]:
    """The requested device indices, checked against what exists (all of them when none are requested)."""
    if requested is None:
        return list(available)
    missing = [i for i in requested if i not in available]
    if missing:
        have = ", ".join(map(str, available)) or "none"
        raise DeviceNotFoundError(f"GPU id {missing[0]} does not exist (available: {have})")
    return list(dict.fromkeys(requested))
