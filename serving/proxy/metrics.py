"""The proxy's own Prometheus metrics: how a request's time splits into prefill, hand-off + first decode step, rest.

Each proxy gets its own CollectorRegistry so that tests (and two proxies in one process) never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Every value `proxy_requests_total{status}` can take, exported at 0 from the start so rates work at once.
STATUSES = ("ok", "bad_request", "no_instance", "prefill_error", "decode_error", "timeout", "cancelled")


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.prefill = Histogram("proxy_prefill_seconds", "Prefill hop duration: request sent to prefill's answer read",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.decode_first_token = Histogram(
            "proxy_decode_first_token_seconds",
            "Decode hop sent to its first streamed bytes (KV hand-off plus first decode step); streaming requests only",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.request = Histogram("proxy_request_seconds", "Whole request as the proxy saw it, arrival to last byte",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("proxy_requests", "Requests on the OpenAI paths by outcome", ["status"],
                                registry=self.registry)
        for status in STATUSES:
            self.requests.labels(status=status)

    def finish(self, status: str, seconds: float) -> None:
        self.requests.labels(status=status).inc()
        self.request.observe(seconds)
