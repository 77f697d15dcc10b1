"""A scripted OpenAI-style SSE server on real loopback sockets, for tests and the capacity benchmark.

Each request takes the next `Script` (or the default): TTFT, ITL and token count, or a failure to inject (an HTTP
error status, a connection reset after N tokens, a malformed event, silence, a connection kept open after the
response). Chunks are sent on an absolute schedule and the server records when it actually wrote each one, so
tests compare the client's measurement with the truth. `required_headers` answers 401 to requests without them;
`max_model_len` is listed at /v1/models as vLLM lists it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    ttft: float = 0.05
    itl: float = 0.02
    tokens: int = 5
    status: int = 200
    reset_after: int | None = None  # abort the connection (RST) after this many token chunks
    malformed_after: int | None = None  # send a non-JSON event after this many token chunks
    usage: bool = True
    comments: bool = True  # ": keep-alive" lines between events
    reasoning: bool = False  # chat: the first token comes as reasoning_content
    headers: dict[str, str] = field(default_factory=dict)
    silent: bool = False  # read the request, then never send a byte
    keep_alive: bool = False  # ignore the client's `Connection: close`: the connection stays open after the response


@dataclass
class Served:
    """What the server did for one request: when it received it and when it wrote each token chunk."""

    path: str
    body: dict
    received: float
    headers: dict[str, str] = field(default_factory=dict)  # request headers, names lower-cased
    token_times: list[float] = field(default_factory=list)
    completed: bool = False


class ScriptedServer:
    def __init__(self, default: Script = Script(), host: str = "127.0.0.1", port: int = 0,
                 required_headers: dict[str, str] | None = None, max_model_len: int | None = None) -> None:
        self.default, self.host, self.port = default, host, port
        self.required_headers = {k.lower(): v for k, v in (required_headers or {}).items()}
        self.max_model_len = max_model_len
        self.models_headers: list[dict[str, str]] = []  # the request headers of every /v1/models call
        self.scripts: itertools.cycle | None = None
        self.served: list[Served] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cycle(self, *scripts: Script) -> None:
        """Serve these scripts in turn, forever."""
        self.scripts = itertools.cycle(scripts)

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, self.port), self._loop).result()
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            received = time.perf_counter()
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(":") for line in lines[1:] if line)}
            length = int(headers.get("content-length", 0))
            body = json.loads(await reader.readexactly(length)) if length else {}
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            writer.close()
            return
        if any(headers.get(k) != v for k, v in self.required_headers.items()):
            payload = json.dumps({"error": {"message": "Unauthorized", "code": 401}}).encode()
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(payload), payload))
            await writer.drain()
            writer.close()
            return
        if path.endswith("/metrics"):  # no Prometheus metrics here: a scraper is told so and not counted as served
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if path.endswith("/models"):
            self.models_headers.append(headers)
            model = {"id": "scripted", "object": "model"}
            if self.max_model_len is not None:
                model["max_model_len"] = self.max_model_len
            payload = json.dumps({"object": "list", "data": [model]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(payload), payload))
            await writer.drain()
            writer.close()
            return
        script = next(self.scripts) if self.scripts else self.default
        served = Served(path, body, received, headers)
        self.served.append(served)
        try:
            if script.silent:
                await reader.read()  # until the client gives up and closes
                return
            await self._stream(writer, script, served, chat=path.endswith("/chat/completions"))
            if script.keep_alive:
                await reader.read()  # the connection stays open until the client closes it
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, script: Script, served: Served, chat: bool) -> None:
        connection = "keep-alive" if script.keep_alive else "close"
        if script.status != 200:
            payload = json.dumps({"error": {"message": "injected failure", "code": script.status}}).encode()
            writer.write(b"HTTP/1.1 %d Injected\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: %s\r\n\r\n%s" % (script.status, len(payload), connection.encode(), payload))
            await writer.drain()
            return
        extra = "".join(f"{k}: {v}\r\n" for k, v in script.headers.items())
        writer.write(("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                      f"{extra}Connection: {connection}\r\n\r\n").encode())

        def send(event: str) -> None:
            data = event.encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))

        if chat:
            send(_event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
        await writer.drain()
        start = served.received
        for i in range(script.tokens):
            delay = start + script.ttft + i * script.itl - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if script.reset_after is not None and i == script.reset_after:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if script.malformed_after is not None and i == script.malformed_after:
                send("data: {not json\n\n")
                break
            text = f" t{i}"
            if chat:
                delta = {"reasoning_content": text} if script.reasoning and i == 0 else {"content": text}
                choice = {"index": 0, "delta": delta}
            else:
                choice = {"index": 0, "text": text}
            message = {"choices": [choice]}
            if script.usage:
                message["usage"] = {"prompt_tokens": 7, "completion_tokens": i + 1, "total_tokens": 8 + i}
            send((": keep-alive\n\n" if script.comments else "") + _event(message))
            await writer.drain()
            served.token_times.append(time.perf_counter())
        if script.usage:
            send(_event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(served.token_times),
                                                  "total_tokens": 7 + len(served.token_times)}}))
        send("data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        served.completed = script.malformed_after is None


def _event(message: dict) -> str:
    return f"data: {json.dumps(message)}\n\n"
