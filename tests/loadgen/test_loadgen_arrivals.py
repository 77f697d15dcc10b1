"""Open-loop arrivals: mean rate R for any burstiness; burstiness sets the spread (CV = 1/sqrt(burstiness))."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from llm_dvfs.loadgen.arrivals import ArrivalSchedule, gaps


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_gamma_gaps_have_the_rate_and_spread(burstiness):
    sample = list(itertools.islice(gaps(20.0, burstiness, random.Random(1)), 40000))
    mean = statistics.fmean(sample)
    assert mean == pytest.approx(1 / 20, rel=0.03)
    assert statistics.pstdev(sample) / mean == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_infinite_rate_and_bad_input():
    assert list(itertools.islice(gaps(math.inf, 1.0, random.Random()), 3)) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        next(gaps(0.0, 1.0, random.Random()))


def test_schedule_is_absolute_and_shared():
    schedule = ArrivalSchedule(10.0, 1.0, start=100.0, rng=random.Random(2))
    times = [schedule.next_arrival() for _ in range(5000)]
    assert times == sorted(times) and times[0] > 100.0
    assert (times[-1] - 100.0) / 5000 == pytest.approx(0.1, rel=0.05)
