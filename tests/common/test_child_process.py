"""ChildProcess.stop with real processes: the whole process group ends, even when its leader is already gone."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from llm_dvfs.common.child_process import ChildProcess, group_alive

pytestmark = pytest.mark.timeout(60)


def _running(pid: int) -> bool:
    """Alive and not a zombie (orphans may stay zombies here: this machine's init does not reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_stop_ends_the_group_after_its_leader_has_exited(tmp_path):
    """The leader starts a sleeping worker in its own group and exits (as a launcher shell does)."""
    pid_file = tmp_path / "worker.pid"
    leader = ChildProcess(["sh", "-c", f"sleep 60 & echo $! > {pid_file}"], tmp_path / "leader.log").start()
    worker = int(_wait_for(pid_file))
    assert leader.proc is not None
    leader.proc.wait(10)
    assert not leader.running() and _running(worker)
    started = time.monotonic()
    leader.stop(grace=5)
    assert not _running(worker), "the leader's worker survived stop()"
    assert time.monotonic() - started < 5
    assert not group_alive(leader.proc.pid)


def test_stop_escalates_to_sigkill_for_a_group_member_that_ignores_sigterm(tmp_path):
    ready = tmp_path / "ready"
    script = (f"import os, signal, sys, time\n"
              f"signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"open({str(ready)!r}, 'w').write(str(os.getpid()))\n"
              f"time.sleep(60)\n")
    child = ChildProcess([sys.executable, "-c", script], tmp_path / "stubborn.log").start()
    pid = int(_wait_for(ready))
    started = time.monotonic()
    child.stop(grace=0.5)
    assert not _running(pid) and child.returncode == -9
    assert time.monotonic() - started < 5


def test_stop_of_a_finished_or_unstarted_child_returns_at_once(tmp_path):
    ChildProcess(["true"], tmp_path / "never.log").stop()
    done = ChildProcess(["true"], tmp_path / "true.log").start()
    assert done.proc is not None
    done.proc.wait(10)
    started = time.monotonic()
    done.stop()
    done.stop()  # twice: "no such process" is done, not an error
    assert time.monotonic() - started < 1
    assert not group_alive(done.proc.pid) and os.getpgid(0) != done.proc.pid
