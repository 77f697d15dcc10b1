"""A GPU whose power is built from known prefill and decode energies, for the phase attribution tests.

Each request's prefill draws `joules_per_prompt_token` × its prompt tokens, evenly over the time from its arrival
to its first token; each later token draws `joules_per_decode_token`, evenly over the gap before it. The trace is
written through the project's one samples-CSV writer, at 100 ms ticks with an idle stretch before the load, so the
attribution reads it exactly as it reads a real recording. The truth is computed here with plain loops, not with
the code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from llm_dvfs.exporter.samples_csv import SamplesWriter


@dataclass(frozen=True)
class Span:
    """Energy (J) drawn evenly over [start, end]."""

    start: float
    end: float
    joules: float
    phase: str  # "prefill" or "decode"

    def within(self, t0: float, t1: float) -> float:
        if self.end <= self.start:
            return self.joules if t0 <= self.start < t1 else 0.0
        overlap = max(0.0, min(t1, self.end) - max(t0, self.start))
        return self.joules * overlap / (self.end - self.start)


def spans(timelines: list[tuple[float, float, list[float], int]], per_prompt: float, per_decode: float) -> list[Span]:
    """`timelines`: (arrival, first token time, later token times, prompt tokens) per request."""
    out: list[Span] = []
    for arrival, first, later, prompt in timelines:
        out.append(Span(arrival, first, per_prompt * prompt, "prefill"))
        previous = first
        for t in later:
            out.append(Span(previous, t, per_decode, "decode"))
            previous = t
    return out


def truth(all_spans: list[Span], t0: float, t1: float) -> dict[str, float]:
    """Joules of each phase drawn within [t0, t1]."""
    out = {"prefill": 0.0, "decode": 0.0}
    for s in all_spans:
        out[s.phase] += s.within(t0, t1)
    return out


def write_trace(path: Path, all_spans: list[Span], start: float, end: float, idle_w: float,
                noise_w: float = 0.0, seed: int = 1, tick: float = 0.1) -> None:
    """Samples every `tick` from `start` to `end`: the energy counter (idle + every span) and instant power (the
    tick's mean power plus noise)."""
    rng = random.Random(seed)
    n = int((end - start) / tick) + 1
    times = [start + k * tick for k in range(n)]
    per_tick = [0.0] * n  # joules drawn between tick k-1 and tick k
    for s in all_spans:
        first = max(1, int((s.start - start) / tick))
        last = min(n - 1, int((s.end - start) / tick) + 1)
        for k in range(first, last + 1):
            per_tick[k] += s.within(times[k - 1], times[k])
    writer = SamplesWriter(path, [("gpu", 0)])
    energy = 0.0
    try:
        for k, t in enumerate(times):
            power = idle_w + (per_tick[k] / tick if k else 0.0) + rng.gauss(0, noise_w)
            energy += power * tick if k else 0.0
            writer.write(t, [{"power": power, "energy_j": energy}])
    finally:
        writer.close()
