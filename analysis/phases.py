"""Prefill vs decode figures of a level, a run, or several runs pooled: the three methods side by side.

- attribution (`attribution.py`): the interval regression on any load, per level;
- phase workloads: a `prefill` level's energy is all prefill (J per prompt token), a `decode` level's almost all
  decode (J per output token, with the attribution saying what its small prefill still took);
- differential (`differential.py`): per-request energy across levels that differ in one length.

Works on what a sweep records (and on runs made before these figures existed): requests, samples, the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from llm_dvfs.analysis import attribution as attr
from llm_dvfs.analysis import differential
from llm_dvfs.analysis.energy import window_energy
from llm_dvfs.analysis.samples import Samples, read_samples
from llm_dvfs.analysis.window import Window
from llm_dvfs.common.percentile import percentile
from llm_dvfs.loadgen.results import RequestResult, read_requests
from llm_dvfs.loadgen.workloads import DECODE_PROMPT_MAX

WORKLOAD_METHOD = "phase workload"


def infer_workload(requests: Sequence[RequestResult], recorded: str | None) -> str:
    """The recorded workload; for runs made before it was recorded, what the requests were: `prefill` when every
    one had one output token, `decode` when every prompt was at most a decode workload's and outputs were longer,
    else `mixed`."""
    if recorded:
        return recorded
    ok = [r for r in requests if r.success]
    if ok and all(r.output_tokens == 1 for r in ok):
        return "prefill"
    if ok and all((r.prompt_tokens or 0) <= DECODE_PROMPT_MAX and (r.output_tokens or 0) > 1 for r in ok):
        return "decode"
    return "mixed"


@dataclass
class LevelPhases:
    """One level's (or plain run's) phase figures."""

    label: str
    concurrency: int | None
    workload: str
    input_len: int
    output_len: int
    attribution: attr.Attribution | None
    intervals: attr.Intervals | None
    idle_by_gpu: dict[int, float | None]
    above_idle_by_gpu: dict[int, float | None]
    energy_joules: float | None
    completed: int
    prompt_tokens_prefilled: int
    window_s: float
    ttft_p50_s: float | None

    def isolated(self) -> dict | None:
        """The phase-workload method's figures (None for a mixed level)."""
        a = self.attribution
        if a is None or self.workload == "mixed":
            return None
        above = a.energy_joules - a.idle_joules
        if self.workload == "prefill":
            return {"method": WORKLOAD_METHOD, "joules_per_prompt_token": above / self.prompt_tokens_prefilled
                    if self.prompt_tokens_prefilled else None,
                    "joules_per_prompt_token_total": a.energy_joules / self.prompt_tokens_prefilled
                    if self.prompt_tokens_prefilled else None,
                    "prompt_tokens_per_s": self.prompt_tokens_prefilled / self.window_s if self.window_s else None,
                    "ttft_s_p50": self.ttft_p50_s}
        return {"method": WORKLOAD_METHOD,
                "joules_per_output_token": above / a.decode_tokens if a.decode_tokens else None,
                "joules_per_output_token_total": a.energy_joules / a.decode_tokens if a.decode_tokens else None,
                "prefill_share_of_above_idle": a.prefill_joules / above if above > 0 else None}

    def point(self) -> differential.Point | None:
        if self.energy_joules is None or not self.completed:
            return None
        idle = self.attribution.idle.watts if self.attribution else None
        # per completed request: in steady closed-loop load the energy of requests still running at the window's
        # end balances the energy spent before its start by those that complete in it
        n = self.completed
        above = (self.energy_joules - idle * self.window_s) / n if idle is not None else None
        return differential.Point(self.label, self.concurrency, self.workload, self.input_len, self.output_len,
                                  self.energy_joules / n, above, self.completed)

    def to_json(self) -> dict:
        out: dict = {"workload": self.workload, "input_len": self.input_len, "output_len": self.output_len}
        out |= self.attribution.to_json() if self.attribution else {"method": None, "why": "no energy readings"}
        out["above_idle_joules_by_gpu"] = {str(g): v for g, v in self.above_idle_by_gpu.items()}
        iso = self.isolated()
        if iso:
            out["phase_workload"] = iso
        return out


def level_phases(label: str, requests: Sequence[RequestResult], samples: Samples | None, window: Window | None,
                 concurrency: int | None, workload: str | None = None, input_len: int | None = None,
                 output_len: int | None = None, bin_s: float = attr.DEFAULT_BIN_S) -> LevelPhases:
    """Phase figures over `window` (the level's steady window); lengths default to the requests' medians."""
    ok = [r for r in requests if r.success]
    workload = infer_workload(requests, workload)
    input_len = input_len or round(percentile([r.prompt_tokens or 0 for r in ok], 50) or 0)
    output_len = output_len or round(percentile([r.output_tokens or 0 for r in ok], 50) or 0)
    t0, t1 = (window.start, window.end) if window else (0.0, 0.0)
    first = [r for r in ok if r.ttft_s is not None and t0 <= r.start_time + r.ttft_s < t1]
    lp = LevelPhases(label, concurrency, workload, input_len, output_len, None, None, {}, {}, None,
                     sum(1 for r in ok if r.end_time is not None and t0 <= r.end_time < t1),
                     sum(r.prompt_tokens or 0 for r in first), window.duration_s if window else 0.0,
                     percentile([r.ttft_s for r in first], 50))
    if samples is None or window is None or not requests:
        return lp
    data = attr.intervals(requests, samples, t0, t1, bin_s)
    if data is None:
        return lp
    load_start = min(r.start_time for r in requests)
    idle = attr.idle_power(samples, samples.gpus, load_start)
    lp.attribution, lp.intervals = attr.attribute(data, idle), data
    lp.window_s = float(data.seconds.sum())
    lp.energy_joules = lp.attribution.energy_joules
    for g in samples.gpus:
        gi = attr.idle_power(samples, [g], load_start).watts
        joules = window_energy(samples, g, float(data.edges[0]), float(data.edges[-1])).joules
        lp.idle_by_gpu[g] = gi
        lp.above_idle_by_gpu[g] = joules - gi * lp.window_s if joules is not None and gi is not None else None
    return lp


def overall(levels: Sequence[LevelPhases]) -> dict | None:
    """The levels' splits added up (each level keeps its own fitted coefficients: they depend on the load)."""
    done = [lv.attribution for lv in levels if lv.attribution is not None]
    if not done:
        return None
    total = sum(a.energy_joules for a in done)
    sums = {k: sum(getattr(a, k) for a in done) for k in
            ("prefill_joules", "decode_joules", "idle_joules", "unattributed_joules", "prompt_tokens",
             "decode_tokens")}
    return {"method": attr.METHOD, "energy_joules": total, **sums,
            "prefill_share": sums["prefill_joules"] / total if total else None,
            "decode_share": sums["decode_joules"] / total if total else None,
            "idle_share": sums["idle_joules"] / total if total else None,
            "joules_per_prompt_token": sums["prefill_joules"] / sums["prompt_tokens"] if sums["prompt_tokens"]
            else None,
            "joules_per_output_token": sums["decode_joules"] / sums["decode_tokens"] if sums["decode_tokens"]
            else None}


def differential_fits(levels: Sequence[LevelPhases]) -> list[dict]:
    return differential.fits([p for lv in levels if (p := lv.point()) is not None])


def read_level_phases(level_dir: Path, label: str, window: Window | None, concurrency: int | None,
                      workload: str | None, input_len: int | None, output_len: int | None,
                      samples_name: str = "samples.csv") -> LevelPhases:
    """`level_phases` of a level directory (requests.jsonl and, when recorded, the samples CSV)."""
    samples_path = Path(level_dir) / samples_name
    samples = read_samples(samples_path) if samples_path.exists() else None
    return level_phases(label, read_requests(Path(level_dir) / "requests.jsonl"), samples, window, concurrency,
                        workload, input_len, output_len)
