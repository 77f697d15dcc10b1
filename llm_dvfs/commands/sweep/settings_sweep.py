"""A settings sweep: each DVFS setting (clocks, power limits; per GPU role) x each load level, the GPUs put back
afterwards whatever ends it. Each setting is a whole sweep in `RUN_DIR/setting-<label>/` (sweep.json, level-*/);
`RUN_DIR/dvfs.json` records per setting what was asked and, per level, what the GPU did (observed SM clock over
the steady window, throttle reasons), rewritten after every setting so an interrupted sweep keeps what it did.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Protocol

from rich.console import Console

from llm_dvfs.analysis.dvfs_observed import observe
from llm_dvfs.analysis.run import load_run
from llm_dvfs.commands.dvfs import journal as journals
from llm_dvfs.commands.dvfs.backends import open_control
from llm_dvfs.commands.dvfs.control import ControlError
from llm_dvfs.commands.dvfs.options import DvfsOptions
from llm_dvfs.commands.dvfs.plan import Setting, cross, describe, touched, validate
from llm_dvfs.commands.dvfs.session import DvfsSession
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError


class Runner(Protocol):
    result: dict

    def run(self) -> dict: ...


def _gpu_ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--gpu-ids must be comma-separated indices, got {text!r}") from None


class SettingsSweep:
    """Built before anything else happens (the server is not contacted yet): opens the vendor API read-only,
    crosses and checks the settings, and refuses while an unrestored journal exists; `run` then changes them."""

    def __init__(self, run_dir: Path, options: DvfsOptions, level_labels: list[str], gpu_ids: str | None,
                 console: Console, sleep: Callable[[float], None] = time.sleep) -> None:
        self.run_dir, self.options, self.level_labels = run_dir, options, level_labels
        self.console, self.sleep = console, sleep
        self.record: dict = {"mode": None, "slo_ms": options.slos, "roles": options.role_gpus, "settings": []}
        self.result: dict = {"levels": []}  # every level finished, over all settings (as SweepRunner.result)
        if not options.dry_run and (found := journals.unrestored(options.journal)) is not None:
            raise UsageError(f"an unrestored restore journal exists at {found}: run `llm-dvfs dvfs restore` first")
        try:
            self.control = open_control(options.backend)
            gpus = {g.index: g for g in self.control.gpus()}
            chosen = _gpu_ids(gpu_ids) if gpu_ids else sorted(gpus)
            self.settings = cross(options.request(chosen))
            validate(self.settings, gpus, {i: self.control.limits(i) for i in touched(self.settings) if i in gpus})
        except ControlError as exc:
            raise UsageError(str(exc)) from None
        self.record["gpus"] = {str(i): {"uuid": gpus[i].uuid, "name": gpus[i].name} for i in touched(self.settings)}

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def run(self, make_runner: Callable[[Path], Runner] | None, mode: str | None) -> dict:
        """Each setting x each level (`make_runner(directory)` runs the levels; None only for a dry run)."""
        self.make_runner, self.record["mode"] = make_runner, mode
        try:
            session = DvfsSession(self.control, self.settings, self.options.journal, self.run_dir,
                                  self.options.dry_run, say=self.say)
            with session:
                self.record["original"] = {str(i): v for i, v in session.originals.items()}
                for setting in self.settings:
                    self._one(session, setting)
        except ControlError as exc:
            raise UsageError(str(exc)) from None
        finally:
            self.control.close()
        return self.record

    def _one(self, session: DvfsSession, setting: Setting) -> None:
        directory = self.run_dir / f"setting-{setting.label}"
        session.apply(setting)
        if self.options.dry_run:
            levels = ", ".join(self.level_labels)
            self.say(f"would wait {self.options.settle_s:g} s, then run {levels} into {directory}")
            return
        entry = {"label": setting.label, "dir": directory.name, "default": setting.is_default,
                 "requested": {str(i): dict(setting.values.get(i, {})) for i in session.knobs},
                 "described": {str(i): describe(setting, i) for i in session.knobs}, "levels": []}
        self.record["settings"].append(entry)
        self._write()
        self.say(f"setting {setting.label}: settling {self.options.settle_s:g} s")
        self.sleep(self.options.settle_s)
        assert self.make_runner is not None
        runner = self.make_runner(directory)
        try:
            runner.run()
        finally:
            self._observe(entry, directory)
            self.result["levels"] += runner.result.get("levels", [])
            self._write()

    def _observe(self, entry: dict, directory: Path) -> None:
        if not (directory / "sweep.json").exists():
            return
        try:
            run = load_run(directory)
        except UsageError:
            return
        for part in run.parts:
            w = part.window
            steady = (w.start, w.end) if w else (None, None)
            observed = observe(part.samples.path, *steady) if part.samples else {}
            entry["levels"].append({"level": part.name, "dir": part.directory.name, "observed": observed})

    def _write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "dvfs.json", json.dumps(self.record, indent=2) + "\n")
