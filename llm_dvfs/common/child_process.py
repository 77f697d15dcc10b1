"""A child process with its output in a log file, in its own process group, stopped by escalating signals.

Shared by everything that starts long-running children (vLLM, the proxy, the sweep's Locust and exporter runs):
its own session keeps a terminal's Ctrl-C away from the child, so the parent decides the order of shutdown, and
signalling the group also reaches the child's own workers (vLLM's engine processes, Locust's workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
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
        """Signal the whole process group with each of `stop_signals` until the child has exited."""
        if not self.running():
            return
        assert self.proc is not None
        last = len(self.stop_signals) - 1
        for i, sig in enumerate(self.stop_signals):
            wait = (self.stop_grace if grace is None else grace) if i == 0 else 5.0 if i == last else 10.0
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
