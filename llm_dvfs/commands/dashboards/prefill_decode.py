"""Prefill vs decode: the two halves of a disaggregated deployment side by side, in watts, joules and queues.

GPUs and vLLM servers meet on the `role` label (prefill / decode) that prometheus/prometheus.yml attaches.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from llm_dvfs.commands.dashboards.layout import arrange
from llm_dvfs.commands.dashboards.panels import quantiles, stat, timeseries
from llm_dvfs.commands.dashboards.variables import GPU, INSTANCE, load_test_annotations, templating

UID = "llm-dvfs-prefill-decode"
ROLES = 'role=~"prefill|decode"'
SERVERS = f'job=~"vllm-prefill|vllm-decode", {INSTANCE}'


def build() -> Dashboard:
    power = [
        timeseries("Watts: prefill vs decode GPUs", [
            (f"sum by (role) (gpu_power_watts{{{ROLES}, {GPU}}})", "{{role}} instant"),
            ("role:gpu_energy_joules:rate30s", "{{role}} from energy (30 s)"),
        ], "watt", "Sum over the GPUs of each role (role map in prometheus/prometheus.yml).", width=12),
        stat("Joules in range by role",
             [(f"sum by (role) (increase(gpu_energy_joules_total{{{ROLES}, {GPU}}}[$__range]))", "{{role}}")],
             "J", width=6, height=8),
        stat("Decode share of energy",
             [(f'sum(increase(gpu_energy_joules_total{{role="decode", {GPU}}}[$__range])) '
               f"/ sum(increase(gpu_energy_joules_total{{{ROLES}, {GPU}}}[$__range]))", "decode")],
             "percentunit", width=6, height=8),
    ]
    per_token = [
        timeseries("Prefill: joules per prompt token", [("role:llm_joules_per_prompt_token:rate30s", "prefill")],
                   "J", "Prefill GPUs' joules over the prompt tokens the prefill server processed (30 s)."),
        timeseries("Decode: joules per output token", [("role:llm_joules_per_output_token:rate30s", "decode")],
                   "J", "Decode GPUs' joules over the tokens the decode server generated (30 s)."),
    ]
    proxy = [
        timeseries("Proxy: prefill hop and decode first token",
                   [*quantiles("proxy_prefill_seconds", "", legend_prefix="prefill "),
                    *quantiles("proxy_decode_first_token_seconds", "", legend_prefix="decode first token "),
                    *quantiles("proxy_request_seconds", "", legend_prefix="request ")], "s", width=12),
        timeseries("Proxy requests per second",
                   [("sum by (status) (rate(proxy_requests_total[$__rate_interval]))", "{{status}}")],
                   "reqps", width=12),
    ]
    servers = [
        timeseries("Queue depth per instance", [
            (f"sum by (job, instance) (vllm:num_requests_waiting{{{SERVERS}}})", "{{job}} waiting"),
            (f"sum by (job, instance) (vllm:num_requests_running{{{SERVERS}}})", "{{job}} running"),
        ], "short", width=8),
        timeseries("KV-cache use per instance",
                   [(f"max by (job, instance) (vllm:kv_cache_usage_perc{{{SERVERS}}})", "{{job}} {{instance}}")],
                   "percentunit", width=8),
        timeseries("Tokens per second by role", [
            (f'sum by (role) (rate(vllm:prompt_tokens_total{{role="prefill", {INSTANCE}}}[$__rate_interval]))',
             "prefill prompt tokens"),
            (f'sum by (role) (rate(vllm:generation_tokens_total{{role="decode", {INSTANCE}}}[$__rate_interval]))',
             "decode output tokens"),
        ], "short", width=8),
    ]
    return Dashboard(
        title="LLM prefill vs decode", uid=UID, tags=["llm-dvfs", "disaggregated"], timezone="browser",
        refresh="5s", schemaVersion=39,
        description="Disaggregated serving: prefill GPUs vs decode GPUs, proxy timings, queues and KV cache.",
        templating=templating(), annotations=load_test_annotations(),
        panels=arrange([("Power and energy", power), ("Energy per token", per_token), ("Proxy", proxy),
                        ("Servers", servers)]),
    ).auto_panel_ids()
