"""A fake `pynvml` module for subprocess tests: put this directory first on PYTHONPATH and point FAKE_NVML_STATE
at a JSON file written by FakeNvmlControl.save. Every call runs on that state (reloaded when the file changed);
setters load it and save it back under a file lock, so the sweep, its exporter and a later `llm-dvfs dvfs
restore` all see one fake GPU whose state survives a kill -9. Handles are GPU indices, as objects are reloaded.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout, for tests.*

from tests.dvfs.fake_nvml_control import SETTERS, FakeNvmlControl  # noqa: E402
from tests.exporter import fake_nvml  # noqa: E402
from tests.exporter.fake_nvml import FakeGpu, NVMLError  # noqa: E402,F401

_STATE = Path(os.environ["FAKE_NVML_STATE"])
NVML_ERROR_NO_PERMISSION = 4


class _Handle(int):
    pass


_cache: tuple[tuple[int, int], FakeNvmlControl] | None = None


def _current() -> FakeNvmlControl:
    """The saved state, reloaded only when the file was replaced (the exporter reads ~12 times a tick)."""
    global _cache
    st = os.stat(_STATE)
    key = (st.st_ino, st.st_mtime_ns)
    if _cache is None or _cache[0] != key:
        _cache = (key, FakeNvmlControl.load(_STATE))
    return _cache[1]


def _run(fake: FakeNvmlControl, name: str, args: tuple):
    real = [fake.gpus[a] if isinstance(a, _Handle) else a for a in args]
    out = getattr(fake, name)(*real)
    return _Handle(fake.gpus.index(out)) if isinstance(out, FakeGpu) else out


def _call(name: str, *args):
    if name not in SETTERS:
        return _run(_current(), name, args)
    with open(f"{_STATE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fake = FakeNvmlControl.load(_STATE)
        try:
            return _run(fake, name, args)
        finally:
            fake.save(_STATE)


def __getattr__(name: str):
    if name.startswith("NVML_"):
        return getattr(fake_nvml, name)
    if not name.startswith("nvml") or not hasattr(FakeNvmlControl, name):
        raise AttributeError(name)
    return lambda *args: _call(name, *args)
