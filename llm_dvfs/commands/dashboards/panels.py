"""Panel builders with the project's defaults: the Prometheus datasource on every panel and target, a size the
layout reads, and refIds assigned in order."""

from __future__ import annotations

from typing import Sequence

from grafanalib.core import GridPos, Heatmap, Stat, Target, TimeSeries

from llm_dvfs.commands.dashboards.variables import DATASOURCE

Query = tuple[str, str]  # (PromQL, legend)


def _targets(queries: Sequence[Query], fmt: str = "time_series") -> list[Target]:
    return [Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i), datasource=DATASOURCE, format=fmt,
                   intervalFactor=1)
            for i, (expr, legend) in enumerate(queries)]


def timeseries(title: str, queries: Sequence[Query], unit: str, description: str = "",
               width: int = 12, height: int = 8) -> TimeSeries:
    return TimeSeries(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                      unit=unit, legendDisplayMode="table", legendCalcs=["mean", "max", "lastNotNull"],
                      tooltipMode="multi", gridPos=GridPos(h=height, w=width, x=0, y=0))


def stat(title: str, queries: Sequence[Query], unit: str, description: str = "",
         width: int = 6, height: int = 5) -> Stat:
    """The latest value: the stats here are totals or shares over the dashboard's time range ($__range)."""
    return Stat(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                format=unit, reduceCalc="lastNotNull", gridPos=GridPos(h=height, w=width, x=0, y=0))


def bucket_heatmap(title: str, expr: str, description: str = "", width: int = 12, height: int = 8) -> Heatmap:
    """A heatmap of a Prometheus histogram's buckets (one row per `le`), drawn without re-bucketing."""
    return Heatmap(title=title, description=description, dataSource=DATASOURCE,
                   targets=_targets([(expr, "{{le}}")], fmt="heatmap"), dataFormat="tsbuckets",
                   yBucketBound="upper", hideZeroBuckets=True, gridPos=GridPos(h=height, w=width, x=0, y=0),
                   extraJson={"options": {"calculate": False, "yAxis": {"unit": "watt"},
                                          "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}}})


def quantiles(metric: str, by: str, selector: str = "", legend_prefix: str = "",
              qs: Sequence[float] = (0.5, 0.99)) -> list[Query]:
    """p50/p99 (by default) of a Prometheus histogram, grouped by `by` (plus `le`)."""
    keep = f"{by}, le" if by else "le"
    sel = f"{{{selector}}}" if selector else ""
    legend_by = " ".join("{{%s}}" % label.strip() for label in by.split(",")) if by else ""
    return [(f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{sel}[$__rate_interval])))",
             f"{legend_prefix}p{int(q * 100)} {legend_by}".strip())
            for q in qs]
