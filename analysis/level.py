"""One load level's figures over its steady window: the per-level entry of `sweep.json`.

Everything is measured over the same window (see `llm_dvfs.analysis.window`): energy from the samples CSV, output tokens by
their arrival times, completions by their end times, and latencies of the successful requests that started in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_dvfs.analysis.energy import NO_SENSOR, Energy, window_energy
from llm_dvfs.analysis.requests import Request, read_requests, tokens_between
from llm_dvfs.analysis.samples import Samples, read_samples
from llm_dvfs.analysis.stats import percentile
from llm_dvfs.analysis.window import Window, steady_window


@dataclass
class LevelFigures:
    """`entry` holds exactly the sweep.json keys of one level; `window` and `energy` say how they were obtained."""

    entry: dict
    window: Window | None
    energy: dict[int, Energy] = field(default_factory=dict)

    def details(self) -> dict:
        """What `steady.json` records beside the figures: the window and each GPU's energy source."""
        w = self.window
        return {"window_start": w.start if w else None, "window_end": w.end if w else None,
                "window_rule": w.reason if w else "no steady window: the target load was never held",
                "energy_source_by_gpu": {str(g): e.source for g, e in self.energy.items()}}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def level_figures(requests: list[Request], samples: Samples | None, concurrency: int | None,
                  warmup_s: float, steady_s: float | None = None) -> LevelFigures:
    window = steady_window(requests, concurrency, warmup_s, steady_s)
    entry: dict = {"concurrency": concurrency, "duration_s": window.duration_s if window else 0.0}
    if window is None:
        entry |= {"completed": 0, "output_tokens": 0, "output_throughput": None, "energy_joules": None,
                  "energy_joules_by_gpu": {}, "joules_per_output_token": None, "avg_watts": None,
                  "ttft_ms_p50": None, "ttft_ms_p99": None, "itl_ms_p50": None, "itl_ms_p99": None,
                  "tpot_ms_p50": None}
        return LevelFigures(entry, None)
    t0, t1 = window.start, window.end
    ok = [r for r in requests if r.success]
    started = [r for r in ok if t0 <= r.start < t1]
    tokens = tokens_between(requests, t0, t1)
    energy = {g: window_energy(samples, g, t0, t1) for g in samples.gpus} if samples else {}
    measured = [e.joules for e in energy.values() if e.joules is not None]
    total = sum(measured) if measured and all(e.source != NO_SENSOR for e in energy.values()) else None
    entry |= {
        "completed": sum(1 for r in ok if r.end is not None and t0 <= r.end < t1),
        "output_tokens": round(tokens),
        "output_throughput": tokens / window.duration_s,
        "energy_joules": total,
        "energy_joules_by_gpu": {str(g): e.joules for g, e in energy.items()},
        "joules_per_output_token": total / tokens if total is not None and tokens else None,
        "avg_watts": total / window.duration_s if total is not None else None,
        "ttft_ms_p50": _ms(percentile((r.ttft_s for r in started if r.ttft_s is not None), 50)),
        "ttft_ms_p99": _ms(percentile((r.ttft_s for r in started if r.ttft_s is not None), 99)),
        "itl_ms_p50": _ms(percentile((x for r in started for x in r.itl_s), 50)),
        "itl_ms_p99": _ms(percentile((x for r in started for x in r.itl_s), 99)),
        "tpot_ms_p50": _ms(percentile((r.tpot_s for r in started if r.tpot_s is not None), 50)),
    }
    return LevelFigures(entry, window, energy)


def read_level(level_dir: Path, concurrency: int | None, warmup_s: float, steady_s: float | None = None,
               samples_name: str = "samples.csv") -> LevelFigures:
    """Figures of a level directory holding requests.jsonl and (when recorded) the samples CSV."""
    level_dir = Path(level_dir)
    samples_path = level_dir / samples_name
    samples = read_samples(samples_path) if samples_path.exists() else None
    return level_figures(read_requests(level_dir / "requests.jsonl"), samples, concurrency, warmup_s, steady_s)
