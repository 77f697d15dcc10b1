"""The prefill/decode attribution and the differential fit recover known energies.

The attribution test measures a real load: real Locust processes against the scripted SSE server over loopback;
the server records when it really received each request and wrote each token, and the power trace is built from
those true times with known energies per prompt token and per decode token (tests/analysis/phase_power.py). The
attribution only sees what a real run leaves: requests.jsonl and the samples CSV.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from llm_dvfs.analysis import attribution as attr
from llm_dvfs.analysis.phases import differential_fits, infer_workload, level_phases
from llm_dvfs.analysis.samples import read_samples
from llm_dvfs.analysis.window import steady_window
from llm_dvfs.loadgen.results import RequestResult, read_requests
from tests.analysis.phase_power import spans, truth, write_trace
from tests.loadgen.locust_run import run_locust
from tests.loadgen.scripted_server import Script, ScriptedServer

PER_PROMPT, PER_DECODE, IDLE_W = 2.0, 0.5, 100.0


def test_attribution_recovers_the_known_split_of_a_scripted_server_load(tmp_path):
    # the prompt lengths vary (the client's random prompts, counted by the client as the server sends no usage),
    # and so do the server's TTFTs and token counts: prefill and decode activity move apart, as on a real server
    scripts = (Script(ttft=1.0, itl=0.05, tokens=6, usage=False), Script(ttft=0.2, itl=0.04, tokens=40, usage=False),
               Script(ttft=1.5, itl=0.08, tokens=3, usage=False), Script(ttft=0.5, itl=0.03, tokens=25, usage=False))
    per_prompt = 0.1
    with ScriptedServer() as server:
        server.cycle(*scripts)
        done = run_locust(server.url, tmp_path, "--stop-timeout", "10", "--input-len", "200", "--range-ratio", "0.9",
                          users=4, run_time="20s")
        served = [s for s in server.served if s.completed and s.token_times]
    assert done.returncode == 0, done.stderr[-2000:]
    requests = read_requests(tmp_path / "requests.jsonl")
    wall = time.time() - time.perf_counter()  # the server stamps with perf_counter, the records with wall time
    known = spans([(wall + s.received, wall + s.token_times[0], [wall + t for t in s.token_times[1:]],
                    len(s.body["prompt"].split())) for s in served], per_prompt, PER_DECODE)
    assert sum(r.prompt_tokens for r in requests) == sum(len(s.body["prompt"].split()) for s in served)
    first, last = min(sp.start for sp in known), max(sp.end for sp in known)
    write_trace(tmp_path / "samples.csv", known, first - 5.0, last + 1.0, IDLE_W, noise_w=1.0)

    window = steady_window(requests, 4, 1.0)
    assert window is not None and window.duration_s > 10
    lv = level_phases("c4", requests, read_samples(tmp_path / "samples.csv"), window, 4)
    a = lv.attribution
    expected = truth(known, float(lv.intervals.edges[0]), float(lv.intervals.edges[-1]))
    assert a.idle.watts == pytest.approx(IDLE_W, abs=1) and "idle window" in a.idle.source
    assert a.prefill_joules == pytest.approx(expected["prefill"], rel=0.02)
    assert a.decode_joules == pytest.approx(expected["decode"], rel=0.02)
    assert a.prefill_joules + a.decode_joules + a.idle_joules + a.unattributed_joules == \
        pytest.approx(a.energy_joules, rel=1e-9)
    assert a.coef_prompt == pytest.approx(per_prompt, rel=0.05)
    assert a.coef_decode == pytest.approx(PER_DECODE, rel=0.05)
    low, high = a.ci95["prefill_joules"]
    assert low <= a.prefill_joules <= high
    assert a.joules_per_prompt_token == pytest.approx(a.prefill_joules / a.prompt_tokens)


def _closed_loop(users: int, output_len: int, prompt: int, seconds: float, rng: random.Random):
    """Simulated closed-loop requests: TTFT grows with the prompt, one token every 20 ms."""
    out, timelines = [], []
    for u in range(users):
        t = u * 0.05
        while t < seconds:
            ttft = 0.03 + prompt / 20000 + rng.uniform(0, 0.01)
            itl = [0.02 + rng.uniform(0, 0.004) for _ in range(output_len - 1)]
            e2el = ttft + sum(itl)
            out.append(RequestResult(start_time=1000.0 + t, success=True, ttft_s=ttft, itl_s=itl, e2el_s=e2el,
                                     prompt_tokens=prompt, output_tokens=output_len, elapsed_s=e2el))
            first = 1000.0 + t + ttft
            timelines.append((1000.0 + t, first, list(first + np.cumsum(itl)), prompt))
            t += e2el + 0.001
    return sorted(out, key=lambda r: r.start_time), timelines


def test_the_differential_fit_recovers_the_known_intercept_and_slope(tmp_path):
    rng = random.Random(3)
    levels = []
    for output_len in (1, 16, 64):
        requests, timelines = _closed_loop(4, output_len, 256, 90.0, rng)
        path = tmp_path / f"out{output_len}.csv"
        write_trace(path, spans(timelines, PER_PROMPT, PER_DECODE), 997.0, 1000.0 + 95.0, IDLE_W)
        window = steady_window(requests, 4, 2.0)
        levels.append(level_phases(f"out {output_len}", requests, read_samples(path), window, 4, "mixed", 256,
                                   output_len))
    fit = next(f for f in differential_fits(levels) if f["over"] == "output_len")
    line = fit["above_idle"]
    assert line["intercept_joules"] == pytest.approx(PER_PROMPT * 256, rel=0.02)  # the prefill of one request
    assert line["slope_joules_per_token"] == pytest.approx(PER_DECODE, rel=0.02)
    assert line["joules_per_prompt_token"] == pytest.approx(PER_PROMPT, rel=0.02)
    assert line["r2"] > 0.999 and len(line["residuals_joules"]) == 3
    assert [p["output_len"] for p in fit["points"]] == [1, 16, 64]
    # the total basis pays the idle power too: a steeper line than above idle
    assert fit["total"]["slope_joules_per_token"] > line["slope_joules_per_token"]


def test_a_prefill_only_load_is_all_prefill_and_its_workload_figure_agrees():
    requests, timelines = _closed_loop(4, 1, 512, 30.0, random.Random(5))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.csv"
        write_trace(path, spans(timelines, PER_PROMPT, PER_DECODE), 997.0, 1032.0, IDLE_W)
        lv = level_phases("prefill", requests, read_samples(path), steady_window(requests, 4, 1.0), 4)
    assert lv.workload == "prefill"  # inferred: every request asked for one token
    assert lv.attribution.decode_joules == 0 and lv.attribution.decode_tokens == 0
    iso = lv.isolated()
    assert iso["joules_per_prompt_token"] == pytest.approx(PER_PROMPT, rel=0.03)
    assert iso["prompt_tokens_per_s"] > 0 and iso["ttft_s_p50"] > 0


def test_nnls_never_returns_a_negative_coefficient():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 1.0, 1.0, 1.0])
    e = np.array([3.0, 5.0, 7.0, 9.0]) - 4.0  # exactly 2x − 1·y: the unconstrained b is negative
    a, b = attr.nnls2(x, y, e)
    assert b == 0 and a > 0
    assert attr.nnls2(x, 2 * x, 3 * x) == pytest.approx(attr.nnls2(x, 2 * x, 3 * x))  # collinear: still defined


def test_prompt_tokens_spread_over_prefill_add_up():
    edges = np.arange(0.0, 10.5, 0.5)
    x = attr._boxcar_integral(edges, np.array([0.2, 3.0, 5.0]), np.array([1.3, 3.0, 9.9]),
                              np.array([100.0, 7.0, 50.0]))
    assert x.sum() == pytest.approx(157.0)
    assert x[0] == pytest.approx(100 * 0.3 / 1.1) and x[6] == pytest.approx(7.0)


def test_without_an_idle_window_idle_is_the_low_quantile_and_says_so(tmp_path):
    path = tmp_path / "s.csv"
    write_trace(path, [], 0.0, 10.0, IDLE_W, noise_w=1.0)
    idle = attr.idle_power(read_samples(path), [0], load_start=0.1)
    assert idle.watts == pytest.approx(IDLE_W - 1.6, abs=1.0) and "percentile" in idle.source


def test_the_workload_of_a_run_made_before_it_was_recorded_is_read_from_its_requests():
    def req(prompt: int, output: int) -> RequestResult:
        return RequestResult(start_time=0.0, success=True, ttft_s=0.1, prompt_tokens=prompt, output_tokens=output)

    assert infer_workload([req(512, 1), req(2048, 1)], None) == "prefill"
    assert infer_workload([req(16, 512), req(16, 512)], None) == "decode"
    assert infer_workload([req(512, 256), req(16, 1)], None) == "mixed"
    assert infer_workload([req(512, 1)], "mixed") == "mixed"  # what the run recorded wins
