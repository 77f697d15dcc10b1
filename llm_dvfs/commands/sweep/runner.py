"""Runs the levels one after another: recording on, Locust for warm-up + steady state, recording off, figures.

`sweep.json` is rewritten after every level, so an interrupted sweep keeps every level it finished and the
figures of the one it was in (over whatever steady window that level reached).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Protocol

import requests
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llm_dvfs.analysis.energy import COUNTER
from llm_dvfs.analysis.level import read_level
from llm_dvfs.analysis.phases import LevelPhases, differential_fits, overall, read_level_phases
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.children import Child
from llm_dvfs.commands.sweep.levels import Level, Load, locust_command, run_time_s
from llm_dvfs.exporter.scrape import DeviceReading
from llm_dvfs.loadgen.server_metrics import save_snapshot


class Recording(Protocol):
    """Where a level's samples CSV comes from: the sweep's own exporter, or scrapes of a running one."""

    url: str

    def start(self, level_dir: Path) -> list[DeviceReading]: ...

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _completed(metrics_port: int) -> int | None:
    """Requests the running Locust has finished, from its own /metrics; None while it isn't serving yet."""
    try:
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=0.5).text
        return int(sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                       if s.name == "llm_requests_total"))
    except (requests.RequestException, ValueError):
        return None


def device_name(found: list[DeviceReading]) -> str:
    """One name for sweep.json: the model name, or the distinct names joined when GPUs differ."""
    names = list(dict.fromkeys(d.name for d in found))
    return " + ".join(names) if names else "unknown"


class SweepRunner:
    def __init__(self, run_dir: Path, load: Load, levels: list[Level], recording: Recording,
                 console: Console | None = None, snapshots: dict[str, str] | None = None) -> None:
        self.run_dir, self.load, self.levels, self.recording = run_dir, load, levels, recording
        self.snapshots = snapshots or {}  # role -> /metrics URL, saved before, halfway through and after each level
        self.console = console or Console(stderr=True)
        self.result: dict = {"device": "unknown", "gpu_count": 0, "model": load.model, "input_len": load.input_len,
                             "output_len": load.output_len, "mode": load.mode, "workload": load.workload,
                             "input_lens": sorted({lv.lengths(load)[0] for lv in levels}),
                             "output_lens": sorted({lv.lengths(load)[1] for lv in levels}),
                             "idle_s": load.idle_s, "levels": []}
        self._phases: list[LevelPhases] = []

    def run(self) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        per_level = run_time_s(self.load)
        columns = (TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            overall = progress.add_task("sweep", total=per_level * len(self.levels), info="")
            for n, level in enumerate(self.levels):
                task = progress.add_task(level.label, total=per_level, info="starting exporter")
                try:
                    self._run_level(level, progress, task)
                finally:
                    self._summarize(level)
                    progress.update(overall, completed=per_level * (n + 1))
        self._print_table()
        return self.result

    def _run_level(self, level: Level, progress: Progress, task: int) -> None:
        level_dir = self.run_dir / level.name
        level_dir.mkdir(parents=True, exist_ok=True)
        found = self.recording.start(level_dir)
        progress.update(task, info=f"idle power, {self.load.idle_s:g} s")
        time.sleep(self.load.idle_s)  # samples before any request: this level's idle power
        locust: Child | None = None
        try:
            gpus = all(d.kind == "gpu" for d in found)  # else the host backend's CPU packages: no GPU here
            if self.result["device"] == "unknown":
                self.result["device"] = device_name(found) + ("" if gpus else " (CPU only, no GPU)")
                self.result["gpu_count"] = len(found) if gpus else 0
                write_json(self.run_dir / "sweep.json", self.result)
            metrics_port = free_port()
            cmd = locust_command(self.load, level, level_dir, metrics_port, self.recording.url if gpus else None)
            self._snapshot(level_dir, "before")
            locust = Child(cmd, level_dir / "locust.log").start()
            started = time.monotonic()
            halfway: float | None = self.load.warmup_s + self.load.steady_s / 2
            limit = run_time_s(self.load) + self.load.stop_timeout_s + 60
            while locust.running():
                elapsed = time.monotonic() - started
                if elapsed > limit:
                    self.console.print(f"[yellow]{level.label}: Locust still running after {limit:.0f} s; stopping it")
                    break
                done = _completed(metrics_port)
                phase = "warm-up" if elapsed < self.load.warmup_s else \
                    "steady" if elapsed < run_time_s(self.load) else "draining"
                if halfway is not None and elapsed >= halfway:
                    self._snapshot(level_dir, "steady")
                    halfway = None
                progress.update(task, completed=min(elapsed, run_time_s(self.load)),
                                info=f"{phase}, {done if done is not None else '-'} requests done")
                time.sleep(0.5)
            progress.update(task, completed=run_time_s(self.load), info="done")
        finally:
            if locust is not None:
                locust.stop()
            self.recording.stop()
            if locust is not None:
                self._snapshot(level_dir, "after")
        if not (level_dir / "requests.jsonl").exists():
            raise UsageError(f"{level.label}: Locust wrote no requests.jsonl (exit {locust.returncode}); "
                             f"see {level_dir / 'locust.log'}: {locust.log_tail(1)}")

    def _snapshot(self, level_dir: Path, moment: str) -> None:
        for role, url in self.snapshots.items():
            if not save_snapshot(level_dir, role, moment, url):
                self.console.print(f"[yellow]{level_dir.name}: {url} did not answer; no {role} {moment} snapshot")

    def _summarize(self, level: Level) -> None:
        """Add the level's figures to sweep.json (also for a level cut short, as far as it got)."""
        level_dir = self.run_dir / level.name
        if not (level_dir / "requests.jsonl").exists():
            return
        figures = read_level(level_dir, level.concurrency, self.load.warmup_s, self.load.steady_s)
        entry = dict(figures.entry)
        if level.request_rate is not None:
            entry["request_rate"] = level.request_rate
        input_len, output_len = level.lengths(self.load)
        phases = read_level_phases(level_dir, level.label, figures.window, level.concurrency, self.load.workload,
                                   input_len, output_len)
        self._phases.append(phases)
        entry |= {"workload": self.load.workload, "input_len": input_len, "output_len": output_len,
                  "directory": level.name, "phases": phases.to_json()}
        self.result["phases"] = overall(self._phases)
        self.result["differential"] = differential_fits(self._phases)
        write_json(level_dir / "steady.json", figures.details())
        for gpu, energy in figures.energy.items():
            if energy.source != COUNTER:
                self.console.print(f"[yellow]{level.label}: device {gpu}: "
                                   + (f"energy from {energy.source} (the CSV's energy column is empty)"
                                      if energy.joules is not None else "no power sensor, energy not measured"))
        self.result["levels"].append(entry)
        write_json(self.run_dir / "sweep.json", self.result)

    def _print_table(self) -> None:
        table = Table(title=f"{self.result['model']} on {self.result['device']} ({self.result['mode']})")
        for col in ("level", "steady s", "tok/s", "J/token", "W", "TTFT p50 ms", "ITL p50 ms"):
            table.add_column(col, justify="right")

        def fmt(v: float | None, spec: str = ".1f") -> str:
            return "n/a" if v is None else format(v, spec)

        for e in self.result["levels"]:
            name = f"{e['concurrency']}" if e["concurrency"] is not None else f"{e.get('request_rate')} req/s"
            table.add_row(name, fmt(e["duration_s"]), fmt(e["output_throughput"]),
                          fmt(e["joules_per_output_token"], ".3f"), fmt(e["avg_watts"]), fmt(e["ttft_ms_p50"]),
                          fmt(e["itl_ms_p50"], ".2f"))
        self.console.print(table)
        self.console.print(f"wrote {self.run_dir / 'sweep.json'}")
