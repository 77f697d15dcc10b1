"""A child process with its output in a log file, in its own process group, stopped by escalating signals.

Shared by everything that starts long-running children (vLLM, the proxy, the sweep's Locust and exporter runs):
its own session keeps a terminal's Ctrl-C away from the child, so the parent decides the order of shutdown, and
signalling the group also reaches the child's own workers (vLLM's engine processes, Locust's workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence


class ChildProcess:
    """`cmd` started with stdout and stderr appended to `log_path`."""

    #: signals sent in turn until the child exits: `grace` seconds after the first, 10 s after a middle one,
    #: 5 s after the last (SIGKILL)
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL)
    stop_grace: float = 20.0

    def __init__(self, cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.cmd, self.log_path, self.cwd = list(cmd), Path(log_path), cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ChildProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.cwd, start_new_session=True)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float | None = None) -> None:
        """Signal the whole process group with each of `stop_signals` until no process of it is left.

        The group, not the leader, decides: a leader that has already exited (a shell, a launcher) may leave
        workers behind (vLLM's engine processes holding GPU memory), and they get the same signals."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group's id is the leader's pid
        last = len(self.stop_signals) - 1
        for i, sig in enumerate(self.stop_signals):
            wait = (self.stop_grace if grace is None else grace) if i == 0 else 5.0 if i == last else 10.0
            self.proc.poll()  # reap the leader if it has exited, so it no longer counts as a member
            if not group_alive(pgid):
                return
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:  # no process left in the group: done
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.proc.poll()
                if not group_alive(pgid):
                    return
                time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether a process other than a zombie is left in process group `pgid`.

    `killpg(pgid, 0)` alone cannot tell: zombies still count as members, and orphans whose init does not reap
    them (some container inits) would make every stop wait for its full timeouts. /proc says which are zombies."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
