"""`locust -f loadgen/single.py` and `-f loadgen/disagg.py` from the directory users run them in, for each way of
installing: editable (the venv), a non-editable wheel run from the checkout (the checkout's own `llm_dvfs/` comes
first on sys.path and must not hide the installed parts), and the Docker image.

No Docker engine runs here: the image is emulated by replaying docker/Dockerfile's own WORKDIR, COPY and RUN lines
into a temporary root (tests/packaging/install.py), so the test follows the Dockerfile as it changes, and Locust
runs from the image's WORKDIR as the compose file runs it.

Each run is a short real headless Locust process (1 user, 3 s) against the scripted SSE server on a loopback port.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.loadgen.scripted_server import Script, ScriptedServer

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("locustfile", ["loadgen/single.py", "loadgen/disagg.py"])
@pytest.mark.parametrize("kind", ["editable", "wheel", "docker"])
def test_locustfile_runs(installs, kind, locustfile, tmp_path: Path):
    install = installs[kind]
    out = tmp_path / "out"
    with ScriptedServer(Script(ttft=0.01, itl=0.005, tokens=4, headers={"X-Prefill-Seconds": "0.002"})) as server:
        done = install.run("-m", "locust", "-f", locustfile, "--headless", "-u", "1", "-r", "1", "-t", "3s",
                           "--stop-timeout", "2", "--host", server.url, "--results-dir", str(out), "--web-host", "127.0.0.1",
                           "--metrics-port", "0", "--only-summary", timeout=90)
        served = sum(s.path == "/v1/completions" for s in server.served)  # the run also reads /metrics
    assert done.returncode == 0, f"{install.name}: {done.stderr[-3000:]}"
    summary = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert served > 5
    assert len(rows) == summary["num_prompts"] == served  # --stop-timeout lets the last request finish
    assert summary["completed"] == sum(row["success"] for row in rows) == served
    if locustfile.endswith("disagg.py"):
        assert all(row["prefill_s"] == pytest.approx(0.002) for row in rows)
