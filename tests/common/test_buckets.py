"""The shared bucket counting: Prometheus `le` semantics, +Inf last, cumulative when read."""

from __future__ import annotations

from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.common.percentile import percentile


def test_a_value_on_a_bound_counts_in_that_bucket_and_beyond_the_last_in_inf():
    b = BucketCounts((0.1, 0.5, 1.0))
    b.observe(0.1)
    b.observe_many([0.2, 0.5, 7.0])
    assert b.counts == [1, 2, 0, 1]
    assert b.cumulative() == (1, 3, 3, 4) and b.count == 4 and b.sum == 7.8


def test_percentile_is_numpy_linear_and_none_when_empty():
    assert percentile([4, 1, 3, 2], 50) == 2.5 and percentile([5], 99) == 5
    assert percentile([], 50) is None
