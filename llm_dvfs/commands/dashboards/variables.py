"""What every dashboard shares: the Prometheus datasource, the instance and GPU variables, load-test annotations."""

from __future__ import annotations

from grafanalib.core import Annotations, Template, Templating

DATASOURCE_UID = "llm-dvfs-prometheus"  # provisioned with this uid, so dashboards find it on first start
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}

# Label matchers that panels put in their selectors; tests substitute the "All" value (.*) for the variables.
GPU = 'gpu=~"$gpu"'
INSTANCE = 'instance=~"$instance"'


def _query_variable(name: str, label: str, query: str) -> Template:
    return Template(name=name, label=label, query=query, dataSource=DATASOURCE, includeAll=True, multi=True,
                    allValue=".*", default="$__all",
                    refresh=2)  # 2 = refresh when the time range changes, so new GPUs and servers appear


def templating() -> Templating:
    """`gpu`: exporter GPU indices; `instance`: vLLM servers (single, prefill and decode alike)."""
    return Templating(list=[
        _query_variable("gpu", "GPU", "label_values(gpu_power_watts, gpu)"),
        _query_variable("instance", "vLLM instance",
                        'label_values(vllm:num_requests_running{job=~"vllm.*"}, instance)'),
    ])


def _annotation(name: str, expr: str, color: str, value_is_time: bool, text: str) -> dict:
    return {"datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": color, "name": name,
            "expr": expr, "step": "5s", "titleFormat": name, "textFormat": text, "tagKeys": "instance",
            "useValueForTime": value_is_time}


def load_test_annotations() -> Annotations:
    """Load-test start as a point at the load generator's own start time, and the run as a region that lasts
    while users are active (it ends when the test stops or the Locust master goes away)."""
    return Annotations(list=[
        _annotation("Load test start", "max by (instance) (llm_test_start_time_seconds) * 1000 > 0", "green",
                    True, "load test started on {{instance}}"),
        _annotation("Load test running", "max by (instance) (llm_active_users) > 0", "rgba(0, 211, 255, 0.3)",
                    False, "{{instance}} running"),
    ])
