"""The proxy's HTTP face (Quart): OpenAI completion paths in, a prefill hop then a relayed decode hop out.

Only `/v1/completions`, `/v1/chat/completions`, `/v1/models`, `/health` and `/metrics` exist; anything else is a
JSON 404, so the proxy is never an open relay. Every failure the client can see is JSON with an HTTP status chosen
before the first byte leaves (503 nothing to route to / instance down, 502 instance failed, 504 timeout); once a
stream has started, a failure ends it with an SSE error event instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from llm_dvfs.serving.proxy.handoff import Handoff, NoInstanceError
from llm_dvfs.serving.proxy.headers import forwarded
from llm_dvfs.serving.proxy.metrics import ProxyMetrics
from llm_dvfs.serving.proxy.upstream import Timeouts, Upstream, UpstreamError, translate

log = logging.getLogger(__name__)

COMPLETION_PATHS = ("/v1/completions", "/v1/chat/completions")
HEALTH_TIMEOUT = 2.0   # seconds for an instance's /health
LIST_TIMEOUT = 10.0    # seconds for its /v1/models


class Failure(Exception):
    """A request that ends before any answer bytes: becomes one JSON error and one `proxy_requests_total` status."""

    def __init__(self, http_status: int, status: str, message: str, hop: str | None = None) -> None:
        super().__init__(message)
        self.http_status, self.status, self.message, self.hop = http_status, status, message, hop

    @classmethod
    def from_upstream(cls, err: UpstreamError) -> "Failure":
        status = {"timeout": "timeout", "rejected": "bad_request"}.get(err.kind, f"{err.hop}_error")
        return cls(err.http_status, status, f"{err.hop} instance: {err.message}", err.hop)


def error_body(http_status: int, message: str, hop: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, plus which hop failed."""
    kind = "proxy_error" if http_status >= 500 else "invalid_request_error"
    err: dict[str, Any] = {"message": message, "type": kind, "code": http_status}
    if hop:
        err["hop"] = hop
    return {"error": err}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json", headers=headers)


def sse_error(err: UpstreamError) -> bytes:
    """The event that ends a broken stream, in vLLM's own mid-stream error form."""
    return (f"data: {json.dumps(error_body(err.http_status, f'{err.hop} instance: {err.message}', err.hop))}\n\n"
            "data: [DONE]\n\n").encode()


def create_app(handoff: Handoff, timeouts: Timeouts = Timeouts(), max_request_bytes: int = 4 * 1024 * 1024,
               metrics: ProxyMetrics | None = None) -> Quart:
    app = Quart("llm-dvfs-proxy")
    # Streams may last longer than Quart's 60 s default; the decode timeout bounds stalls instead.
    app.config.update(MAX_CONTENT_LENGTH=max_request_bytes, RESPONSE_TIMEOUT=None)
    metrics = metrics or ProxyMetrics()
    upstream = Upstream(timeouts)

    @app.before_serving
    async def _open() -> None:
        await upstream.open()
        await handoff.start()

    @app.after_serving
    async def _close() -> None:
        await handoff.stop()
        await upstream.close()

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        return json_response(error_body(exc.code or 500, exc.description or exc.name), exc.code or 500)

    async def read_body() -> dict[str, Any]:
        try:
            raw = await request.get_data(cache=False)
        except HTTPException as exc:
            if exc.code == 413:
                raise Failure(413, "bad_request", f"request body larger than {max_request_bytes} bytes") from exc
            raise
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise Failure(400, "bad_request", f"request body is not JSON: {exc}") from exc
        except RecursionError as exc:  # json's C parser gives up on deep nesting (a few thousand levels)
            raise Failure(400, "bad_request", "request body is nested too deeply") from exc
        if not isinstance(body, dict):
            raise Failure(400, "bad_request", "request body must be a JSON object")
        if not isinstance(body.get("stream", False), (bool, type(None))):
            # vLLM's pydantic would read "true" as true while this proxy would buffer: refuse rather than guess
            raise Failure(400, "bad_request", f"\"stream\" must be true or false, not {body['stream']!r:.40}")
        return body

    async def relay(resp: aiohttp.ClientResponse, decode_sent: float, started: float) -> AsyncIterator[bytes]:
        """Decode's bytes as they arrive; closing `resp` on exit (client gone included) cancels decode's work."""
        status, last, first = "cancelled", b"", True
        try:
            try:
                async for chunk in resp.content.iter_any():
                    if first:
                        metrics.decode_first_token.observe(time.perf_counter() - decode_sent)
                        first = False
                    last = chunk
                    yield chunk
                status = "ok"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                err = translate("decode", exc)
                status = "timeout" if err.kind == "timeout" else "decode_error"
                log.warning("decode stream broke: %s", err)
                yield (b"" if not last or last.endswith(b"\n\n") else b"\n\n") + sse_error(err)
        finally:
            resp.close()
            metrics.finish(status, time.perf_counter() - started)

    async def two_hops(path: str, started: float) -> Response:
        body = await read_body()
        try:
            route = handoff.route()
        except NoInstanceError as exc:
            raise Failure(503, "no_instance", str(exc)) from exc
        headers = forwarded(request.headers.items(), route.request_id)
        try:
            sent = time.perf_counter()
            answer = await upstream.prefill(route.prefill + path, handoff.prefill_body(body, route), headers)
            prefill_s = time.perf_counter() - sent
            metrics.prefill.observe(prefill_s)
            decode_sent = time.perf_counter()
            resp = await upstream.open_decode(route.decode + path, handoff.decode_body(body, answer, route), headers)
        except UpstreamError as exc:
            raise Failure.from_upstream(exc) from exc
        out_headers = {"X-Prefill-Seconds": f"{prefill_s:.6f}", "X-Request-Id": route.request_id}
        content_type = resp.headers.get("Content-Type", "application/json")
        if body.get("stream") is True:
            out = Response(relay(resp, decode_sent, started), status=resp.status, content_type=content_type,
                           headers={**out_headers, "Cache-Control": "no-cache"})
            out.timeout = None
            return out
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise Failure.from_upstream(translate("decode", exc)) from exc
        finally:
            resp.close()
        metrics.finish("ok", time.perf_counter() - started)
        return Response(raw, status=resp.status, content_type=content_type, headers=out_headers)

    async def completion(path: str) -> Response:
        started = time.perf_counter()
        try:
            return await two_hops(path, started)
        except Failure as exc:
            log.warning("request failed (%d): %s", exc.http_status, exc.message)
            metrics.finish(exc.status, time.perf_counter() - started)
            return json_response(error_body(exc.http_status, exc.message, exc.hop), exc.http_status)
        except asyncio.CancelledError:
            metrics.finish("cancelled", time.perf_counter() - started)
            raise

    @app.post("/v1/completions")
    async def completions() -> Response:
        return await completion("/v1/completions")

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        return await completion("/v1/chat/completions")

    async def healthy(url: str, role: str) -> bool:
        try:
            status, _, _ = await upstream.get(f"{url}/health", role, HEALTH_TIMEOUT)
        except UpstreamError:
            return False
        return status == 200

    @app.get("/health")
    async def health() -> Response:
        """200 when at least one prefill and one decode instance answer their own /health."""
        known = handoff.instances()
        report: dict[str, Any] = {"kv_protocol": handoff.name}
        for role, urls in known.items():
            answers = await asyncio.gather(*(healthy(url, role) for url in urls))
            report[role] = dict(zip(urls, answers))
        ok = all(any(report[role].values()) for role in known)
        report["status"] = "ok" if ok else "unavailable"
        return json_response(report, 200 if ok else 503)

    @app.get("/v1/models")
    async def models() -> Response:
        """The first decode instance's model list (prefill and decode serve the same model)."""
        errors = []
        for url in handoff.instances()["decode"]:
            try:
                status, raw, content_type = await upstream.get(f"{url}/v1/models", "decode", LIST_TIMEOUT)
            except UpstreamError as exc:
                errors.append(str(exc))
                continue
            return Response(raw, status=status, content_type=content_type)
        if not errors:
            return json_response(error_body(503, "no decode instance known"), 503)
        return json_response(error_body(503, "; ".join(errors), "decode"), 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return app
