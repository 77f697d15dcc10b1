"""One load level's figures over its steady window: the per-level entry of `sweep.json`.

The window is chosen by `llm_dvfs.analysis.window`; the figures over it by `llm_dvfs.analysis.figures`, the same
function report.md's summary uses, so sweep.json and the report cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from llm_dvfs.analysis.energy import Energy
from llm_dvfs.analysis.figures import WindowFigures, window_figures
from llm_dvfs.analysis.samples import Samples, read_samples
from llm_dvfs.analysis.window import Window, steady_window
from llm_dvfs.loadgen.results import RequestResult, read_requests


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


def level_entry(concurrency: int | None, f: WindowFigures | None) -> dict:
    """The sweep.json keys of one level from its window's figures (None: no steady window)."""
    entry: dict = {"concurrency": concurrency, "duration_s": f.duration_s if f else 0.0}
    if f is None:
        return entry | {"completed": 0, "output_tokens": 0, "output_throughput": None, "energy_joules": None,
                        "energy_joules_by_gpu": {}, "joules_per_output_token": None, "avg_watts": None,
                        "ttft_ms_p50": None, "ttft_ms_p99": None, "itl_ms_p50": None, "itl_ms_p99": None,
                        "tpot_ms_p50": None}
    lat = f.latency_ms
    return entry | {
        "completed": f.completed, "output_tokens": round(f.tokens), "output_throughput": f.output_tok_s,
        "energy_joules": f.energy_j, "energy_joules_by_gpu": {str(g): e.joules for g, e in f.energy.items()},
        "joules_per_output_token": f.j_per_token, "avg_watts": f.total_w,
        "ttft_ms_p50": lat["TTFT"][0], "ttft_ms_p99": lat["TTFT"][1], "itl_ms_p50": lat["ITL"][0],
        "itl_ms_p99": lat["ITL"][1], "tpot_ms_p50": lat["TPOT"][0],
    }


def level_figures(requests: Sequence[RequestResult], samples: Samples | None, concurrency: int | None,
                  warmup_s: float, steady_s: float | None = None) -> LevelFigures:
    window = steady_window(requests, concurrency, warmup_s, steady_s)
    if window is None:
        return LevelFigures(level_entry(concurrency, None), None)
    f = window_figures(requests, samples, window.start, window.end, window.duration_s)
    return LevelFigures(level_entry(concurrency, f), window, f.energy)


def read_level(level_dir: Path, concurrency: int | None, warmup_s: float, steady_s: float | None = None,
               samples_name: str = "samples.csv") -> LevelFigures:
    """Figures of a level directory holding requests.jsonl and (when recorded) the samples CSV."""
    level_dir = Path(level_dir)
    samples_path = level_dir / samples_name
    samples = read_samples(samples_path) if samples_path.exists() else None
    return level_figures(read_requests(level_dir / "requests.jsonl"), samples, concurrency, warmup_s, steady_s)
