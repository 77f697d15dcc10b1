"""The Energy view's figures and GPU readings: histogram percentiles, the figures between two snapshots of the real
load generator metrics against results.json's own calculation, exporter URLs and roles, and what one scrape of a
real replaying exporter shows (a power-capped H100), including an exporter that goes away mid-test."""

from __future__ import annotations

import time

import gevent
import pytest
import requests
from llm_dvfs.exporter.scrape import ScrapeError, fetch, parse
from llm_dvfs.loadgen.metrics import ITL_BUCKETS, TTFT_BUCKETS, LoadgenMetrics
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.loadgen.stats import calculate_metrics
from llm_dvfs.loadgen.webui.figures import between, quantile, snapshot
from llm_dvfs.loadgen.options import split_urls
from llm_dvfs.loadgen.webui.gpus import gpu_readings, role_of
from llm_dvfs.loadgen.webui.live import SERIES, LiveEnergy
from tests.loadgen.webui_run import H100_CAPPED_FROM_ROW, H100_TRACE, replay_exporter, trace_slice
from tests.support import free_port


def test_quantile_interpolates_inside_its_bucket():
    cumulative = {1.0: 2, 2.0: 4, float("inf"): 4}
    assert quantile(0.5, cumulative) == 1.0
    assert quantile(0.75, cumulative) == 1.5
    assert quantile(0.25, cumulative) == 0.5  # the first bucket starts at 0
    assert quantile(0.5, {1.0: 0, float("inf"): 0}) is None
    assert quantile(0.99, {1.0: 0, 2.0: 0, float("inf"): 3}) == 2.0  # beyond the last bound: the bound


def _result(start: float, ttft: float, itls: list[float], prompt: int = 7, success: bool = True) -> RequestResult:
    return RequestResult(start_time=start, success=success, error=None if success else "http_500: x",
                         ttft_s=ttft if success else None, itl_s=itls if success else [],
                         e2el_s=ttft + sum(itls) if success else None, prompt_tokens=prompt,
                         output_tokens=len(itls) + 1 if success else None, elapsed_s=ttft + sum(itls))


def test_figures_between_snapshots_agree_with_results_json():
    metrics = LoadgenMetrics()
    early = [_result(0, 0.2, [0.03] * 9)]
    for r in early:
        metrics.observe(r)
    before = snapshot(metrics.registry)
    later = [_result(i, 0.05 + 0.01 * i, [0.011 + 0.0005 * i] * 15, prompt=100 + i) for i in range(20)]
    later.append(_result(21, 0, [], success=False))
    for r in later:
        metrics.observe(r)
    figures = between(before, snapshot(metrics.registry), seconds=4.0, joules=800.0)
    exact = calculate_metrics(later, 4.0)  # what results.json says over the same requests
    for key in ("completed", "failed", "total_input_tokens", "total_output_tokens", "output_throughput"):
        assert figures[key] == exact[key], key
    assert figures["joules_per_output_token"] == pytest.approx(800 / exact["total_output_tokens"])
    assert figures["joules_per_request"] == pytest.approx(800 / 20)
    assert figures["avg_watts"] == 200 and figures["joules_per_prompt_token"] is None
    # percentiles: estimates within the bucket that holds the exact value
    for key, bounds in (("median_ttft_ms", TTFT_BUCKETS), ("p99_ttft_ms", TTFT_BUCKETS),
                        ("median_itl_ms", ITL_BUCKETS), ("p99_itl_ms", ITL_BUCKETS)):
        upper = next(b for b in bounds if b * 1000 >= exact[key] - 1e-9)
        lower = max([0, *(b for b in bounds if b < upper)])
        assert 1000 * lower <= figures[key] <= 1000 * upper, key
    prefill = between(before, snapshot(metrics.registry), 4.0, 800.0, prompt_priced=True)
    assert prefill["joules_per_prompt_token"] == pytest.approx(800 / exact["total_input_tokens"])
    assert between(before, before, 4.0, None)["joules_per_output_token"] is None  # no exporter: no zeros


def test_exporter_urls_repeated_or_comma_separated():
    assert split_urls(None) == ()
    assert split_urls("http://a:9945/metrics") == ("http://a:9945/metrics",)
    assert split_urls(["http://a/metrics, http://b/metrics"]) == ("http://a/metrics", "http://b/metrics")
    assert split_urls(["http://a/metrics,http://b/metrics", "http://c/metrics"]) == (
        "http://a/metrics", "http://b/metrics", "http://c/metrics")


def test_roles_follow_prometheus_default_map():
    assert role_of(0, 1, "0", disaggregated=False) is None
    assert [role_of(0, 1, g, True) for g in ("0", "1", "2")] == ["prefill", "decode", None]
    assert [role_of(e, 2, "0", True) for e in (0, 1)] == ["prefill", "decode"]


PAGE = """\
gpu_info{gpu="0",uuid="u",name="H100",backend="nvml"} 1
gpu_power_watts{gpu="0",uuid="u"} 650
gpu_energy_joules_total{gpu="0",uuid="u"} 10
gpu_clock_hertz{gpu="0",uuid="u",clock="sm"} 1.755e9
gpu_max_clock_hertz{gpu="0",uuid="u",clock="sm"} 1.98e9
gpu_clock_event_active{gpu="0",uuid="u",reason="sw_power_cap"} 1
gpu_clock_event_active{gpu="0",uuid="u",reason="hw_slowdown"} 0
llm_dvfs_exporter_gpus 1
"""


def test_readings_name_throttle_reasons_only_while_active():
    [g] = gpu_readings(parse(PAGE, "http://h:9945/metrics"), 0, 2, disaggregated=True)
    assert (g.key, g.name, g.role, g.power_watts, g.sm_clock_hertz, g.max_sm_clock_hertz) == (
        "h:9945 gpu 0", "H100", "prefill", 650.0, 1.755e9, 1.98e9)
    assert g.throttle_reasons == ("sw_power_cap",) and g.memory_clock_hertz is None
    relabelled = PAGE.replace('name="H100"', 'name="H100",role="decode"')
    assert gpu_readings(parse(relabelled, "http://h/metrics"), 0, 1, True)[0].role == "decode"


def test_live_view_from_a_real_exporter_that_goes_away(tmp_path):
    capped = trace_slice(H100_TRACE, H100_CAPPED_FROM_ROW, 400, tmp_path / "capped.csv")
    metrics = LoadgenMetrics()
    with replay_exporter(capped) as url:
        [g] = gpu_readings(fetch(url), 0, 1, False)
        page = requests.get(url, timeout=5).text
        assert gpu_readings(parse(page, url, only=SERIES), 0, 1, False) == gpu_readings(parse(page, url), 0, 1, False)
        assert g.power_limit_watts == 700 and g.sm_clock_hertz and g.energy_joules is not None
        live = LiveEnergy([url], metrics.registry)
        live.start()
        metrics.observe(_result(0, 0.1, [0.02] * 4))
        gevent.sleep(2.5)  # the view's own greenlet ticks once a second meanwhile
        assert len(live.points) >= 2
        view = live.view()
        assert view["points"][-1]["watts_total"] > 100 and view["totals"]["energy_joules"] > 0
        assert view["totals"]["joules_per_output_token"] == pytest.approx(view["totals"]["energy_joules"] / 5)
        assert view["points_total"] == len(view["points"]) and live.view(since=view["points_total"])["points"] == []
    # the exporter is gone: the view keeps its last readings, names the error, and the test goes on
    joules = live.view()["totals"]["energy_joules"]
    live.tick()
    after = live.view()
    assert list(after["exporter_errors"]) == [url] and "cannot read" in after["exporter_errors"][url]
    assert [g["key"] for g in after["gpus"]] == ["gpu 0"] and after["totals"]["energy_joules"] >= joules
    live.stop()
    assert not live.view()["running"]


def test_without_exporter_nothing_is_read_or_zero():
    live = LiveEnergy([], LoadgenMetrics().registry, read=lambda url: pytest.fail("no exporter to read"))
    live.start()
    live.tick()
    live.stop()
    view = live.view()
    assert view["gpus"] == [] and view["totals"]["energy_joules"] is None
    assert all(p["watts_total"] is None and p["joules_per_output_token"] is None for p in view["points"])


def test_free_port_is_not_an_exporter():
    live = LiveEnergy([f"http://127.0.0.1:{free_port()}/metrics"], LoadgenMetrics().registry)
    live.tick()
    assert live.view()["exporter_errors"] and live.view()["totals"]["energy_joules"] is None


def test_back_to_back_ticks_and_a_failed_scrape_give_no_false_figures(tmp_path):
    """Regression: a tick right after another (the greenlet catching up after a busy spell) divided one step of
    the exporter's 100 ms counter by a few ms (4,299 W on a 700 W H100), and a window that began at a failed scrape
    showed 0 J per token. Now a watts figure spans at least half a second and such a window shows no figure."""
    capped = trace_slice(H100_TRACE, H100_CAPPED_FROM_ROW, 400, tmp_path / "capped.csv")
    metrics = LoadgenMetrics()
    with replay_exporter(capped) as url:
        fail_next = []

        def read(u: str):
            if fail_next:
                fail_next.pop()
                raise ScrapeError(f"cannot read {u}: injected timeout")
            return fetch(u)

        now = [1000.0]  # the view's clock: a second per pair of ticks, so its 10 s window passes the failure
        live = LiveEnergy([url], metrics.registry, read=read, clock=lambda: now[0])
        live.start()
        live.stop()  # no greenlet: this test ticks by hand
        live.running = True
        for i in range(30):
            gap = 1.0 if i % 2 else 0.01  # pairs of ticks 10 ms apart
            time.sleep(0.25 if i % 2 else 0.01)  # real time, so the exporter's counter moves
            now[0] += gap
            fail_next[:] = [True] if i == 3 else []
            metrics.observe(_result(0, 0.1, [0.02] * 9))
            live.tick()
    watts = [w for p in live.points for w in p.watts.values()]
    assert watts and all(0 < w < 1000 for w in watts), watts
    per_token = [p.joules_per_output_token for p in live.points]
    assert all(j is None or j > 0 for j in per_token), per_token
