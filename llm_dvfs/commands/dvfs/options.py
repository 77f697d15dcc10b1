"""The sweep's DVFS options and the checks that come before anything else: no setting changes without
`--allow-clock-changes` (a `--dry-run` changes nothing and needs no flag)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from llm_dvfs.commands.dvfs.backends import NAMES
from llm_dvfs.commands.dvfs.plan import Request
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.stats import parse_goodput

KNOB_OPTIONS = {"sm_clock": "sm-clocks", "memory_clock": "memory-clocks", "power_limit": "power-limits"}
GROUPS = ("all", "prefill", "decode")
SLO_KEYS = {"ttft": "ttft_ms_p99", "itl": "itl_ms_p99", "tpot": "tpot_ms_p50"}  # the figure each SLO bounds


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("GPU settings (DVFS): each setting x each level; GPUs restored at the end")
    g.add_argument("--sm-clocks", help="locked SM clocks to sweep (MHz), e.g. 1980,1600,1200, on every GPU")
    g.add_argument("--memory-clocks", help="locked memory clocks to sweep (MHz), where the GPU supports it")
    g.add_argument("--power-limits", help="power limits to sweep (W), e.g. 700,500,350")
    for role in ("prefill", "decode"):
        for option in KNOB_OPTIONS.values():
            g.add_argument(f"--{role}-{option}", help=f"the same for the {role} GPUs (--{role}-gpus) only")
        g.add_argument(f"--{role}-gpus", help=f"NVML indices of the {role} GPUs, e.g. {0 if role == 'prefill' else 1}")
    g.add_argument("--allow-clock-changes", action="store_true",
                   help="required to change any GPU setting (root needed too)")
    g.add_argument("--dry-run", action="store_true",
                   help="print every change and restore the sweep would make, then exit; touches nothing")
    g.add_argument("--settle", type=float, default=5.0, help="seconds to wait after each change (default 5)")
    g.add_argument("--journal", type=Path,
                   help="restore journal path (default RUN_DIR/dvfs-journal.json; "
                        "see `llm-dvfs dvfs restore --help`)")
    g.add_argument("--settings-backend", choices=NAMES, default="auto", help="vendor API for settings (default auto)")
    g.add_argument("--goodput", nargs="+", metavar="KEY:MS",
                   help="SLOs for the report's energy-optimal setting: ttft:MS (p99), itl:MS (p99), tpot:MS (p50)")


@dataclass(frozen=True)
class DvfsOptions:
    values: dict[tuple[str, str], list[float]]
    role_gpus: dict[str, list[int]]
    dry_run: bool
    settle_s: float
    journal: Path
    backend: str
    slos: dict[str, float]

    def request(self, all_gpus: Sequence[int]) -> Request:
        return Request(self.values, {"all": list(all_gpus), **self.role_gpus})


def _values(text: str, option: str, kind: type) -> list[float]:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--{option} must be comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
        raise UsageError(f"--{option} must list distinct positive numbers, got {text!r}")
    return values


def _indices(text: str, option: str) -> list[int]:
    try:
        indices = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated GPU indices, got {text!r}") from None
    if not indices or any(i < 0 for i in indices) or len(set(indices)) != len(indices):
        raise UsageError(f"{option} must list distinct GPU indices (0, 1, ...), got {text!r}")
    return indices


def _slos(items: Sequence[str] | None) -> dict[str, float]:
    return parse_goodput(items or (), SLO_KEYS)


def parse(args: argparse.Namespace) -> DvfsOptions | None:
    """The DVFS part of a sweep, or None when no setting is asked for; refuses in one line what must not run."""
    values: dict[tuple[str, str], list[float]] = {}
    for group in GROUPS:
        for knob, option in KNOB_OPTIONS.items():
            name = option if group == "all" else f"{group}-{option}"
            text = getattr(args, name.replace("-", "_"))
            if text:
                values[(group, knob)] = _values(text, name, float if knob == "power_limit" else int)
    role_gpus = {}
    for role in ("prefill", "decode"):
        text = getattr(args, f"{role}_gpus")
        used = any(g == role for g, _ in values)
        if used and not text:
            raise UsageError(f"--{role}-... settings need --{role}-gpus (the NVML indices of the {role} GPUs)")
        if text:
            role_gpus[role] = _indices(text, f"--{role}-gpus")
    if not values:
        if args.allow_clock_changes or args.dry_run or args.goodput:
            raise UsageError("--allow-clock-changes, --dry-run and --goodput belong to a settings sweep: give "
                             "--sm-clocks, --memory-clocks or --power-limits")
        return None
    if not args.allow_clock_changes and not args.dry_run:
        raise UsageError("changing GPU clocks or power limits needs --allow-clock-changes (or --dry-run to see "
                         "the changes); nothing was changed")
    if args.settle < 0:
        raise UsageError("--settle must not be negative")
    if (args.run_dir / "dvfs.json").exists():
        raise UsageError(f"{args.run_dir} already holds a settings sweep; choose a new --run-dir")
    return DvfsOptions(values, role_gpus, args.dry_run, args.settle, args.journal or args.run_dir / "dvfs-journal.json",
                       args.settings_backend, _slos(args.goodput))
