"""The set of dashboards and the Grafana provisioning that loads them, rendered to file contents (no writing).

Rendering is deterministic (sorted keys, fixed ids), so the committed JSON can be compared byte for byte with a
fresh rendering to catch a dashboard edited in code but not regenerated.
"""

from __future__ import annotations

import json
from typing import Callable

import yaml
from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from llm_dvfs.commands.dashboards import exporter_health, overview, prefill_decode
from llm_dvfs.commands.dashboards.variables import DATASOURCE_UID

BUILDERS: tuple[Callable[[], Dashboard], ...] = (overview.build, prefill_decode.build, exporter_health.build)

DEFAULT_PROMETHEUS_URL = "http://localhost:9090"  # the compose stack uses host networking, as do bare-metal runs
DEFAULT_GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/llm-dvfs"  # where compose mounts grafana/dashboards


def dashboard_json(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def dashboard_files() -> dict[str, str]:
    """{file name: JSON text}, one file per dashboard, named by its uid."""
    out: dict[str, str] = {}
    for build in BUILDERS:
        dashboard = build()
        out[f"{dashboard.uid}.json"] = dashboard_json(dashboard)
    return out


def _yaml(header: str, data: dict) -> str:
    return f"# {header}\n# Written by `llm-dvfs dashboards`; edit llm_dvfs/commands/dashboards/ and regenerate.\n" + \
        yaml.safe_dump(data, sort_keys=False)


def provisioning_files(prometheus_url: str = DEFAULT_PROMETHEUS_URL,
                       dashboards_path: str = DEFAULT_GRAFANA_DASHBOARDS_PATH) -> dict[str, str]:
    """{path under grafana/provisioning: YAML text}: the Prometheus datasource (fixed uid, which every panel
    names) and a file provider that loads the generated dashboards at start."""
    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy", "url": prometheus_url,
        "isDefault": True, "editable": False,
        # 1 s matches the exporter's scrape interval, so $__rate_interval stays short enough for load steps.
        "jsonData": {"timeInterval": "1s", "httpMethod": "POST"},
    }]}
    provider = {"apiVersion": 1, "providers": [{
        "name": "llm-dvfs", "folder": "llm-dvfs", "type": "file", "disableDeletion": False,
        "allowUiUpdates": False, "updateIntervalSeconds": 30, "options": {"path": dashboards_path},
    }]}
    return {
        "datasources/prometheus.yml": _yaml("Grafana datasource: the llm-dvfs Prometheus.", datasource),
        "dashboards/llm-dvfs.yml": _yaml("Grafana dashboard provider: the llm-dvfs dashboards.", provider),
    }
