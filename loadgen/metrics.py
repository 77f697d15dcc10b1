"""The load generator's Prometheus metrics (names in docs/interfaces.md), in a registry of their own.

Buckets are set for LLM serving: TTFT from 5 ms to 2 min, ITL/TPOT from 1 ms to 2 s (decode steps are tens of
ms), E2E up to 10 min, so dashboards can read p50/p90/p99 without everything landing in one bucket.

The latency histograms are our own collector rather than `prometheus_client.Histogram`: a request brings hundreds
of ITLs at once, and counting them with one bisect each costs a twentieth of `Histogram.observe`, which matters
because this runs in the process that timestamps the other streams.
"""

from __future__ import annotations

import threading
from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.loadgen.results import RequestResult

TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10,
                15, 20, 30, 60, 120)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075,
               0.1, 0.15, 0.2, 0.3, 0.5, 1, 2)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)


class LatencyHistogram:
    """A histogram in seconds that takes many observations per call; registered as a collector."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._buckets = BucketCounts(buckets)
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, *values: float) -> None:
        self.observe_many(values)

    def observe_many(self, values: Iterable[float]) -> None:
        values = list(values)
        with self._lock:
            self._buckets.observe_many(values)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = self._buckets.cumulative(), self._buckets.sum
        buckets = list(zip([*map(floatToGoString, self._buckets.bounds), "+Inf"], cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


class LoadgenMetrics:
    """Observes finished requests; the Locust wiring sets the gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("llm_requests", "Finished requests by status (ok or the failure reason).",
                                ["status"], registry=r)
        self.ttft = LatencyHistogram("llm_ttft_seconds", "Time to first token.", TTFT_BUCKETS, r)
        self.itl = LatencyHistogram("llm_itl_seconds", "Gap between consecutive token-bearing chunks.",
                                    ITL_BUCKETS, r)
        self.tpot = LatencyHistogram("llm_tpot_seconds", "Time per output token after the first, per request.",
                                     ITL_BUCKETS, r)
        self.e2e = LatencyHistogram("llm_e2e_seconds", "Request latency to the last token.", E2E_BUCKETS, r)
        self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens of successful requests.", registry=r)
        self.output_tokens = Counter("llm_output_tokens", "Output tokens of successful requests.", registry=r)
        self.active_users = Gauge("llm_active_users", "Locust users running (concurrent streams).", registry=r)
        self.in_flight = Gauge("llm_in_flight_requests", "Requests sent and not yet finished.", registry=r)
        self.test_start = Gauge("llm_test_start_time_seconds", "Unix time the current test started (0: none).",
                                registry=r)

    def observe(self, result: RequestResult) -> None:
        self.requests.labels(status="ok" if result.success else result.reason or "error").inc()
        if not result.success:
            return
        self.ttft.observe(result.ttft_s)
        self.e2e.observe(result.e2el_s)
        self.itl.observe_many(result.itl_s)
        if (tpot := result.tpot_s) is not None:
            self.tpot.observe(tpot)
        self.prompt_tokens.inc(result.prompt_tokens or 0)
        self.output_tokens.inc(result.output_tokens or 0)

    def serve(self, port: int, web_host: str = "") -> None:
        """Serve /metrics where Locust serves its web UI (`--web-host`), on gevent's WSGI server.

        Not prometheus_client's own server: its wsgiref handler catches everything, so a Ctrl-C that lands while it
        answers a scrape printed a traceback and was swallowed (Locust ran on to its time limit). In a gevent
        greenlet, KeyboardInterrupt goes on to the main greenlet, where Locust stops the test; the hub is told
        that it is no error to print.
        """
        import gevent  # Locust's own dependency; imported here, where Locust runs
        from gevent.pywsgi import WSGIServer

        hub = gevent.get_hub()
        if not issubclass(KeyboardInterrupt, hub.NOT_ERROR):
            hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
        WSGIServer((bind_address(web_host), port), make_wsgi_app(self.registry), log=None, error_log=None).start()


def bind_address(web_host: str) -> str:
    """Locust's --web-host as an address to bind: its "" and "*" mean every interface, which the HTTP server
    behind prometheus_client cannot resolve by those names."""
    return "0.0.0.0" if web_host in ("", "*") else web_host
