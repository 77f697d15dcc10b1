"""The restore journal: each GPU's original settings, by UUID, written atomically before the first change, so
whatever ends the sweep (normal end, exception, signal, a crash or `kill -9`) the GPUs can be put back.

Default location: `RUN_DIR/dvfs-journal.json` (kept after the restore, as the record of what was changed), and
`STATE_DIR/active-journal` holds the path of the journal not yet restored, so `llm-dvfs dvfs restore` finds it
without arguments and a new sweep refuses to start while one exists. STATE_DIR is `$XDG_STATE_HOME/llm-dvfs`, or
`~/.local/state/llm-dvfs` when XDG_STATE_HOME is unset.

A knob is marked `applied` in the journal before its first setter call (and unmarked when the driver refused
that call, so it changed nothing); a restore undoes the applied knobs only, so a GPU that refused every change
(e.g. for lack of privilege) needs no undo it would refuse too. Locked clocks are restored by their reset (NVML
has no call that reads a lock back), the power limit by setting the value read before. Every step is idempotent,
so restoring twice is harmless.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from llm_dvfs.commands.dvfs.control import ControlError, GpuControl, GpuIdentity
from llm_dvfs.commands.dvfs.plan import UNITS, WHAT
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError

VERSION = 1
JOURNAL_NAME = "dvfs-journal.json"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llm-dvfs"


def pointer_path() -> Path:
    return state_dir() / "active-journal"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_journal(gpus: Sequence[GpuIdentity], knobs: dict[int, list[str]], originals: dict[int, dict],
                run_dir: Path | None) -> dict:
    """The journal of a sweep about to change `knobs` (per GPU index), holding each GPU's `originals`."""
    return {"version": VERSION, "created": _now(), "pid": os.getpid(), "host": socket.gethostname(),
            "run_dir": str(run_dir) if run_dir else None, "restored": False, "restored_at": None,
            "gpus": [{"uuid": g.uuid, "index": g.index, "name": g.name, "vendor": g.vendor,
                      "changes": knobs[g.index], "applied": [],
                      "original": {k: originals[g.index].get(k) for k in knobs[g.index]}}
                     for g in gpus if g.index in knobs]}


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"no restore journal at {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the restore journal {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("gpus"), list):
        raise UsageError(f"{path} is not an llm-dvfs restore journal")
    return data


def save(path: Path, journal: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(journal, indent=2) + "\n")


def activate(path: Path) -> None:
    """Point the state directory at `path`: from now on a new sweep refuses and `dvfs restore` finds it."""
    pointer = pointer_path()
    pointer.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(pointer, str(Path(path).resolve()) + "\n")


def active() -> Path | None:
    """The journal the state directory points at, if any."""
    try:
        text = pointer_path().read_text().strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None


def unrestored(extra: Path | None = None) -> Path | None:
    """A journal whose GPUs have not been put back: the active one, or `extra` (a `--journal` path)."""
    for path in (active(), extra):
        if path is None:
            continue
        if not path.exists():
            if path == active():
                raise UsageError(f"{pointer_path()} names the restore journal {path}, which is gone: the original "
                                 f"settings are unknown; reset the GPUs by hand (nvidia-smi -rgc -rmc, and -pl "
                                 f"with the default limit), then delete {pointer_path()}")
            continue
        if not load(path).get("restored"):
            return path
    return None


def _clear_pointer(path: Path) -> None:
    if active() is not None and active().resolve() == Path(path).resolve():
        pointer_path().unlink(missing_ok=True)


def steps(journal: dict, planned: bool = False) -> list[tuple[dict, str]]:
    """(GPU entry, knob) in the order a restore undoes them: each knob a setter was called for (`planned`: each
    knob the sweep may change, for a dry run)."""
    return [(gpu, knob) for gpu in journal["gpus"] for knob in gpu["changes"]
            if planned or knob in gpu.get("applied", gpu["changes"])]


def describe_step(gpu: dict, knob: str) -> str:
    if knob == "power_limit":
        return f"set the power limit back to {gpu['original']['power_limit']:g} {UNITS[knob]}"
    return f"reset the locked {WHAT[knob]}"


def undo(control: GpuControl, gpu_index: int, knob: str, original: dict) -> None:
    """Put one knob of one GPU back."""
    if knob == "sm_clock":
        control.reset_sm_clock(gpu_index)
    elif knob == "memory_clock":
        control.reset_memory_clock(gpu_index)
    else:
        control.set_power_limit(gpu_index, original["power_limit"])


def restore(control: GpuControl, path: Path, say: Callable[[str], None] = print) -> dict:
    """Undo every change the journal at `path` records, by GPU UUID; mark it restored only when every step
    worked, else raise ControlError naming what failed (the journal stays active so a retry can finish it)."""
    journal = load(path)
    by_uuid = {g.uuid: g.index for g in control.gpus()}
    failed = []
    for gpu, knob in steps(journal):
        index = by_uuid.get(gpu["uuid"])
        if index is None:
            failed.append(f"{gpu['uuid']}: not found on this host")
            continue
        try:
            undo(control, index, knob, gpu["original"])
            say(f"restored GPU {index} ({gpu['uuid']}): {describe_step(gpu, knob)}")
        except ControlError as exc:
            failed.append(str(exc))
    if failed:
        raise ControlError(f"restore incomplete ({'; '.join(failed)}); the journal {path} stays active: fix that "
                           "and run `llm-dvfs dvfs restore` again")
    journal |= {"restored": True, "restored_at": _now()}
    save(path, journal)
    _clear_pointer(path)
    return journal
