"""Serves /metrics over HTTP from a registry holding only the exporter's collector, with a listen backlog deep
enough that 50 scrapers connecting at once are queued rather than refused, and a small pool of threads.

The page is rendered once per tick: the collector builds fresh families from the newest snapshot, and scrapes
arriving before the next tick get those same bytes instead of re-rendering identical text (which costs ~4 ms
for 8 GPUs and would stall the sampler under many concurrent scrapers)."""

from __future__ import annotations

import errno
import threading
from typing import Any, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from llm_dvfs.common.errors import UsageError


class _Server(WSGIServer):
    """Scrapes are handled by a small fixed pool: a burst of scrapers queues up instead of starting one thread
    each, which would leave the sampler thread waiting behind dozens of others for the GIL."""

    request_queue_size = 256  # socketserver's default of 5 refuses bursts of concurrent scrapers
    workers = 8

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="exporter-scrape")
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken scrape must not end the server
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Scrapes arrive every second; logging each one would drown real messages."""


class MetricsPage:
    """WSGI app for /metrics that re-renders only when `version()` (the store's tick number) changes."""

    def __init__(self, registry: CollectorRegistry, version: Callable[[], int]) -> None:
        self._registry, self._version = registry, version
        self._lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None

    def render(self) -> bytes:
        with self._lock:
            current = self._version()
            if self._cached is None or self._cached[0] != current:
                self._cached = (current, generate_latest(self._registry))
            return self._cached[1]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics here\n"]
        body = self.render()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]


class MetricsServer:
    def __init__(self, collector: Collector, address: str, port: int, version: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            self._server = make_server(address, port, MetricsPage(self.registry, version), _Server,
                                       handler_class=_QuietHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {address} is already in use") from None
            raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
