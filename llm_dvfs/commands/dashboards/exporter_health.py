"""Exporter health: is the 100 ms sampler keeping time, are reads failing, and what does a scrape cost."""

from __future__ import annotations

from grafanalib.core import Dashboard

from llm_dvfs.commands.dashboards.layout import arrange
from llm_dvfs.commands.dashboards.panels import quantiles, stat, timeseries
from llm_dvfs.commands.dashboards.variables import GPU, load_test_annotations, templating

UID = "llm-dvfs-exporter-health"
SELF = "llm_dvfs_exporter"


def build() -> Dashboard:
    timing = [
        timeseries("Tick rate vs configured", [
            (f"rate({SELF}_ticks_total[$__rate_interval])", "ticks/s {{instance}}"),
            (f"1 / {SELF}_interval_seconds", "configured {{instance}}"),
        ], "hertz", "A tick rate below the configured one means the sampler is falling behind.", width=6),
        timeseries("Tick jitter (start lateness)", quantiles(f"{SELF}_tick_lateness_seconds", "instance"), "s",
                   "How long after its scheduled slot each tick started, p50 and p99 (buckets from 0.1 ms).",
                   width=6),
        timeseries("Late and missed ticks", [
            (f"rate({SELF}_late_ticks_total[$__rate_interval])", "late (>20% of interval) {{instance}}"),
            (f"rate({SELF}_missed_ticks_total[$__rate_interval])", "missed {{instance}}"),
        ], "short", "Per second. Late ticks started more than 20% of an interval after their slot; missed ticks "
                    "were skipped entirely.", width=6),
        timeseries("Tick duration", quantiles(f"{SELF}_tick_duration_seconds", "instance"), "s",
                   "Time to read every device and publish one snapshot.", width=6),
    ]
    errors = [
        timeseries("Read errors per second", [
            (f"sum by (gpu, kind) (rate({SELF}_read_errors_total[$__rate_interval])) or vector(0)",
             "GPU {{gpu}} {{kind}}"),
        ], "short", "By GPU and kind (lost, read, timeout, or the field that failed); 0 when there are none.",
                   width=8),
        timeseries("Devices up", [
            (f"gpu_up{{{GPU}}}", "GPU {{gpu}}"),
            ('up{job="exporter"}', "exporter target {{instance}}"),
        ], "bool_on_off", width=8),
        stat("Energy counter resets in range",
             [(f"sum(increase({SELF}_energy_resets_total{{{GPU}}}[$__range]))", "resets")],
             "short", width=8, height=8),
    ]
    scrape = [
        timeseries("Scrape duration", [
            ('scrape_duration_seconds{job="exporter"}', "Prometheus scrape {{instance}}"),
        ], "s", "How long Prometheus waited for /metrics.", width=8),
        timeseries("Samples per scrape", [('scrape_samples_scraped{job="exporter"}', "{{instance}}")], "short",
                   width=8),
        timeseries("Age of the latest tick", [
            (f"time() - {SELF}_last_tick_timestamp_seconds", "{{instance}}"),
        ], "s", "Grows when the sampler stalls while the HTTP server still answers.", width=8),
    ]
    return Dashboard(
        title="llm-dvfs exporter health", uid=UID, tags=["llm-dvfs"], timezone="browser", refresh="5s",
        schemaVersion=39, description="The GPU power exporter's own timing, errors and scrape cost.",
        templating=templating(), annotations=load_test_annotations(),
        panels=arrange([("Sampling", timing), ("Errors", errors), ("Scrapes", scrape)]),
    ).auto_panel_ids()
