"""The report's summary figures of one part (a run or a sweep level), all over the part's window."""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_dvfs.analysis.energy import NO_SENSOR, Energy, window_energy
from llm_dvfs.analysis.requests import tokens_between
from llm_dvfs.analysis.run import Part
from llm_dvfs.analysis.stats import mean, percentile


@dataclass
class Summary:
    name: str
    duration_s: float
    latency_ms: dict[str, tuple[float | None, float | None]]  # metric -> (p50, p99)
    output_tok_s: float | None
    request_s: float | None
    goodput: float | None
    energy: dict[int, Energy] = field(default_factory=dict)
    mean_w: dict[int, float | None] = field(default_factory=dict)
    max_w: dict[int, float | None] = field(default_factory=dict)
    tokens: float = 0.0
    completed: int = 0
    failed: int = 0

    @property
    def energy_j(self) -> float | None:
        values = [e.joules for e in self.energy.values()]
        return sum(values) if values and None not in values else None  # type: ignore[arg-type]

    @property
    def j_per_token(self) -> float | None:
        return self.energy_j / self.tokens if self.energy_j is not None and self.tokens else None

    @property
    def j_per_request(self) -> float | None:
        return self.energy_j / self.completed if self.energy_j is not None and self.completed else None

    @property
    def total_w(self) -> float | None:
        return self.energy_j / self.duration_s if self.energy_j is not None and self.duration_s else None

    @property
    def no_sensor(self) -> bool:
        return bool(self.energy) and all(e.source == NO_SENSOR for e in self.energy.values())


def _ms(values: list[float]) -> tuple[float | None, float | None]:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return (None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000)


def summarize(part: Part) -> Summary:
    w = part.window
    t0, t1 = (w.start, w.end) if w else (float("-inf"), float("inf"))
    duration = w.duration_s if w else 0.0
    ok = [r for r in part.requests if r.success]
    started = [r for r in ok if t0 <= r.start < t1]
    latency = {
        "TTFT": _ms([r.ttft_s for r in started if r.ttft_s is not None]),
        "ITL": _ms([x for r in started for x in r.itl_s]),
        "TPOT": _ms([r.tpot_s for r in started if r.tpot_s is not None]),
        "E2E": _ms([r.e2el_s for r in started if r.e2el_s is not None]),
    }
    tokens = tokens_between(part.requests, t0, t1)
    completed = sum(1 for r in ok if r.end is not None and t0 <= r.end < t1)
    s = Summary(part.name, duration, latency, tokens / duration if duration else None,
                completed / duration if duration else None, (part.results or {}).get("request_goodput"),
                tokens=tokens, completed=completed,
                failed=sum(1 for r in part.requests if not r.success and t0 <= r.start < t1))
    if part.samples and w:
        for g in part.samples.gpus:
            s.energy[g] = window_energy(part.samples, g, t0, t1)
            power = [p for t, p in zip(part.samples.timestamps, part.samples.series(g, "power"))
                     if p is not None and t0 <= t <= t1]
            s.mean_w[g], s.max_w[g] = mean(power), max(power, default=None)
    return s
