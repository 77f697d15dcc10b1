"""The /metrics body, in the format and encoding each scraper asks for, made once per tick.

The registry is collected once per tick (the store's tick number), and each (format, gzip) variant is rendered
from those same families on first demand, then served as the same bytes until the next tick: rendering costs
~4 ms for 8 GPUs and would stall the sampler under many concurrent scrapers. Format negotiation and both
encoders are prometheus_client's own (`choose_encoder`, `gzip_accepted`), so the text format, OpenMetrics
(`# EOF`, counters' `_total`) and gzip behave as any client_python exporter's."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

VARIANTS_KEPT = 8  # content types differ by the version/escaping a scraper asks for; keep a few per tick


@dataclass(frozen=True)
class Body:
    """What one scrape gets: the bytes as sent, and the headers that describe them."""

    content: bytes
    content_type: str
    gzipped: bool


class _Collected(Collector):
    """One tick's families, replayed to each encoder."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class MetricsPage:
    """Renders `registry` for a scraper's Accept / Accept-Encoding headers; `version()` is the store's tick."""

    def __init__(self, registry: Collector, version: Callable[[], int]) -> None:
        self._registry, self._version = registry, version
        self._lock = threading.Lock()
        self._tick: int | None = None
        self._families: _Collected | None = None
        self._bodies: dict[tuple[str, bool], Body] = {}

    def render(self, accept: str = "", accept_encoding: str = "") -> Body:
        encoder, content_type = choose_encoder(accept)
        gzipped = gzip_accepted(accept_encoding)
        with self._lock:
            tick = self._version()
            if tick != self._tick:
                self._tick, self._families, self._bodies = tick, None, {}
            body = self._bodies.get((content_type, gzipped))
            if body is None:
                if self._families is None:
                    self._families = _Collected(self._registry.collect())
                content = encoder(self._families)
                body = Body(gzip.compress(content) if gzipped else content, content_type, gzipped)
                if len(self._bodies) < VARIANTS_KEPT:
                    self._bodies[(content_type, gzipped)] = body
            return body
