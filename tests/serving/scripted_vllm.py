"""Scripted vLLM stand-ins for the proxy tests: real aiohttp servers on 127.0.0.1 that answer the OpenAI paths the
way vLLM does (JSON, or SSE chunks then `[DONE]`), misbehave on request (error status, reset mid-stream, stall),
and record what they received and whether a client went away mid-request.

Used in a background thread (`ScriptedInstance`) or, for kill tests, as its own process:
`python tests/serving/scripted_vllm.py --port P [--delay S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


@dataclass
class Script:
    """What the instance does next. mode: ok | error (500) | reject (400) | reset (abort after 2 chunks)."""

    mode: str = "ok"
    delay: float = 0.0        # seconds before answering
    chunks: int = 5           # SSE chunks in a streamed answer
    chunk_delay: float = 0.01
    remote_params: dict[str, Any] | None = None  # kv_transfer_params a prefill answers with


@dataclass
class ScriptedInstance:
    name: str
    script: Script = field(default_factory=Script)
    received: list[Received] = field(default_factory=list)
    cancelled: int = 0        # requests whose client went away before the answer was complete
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body))
        s = self.script
        try:
            if s.delay:
                await asyncio.sleep(s.delay)
            if s.mode == "error":
                return web.json_response({"error": {"message": f"{self.name} exploded", "code": 500}}, status=500)
            if s.mode == "reject":
                return web.json_response({"error": {"message": f"{self.name} says bad prompt", "code": 400}},
                                         status=400)
            if body.get("stream"):
                return await self._stream(request, body)
            answer: dict[str, Any] = {"id": request.headers.get("X-Request-Id", ""), "object": "text_completion",
                                      "model": body.get("model"), "choices": [{"index": 0, "text": f"{self.name}!"}]}
            if body.get("kv_transfer_params", {}).get("do_remote_decode"):
                answer["kv_transfer_params"] = s.remote_params
            return web.json_response(answer)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        s = self.script
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(s.chunks):
            if s.mode == "reset" and i == 2:
                assert request.transport is not None
                request.transport.abort()
                return resp
            chunk = {"id": "x", "choices": [{"index": 0, "text": f"t{i} "}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(s.chunk_delay)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted", "owned_by": self.name}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_post("/v1/chat/completions", self._completion)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        return app

    def start(self) -> "ScriptedInstance":
        """Serve from a daemon thread with its own event loop; returns once the port is bound."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def run() -> None:
            self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def thread() -> None:
            self._loop.run_until_complete(run())
            self._loop.run_forever()

        threading.Thread(target=thread, daemon=True, name=f"scripted-{self.name}").start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def wait_cancelled(self, count: int = 1, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.cancelled < count:
            time.sleep(0.05)
        return self.cancelled >= count


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args()
    web.run_app(ScriptedInstance("process", Script(delay=args.delay)).app(), host="127.0.0.1", port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
