"""`llm-dvfs dvfs show` (read-only: supported clocks, limit constraints, current settings, privilege) and
`llm-dvfs dvfs restore` (put the GPUs back as a restore journal recorded them, e.g. after a `kill -9`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from llm_dvfs.commands.dvfs import journal as journals
from llm_dvfs.commands.dvfs.backends import NAMES, open_control
from llm_dvfs.commands.dvfs.control import ControlError, GpuControl
from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError


def _clocks(values: Sequence[int] | None) -> str:
    if not values:
        return "not offered"
    if len(values) <= 8:
        return ", ".join(map(str, values)) + " MHz"
    return f"{len(values)} values, {values[0]}-{values[-1]} MHz"


def _w(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} W"


def show(control: GpuControl) -> list[str]:
    lines = []
    for g in control.gpus():
        lim, now = control.limits(g.index), control.current(g.index)
        span = f"{lim.power_limit_range_w[0]:g}-{lim.power_limit_range_w[1]:g} W" if lim.power_limit_range_w \
            else "not offered"
        lines += [f"GPU {g.index} {g.name} ({g.uuid}, {g.vendor})",
                  f"  now: SM clock {now['sm_clock'] or 'n/a'} MHz, memory clock {now['memory_clock'] or 'n/a'} MHz, "
                  f"power limit {_w(now['power_limit'])}",
                  f"  supported SM clocks: {_clocks(lim.sm_clocks_mhz)}",
                  f"  supported memory clocks: {_clocks(lim.memory_clocks_mhz)}",
                  f"  power limit range: {span}, default {_w(lim.power_limit_default_w)}"]
    lines.append(f"privilege: {control.privilege()}")
    pending = journals.active()
    lines.append(f"restore journal: {pending} (not restored: run `llm-dvfs dvfs restore`)" if pending
                 else "restore journal: none pending")
    return lines


def main(argv: Sequence[str]) -> int:
    p = UsageErrorParser(prog="llm-dvfs dvfs", description="GPU clock and power-limit settings for DVFS sweeps.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("show", help="read-only: supported clocks, power limit range, current settings, privilege")
    r = sub.add_parser("restore", help="put the GPUs back as the restore journal recorded them (safe to repeat)")
    r.add_argument("--journal", type=Path,
                   help=f"the journal to restore (default: the one {journals.pointer_path()} names)")
    for q in (s, r):
        q.add_argument("--settings-backend", choices=NAMES, default="auto", help="vendor API (default auto)")
    args = p.parse_args(list(argv))
    if args.action == "restore":
        path = args.journal or journals.active()
        if path is None:
            print(f"nothing to restore: {journals.pointer_path()} names no journal")
            return 0
        if journals.load(path).get("restored"):
            print(f"{path}: already restored")
            return 0
    try:
        control = open_control(args.settings_backend)
        try:
            if args.action == "show":
                print("\n".join(show(control)))
            else:
                journals.restore(control, path)
                print(f"restored every GPU in {path}")
        finally:
            control.close()
    except ControlError as exc:
        raise UsageError(str(exc)) from None
    return 0
