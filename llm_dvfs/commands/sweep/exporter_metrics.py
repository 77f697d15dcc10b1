"""Reading an llm-dvfs exporter's /metrics: which devices it measures (`gpu_info`) and their latest values."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    backend: str
    source: str
    energy_source: str
    kind: str = "gpu"  # "cpu" for the host backend's CPU packages (series named cpu_*)


def fetch(url: str, timeout: float = 5.0) -> str:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response.text


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one /metrics page."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def devices(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> list[Device]:
    """The `gpu_info` series by index; the host backend's `cpu_info` when there is no GPU."""
    out = []
    for kind in ("gpu", "cpu"):
        for (name, labels), _ in samples.items():
            if name != f"{kind}_info":
                continue
            ls = dict(labels)
            out.append(Device(int(ls.get(kind, len(out))), ls.get("name", "unknown"), ls.get("backend", ""),
                              ls.get("source", ""), ls.get("energy_source", ""), kind))
        if out:
            break
    return sorted(out, key=lambda d: d.index)


def device_name(found: list[Device]) -> str:
    """One name for sweep.json: the model name, or the distinct names joined when GPUs differ."""
    names = list(dict.fromkeys(d.name for d in found))
    return " + ".join(names) if names else "unknown"
