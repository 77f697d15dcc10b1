"""How a run ends, with real Locust processes against the scripted SSE server: a signal lets the requests in
flight finish and records them (issue 11.3), requests the stop cuts off are recorded as `cancelled_at_stop` with
the timing they had (issue 11.4), and results that cannot be written make a non-zero exit (issue 11.9)."""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest
from tests.support import free_port, wait_until

from tests.loadgen.locust_run import LOCUST, ROOT, locust_cmd, printed_totals, read_run, run_locust
from tests.loadgen.scripted_server import Script, ScriptedServer

LONG = Script(ttft=0.05, itl=0.05, tokens=20)  # about 1 s per stream


def finish(proc: subprocess.Popen, cmd: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("processes, sig", [([], signal.SIGINT), ([], signal.SIGTERM),
                                            (["--processes", "2"], signal.SIGINT)],
                         ids=["single-sigint", "single-sigterm", "processes2-sigint"])
def test_a_signal_lets_the_requests_in_flight_finish_and_records_them(tmp_path, processes, sig):
    with ScriptedServer(LONG) as server:
        cmd = locust_cmd(server.url, tmp_path, *processes, users=8, run_time="60s")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # mid-run: some streams done, eight in flight
            assert wait_until(lambda: sum(s.completed for s in server.served) >= 8
                              and len(server.served) - sum(s.completed for s in server.served) == 8, timeout=60)
            proc.send_signal(sig)
            done = finish(proc, cmd)
        finally:
            proc.kill()
        served = list(server.served)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    summary, rows, _ = read_run(tmp_path)
    completed = sum(s.completed for s in served)
    assert len(rows) == len(served) == completed  # the eight in flight finished, and the files hold them
    assert summary["completed"] == completed and summary["failed"] == 0
    assert printed_totals(done) == (len(rows), 0)  # Locust's own table agrees
    assert done.returncode == 0


def test_a_signal_to_the_master_lets_its_workers_finish_the_requests_in_flight(tmp_path):
    port = free_port()
    with ScriptedServer(LONG) as server:
        cmd = locust_cmd(server.url, tmp_path, "--master", "--expect-workers", "1", "--master-bind-host",
                         "127.0.0.1", "--master-bind-port", str(port), users=4, run_time="60s")
        master = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worker = subprocess.Popen([LOCUST, "-f", "loadgen/single.py", "--worker", "--master-host", "127.0.0.1",
                                   "--master-port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: sum(s.completed for s in server.served) >= 4
                              and len(server.served) - sum(s.completed for s in server.served) == 4, timeout=60)
            master.send_signal(signal.SIGINT)
            done = finish(master, cmd)
            worker.wait(timeout=30)
        finally:
            master.kill()
            worker.kill()
        served = list(server.served)
    summary, rows, _ = read_run(tmp_path)
    assert len(rows) == len(served) == sum(s.completed for s in served) == summary["completed"]
    assert printed_totals(done) == (len(rows), 0) and done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("extra", [["--stop-timeout", "0"], ["--stop-timeout", "1"],
                                   ["--stop-timeout", "0", "--processes", "2"]],
                         ids=["stop-timeout-0", "stop-timeout-1", "processes2"])
def test_requests_that_hang_at_the_end_are_counted_as_cancelled(tmp_path, extra):
    """Against a server that never sends a byte, a run once reported 0 requests, 0 failed, and exit 0."""
    with ScriptedServer(Script(silent=True)) as server:
        done = run_locust(server.url, tmp_path, *extra, users=3, run_time="2s")
        served = len(server.served)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    summary, rows, _ = read_run(tmp_path)
    assert served == len(rows) == summary["num_prompts"] == 3
    assert summary["errors"] == {"cancelled_at_stop": 3} and summary["failed"] == 3
    assert all(r["error"].startswith("cancelled_at_stop: ") and r["ttft_s"] is None for r in rows)
    assert printed_totals(done) == (3, 3)
    assert done.returncode == 1  # Locust's --exit-code-on-error: the run had failed requests


def test_streams_cut_at_the_time_limit_keep_the_timing_they_had(tmp_path):
    with ScriptedServer(Script(ttft=0.05, itl=0.1, tokens=500)) as server:
        done = run_locust(server.url, tmp_path, "--stop-timeout", "0", users=2, run_time="2s")
        served = list(server.served)
    summary, rows, _ = read_run(tmp_path)
    assert len(rows) == len(served) == 2 and summary["errors"] == {"cancelled_at_stop": 2}
    for row, truth in zip(sorted(rows, key=lambda r: r["start_time"]), served):
        assert row["ttft_s"] == pytest.approx(0.05, abs=0.03)
        assert len(row["itl_s"]) >= 5 and row["output_tokens"] == len(row["itl_s"]) + 1
        assert len(truth.token_times) - 2 <= row["output_tokens"] <= len(truth.token_times)
        assert row["e2el_s"] is None and row["elapsed_s"] >= 1.5
    assert done.returncode == 1


def test_results_that_cannot_be_written_make_a_non_zero_exit(tmp_path):
    results = tmp_path / "results"
    with ScriptedServer(Script(ttft=0.01, itl=0.01, tokens=3)) as server:
        cmd = locust_cmd(server.url, tmp_path, "--results-dir", str(results), users=2, run_time="3s")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_until(lambda: results.is_dir() and len(server.served) >= 2, timeout=30)
            shutil.rmtree(results)
            results.write_text("a file where the results directory was\n")
            done = finish(proc, cmd)
        finally:
            proc.kill()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len([line for line in done.stderr.splitlines() if "cannot write results" in line]) == 1
    assert "Traceback" not in done.stderr


def test_a_timed_run_that_cut_its_last_requests_still_exits_0(tmp_path):
    """`-t` with `--stop-timeout 0` always cuts the requests in flight: recorded, shown, but no failure of the run."""
    with ScriptedServer(Script(ttft=0.01, itl=0.005, tokens=100)) as server:
        done = run_locust(server.url, tmp_path, "--stop-timeout", "0", users=2, run_time="2s")
    summary, rows, _ = read_run(tmp_path)
    assert summary["errors"] == {"cancelled_at_stop": 2} and summary["completed"] >= 2, summary["errors"]
    assert len(rows) == summary["completed"] + 2
    assert done.returncode == 0, done.stderr[-3000:]
