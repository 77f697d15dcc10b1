"""The one interface every GPU setting backend offers (nvml.py, amdsmi.py), in the units the sweep speaks: MHz for
clocks, watts for power limits. Vendor errors become the exceptions below at the boundary, so callers never see
a pynvml or amdsmi exception.

A query a vendor API does not offer answers None ("not supported here"); a setter it does not offer raises
`NotSupportedError` naming the setting, so the sweep can refuse up front instead of failing half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

SETTINGS = ("sm_clock", "memory_clock", "power_limit")  # the knobs, in the order they are applied


class ControlError(Exception):
    """A setting could not be read or changed; the message is one line for the user."""


class NoPermissionError(ControlError):
    """The driver refused a change for lack of privilege."""


class NotSupportedError(ControlError):
    """This GPU or vendor API does not offer the setting."""


@dataclass(frozen=True)
class GpuIdentity:
    index: int
    uuid: str
    name: str
    vendor: str


@dataclass(frozen=True)
class Limits:
    """What one GPU accepts; None where the API cannot say."""

    sm_clocks_mhz: tuple[int, ...] | None
    memory_clocks_mhz: tuple[int, ...] | None
    power_limit_range_w: tuple[float, float] | None
    power_limit_default_w: float | None


class GpuControl(Protocol):
    """Read and change one vendor's GPU settings; every setter is undone by its reset (or by setting the value
    read before)."""

    vendor: str

    def gpus(self) -> Sequence[GpuIdentity]: ...

    def limits(self, index: int) -> Limits: ...

    def current(self, index: int) -> dict[str, float | None]:
        """Current SM clock, memory clock (MHz) and enforced power limit (W), keyed by SETTINGS."""
        ...

    def privilege(self) -> str:
        """One line: whether this process may change settings, and what is needed when it may not."""
        ...

    def lock_sm_clock(self, index: int, mhz: int) -> None: ...

    def reset_sm_clock(self, index: int) -> None: ...

    def lock_memory_clock(self, index: int, mhz: int) -> None: ...

    def reset_memory_clock(self, index: int) -> None: ...

    def set_power_limit(self, index: int, watts: float) -> None: ...

    def close(self) -> None: ...
