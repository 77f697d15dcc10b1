"""Reading the generated dashboards as Grafana would: panels (row children included), their PromQL, and the
PromQL with Grafana's variables replaced by what Grafana would send for "All"."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
DISAGGREGATED_TAG = "disaggregated"  # dashboards tagged so are checked against the prefill/decode pair


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}: {self.expr}"


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict) -> list[Query]:
    """Every PromQL the dashboard runs: panel targets and annotation queries."""
    title = dashboard["title"]
    out = [Query(title, p["title"], t["refId"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]
    out += [Query(title, "annotation", a["name"], a["expr"]) for a in dashboard["annotations"]["list"]]
    return out


def substitute(expr: str, range_s: int, rate_interval_s: int = 10) -> str:
    """Grafana's view of the query with every variable set to All (regex .*)."""
    values = {"__rate_interval": f"{rate_interval_s}s", "__interval": "1s", "__range": f"{range_s}s",
              "gpu": ".*", "instance": ".*"}

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def grouped(dashboards: dict[str, dict], disaggregated: bool) -> list[Query]:
    """The queries of the dashboards that are (or are not) tagged disaggregated."""
    return [q for d in dashboards.values() if (DISAGGREGATED_TAG in d.get("tags", [])) == disaggregated
            for q in queries(d)]


# Exporter metrics that a replayed trace cannot serve: the samples CSV (docs/interfaces.md) has no column for the
# first two, and the replay backend does not yet read the `clock_events` column. Queries on them are checked by
# name against docs/interfaces.md instead of against data.
NOT_IN_REPLAY = ("gpu_memory_utilization_ratio", "gpu_max_clock_hertz", "gpu_clock_event_active")


def needs_hardware(query: Query) -> bool:
    return any(name in query.expr for name in NOT_IN_REPLAY)
