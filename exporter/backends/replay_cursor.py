"""Where a replay is in its trace, read row by row through `SamplesReader` (never the whole file: a day's trace
is ~1 GB as text and many times that parsed, issue 11.8).

The rows of one loop are played at their offsets from the first row; at the end of the file the next loop starts
one row interval after the last row (the interval is the median spacing of the first rows), so the last row lasts
as long as the others. Every row gets a sequence number that keeps counting across loops, and the latest rows are
kept (up to `keep`) so that each device can collect every row passed since it last read.
"""

from __future__ import annotations

import statistics
import sys
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from llm_dvfs.exporter.samples_csv import SampleRow, SamplesReader, TraceFormatError

LOOKAHEAD_ROWS = 200  # read at start (strictly: a malformed row here rejects the file), sets the row interval
SLACK_S = 1e-3  # a tick due exactly on a row's time must not land on the row before through float rounding


@dataclass(frozen=True)
class PlayedRow:
    """A row as played: its number since the replay started and its time in seconds since then."""

    seq: int
    offset: float
    row: SampleRow


class ReplayCursor:
    """`advance(played)` moves to the row due at `played` seconds and returns its PlayedRow; `since(seq)` the
    kept rows after `seq` (`keep` of them: ~25 s at 100 ms, for a device that stalled). Not thread-safe: the
    replay backend holds a lock around it."""

    def __init__(self, reader: SamplesReader, keep: int = 256) -> None:
        self._reader = reader
        self.first: list[SampleRow] = []  # the lookahead; a TraceFormatError in it is the caller's
        rows = reader.rows()
        for row in rows:
            self.first.append(row)
            if len(self.first) >= LOOKAHEAD_ROWS:
                break
        if len(self.first) < 2:
            raise TraceFormatError(f"{reader.path}: needs at least two rows to replay")
        times = [r.timestamp for r in self.first]
        self.interval = statistics.median(b - a for a, b in zip(times, times[1:]))
        self._stream = self._played(rows)
        self._kept: deque[PlayedRow] = deque(maxlen=keep)
        self._next: PlayedRow | None = next(self._stream)
        self._reported = False

    def _played(self, rest: Iterator[SampleRow]) -> Iterator[PlayedRow]:
        """Rows forever: the first loop from the lookahead and the rest of its iterator, then the file again."""
        seq, base = 0, 0.0
        loop: Iterator[SampleRow] = _chain(self.first, rest)
        while True:
            start = last = None
            for row in self._until_bad(loop):
                start = row.timestamp if start is None else start
                last = row.timestamp
                yield PlayedRow(seq, base + row.timestamp - start, row)
                seq += 1
            if start is None:
                return  # the file is gone or empty now: nothing left to play
            base += last - start + self.interval
            loop = self._reader.rows()

    def _until_bad(self, rows: Iterator[SampleRow]) -> Iterator[SampleRow]:
        """The rows up to a malformed one (a recorder killed mid-row leaves one at the end): the loop ends there,
        said once on stderr."""
        try:
            yield from rows
        except TraceFormatError as exc:
            if not self._reported:
                self._reported = True
                print(f"llm-dvfs exporter: replay loops before a malformed row: {exc}", file=sys.stderr, flush=True)

    def advance(self, played: float) -> PlayedRow | None:
        """The latest row due by `played` seconds (None once the file is gone)."""
        while self._next is not None and self._next.offset <= played + SLACK_S:
            self._kept.append(self._next)
            self._next = next(self._stream, None)
        return self._kept[-1] if self._kept else None

    def since(self, seq: int) -> list[PlayedRow]:
        """Kept rows numbered above `seq`, oldest first."""
        return [p for p in self._kept if p.seq > seq]


def _chain(first: list[SampleRow], rest: Iterator[SampleRow]) -> Iterator[SampleRow]:
    yield from first
    yield from rest
