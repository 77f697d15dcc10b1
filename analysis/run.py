"""A run directory as the report sees it: a sweep (`sweep.json` + `level-*/`) or one plain load-generator run
(`results.json`, `requests.jsonl` and a samples CSV, any of them optional but not all)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llm_dvfs.analysis.samples import Samples, read_samples
from llm_dvfs.analysis.window import Window, steady_window
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.results import RequestResult, read_requests


@dataclass
class Part:
    """One measured stretch: a plain run, or one level of a sweep."""

    name: str  # for titles and file names: "run", "concurrency 16", "2 req/s"
    slug: str  # for file names: "run", "c16", "r2"
    directory: Path
    results: dict | None
    requests: list[RequestResult]
    samples: Samples | None
    concurrency: int | None
    window: Window | None
    sweep_entry: dict | None = None


@dataclass
class Run:
    path: Path
    parts: list[Part]
    sweep: dict | None = None

    @property
    def title(self) -> str:
        if self.sweep:
            s = self.sweep
            count = f"{s['gpu_count']}× " if s.get("gpu_count") else ""
            return f"{s.get('model')} on {count}{s.get('device')} ({s.get('mode')})"
        results = self.parts[0].results or {}
        return f"{results.get('model_id', 'run')} — {self.path.name}"

    @property
    def mode(self) -> str:
        return (self.sweep or {}).get("mode", "run")


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None


def _samples_path(directory: Path) -> Path | None:
    """samples.csv, else the only CSV whose header starts with `timestamp` (a plain exporter recording)."""
    if (directory / "samples.csv").exists():
        return directory / "samples.csv"
    for p in sorted(directory.glob("*.csv")):
        with open(p, errors="replace") as f:
            if f.readline().startswith("timestamp,"):
                return p
    return None


def _window(directory: Path, requests: list[RequestResult], samples: Samples | None,
            concurrency: int | None) -> Window | None:
    """The sweep's recorded steady window; else the steady window of the requests; else the whole recording."""
    steady = _json(directory / "steady.json")
    if steady and steady.get("window_start") is not None:
        return Window(steady["window_start"], steady["window_end"], steady.get("window_rule", "sweep"))
    if requests:
        found = steady_window(requests, concurrency, 0.0)
        if found:
            return found
        ends = [r.end_time for r in requests if r.end_time is not None]
        return Window(requests[0].start_time, max(ends, default=requests[-1].start_time),
                      "first request to last response")
    if samples and len(samples.timestamps) > 1:
        return Window(samples.timestamps[0], samples.timestamps[-1], "whole recording")
    return None


def _part(directory: Path, name: str, slug: str, concurrency: int | None, entry: dict | None = None,
          samples_path: Path | None = None) -> Part:
    samples_path = samples_path or _samples_path(directory)
    requests = read_requests(directory / "requests.jsonl") if (directory / "requests.jsonl").exists() else []
    samples = read_samples(samples_path) if samples_path else None
    results = _json(directory / "results.json")
    if concurrency is None and entry is None and results and isinstance(results.get("max_concurrency"), int):
        concurrency = results["max_concurrency"]
    return Part(name, slug, directory, results, requests, samples, concurrency,
                _window(directory, requests, samples, concurrency), entry)


def load_run(path: Path, samples: Path | None = None) -> Run:
    """Read a sweep or a plain run directory (with `samples`: that CSV instead of one found in the directory);
    raise UsageError when it holds neither."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    if samples is not None and not Path(samples).is_file():
        raise UsageError(f"--samples {samples}: no such file")
    sweep = _json(path / "sweep.json")
    if sweep is not None:
        parts = []
        for entry in sweep.get("levels", []):
            c, rate = entry.get("concurrency"), entry.get("request_rate")
            directory = path / (entry.get("directory") or (f"level-{c}" if c is not None else f"level-rate-{rate:g}"))
            if directory.is_dir():
                name, slug = (f"concurrency {c}", f"c{c}") if c is not None else (f"{rate:g} req/s", f"r{rate:g}")
                if len(sweep.get("input_lens") or [0]) > 1 or len(sweep.get("output_lens") or [0]) > 1:
                    # a sweep over request shapes: the level directory says which (level-64-in512-out1)
                    name += f", {entry.get('input_len')}/{entry.get('output_len')} tokens"
                    slug += f"-in{entry.get('input_len')}-out{entry.get('output_len')}"
                parts.append(_part(directory, name, slug, c, entry))
        if not parts:
            raise UsageError(f"{path}/sweep.json lists no level directory that exists")
        return Run(path, parts, sweep)
    part = _part(path, "run", "run", None, samples_path=samples)
    if not part.requests and part.samples is None:
        raise UsageError(f"{path} holds no sweep.json, requests.jsonl or samples CSV")
    return Run(path, [part])
