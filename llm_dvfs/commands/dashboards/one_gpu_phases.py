"""Prefill vs decode on one GPU, live: the attribution model fitted by Prometheus recording rules from vLLM's own
token counters and the GPU energy counter (prometheus/rules.yml, group llm-dvfs-phase-energy)."""

from __future__ import annotations

from llm_dvfs.commands.dashboards.panels import timeseries

A, B = ":llm_joules_per_prompt_token:regression10m", ":llm_joules_per_output_token:regression10m"
X, Y = ":vllm_prompt_tokens:rate30s", ":vllm_generation_tokens:rate30s"
METHOD = ("Estimate: over the last 10 minutes of 30 s windows, the GPUs' watts above idle (energy counter rate "
          "minus the 5th percentile of instant power over 1 h) are fitted as a × vLLM prompt tokens/s "
          "(vllm:prompt_tokens_total) + b × generated tokens/s (vllm:generation_tokens_total) by least squares "
          "without intercept; a negative coefficient shows as 0, and a mix that did not vary gives no estimate. "
          "Disaggregated, the prefill server's prompt tokens and the decode server's generated tokens are fitted "
          "to the energy of all GPUs. "
          "The offline report's attribution (docs/phase-energy.md) uses the same model on each request's "
          "timeline, with bootstrap intervals.")


def panels() -> list:
    return [
        timeseries("One GPU: joules per prompt token (live estimate)", [(A, "J per prompt token")], "J",
                   "a, the marginal energy of one prompt token. " + METHOD, width=8),
        timeseries("One GPU: joules per output token (live estimate)", [(B, "J per output token")], "J",
                   "b, the marginal energy of one generated token. " + METHOD, width=8),
        timeseries("GPU watts: measured, above idle, and the fit", [
            ("job:gpu_energy_joules:rate30s", "all GPUs (energy counter, 30 s)"),
            (":gpu_energy_above_idle_joules:rate30s", "above idle"),
            (f"{A} * {X}", "prefill (a × prompt tokens/s)"),
            (f"{B} * {Y}", "decode (b × generated tokens/s)"),
        ], "watt", "GPU energy beside the two phases' fitted shares of it: where the sum of prefill and "
                   "decode leaves the measured line, the live model does not hold. " + METHOD, width=8),
    ]
