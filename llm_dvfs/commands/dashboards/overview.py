"""LLM energy overview: what the GPUs draw next to what the load generator and vLLM are doing."""

from __future__ import annotations

from grafanalib.core import Dashboard

from llm_dvfs.commands.dashboards import one_gpu_phases
from llm_dvfs.commands.dashboards.layout import arrange
from llm_dvfs.commands.dashboards.panels import bucket_heatmap, quantiles, stat, timeseries
from llm_dvfs.commands.dashboards.variables import GPU, INSTANCE, load_test_annotations, templating

UID = "llm-dvfs-overview"
VLLM = f'job=~"vllm.*", {INSTANCE}'


def _latency(title: str, loadgen_metric: str, vllm_metric: str) -> object:
    return timeseries(title, [*quantiles(loadgen_metric, "", legend_prefix="client "),
                              *quantiles(vllm_metric, "instance", VLLM, legend_prefix="vLLM ")],
                      "s", f"Client side ({loadgen_metric}) and server side ({vllm_metric}).", width=6)


def build() -> Dashboard:
    power = [
        timeseries("Power per GPU", [
            (f"gpu_power_watts{{{GPU}}}", "GPU {{gpu}} instant"),
            (f"gpu_power_average_watts{{{GPU}}}", "GPU {{gpu}} driver average"),
            (f"instance_gpu:gpu_energy_joules:rate30s{{{GPU}}}", "GPU {{gpu}} from energy (30 s)"),
        ], "watt", "Instant and driver-averaged power, and the average from the energy counter."),
        timeseries("Power samples p50 / p99 (100 ms samples)",
                   quantiles("gpu_power_samples_watts", "gpu", GPU, legend_prefix="GPU "), "watt",
                   "Quantiles of every exporter sample between scrapes: shows the short peaks a scrape misses."),
        bucket_heatmap("Power sample distribution",
                       f"sum by (le) (increase(gpu_power_samples_watts_bucket{{{GPU}}}[$__rate_interval]))",
                       "How many 100 ms power samples fell in each watt bucket."),
        timeseries("Total power", [
            ("job:gpu_power_watts:sum", "instant"),
            ("job:gpu_energy_joules:rate30s", "from energy (30 s)"),
        ], "watt"),
    ]
    energy = [
        timeseries("Energy per output token", [(":llm_joules_per_output_token:rate30s", "J/token")], "J",
                   "All GPUs' joules over the tokens the load generator received (30 s window).", width=8),
        timeseries("Energy per request", [(":llm_joules_per_request:rate30s", "J/request")], "J",
                   "All GPUs' joules over the successful requests (30 s window).", width=8),
        stat("Energy in range", [(f"sum(increase(gpu_energy_joules_total{{{GPU}}}[$__range]))", "joules")],
             "J", width=4, height=8),
        stat("Tokens in range", [("sum(increase(llm_output_tokens_total[$__range]))", "output tokens")],
             "short", width=4, height=8),
    ]
    load = [
        timeseries("Tokens per second", [
            ("sum(rate(llm_output_tokens_total[$__rate_interval]))", "client output"),
            ("sum(rate(llm_prompt_tokens_total[$__rate_interval]))", "client prompt"),
            (f"sum by (instance) (rate(vllm:generation_tokens_total{{{VLLM}}}[$__rate_interval]))",
             "vLLM generated {{instance}}"),
            (f"sum by (instance) (rate(vllm:prompt_tokens_total{{{VLLM}}}[$__rate_interval]))",
             "vLLM prompt {{instance}}"),
        ], "short", width=8),
        timeseries("Requests per second", [
            ("sum by (status) (rate(llm_requests_total[$__rate_interval]))", "client {{status}}"),
            (f"sum by (instance) (rate(vllm:request_success_total{{{VLLM}}}[$__rate_interval]))",
             "vLLM finished {{instance}}"),
        ], "reqps", width=8),
        timeseries("Users and requests in flight", [
            ("sum(llm_active_users)", "users"),
            ("sum(llm_in_flight_requests)", "client in flight"),
            (f"sum by (instance) (vllm:num_requests_running{{{VLLM}}})", "vLLM running {{instance}}"),
            (f"sum by (instance) (vllm:num_requests_waiting{{{VLLM}}})", "vLLM waiting {{instance}}"),
        ], "short", width=8),
    ]
    latency = [
        _latency("Time to first token", "llm_ttft_seconds", "vllm:time_to_first_token_seconds"),
        _latency("Inter-token latency", "llm_itl_seconds", "vllm:inter_token_latency_seconds"),
        _latency("Time per output token", "llm_tpot_seconds", "vllm:request_time_per_output_token_seconds"),
        _latency("End-to-end latency", "llm_e2e_seconds", "vllm:e2e_request_latency_seconds"),
    ]
    gpu_state = [
        timeseries("SM and memory clocks", [
            (f'gpu_clock_hertz{{clock=~"sm|memory", {GPU}}}', "GPU {{gpu}} {{clock}}"),
            (f'gpu_max_clock_hertz{{clock=~"sm|memory", {GPU}}}', "GPU {{gpu}} {{clock}} max"),
        ], "hertz", width=8),
        timeseries("Throttle reasons (clock events)", [
            (f"gpu_clock_event_active{{{GPU}}}", "GPU {{gpu}} {{reason}}"),
        ], "bool_on_off", "1 while the driver reports the reason as active.", width=8),
        timeseries("Utilization", [
            (f"gpu_utilization_ratio{{{GPU}}}", "GPU {{gpu}} busy"),
            (f"gpu_memory_utilization_ratio{{{GPU}}}", "GPU {{gpu}} memory controller"),
        ], "percentunit", width=8),
        timeseries("Temperature", [(f"gpu_temperature_celsius{{{GPU}}}", "GPU {{gpu}}")], "celsius", width=8),
        timeseries("Memory", [
            (f"gpu_memory_used_bytes{{{GPU}}}", "GPU {{gpu}} used"),
            (f"gpu_memory_total_bytes{{{GPU}}}", "GPU {{gpu}} total"),
        ], "bytes", width=8),
        timeseries("Power limit and performance state", [
            (f"gpu_power_limit_watts{{{GPU}}}", "GPU {{gpu}} limit (W)"),
            (f"gpu_performance_state{{{GPU}}}", "GPU {{gpu}} P-state"),
        ], "short", width=8),
    ]
    return Dashboard(
        title="LLM energy overview", uid=UID, tags=["llm-dvfs"], timezone="browser", refresh="5s", schemaVersion=39,
        description="GPU power and energy next to LLM load and latency (llm-dvfs).",
        templating=templating(), annotations=load_test_annotations(),
        panels=arrange([("Power", power), ("Energy per unit of work", energy),
                        ("Prefill vs decode on one GPU", one_gpu_phases.panels()), ("Load", load),
                        ("Latency (client vs vLLM)", latency), ("GPU state", gpu_state)]),
    ).auto_panel_ids()
