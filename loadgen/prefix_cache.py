"""Did the server's prefix cache serve any prompt tokens during the test? vLLM's own counters say so.

vLLM counts, in tokens, the prompt tokens it looked up in its prefix cache (`vllm:prefix_cache_queries_total`) and
those it found (`vllm:prefix_cache_hits_total`). Read once at test start and once at stop from the server's
/metrics: hits during the test mean some prefills were cheaper than their prompt length says, which would fake a
cheap prefill in the phase figures. A server without the counters (the proxy, other servers) is said to be so.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_dvfs.loadgen.server_metrics import fetch_text, metrics_url, sample_sums

HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"


def read_prefix_cache(host: str, timeout: float = 5.0) -> tuple[float, float] | None:
    """(hit tokens, queried tokens) summed over engines, or None when the server does not export them."""
    text = fetch_text(metrics_url(host), timeout)
    try:
        sums = sample_sums(text) if text is not None else {}
    except ValueError:
        return None
    if HITS not in sums and QUERIES not in sums:
        return None
    return sums.get(HITS, 0.0), sums.get(QUERIES, 0.0)


@dataclass
class PrefixCacheWindow:
    """The counters' deltas between `start()` and `stop()`, as results.json keys."""

    host: str
    before: tuple[float, float] | None = None
    after: tuple[float, float] | None = None

    def start(self) -> None:
        self.before = read_prefix_cache(self.host)

    def stop(self) -> None:
        self.after = read_prefix_cache(self.host)

    def figures(self) -> dict:
        if self.before is None or self.after is None:
            return {"prefix_cache_hit_tokens": None, "prefix_cache_query_tokens": None,
                    "prefix_cache_hit_ratio": None,
                    "prefix_cache_source": f"not reported: {metrics_url(self.host)} has no {HITS}"}
        hits, queries = self.after[0] - self.before[0], self.after[1] - self.before[1]
        return {"prefix_cache_hit_tokens": hits, "prefix_cache_query_tokens": queries,
                "prefix_cache_hit_ratio": hits / queries if queries > 0 else None,
                "prefix_cache_source": f"{HITS} and {QUERIES} from {metrics_url(self.host)}, start to stop"}
