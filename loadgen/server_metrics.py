"""The serving side's own /metrics (vLLM's and the proxy's Prometheus text), as sums per sample name.

One reader for what the servers say about themselves: the load generator's prefix-cache counters, the sweep's
per-level snapshots of every instance and the report's breakdown of the prefill hop all go through it. The
snapshots are this module's files too (`level-*/metrics/<role>-<moment>.prom`, the page as served), so the sweep
that writes them and the report that reads them agree on one layout.
"""

from __future__ import annotations

from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from llm_dvfs.common.atomic_file import atomic_write_text

SNAPSHOT_DIR = "metrics"
MOMENTS = ("before", "steady", "after")  # before the level's load, halfway through its steady state, after it


def metrics_url(host: str) -> str:
    """The /metrics page of a server given by its base URL (a trailing /v1 is dropped)."""
    base = host.rstrip("/")
    return (base[:-3] if base.endswith("/v1") else base) + "/metrics"


def fetch_text(url: str, timeout: float = 5.0) -> str | None:
    """The page at `url`, or None when the server cannot be reached or answers with an error."""
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException:
        return None
    return response.text


def sample_sums(text: str) -> dict[str, float]:
    """Each sample name's value summed over its label sets (engines, models); ValueError for text that is not
    Prometheus exposition. Histograms read as `<name>_sum` and `<name>_count`, their buckets are not used."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            sums[s.name] = sums.get(s.name, 0.0) + s.value
    return sums


def snapshot_path(level_dir: Path, role: str, moment: str) -> Path:
    return level_dir / SNAPSHOT_DIR / f"{role}-{moment}.prom"


def save_snapshot(level_dir: Path, role: str, moment: str, url: str) -> bool:
    """Save the page at `url` as the level's `role` snapshot at `moment`; False (and no file) when it is down."""
    text = fetch_text(url)
    if text is None:
        return False
    path = snapshot_path(level_dir, role, moment)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return True


def read_snapshot(level_dir: Path, role: str, moment: str) -> dict[str, float] | None:
    """A saved snapshot's sums, or None when it was not saved or does not parse."""
    path = snapshot_path(level_dir, role, moment)
    try:
        return sample_sums(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return None
