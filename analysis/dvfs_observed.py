"""What the GPU did during a level, from the exporter's samples: mean SM clock over the steady window and the
share of samples each throttle reason was active in, so a setting the power controller overrode is visible."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llm_dvfs.analysis.stats import mean
from llm_dvfs.exporter.samples_csv import SamplesReader, TraceFormatError


def observe(samples_csv: Path, t0: float | None, t1: float | None) -> dict[str, dict]:
    """Per GPU index (as a string): `sm_clock_mhz` (mean, None when not read), `samples` in [t0, t1] (the whole
    recording when the level had no steady window) and `throttle_reasons` {reason: share of read samples}."""
    try:
        reader = SamplesReader(samples_csv, strict=False)
        rows = [r for r in reader.rows() if (t0 is None or r.timestamp >= t0) and (t1 is None or r.timestamp <= t1)]
    except TraceFormatError:
        return {}
    out = {}
    for gpu in reader.devices:
        clocks = [r.values[gpu].get("sm_clock") for r in rows]
        events = [r.clock_events[gpu] for r in rows if r.clock_events[gpu] is not None]
        counts = Counter(reason for active in events for reason in active)
        out[str(gpu)] = {"sm_clock_mhz": mean(c for c in clocks if c is not None), "samples": len(rows),
                         "throttle_reasons": {k: counts[k] / len(events) for k in sorted(counts)}}
    return out
