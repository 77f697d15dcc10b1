"""The sampler's hang timer: it wakes its waiter when (and only when) an armed deadline passes, and on close."""

from __future__ import annotations

import threading
import time

import pytest

from llm_dvfs.exporter.hang_timer import PollingTimer, TimerFd


@pytest.fixture(params=["timerfd", "polling"])
def timer(request):
    return TimerFd() if request.param == "timerfd" else PollingTimer(0.005)


def _waiter(timer):
    """Start wait() in a thread; the list gets (result, seconds waited)."""
    out: list[tuple[bool, float]] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: out.append((timer.wait(), time.monotonic() - started)), daemon=True)
    thread.start()
    return thread, out


def test_armed_timer_wakes_the_waiter_after_its_deadline(timer):
    thread, out = _waiter(timer)
    timer.arm(0.05)
    thread.join(timeout=5)
    assert out and out[0][0] is True and out[0][1] >= 0.045
    timer.close()


def test_rearming_moves_the_deadline_and_disarming_cancels_it(timer):
    thread, out = _waiter(timer)
    timer.arm(0.05)
    timer.arm(0.3)  # replaces the first deadline
    time.sleep(0.15)
    assert not out
    thread.join(timeout=5)
    assert out[0][0] is True and out[0][1] >= 0.29
    thread, out = _waiter(timer)
    timer.arm(0.05)
    timer.disarm()
    time.sleep(0.2)
    assert not out  # nothing fired
    timer.close()
    thread.join(timeout=5)
    assert out[0][0] is False  # woken by close, not by a deadline
