"""One streaming completion request in, one `RequestResult` out; never raises.

Failures are results with a reason code (`error` is "<reason>: <detail>", the reason counted in results.json):
connection_refused, connect_timeout, connection_error, http_<status>, timeout, reset_mid_stream, malformed_http,
malformed_sse, stream_error, no_tokens, client_error.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.http1 import ProtocolError, ResponseDecoder, request_bytes
from llm_dvfs.loadgen.sse import SseParser
from llm_dvfs.loadgen.timing import Clock, TokenTiming, read_until_closed

ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass
class RequestResult:
    """The raw measurement of one request: what requests.jsonl holds (times in seconds)."""

    start_time: float
    success: bool
    error: str | None = None
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2el_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    prefill_s: float | None = None
    output_tokens_source: str | None = None
    elapsed_s: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        if not self.success or self.ttft_s is None or self.e2el_s is None or not self.output_tokens:
            return None
        return TokenTiming(self.ttft_s, self.itl_s, self.e2el_s).tpot(self.output_tokens)

    @property
    def reason(self) -> str | None:
        return self.error.split(":", 1)[0] if self.error else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tpot_s": self.tpot_s}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RequestResult":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def endpoint_url(base_url: str, endpoint: str) -> str:
    """`base_url` may end in /v1 or not; either way the OpenAI path is appended once."""
    base = base_url.rstrip("/")
    path = ENDPOINT_PATHS[endpoint]
    return base + path[3:] if base.endswith("/v1") else base + path


class StreamClient:
    """Sends `SampleRequest`s to one OpenAI-compatible endpoint and measures each token-bearing chunk.

    `tokenizer` (with `encode(text) -> list[int]`) is only used when the server reports no usage.
    `prefill_header` names a response header holding the prefill time in seconds (the disaggregation proxy's).
    `pause` runs between the pieces of a finished response while it is parsed: the default `time.sleep(0)` is a
    cooperative yield under gevent (Locust), so other streams in the process keep timestamping their reads on time
    instead of waiting for a whole response to be parsed.
    """

    def __init__(self, base_url: str, endpoint: str = "completions", model: str | None = None,
                 timeout: float = 600.0, ignore_eos: bool = False, tokenizer: Any = None,
                 prefill_header: str | None = None, clock: Clock = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time,
                 pause: Callable[[], None] = lambda: time.sleep(0)) -> None:
        self.url = endpoint_url(base_url, endpoint)
        parts = urlsplit(self.url)
        self.host, self.tls = parts.hostname or "127.0.0.1", parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.endpoint, self.model, self.timeout, self.ignore_eos = endpoint, model, timeout, ignore_eos
        self.tokenizer = tokenizer
        self.prefill_header = prefill_header.lower() if prefill_header else None
        self.clock, self.wall_clock, self.pause = clock, wall_clock, pause

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
        start_wall, start = self.wall_clock(), self.clock()
        try:
            payload = request_bytes(self.url, self.body(req))
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except ConnectionRefusedError as exc:
                return self._failed(start_wall, start, f"connection_refused: {exc}")
            except socket.timeout:
                return self._failed(start_wall, start, "connect_timeout: no answer")
            except OSError as exc:
                return self._failed(start_wall, start, f"connection_error: {exc}")
            try:
                if self.tls:
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                start_wall, sent = self.wall_clock(), self.clock()
                sock.sendall(payload)
                pieces, stopped = read_until_closed(sock, sent + self.timeout, self.clock)
                ended = self.clock()
            except OSError as exc:
                return self._failed(start_wall, start, f"connection_error: {exc}")
            finally:
                sock.close()
            return self._result(req, start_wall, sent, ended, pieces, stopped)
        except Exception as exc:  # a bug or a surprise must not end the user: it is one failed request
            return self._failed(start_wall, start, f"client_error: {exc.__class__.__name__}: {exc}")

    def _failed(self, start_wall: float, start: float, error: str) -> RequestResult:
        return RequestResult(start_time=start_wall, success=False, error=error,
                             elapsed_s=self.clock() - start)

    def _result(self, req: SampleRequest, start_wall: float, sent: float, ended: float,
                pieces: list[tuple[float, bytes]], stopped: str | None) -> RequestResult:
        """Undo HTTP framing and SSE, then apply the timing definitions to the token-bearing chunks."""
        decoder, sse = ResponseDecoder(), SseParser()
        arrivals: list[float] = []
        texts: list[str] = []
        ids = 0
        usage: dict[str, Any] = {}
        done, error_body = False, bytearray()
        elapsed = ended - sent
        fail = lambda reason: RequestResult(start_time=start_wall, success=False, error=reason,  # noqa: E731
                                            elapsed_s=elapsed, prefill_s=self._prefill(decoder))
        try:
            for arrived, data in pieces:
                self.pause()
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

    def _prefill(self, decoder: ResponseDecoder) -> float | None:
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
