"""One streaming completion request in, one `RequestResult` out; never raises.

Failures are results with a reason code (`error` is "<reason>: <detail>", the reason counted in results.json):
connection_refused, connect_timeout, connection_error, http_<status>, timeout, reset_mid_stream, malformed_http,
malformed_sse, stream_error, no_tokens, client_error, and cancelled_at_stop for a request the test stopped while
it was in flight (`StreamClient.cancelled`: it keeps whatever timing had arrived).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.http1 import Exchange, ProtocolError
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.loadgen.sse import SseParser
from llm_dvfs.loadgen.timing import Clock, TokenTiming, read_response

ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
CANCELLED = "cancelled_at_stop"


def endpoint_url(base_url: str, endpoint: str) -> str:
    """`base_url` may end in /v1 or not; either way the OpenAI path is appended once."""
    base = base_url.rstrip("/")
    path = ENDPOINT_PATHS[endpoint]
    return base + path[3:] if base.endswith("/v1") else base + path


@dataclass
class Attempt:
    """One request on its way: what `StreamClient.run` has done so far, kept outside it so that a request
    cancelled from outside (the test stopping) can still be turned into a result."""

    req: SampleRequest
    start_wall: float
    start: float
    sent: float | None = None
    exchange: Exchange | None = None
    pieces: list[tuple[float, bytes]] = field(default_factory=list)


class StreamClient:
    """Sends `SampleRequest`s to one OpenAI-compatible endpoint and measures each token-bearing chunk.

    `tokenizer` (with `encode(text) -> list[int]`) is only used when the server reports no usage.
    `prefill_header` names a response header holding the prefill time in seconds (the disaggregation proxy's).
    `headers` go with every request (Authorization, a gateway's own headers); they are never part of a result.
    `pause` runs between the pieces of a finished response while it is parsed: the default `time.sleep(0)` is a
    cooperative yield under gevent (Locust), so other streams in the process keep timestamping their reads on time
    instead of waiting for a whole response to be parsed.
    """

    def __init__(self, base_url: str, endpoint: str = "completions", model: str | None = None,
                 timeout: float = 600.0, ignore_eos: bool = False, tokenizer: Any = None,
                 prefill_header: str | None = None, clock: Clock = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time,
                 pause: Callable[[], None] = lambda: time.sleep(0), headers: dict[str, str] | None = None) -> None:
        self.url = endpoint_url(base_url, endpoint)
        parts = urlsplit(self.url)
        self.host, self.tls = parts.hostname or "127.0.0.1", parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.endpoint, self.model, self.timeout, self.ignore_eos = endpoint, model, timeout, ignore_eos
        self.tokenizer = tokenizer
        self.prefill_header = prefill_header.lower() if prefill_header else None
        self.clock, self.wall_clock, self.pause = clock, wall_clock, pause
        self.headers = dict(headers or {})

    def body(self, req: SampleRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"stream": True,
                                "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        if self.model:
            body["model"] = self.model
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": req.prompt}]
            if req.output_len is not None:
                body["max_completion_tokens"] = req.output_len
        else:
            body["prompt"] = req.prompt
            if req.output_len is not None:
                body["max_tokens"] = req.output_len
            if isinstance(req.prompt, list):
                body["return_token_ids"] = True  # a server without tokenizer streams ids, not text
        if self.ignore_eos:
            body["ignore_eos"] = True
        return body

    def send(self, req: SampleRequest) -> RequestResult:
        return self.run(self.attempt(req))

    def attempt(self, req: SampleRequest) -> Attempt:
        return Attempt(req, self.wall_clock(), self.clock())

    def run(self, attempt: Attempt) -> RequestResult:
        """Send the attempt's request and measure its response; never raises an Exception (a cancellation from
        outside, such as gevent's GreenletExit, goes through: see `cancelled`)."""
        a = attempt
        try:
            a.exchange = Exchange(self.url, self.body(a.req), self.headers)
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except ConnectionRefusedError as exc:
                return self._failed(a, f"connection_refused: {exc}")
            except socket.timeout:
                return self._failed(a, "connect_timeout: no answer")
            except OSError as exc:
                return self._failed(a, f"connection_error: {exc}")
            try:
                if self.tls:
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                a.start_wall, a.sent = self.wall_clock(), self.clock()
                sock.sendall(a.exchange.request)
                stopped = read_response(sock, a.sent + self.timeout, a.pieces, self.clock)
                ended = self.clock()
            except OSError as exc:
                return self._failed(a, f"connection_error: {exc}")
            finally:
                sock.close()
            return self._result(a, ended, stopped, self.pause)
        except Exception as exc:  # a bug or a surprise must not end the user: it is one failed request
            return self._failed(a, f"client_error: {exc.__class__.__name__}: {exc}")

    def cancelled(self, attempt: Attempt) -> RequestResult | None:
        """The result of an attempt whose `run` was stopped from outside (the test ended with it in flight):
        `cancelled_at_stop` with the TTFT and ITLs of the tokens that had arrived, or a success if the response
        had in fact ended; None if the request was never sent (stopped while connecting), as it did not happen."""
        if attempt.sent is None or attempt.exchange is None:
            return None
        try:
            return self._result(attempt, self.clock(), CANCELLED, lambda: None)
        except Exception as exc:
            return self._failed(attempt, f"client_error: {exc.__class__.__name__}: {exc}")

    def _failed(self, attempt: Attempt, error: str) -> RequestResult:
        return RequestResult(start_time=attempt.start_wall, success=False, error=error,
                             elapsed_s=self.clock() - attempt.start)

    def _result(self, attempt: Attempt, ended: float, stopped: str | None,
                pause: Callable[[], None]) -> RequestResult:
        """Undo HTTP framing and SSE, then apply the timing definitions to the token-bearing chunks."""
        req, start_wall, sent, decoder = attempt.req, attempt.start_wall, attempt.sent, attempt.exchange
        sse = SseParser()
        arrivals: list[float] = []
        texts: list[str] = []
        ids = 0
        usage: dict[str, Any] = {}
        done, error_body = False, bytearray()
        elapsed = ended - sent
        fail = lambda reason: RequestResult(start_time=start_wall, success=False, error=reason,  # noqa: E731
                                            elapsed_s=elapsed, prefill_s=self._prefill(decoder))
        try:
            for arrived, data in attempt.pieces:
                pause()
                body = decoder.feed(data)
                if decoder.status is not None and decoder.status != 200:
                    error_body += body
                    continue
                for event in sse.feed(body):
                    if event.strip() == "[DONE]":
                        done = True
                        continue
                    message = json.loads(event)
                    if not isinstance(message, dict):
                        raise ValueError("event is not a JSON object")
                    if message.get("error") and not message.get("choices"):
                        return fail(f"stream_error: {_brief(message['error'])}")
                    usage = message.get("usage") or usage
                    token_text, token_ids = self._token(message)
                    if token_text or token_ids:
                        arrivals.append(arrived)
                        texts.append(token_text)
                        ids += len(token_ids)
        except ProtocolError as exc:
            return fail(f"malformed_http: {exc}")
        except (ValueError, TypeError, AttributeError) as exc:
            return fail(f"malformed_sse: {exc}")
        if decoder.status is None:
            return fail(f"{stopped or 'connection_error'}: no response")
        if decoder.status != 200:
            return fail(f"http_{decoder.status}: {_error_detail(bytes(error_body))}")
        if not (done or decoder.complete):
            if stopped == "timeout":
                return fail("timeout: stream unfinished")
            if stopped == CANCELLED:
                return self._partial(attempt, elapsed, arrivals, usage, ids, texts)
            return fail(f"reset_mid_stream: {stopped or 'closed'} after {len(arrivals)} token chunks")
        if not arrivals:
            return fail("no_tokens: stream ended without a token")
        timing = TokenTiming.from_arrivals(sent, arrivals)
        output_tokens, source = self._count_output(usage, ids, texts, len(arrivals))
        prompt_tokens = usage.get("prompt_tokens")
        return RequestResult(start_time=start_wall, success=True, ttft_s=timing.ttft, itl_s=timing.itl,
                             e2el_s=timing.e2el,
                             prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else req.prompt_len,
                             output_tokens=output_tokens, output_tokens_source=source,
                             prefill_s=self._prefill(decoder), elapsed_s=elapsed)

    def _partial(self, attempt: Attempt, elapsed: float, arrivals: list[float], usage: dict[str, Any], ids: int,
                 texts: list[str]) -> RequestResult:
        """A cancelled stream: the timing of the tokens that had arrived; E2EL stays unknown (it never ended)."""
        timing = TokenTiming.from_arrivals(attempt.sent, arrivals) if arrivals else None
        output_tokens, source = self._count_output(usage, ids, texts, len(arrivals))
        prompt_tokens = usage.get("prompt_tokens")
        return RequestResult(start_time=attempt.start_wall, success=False,
                             error=f"{CANCELLED}: after {len(arrivals)} token chunks",
                             ttft_s=timing.ttft if timing else None, itl_s=timing.itl if timing else [],
                             prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else attempt.req.prompt_len,
                             output_tokens=output_tokens,
                             output_tokens_source=source, prefill_s=self._prefill(attempt.exchange),
                             elapsed_s=elapsed)

    def _token(self, message: dict[str, Any]) -> tuple[str, list[int]]:
        """The text and ids a chunk carries; a chat role-only delta and a usage-only chunk carry none."""
        choices = message.get("choices") or []
        if not choices:
            return "", []
        choice = choices[0]
        if self.endpoint == "chat":
            delta = choice.get("delta") or {}
            text = (delta.get("content") or "") + (delta.get("reasoning_content") or delta.get("reasoning") or "")
            return text, choice.get("token_ids") or delta.get("token_ids") or []
        return choice.get("text") or "", choice.get("token_ids") or []

    def _count_output(self, usage: dict[str, Any], ids: int, texts: list[str], chunks: int) -> tuple[int, str]:
        """Usage from the server first; else ids; else re-tokenise the text; else one token per chunk."""
        if isinstance(usage.get("completion_tokens"), int):
            return usage["completion_tokens"], "usage"
        if ids:
            return ids, "token_ids"
        if self.tokenizer is not None:
            return len(self.tokenizer.encode("".join(texts))), "retokenized"
        return chunks, "chunks"

    def _prefill(self, decoder: Exchange) -> float | None:
        if not self.prefill_header or self.prefill_header not in decoder.headers:
            return None
        try:
            return float(decoder.headers[self.prefill_header])
        except ValueError:
            return None


def _brief(value: Any, limit: int = 160) -> str:
    text = value.get("message", value) if isinstance(value, dict) else value
    return " ".join(str(text).split())[:limit]


def _error_detail(body: bytes) -> str:
    """The server's error message if it sent the OpenAI error JSON, else the start of the body."""
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            return _brief(data.get("error") or data.get("message") or data.get("detail") or data)
    except ValueError:
        pass
    return _brief(body.decode("utf-8", "replace")) or "(empty body)"
