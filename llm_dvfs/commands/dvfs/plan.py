"""The settings a DVFS sweep visits: the crossing of every requested clock and power-limit list, per GPU group
(all GPUs, or the prefill and the decode GPUs of a disaggregated pair), checked against what each GPU supports
before anything changes.

The GPUs' default setting (as found) is always measured too, last, so the report can state the saving against
it and the sweep ends where it began.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from llm_dvfs.commands.dvfs.control import SETTINGS, GpuIdentity, Limits
from llm_dvfs.common.errors import UsageError

SHORT = {"sm_clock": "sm", "memory_clock": "mem", "power_limit": "pl"}
UNITS = {"sm_clock": "MHz", "memory_clock": "MHz", "power_limit": "W"}
WHAT = {"sm_clock": "SM clock", "memory_clock": "memory clock", "power_limit": "power limit"}


@dataclass(frozen=True)
class Request:
    """What was asked: value lists per (group, knob), and which GPU indices each group names."""

    values: Mapping[tuple[str, str], Sequence[float]]
    groups: Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class Setting:
    """One point of the crossing: a value per GPU index and knob; a knob left out stays at the GPU's default."""

    label: str
    values: Mapping[int, Mapping[str, float]] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return not any(self.values.values())

    def value(self, gpu: int, knob: str) -> float | None:
        return self.values.get(gpu, {}).get(knob)


def _label(groups: Sequence[str], combo: Sequence[tuple[tuple[str, str], float]]) -> str:
    parts = []
    for group in groups:
        mine = [f"{SHORT[knob]}{value:g}" for (g, knob), value in combo if g == group]
        if mine:
            parts.append("-".join(mine) if group == "all" else f"{group}-" + "-".join(mine))
    return "-".join(parts)


def cross(request: Request) -> list[Setting]:
    """Every combination of the requested values, then the default setting."""
    keys = sorted(request.values, key=lambda k: (list(request.groups).index(k[0]), SETTINGS.index(k[1])))
    for (group, knob) in keys:
        for other in request.groups:
            overlap = set(request.groups[group]) & set(request.groups[other])
            if other != group and overlap and (other, knob) in request.values:
                raise UsageError(f"GPU {min(overlap)} gets a {WHAT[knob]} from both the {group} and the {other} "
                                 "options; give it one")
    settings = []
    for combo_values in itertools.product(*(request.values[k] for k in keys)):
        combo = list(zip(keys, combo_values))
        per_gpu: dict[int, dict[str, float]] = {}
        for (group, knob), value in combo:
            for gpu in request.groups[group]:
                per_gpu.setdefault(gpu, {})[knob] = value
        settings.append(Setting(_label(list(request.groups), combo), per_gpu))
    return settings + [Setting("default")] if settings else []


def touched(settings: Sequence[Setting]) -> dict[int, list[str]]:
    """Per GPU index, the knobs some setting changes: exactly what the journal must be able to restore."""
    out: dict[int, set[str]] = {}
    for s in settings:
        for gpu, knobs in s.values.items():
            out.setdefault(gpu, set()).update(knobs)
    return {gpu: [k for k in SETTINGS if k in knobs] for gpu, knobs in sorted(out.items())}


def _nearest(value: float, supported: Sequence[int]) -> str:
    near = sorted(sorted(supported, key=lambda s: (abs(s - value), s))[:2])
    return " or ".join(f"{s}" for s in near)


def validate(settings: Sequence[Setting], gpus: Mapping[int, GpuIdentity], limits: Mapping[int, Limits]) -> None:
    """Refuse, in one line, any value a GPU does not support, naming the nearest supported ones."""
    for gpu, knobs in touched(settings).items():
        if gpu not in gpus:
            raise UsageError(f"no GPU with index {gpu} here (found {', '.join(map(str, sorted(gpus))) or 'none'})")
        lim, name = limits[gpu], f"GPU {gpu} ({gpus[gpu].name})"
        for knob in knobs:
            values = sorted({s.value(gpu, knob) for s in settings} - {None})
            if knob == "power_limit":
                if lim.power_limit_range_w is None:
                    raise UsageError(f"{name} does not report power limit constraints; setting a power limit is "
                                     f"not offered for it here")
                lo, hi = lim.power_limit_range_w
                bad = [v for v in values if not lo <= v <= hi]
                if bad:
                    raise UsageError(f"{name}: power limit {bad[0]:g} W is outside its range {lo:g}-{hi:g} W")
                continue
            supported = lim.sm_clocks_mhz if knob == "sm_clock" else lim.memory_clocks_mhz
            if not supported:
                if gpus[gpu].vendor != "nvidia":
                    raise UsageError(f"{name}: locking the {WHAT[knob]} is NVIDIA-only in llm-dvfs")
                raise UsageError(f"{name} does not list supported {WHAT[knob]}s; locking it is not offered here")
            for v in values:
                if v not in supported:
                    raise UsageError(f"{name}: {WHAT[knob]} {v:g} MHz is not supported; nearest supported: "
                                     f"{_nearest(v, supported)} MHz")


def describe(setting: Setting, gpu: int) -> str:
    """`sm 1600 MHz, pl 350 W` for one GPU of a setting; `default` when it changes nothing there."""
    knobs = setting.values.get(gpu, {})
    return ", ".join(f"{WHAT[k]} {knobs[k]:g} {UNITS[k]}" for k in SETTINGS if k in knobs) or "default"
