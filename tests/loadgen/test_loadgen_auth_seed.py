"""What real endpoints need (issue 13), with real Locust processes against the scripted SSE server: the API key
and extra headers reach the server on every request and /v1/models, and appear in no file and no log; a seed
makes a run's prompts byte-identical; options that would waste a run stop it with one line before any load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.loadgen.locust_run import ROOT, read_run, run_locust
from tests.loadgen.scripted_server import Script, ScriptedServer

FAST = Script(ttft=0.005, itl=0.002, tokens=3)
SECRET = "sk-test-7f3a9c1e5b2d4086"
GATEWAY_SECRET = "gw-5e8d1c7a3f"


def assert_secret_nowhere(tmp_path, done, *secrets: str) -> None:
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "locust.log" for p in files) and any(p.name == "requests.jsonl" for p in files)
    for secret in secrets:
        for path in files:
            assert secret not in path.read_text(errors="replace"), path
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize("how", ["option", "environment"])
def test_api_key_and_headers_reach_the_server_and_no_file_or_log(tmp_path, how):
    required = {"Authorization": f"Bearer {SECRET}", "X-Gateway-Key": GATEWAY_SECRET}
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    key = ["--api-key", SECRET] if how == "option" else []
    if how == "environment":
        env["OPENAI_API_KEY"] = SECRET
    processes = ["--processes", "2"] if how == "environment" else []  # the key travels to the workers too
    with ScriptedServer(FAST, required_headers=required) as server:
        done = run_locust(server.url, tmp_path, *key, "--header", f"X-Gateway-Key: {GATEWAY_SECRET}", *processes,
                          "--loglevel", "DEBUG", "--logfile", str(tmp_path / "locust.log"),
                          "--html", str(tmp_path / "report.html"), users=2, run_time="2s", env=env)
        served, models = list(server.served), list(server.models_headers)
    assert done.returncode == 0, done.stderr[-3000:]
    summary, rows, _ = read_run(tmp_path)
    assert rows and summary["failed"] == 0 and len(rows) == len(served)
    assert all(s.headers["authorization"] == f"Bearer {SECRET}" for s in served)
    assert models and all(h["authorization"] == f"Bearer {SECRET}" for h in models)  # the look-up is let in too
    assert summary["model_id"] == "scripted"
    assert_secret_nowhere(tmp_path, done, SECRET, GATEWAY_SECRET)


def test_without_the_key_the_server_refuses_and_says_so(tmp_path):
    with ScriptedServer(FAST, required_headers={"Authorization": f"Bearer {SECRET}"}) as server:
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        done = run_locust(server.url, tmp_path, users=1, run_time="1s", env=env)
    summary, rows, _ = read_run(tmp_path)
    assert done.returncode == 1 and rows and set(summary["errors"]) == {"http_401"}


def seeded_run(tmp_path, name: str, *seed: str) -> tuple[int, list[dict]]:
    out = tmp_path / name
    out.mkdir()
    with ScriptedServer(FAST) as server:
        done = run_locust(server.url, out, "--input-len", "24", "--output-len", "8", "--range-ratio", "0.5",
                          *seed, users=1, run_time="2s")
        bodies = [s.body for s in server.served]
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())["seed"], bodies


def test_a_seed_makes_the_prompts_byte_identical(tmp_path):
    seed, first = seeded_run(tmp_path, "drawn")  # no --seed: one is drawn, and results.json records it
    again_seed, again = seeded_run(tmp_path, "again", "--seed", str(seed))
    other_seed, other = seeded_run(tmp_path, "other", "--seed", str(seed + 1))
    assert isinstance(seed, int) and again_seed == seed and other_seed == seed + 1
    n = min(len(first), len(again), len(other))
    assert n > 10
    assert [json.dumps(b) for b in first[:n]] == [json.dumps(b) for b in again[:n]]
    assert len({len(b["prompt"].split()) for b in first[:n]}) > 3  # the lengths do vary
    assert [b["prompt"] for b in first[:n]] != [b["prompt"] for b in other[:n]]


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("locust: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("bad, message", [
    (["--header", "X-Key sk-hidden-value"], "--header"),
    (["--header", "Content-Length: 12"], "Content-Length"),
    (["--header", "X-Key: sk-hidden-value\r\nX-Injected: 1"], "--header"),
    (["--input-len", "100000000"], "--input-len"),
    (["--results-dir", "/dev/null/results"], "--results-dir"),
])
def test_bad_options_stop_before_any_load(tmp_path, bad, message):
    with ScriptedServer(FAST) as server:
        done = run_locust(server.url, tmp_path, *bad, timeout=60)
        served = len(server.served)
    error = one_line_error(done)
    assert message in error and "sk-hidden-value" not in done.stderr
    assert served == 0 and not (tmp_path / "results.json").exists()


def test_prompts_longer_than_the_served_context_are_refused(tmp_path):
    with ScriptedServer(FAST, max_model_len=256) as server:
        refused = run_locust(server.url, tmp_path / "refused", "--input-len", "200", "--output-len", "64",
                             timeout=60)
        assert len(server.served) == 0
        fits = run_locust(server.url, tmp_path / "fits", "--input-len", "100", "--output-len", "64",
                          "--range-ratio", "0.2", users=1, run_time="1s")
    assert "max_model_len" in one_line_error(refused) and "264" in one_line_error(refused)
    assert fits.returncode == 0, fits.stderr[-3000:]


HELP = ("from locust.argument_parser import LocustArgumentParser; from llm_dvfs.loadgen.options import add_options; "
        "p = LocustArgumentParser(); add_options(p); print(p.format_help())")


def test_metrics_port_help_says_where_it_binds():
    # in a child: importing Locust monkey-patches this process's sockets
    done = subprocess.run([sys.executable, "-c", HELP], cwd=ROOT, capture_output=True, text=True, timeout=60)
    flat = " ".join(done.stdout.split())
    help_text = flat[flat.rindex("--metrics-port"):][:250]  # its help, not the usage line
    assert "--web-host" in help_text and "every interface" in help_text
