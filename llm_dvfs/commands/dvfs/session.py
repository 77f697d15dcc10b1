"""A DVFS session: the journal written before the first change, settings applied one by one, and the restore
that always follows (the caller's `with` block ends on a normal end, an exception or a signal turned into
KeyboardInterrupt). A dry run prints every change and every restore and calls no setter.

The stop signals are blocked while a restore runs, so a second Ctrl-C or SIGTERM cannot cut it short; they are
delivered when it is done.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Callable, Sequence

from llm_dvfs.commands.dvfs import journal as journals
from llm_dvfs.commands.dvfs.control import ControlError, GpuControl
from llm_dvfs.commands.dvfs.plan import UNITS, WHAT, Setting, touched
from llm_dvfs.common.errors import UsageError

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class DvfsSession:
    def __init__(self, control: GpuControl, settings: Sequence[Setting], journal_path: Path, run_dir: Path | None,
                 dry_run: bool = False, say: Callable[[str], None] = print) -> None:
        self.control, self.settings, self.journal_path = control, list(settings), Path(journal_path)
        self.run_dir, self.dry_run, self.say = run_dir, dry_run, say
        self.knobs = touched(self.settings)
        self.gpus = {g.index: g for g in control.gpus()}
        self.originals = {i: control.current(i) for i in self.knobs}
        self.journal: dict | None = None

    def __enter__(self) -> "DvfsSession":
        self.journal = journals.new_journal(list(self.gpus.values()), self.knobs, self.originals, self.run_dir)
        for gpu in self.journal["gpus"]:
            if "power_limit" in gpu["changes"] and gpu["original"]["power_limit"] is None:
                raise UsageError(f"GPU {gpu['index']}: cannot read its power limit, so it could not be restored; "
                                 "refusing to change it")
        if self.dry_run:
            self.say(f"dry run: would write the restore journal {self.journal_path} (nothing is changed)")
            return self
        found = journals.unrestored(self.journal_path)
        if found is not None:
            raise UsageError(f"an unrestored restore journal exists at {found}: run `llm-dvfs dvfs restore` first")
        journals.save(self.journal_path, self.journal)
        journals.activate(self.journal_path)
        self.say(f"restore journal: {self.journal_path}")
        return self

    def apply(self, setting: Setting) -> None:
        """Move every touched GPU to `setting`: a knob it leaves out goes back to the original."""
        for index, knobs in self.knobs.items():
            gpu = self.gpus[index]
            for knob in knobs:
                value = setting.value(index, knob)
                if value is None:
                    text = journals.describe_step({"original": self.originals[index]}, knob)
                else:
                    text = f"set the {WHAT[knob]} to {value:g} {UNITS[knob]}" if knob == "power_limit" else \
                        f"lock the {WHAT[knob]} at {value:g} {UNITS[knob]}"
                self.say(f"{'would ' if self.dry_run else ''}{text} on GPU {index} ({gpu.uuid}) [{setting.label}]")
                if not self.dry_run:
                    self._change(index, knob, value)

    def _change(self, index: int, knob: str, value: float | None) -> None:
        """One setter call, marked in the journal first; unmarked when the driver refused its first call."""
        assert self.journal is not None
        entry = next(g for g in self.journal["gpus"] if g["index"] == index)
        first = knob not in entry["applied"]
        if first:
            entry["applied"].append(knob)
            journals.save(self.journal_path, self.journal)
        try:
            if value is None:
                journals.undo(self.control, index, knob, self.originals[index])
            elif knob == "sm_clock":
                self.control.lock_sm_clock(index, int(value))
            elif knob == "memory_clock":
                self.control.lock_memory_clock(index, int(value))
            else:
                self.control.set_power_limit(index, value)
        except ControlError:
            if first:
                entry["applied"].remove(knob)
                journals.save(self.journal_path, self.journal)
            raise

    def restore(self) -> None:
        if self.dry_run:
            assert self.journal is not None
            for gpu, knob in journals.steps(self.journal, planned=True):
                self.say(f"would restore GPU {gpu['index']} ({gpu['uuid']}): {journals.describe_step(gpu, knob)}")
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            journals.restore(self.control, self.journal_path, self.say)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def __exit__(self, *exc: object) -> None:
        try:
            self.restore()
        except ControlError as err:
            raise UsageError(str(err)) from None
