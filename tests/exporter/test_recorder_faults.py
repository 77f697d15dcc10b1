"""Recording that fails (issue 11.2, 11.8, 11.9): a full disk never stops sampling or /metrics, files keep whole
rows, `--json` memory stays flat and a killed exporter's JSON can be mended.

The full disk is real: the exporter runs under a file-size limit (RLIMIT_FSIZE, which a process may set for itself
without root), so the kernel cuts a write short at the limit and then fails it (EFBIG) as it would on a full
filesystem (ENOSPC); raising the limit from outside (prlimit) is the disk getting space back. /dev/full is the
kernel's always-full device.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from llm_dvfs.exporter.backends.replay import ReplayBackend
from llm_dvfs.exporter.recorder import Recorder
from llm_dvfs.exporter.samples_json import read_samples_json
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.store import Store
from tests.support import free_port, metric_sum, scrape, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
LIMIT_BYTES = 60_001  # not on a row boundary: the write that crosses it is cut short by the kernel (and above
# the ~31 KB of a first one-second flush of the JSON at 50 ticks a second, so that file holds some whole rows)


def _start(tmp_path: Path, limit: int | None, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()

    def small_disk() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}",
                             "--interval", "0.02", "--listen-address", "127.0.0.1", "--port", str(port),
                             "--output", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json"), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=small_disk)
    return proc, f"http://127.0.0.1:{port}/metrics"


def _metrics(url: str) -> dict:
    try:
        return scrape(url)
    except Exception:  # not serving yet
        return {}


def _recorder_up(url: str) -> float | None:
    """Sum of llm_dvfs_exporter_recorder_up over both files, None while not serving."""
    samples = _metrics(url)
    present = any(name == "llm_dvfs_exporter_recorder_up" for name, _ in samples)
    return metric_sum(samples, "llm_dvfs_exporter_recorder_up") if present else None


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    return proc.stderr.read()


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_full_disk_keeps_sampling_and_serving_and_files_keep_whole_rows(tmp_path):
    proc, url = _start(tmp_path, LIMIT_BYTES)
    csv_path = tmp_path / "s.csv"
    sizes: list[int] = []

    def writes_failed() -> bool:
        """The exporter says so, or (before the fix, with no such metric) the CSV stopped growing."""
        sizes.append(csv_path.stat().st_size if csv_path.exists() else 0)
        return _recorder_up(url) == 0 or (len(sizes) > 2 and sizes[-1] == sizes[-2] > 0)

    try:
        assert wait_until(writes_failed, timeout=60, interval=2.0)
        first = scrape(url)
        time.sleep(1.5)
        later = scrape(url)
        # ticks go on and the GPUs stay readable while every write fails
        assert metric_sum(later, "llm_dvfs_exporter_ticks_total") > metric_sum(first, "llm_dvfs_exporter_ticks_total")
        # (a tick may miss a GPU when this shared VM descheds the exporter for longer than half a 20 ms tick)
        assert wait_until(lambda: metric_sum(scrape(url), "gpu_up") == 2, timeout=5, interval=0.1)
        assert metric_sum(later, "llm_dvfs_exporter_recorder_up") == 0
        assert metric_sum(later, "llm_dvfs_exporter_recorder_errors_total") >= 2
    finally:
        stderr = _stop(proc)
    assert proc.returncode == 1  # rows were lost: said, and not a success
    assert "Traceback" not in stderr
    failures = [line for line in stderr.splitlines() if "cannot write" in line]
    assert len(failures) == 2 and {str(tmp_path / "s.csv"), str(tmp_path / "s.json")} == \
        {line.split("cannot write ")[1].split(":")[0] for line in failures}  # one line per file, not per tick
    rows = _csv_rows(tmp_path / "s.csv")
    assert len(rows) > 10 and {len(r) for r in rows} == {len(rows[0])}  # no half row at the end
    assert (tmp_path / "s.csv").read_bytes().endswith(b"\r\n")
    assert (tmp_path / "s.csv").stat().st_size <= LIMIT_BYTES
    doc = read_samples_json(tmp_path / "s.json")  # cut at the limit, but only after whole sample lines
    assert doc["complete"] is False and len(doc["samples"]) > 10


def test_recording_continues_when_the_disk_has_space_again(tmp_path):
    proc, url = _start(tmp_path, LIMIT_BYTES)
    try:
        assert wait_until(lambda: _recorder_up(url) == 0, timeout=30)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert wait_until(lambda: metric_sum(scrape(url), "llm_dvfs_exporter_recorder_up") == 2, timeout=10)
        ticks = metric_sum(scrape(url), "llm_dvfs_exporter_ticks_total")
    finally:
        stderr = _stop(proc)
    assert proc.returncode == 0, stderr
    assert len([line for line in stderr.splitlines() if line.endswith(" again")]) == 2
    rows = _csv_rows(tmp_path / "s.csv")[1:]
    stamps = [float(r[0]) for r in rows]
    assert stamps == sorted(stamps) and len(rows) >= ticks  # every tick kept, in order, none lost in between
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["complete"] is True and len(doc["samples"]) == len(rows)


def test_killed_exporter_leaves_json_that_mends(tmp_path):
    proc, url = _start(tmp_path, None)
    try:
        assert wait_until(lambda: metric_sum(_metrics(url), "llm_dvfs_exporter_ticks_total") > 60, timeout=30)
        time.sleep(1.2)  # at least one flush
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()
    doc = read_samples_json(tmp_path / "s.json")
    assert doc["complete"] is False and doc["devices"][0]["source"] == "replay"
    assert len(doc["samples"]) >= 50 and "power" in doc["samples"][-1]["devices"]["0"]


def test_unwritable_csv_names_the_file(tmp_path):
    # before: "cannot write None" (the error of the header's flush carries no file name). A 10-byte file-size
    # limit makes the header's own write fail, as a full disk would at start.
    def tiny_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (10, resource.RLIM_INFINITY))

    path = tmp_path / "s.csv"
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}",
                             "--no-http", "--output", str(path), "--duration", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, preexec_fn=tiny_disk)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"llm-dvfs exporter: error: cannot write {path}: File too large"]


@pytest.mark.parametrize("option", ["--output", "--json"])
def test_a_device_node_or_fifo_is_never_recorded_into(tmp_path, option):
    """Issue 11.7: a recording path that is a device node (as root: a disk) or a FIFO is refused in one line."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo)):
        result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}",
                                 "--no-http", option, target, "--duration", "0.5"], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"llm-dvfs exporter: error: cannot write {target}: not a regular file (a recording must be a file)"]


class ScriptedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_json_recording_memory_stays_flat(tmp_path):
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0 + clock.now)
    store = Store(backend.devices())
    sampler = Sampler(backend, store, clock=clock, wall=lambda: 1000.0 + clock.now)
    recorder = Recorder(backend.devices(), tmp_path / "s.csv", tmp_path / "s.json", clock=clock)
    sampler.subscribe(recorder)

    def run(ticks: int) -> None:
        for _ in range(ticks):
            clock.now += 0.1
            sampler.tick()

    run(200)
    tracemalloc.start()
    try:
        run(500)
        after_500 = tracemalloc.get_traced_memory()[0]
        run(3000)
        after_3500 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    recorder.close()
    # before: every sample stayed in memory, ~1.3 KB per tick for these 2 GPUs (~4 MB over 3000 ticks)
    assert after_3500 - after_500 < 100_000
    assert len(json.loads((tmp_path / "s.json").read_text())["samples"]) == 3700


def test_a_failing_listener_does_not_stop_the_ticks(capsys):
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0 + clock.now)
    sampler = Sampler(backend, Store(backend.devices()), clock=clock)
    seen = []

    def broken(snapshot):
        raise OSError(28, "No space left on device")

    sampler.subscribe(broken)
    sampler.subscribe(lambda snapshot: seen.append(snapshot.tick))
    for _ in range(5):
        clock.now += 0.1
        sampler.tick()
    assert seen == [1, 2, 3, 4, 5]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value", [("--duration", "inf"), ("--interval", "inf"), ("--interval", "nan"),
                                         ("--interval", "1e300"), ("--energy-interval", "inf"),
                                         ("--buffer-interval", "nan"), ("--duration", "1e300")])
def test_infinite_or_absurd_seconds_are_one_line_errors(flag, value):
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}",
                             "--no-http", "--duration", "0.5", flag, value], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and ("finite" in lines[0] or "positive" in lines[0]), lines
