"""`--workload`: the request shape each workload sends, its results.json figures, and the prefix-cache keys."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets.random_tokens import RandomDataset
from llm_dvfs.loadgen.options import LoadgenOptions
from llm_dvfs.loadgen.prefix_cache import PrefixCacheWindow
from llm_dvfs.loadgen.workloads import DECODE_PROMPT_LEN, request_shape, workload_figures


def options(**given) -> LoadgenOptions:
    return LoadgenOptions.from_parsed(SimpleNamespace(**given))


def test_each_workload_sends_its_shape():
    assert (options().input_len, options().output_len, options().workload) == (1024, 128, "mixed")
    prefill = options(workload="prefill", input_len=2048)
    assert (prefill.input_len, prefill.output_len, prefill.output_len_given) == (2048, 1, True)
    decode = options(workload="decode", output_len=512)
    assert (decode.input_len, decode.output_len) == (DECODE_PROMPT_LEN, 512)


@pytest.mark.parametrize("workload, input_len, output_len, message", [
    ("prefill", None, 5, "--output-len must be 1"),
    ("decode", 512, None, "--input-len must be at most 64"),
    ("both", None, None, "choose from mixed, prefill, decode"),
])
def test_a_shape_the_workload_cannot_send_is_one_usage_error(workload, input_len, output_len, message):
    with pytest.raises(UsageError, match=message):
        request_shape(workload, input_len, output_len, 512, 256)


def test_random_prompts_share_no_prefix_block():
    """vLLM caches whole 16-token blocks: two prompts would share a cached prefix only if their first 16 tokens
    matched. Thousands of draws of one run's prompt sequence (one generator per process) never do, nor do two runs
    with different seeds (each sweep level draws its own)."""
    data = RandomDataset(512, 1, token_ids=True)
    rng, other = random.Random("1 prompts local"), random.Random("2 prompts local")
    firsts = {tuple(data.draw(rng).prompt[:16]) for _ in range(2000)}
    firsts |= {tuple(data.draw(other).prompt[:16]) for _ in range(2000)}
    assert len(firsts) == 4000


def test_a_prefill_run_is_priced_per_prompt_token():
    figures = workload_figures("prefill", prompt_tokens=10_000, seconds=4.0, energy_joules=250.0)
    assert figures == {"prompt_throughput": 2500.0, "joules_per_prompt_token": 0.025}
    assert "joules_per_prompt_token" not in workload_figures("mixed", 10_000, 4.0, 250.0)


def test_prefix_cache_keys_from_the_counters_deltas():
    window = PrefixCacheWindow("http://127.0.0.1:8000/v1", before=(10.0, 100.0), after=(10.0, 4196.0))
    figures = window.figures()
    assert (figures["prefix_cache_hit_tokens"], figures["prefix_cache_query_tokens"]) == (0.0, 4096.0)
    assert figures["prefix_cache_hit_ratio"] == 0.0
    assert "http://127.0.0.1:8000/metrics" in figures["prefix_cache_source"]
    missing = PrefixCacheWindow("http://127.0.0.1:8000").figures()
    assert missing["prefix_cache_hit_tokens"] is None and missing["prefix_cache_source"].startswith("not reported")
