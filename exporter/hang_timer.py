"""A one-shot timer that wakes a waiting thread only when it runs out: the sampler's guard against a hung read.

The sampler reads every GPU in its own thread and arms this timer before each read. A healthy tick costs a few
system calls and no thread wake-up at all (a wake-up costs ~55-150 µs of CPU on the VMs this was measured on, more
than a GPU's whole read; issue 16). Only when a read outlasts its deadline does the timer expire and the watchdog
thread blocked on it wake up. On Linux this is a timerfd (os.timerfd_* from Python 3.13, libc through ctypes
before); elsewhere a thread that polls at the timer's resolution stands in.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Protocol

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000


class HangTimer(Protocol):
    def arm(self, seconds: float) -> None:
        """Expire `seconds` from now (re-arming replaces the previous deadline)."""

    def disarm(self) -> None:
        """Do not expire."""

    def wait(self) -> bool:
        """Block until the timer expires (True) or is closed (False)."""

    def close(self) -> None:
        """Wake the waiter with False; the timer is not used again."""


class _ItimerSpec(ctypes.Structure):
    _fields_ = [("interval_s", ctypes.c_long), ("interval_ns", ctypes.c_long),
                ("value_s", ctypes.c_long), ("value_ns", ctypes.c_long)]


class TimerFd:
    """A Linux timerfd: the waiter sleeps in read() until the kernel says the deadline passed."""

    def __init__(self) -> None:
        self._closed = False
        if hasattr(os, "timerfd_create"):  # Python 3.13+
            self._fd = os.timerfd_create(time.CLOCK_MONOTONIC, flags=os.TFD_CLOEXEC)
            self._set = lambda seconds: os.timerfd_settime(self._fd, initial=seconds)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime  # AttributeError off Linux
        settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_ItimerSpec), ctypes.c_void_p]
        fd = create(_CLOCK_MONOTONIC, _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd

        def set_libc(seconds: float) -> None:
            whole = int(seconds)
            spec = _ItimerSpec(0, 0, whole, int((seconds - whole) * 1e9))
            if settime(fd, 0, ctypes.byref(spec), None) != 0:
                raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._set = set_libc

    def arm(self, seconds: float) -> None:
        self._set(max(seconds, 1e-6))  # 0 would disarm

    def disarm(self) -> None:
        self._set(0.0)

    def wait(self) -> bool:
        try:
            os.read(self._fd, 8)
        except OSError:
            return False
        if self._closed:
            os.close(self._fd)
            return False
        return True

    def close(self) -> None:
        """The waiter wakes, sees the flag and closes the descriptor itself (no read of a closed fd)."""
        self._closed = True
        self.arm(1e-6)


class PollingTimer:
    """Where there is no timerfd: the waiter checks the deadline every `resolution` seconds."""

    def __init__(self, resolution: float) -> None:
        self._resolution = resolution
        self._deadline: float | None = None
        self._closed = threading.Event()

    def arm(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def disarm(self) -> None:
        self._deadline = None

    def wait(self) -> bool:
        while not self._closed.wait(self._resolution):
            deadline = self._deadline
            if deadline is not None and time.monotonic() >= deadline:
                self._deadline = None
                return True
        return False

    def close(self) -> None:
        self._closed.set()


def hang_timer(resolution: float) -> HangTimer:
    """A timerfd where the system has one, else a polling timer of `resolution` seconds."""
    try:
        return TimerFd()
    except (AttributeError, OSError):
        return PollingTimer(resolution)
