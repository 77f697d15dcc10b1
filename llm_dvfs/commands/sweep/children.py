"""Child processes of a sweep: each in its own session, so a terminal's Ctrl-C reaches only the sweep, which then
stops its children in order (Locust first, so it writes its results; the exporter last, so it records to the end)."""

from __future__ import annotations

import signal

from llm_dvfs.common.child_process import ChildProcess


class Child(ChildProcess):
    """A sweep child: SIGINT first, which Locust and the exporter answer by writing complete files."""

    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    stop_grace = 30.0
