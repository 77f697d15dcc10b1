"""Joules since the exporter started, per device: the power samples integrated, kept honest by the hardware counter.

Measured on an H200 (issue 16, benchmarks/nvml_counter_timing.py): the driver's 20 ms power samples, integrated
with trapezoids, equal the energy counter within 0.06-0.16% when the counter is dated at the moment its value
changed; but that value only changes every ~100 ms (67-133 ms apart), so a value read at a random moment is up to
one step old. Snapping the total to each read (what this did before) imported that staleness: at 700 W up to 90 J,
~0.5% of a 20 s window under a changing load. So the samples carry the total, and each counter read only corrects
it where the two disagree by more than the staleness explains: a read at time t with value C says the counter was C
at some moment in [t - staleness, t], so the counter-minus-integral offset must lie between C - I(t) and
C - I(t - staleness); an offset outside that band is moved to its edge, one inside is left alone, and moves that
only pin down where the offset was at the start (within the first read's band) do not move the total. A backend
that declares no staleness gets the old behaviour (the offset set to C - I(t) at every read). Lost samples, a gap
in the reads and a counter reset are all absorbed the same way. The exported total never decreases.

On a buffered device (NVML's sample buffer, drained every few ticks) the driver samples are the integral; the
tick's own readings after the last drained sample keep the total fresh until the next drain replaces them, and a
counter read waits for the drained samples to reach its time before it is compared.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

from llm_dvfs.exporter.backends.base import GpuSample

HOLE_S = 1.0  # driver samples are 20 ms apart: more than this between two means samples were lost (buffer wrapped)
KEEP_POINTS = 256  # 5 s of 20 ms samples: enough to look back to a counter read still waiting for samples
BUFFER_STALE_S = 3.0  # no drained sample for longer than this (drains are <= 2.4 s apart): the buffer gives none
MAX_PENDING = 64  # counter reads waiting for samples (the counter read every tick, the buffer every 2 s: ~20)


class Integral:
    """The trapezoid integral of one stream of (time, watts) points, evaluable at any recent time."""

    def __init__(self, hole_s: float = float("inf")) -> None:
        self.total = 0.0
        self._hole_s = hole_s
        # flat arrays, not lists of float objects: a few KB per GPU however long the exporter runs
        self._times = array("d")
        self._watts = array("d")
        self._totals = array("d")
        self._joined = array("b")  # point k is integrated from point k - 1
        self._broken = True  # the next point starts a new stretch

    @property
    def first_time(self) -> float | None:
        return self._times[0] if self._times else None

    @property
    def last_time(self) -> float | None:
        return self._times[-1] if self._times else None

    @property
    def last_point(self) -> tuple[float, float] | None:
        return (self._times[-1], self._watts[-1]) if self._times else None

    def add(self, t: float, watts: float) -> None:
        """A point newer than the last (an older or repeated one is ignored: a drained buffer overlaps)."""
        times = self._times
        if times and t <= times[-1]:
            return
        joined = bool(times) and not self._broken and t - times[-1] <= self._hole_s
        if joined:
            self.total += (t - times[-1]) * (watts + self._watts[-1]) / 2
        times.append(t)
        self._watts.append(watts)
        self._totals.append(self.total)
        self._joined.append(joined)
        self._broken = False
        if len(times) > 2 * KEEP_POINTS:
            for stream in (times, self._watts, self._totals, self._joined):
                del stream[:KEEP_POINTS]

    def hole(self) -> None:
        """Do not integrate from the last point to the next."""
        self._broken = True

    def at(self, t: float) -> float:
        """The integral up to time `t` (held flat across holes, before the first kept point and after the last)."""
        times = self._times
        k = bisect_right(times, t)
        if k == 0:
            return self._totals[0] if times else 0.0
        if k == len(times) or not self._joined[k]:
            return self._totals[k - 1]
        t0, t1, w0, w1 = times[k - 1], times[k], self._watts[k - 1], self._watts[k]
        w = w0 + (w1 - w0) * (t - t0) / (t1 - t0)
        return self._totals[k - 1] + (t - t0) * (w0 + w) / 2


class EnergyCounter:
    """One device's exported joules (`total`) and the hardware counter resets seen (`resets`)."""

    def __init__(self, counter_staleness_s: float = 0.0) -> None:
        self.total = 0.0
        self.resets = 0
        self._staleness = counter_staleness_s
        self._integral = Integral(HOLE_S)
        self._drained_at: float | None = None  # read time of the latest read that brought driver samples
        self._live = False  # driver samples are arriving: tick readings are only a bridge
        self._ticks: list[tuple[float, float]] = []  # tick readings after the last drained sample (buffered only)
        self._fresh = 0.0  # their integral, from the last drained sample on
        self._ticks_broken = False  # a failed read since the last tick reading: do not join across it
        self._offset: float | None = None  # counter joules minus the integral, as last corrected
        self._base = 0.0  # the offset at the first counter read: the total starts from zero
        self._start = (0.0, 0.0)  # the band of the series' first read: where the base may be
        self._last_counter: float | None = None
        # (read time, counter J, power W at the read) waiting for samples to reach the read's time
        self._pending: list[tuple[float, float, float]] = []

    def add(self, read_time: float, sample: GpuSample) -> None:
        if sample.power_samples:
            for p in sample.power_samples:
                self._integral.add(p.timestamp, p.watts)
            self._drained_at = read_time
            self._refresh()
        # a buffered device whose buffer gives samples: tick readings only bridge to the next drain; one whose
        # buffer stays empty (or an unbuffered one): tick readings are all there is
        live = sample.buffered and self._drained_at is not None and read_time - self._drained_at <= BUFFER_STALE_S
        if self._live and not live:
            self._fold_ticks()
        self._live = live
        if sample.power_w is not None and not (sample.power_samples and not sample.buffered):
            if live:
                self._tick(read_time, sample.power_w)
            else:
                self._integral.add(read_time, sample.power_w)
        if sample.energy_j is not None:
            self._pending.append((read_time, sample.energy_j, sample.power_w or 0.0))
            if len(self._pending) > MAX_PENDING:
                del self._pending[0]
        if self._pending:
            self._resolve()
        correction = 0.0 if self._offset is None else self._offset - self._base
        self.total = max(self.total, self._integral.total + self._fresh + correction)

    def gap(self) -> None:
        """A failed read: integrate nothing across the hole (the hardware counter still covers it)."""
        if self._live:
            self._ticks_broken = True
        else:
            self._integral.hole()

    def _fold_ticks(self) -> None:
        """The buffer stopped giving samples: the bridging tick readings become the integral."""
        for t, watts in self._ticks:
            self._integral.add(t, watts)
        self._ticks, self._fresh = [], 0.0

    def _tick(self, t: float, watts: float) -> None:
        """A buffered device's tick reading: integrated from the latest point until drained samples replace it,
        each stretch at the lower of its two readings. The instant reading lags a step by up to 100 ms: after a
        drop, a trapezoid would count the old power too long, and a total that ran ahead must then stand still
        until the samples catch up; counting low instead, the next drain (early after a step) just adds the rest."""
        last = self._ticks[-1] if self._ticks else self._integral.last_point
        if last is not None and t <= last[0]:
            return
        if last is not None and not self._ticks_broken:
            self._fresh += (t - last[0]) * min(watts, last[1])
        self._ticks.append((t, watts))
        self._ticks_broken = False

    def _refresh(self) -> None:
        """New drained samples: the tick readings they cover are dropped, the rest integrated from the last one."""
        newest = self._integral.last_point
        if newest is None:
            return
        self._ticks = [p for p in self._ticks if p[0] > newest[0]]
        self._fresh, last = 0.0, newest
        for t, watts in self._ticks:
            self._fresh += (t - last[0]) * min(watts, last[1])
            last = (t, watts)

    def _resolve(self) -> None:
        """Compare every counter read the integral has reached."""
        reached = self._integral.last_time
        while self._pending and reached is not None and reached >= self._pending[0][0]:
            self._correct(*self._pending.pop(0))

    def _correct(self, t: float, counter: float, watts: float) -> None:
        """Move the counter-minus-integral offset into this read's band, as little as possible. The first read
        only says where the offset was at the start to within its band, so moves that stay inside that first
        band are learning the start (it moves along: the total does not jump); only the part beyond it, samples
        drifting from the counter, moves the total. (What the start band absorbs is at most the staleness times
        the power at the first read: ~100 J on a 700 W GPU, once.)"""
        at, since = self._integral.at, t - self._staleness
        low, high = counter - at(t), counter - at(since)  # where this read puts the offset
        first = self._integral.first_time
        if first is not None and first > since:  # (the first reads: no samples yet as far back as the staleness)
            high += (first - since) * watts
        restarted = self._last_counter is not None and counter < self._last_counter
        if self._offset is not None and not restarted:
            moved = min(max(self._offset, low), high)
            self._base = min(max(self._base + moved - self._offset, self._start[0]), self._start[1])
            self._offset = moved
        else:  # the first read, or the counter restarted (driver reload): a new series, the same total
            if restarted:
                self.resets += 1
            correction = 0.0 if self._offset is None else self._offset - self._base
            self._offset = (low + high) / 2
            self._base = self._offset - correction
            self._start = (self._base - (high - low) / 2, self._base + (high - low) / 2)
        self._last_counter = counter
