"""Real headless Locust processes (single and --processes 2) against the scripted SSE server: every request the
server saw is in requests.jsonl exactly once, failures are counted by reason, Locust's CSV shows the requests,
bad options stop with one line, Ctrl-C leaves consistent files, metrics are served while it runs."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest
import requests
from tests.support import free_port, metric_sum, scrape, wait_until

from tests.loadgen.locust_run import ROOT, locust_cmd, printed_totals, read_run, run_locust
from tests.loadgen.scripted_server import Script, ScriptedServer

OK = Script(ttft=0.04, itl=0.01, tokens=8)
MIX = (OK, OK, OK, Script(status=500), OK, Script(tokens=8, reset_after=4))


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["single", "processes2"])
def test_every_request_recorded_once_with_reasons(tmp_path, processes):
    with ScriptedServer() as server:
        server.cycle(*MIX)
        done = run_locust(server.url, tmp_path, "--stop-timeout", "10", *processes)
        served = list(server.served)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: Locust's exit code when requests failed
    summary, rows, aggregated = read_run(tmp_path)
    assert len(rows) == summary["num_prompts"] == len(served) > 20
    assert summary["completed"] == sum(s.completed for s in served) == sum(r["success"] for r in rows)
    assert summary["failed"] == summary["errors"]["http_500"] + summary["errors"]["reset_mid_stream"]
    assert summary["errors"]["http_500"] == sum(1 for s in served if not s.token_times and not s.completed)
    assert printed_totals(done) == (len(rows), summary["failed"])
    assert 0.5 * len(rows) <= int(aggregated["Request Count"]) <= len(rows)
    assert summary["total_output_tokens"] == 8 * summary["completed"]
    # against what the server really did (on a busy machine it drifts from its script): within a few ms
    done_ok = [s for s in served if s.completed]
    true_ttft = 1000 * sum(s.token_times[0] - s.received for s in done_ok) / len(done_ok)
    true_itl = 1000 * sum(s.token_times[-1] - s.token_times[0] for s in done_ok) / (7 * len(done_ok))
    assert summary["mean_ttft_ms"] == pytest.approx(true_ttft, abs=3)
    assert summary["mean_itl_ms"] == pytest.approx(true_itl, abs=1)
    assert summary["model_id"] == "scripted" and summary["max_concurrency"] == 3
    starts = sorted(r["start_time"] for r in rows)
    assert starts[-1] - starts[0] < 6


@pytest.mark.parametrize("bad, message", [
    (["--goodput", "latency:5"], "--goodput"),
    (["--dataset", "sharegpt"], "needs --dataset-path"),
    (["--endpoint", "embeddings"], "--endpoint"),
    (["--tokenizer", "/nonexistent"], "--tokenizer"),
    (["--token-ids", "--endpoint", "chat"], "--token-ids"),
    (["--processes", "2", "--request-rate", "0"], "--request-rate"),
    (["--workload", "prefill", "--output-len", "5"], "--workload prefill sends max_tokens 1"),
    (["--workload", "decode", "--dataset", "jsonl", "--dataset-path", "/"], "--workload decode"),
    (["--workload", "everything"], "--workload"),
])
def test_bad_options_stop_with_one_line(tmp_path, bad, message):
    done = run_locust(f"http://127.0.0.1:{free_port()}", tmp_path, *bad, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("locust: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results.json").exists()


def test_server_down_is_counted_not_fatal(tmp_path):
    done = run_locust(f"http://127.0.0.1:{free_port()}", tmp_path, users=2, run_time="2s")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    summary, rows, _ = read_run(tmp_path)
    assert rows and summary["completed"] == 0 and summary["errors"]["connection_refused"] == len(rows)
    assert len(rows) <= 2 * 2 / 0.1 + 2  # a user backs off 0.1 s after a request that never reached the server


def test_open_loop_rate(tmp_path):
    with ScriptedServer(Script(ttft=0.005, itl=0.002, tokens=3)) as server:
        done = run_locust(server.url, tmp_path, "--request-rate", "25", users=10, run_time="5s")
    assert done.returncode == 0, done.stderr[-3000:]
    summary, rows, _ = read_run(tmp_path)
    assert 80 <= len(rows) <= 170  # 125 expected; Poisson sd ≈ 11
    assert summary["request_rate"] == 25.0


def _try_scrape(url: str) -> None:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        pass


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["single", "processes2"])
def test_ctrl_c_leaves_consistent_files_and_metrics_are_served(tmp_path, processes):
    port = free_port()
    with ScriptedServer(OK) as server:
        cmd = locust_cmd(server.url, tmp_path, "--metrics-port", str(port), *processes, run_time="60s")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}/metrics"

            def busy() -> bool:
                try:
                    return metric_sum(scrape(url), "llm_requests_total", status="ok") >= 5
                except requests.RequestException:
                    return False

            assert wait_until(busy, timeout=30)
            live = scrape(url)
            assert metric_sum(live, "llm_active_users") == 3
            assert metric_sum(live, "llm_test_start_time_seconds") == pytest.approx(time.time(), abs=60)
            assert metric_sum(live, "llm_ttft_seconds_count") >= 5
            # Keep scraping through the Ctrl-C: one that landed in the metrics server's handler was once swallowed
            # (the run went on to its 60 s limit) with a traceback printed.
            scraping = threading.Event()
            scrapers = [threading.Thread(target=lambda: [_try_scrape(url) for _ in iter(scraping.is_set, True)])
                        for _ in range(4)]
            for scraper in scrapers:
                scraper.start()
            time.sleep(0.5)
            interrupted = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                _, stderr = proc.communicate(timeout=60)
            finally:
                scraping.set()
                for scraper in scrapers:
                    scraper.join()
            assert time.monotonic() - interrupted < 30, "Ctrl-C did not stop the run; it ran to its time limit"
        finally:
            proc.kill()
        served = len(server.served)
    summary, rows, _ = read_run(tmp_path)
    assert len(rows) == summary["num_prompts"] >= 5 and summary["test_stop_time"] is not None
    assert len(rows) == served  # the requests in flight at Ctrl-C finished within --stop-timeout and are there
    assert "Traceback" not in stderr


def test_disagg_locustfile_records_the_proxy_prefill_time(tmp_path):
    with ScriptedServer(Script(ttft=0.02, itl=0.01, tokens=4, headers={"X-Prefill-Seconds": "0.0123"})) as server:
        done = run_locust(server.url, tmp_path, users=2, run_time="2s", locustfile="loadgen/disagg.py")
    assert done.returncode == 0, done.stderr[-3000:]
    _, rows, _ = read_run(tmp_path)
    assert rows and all(r["prefill_s"] == 0.0123 for r in rows)
