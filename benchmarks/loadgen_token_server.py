"""A fast OpenAI-style streaming server for measuring load generators: every request gets `--tokens` chunks,
the first after `--ttft` seconds and then one every `--itl` seconds, on an absolute schedule.

It logs what it did: GET /stats returns (and forgets) every request's receive time and the time each chunk was
handed to the kernel, on the monotonic clock (`time.perf_counter`, CLOCK_MONOTONIC, the same in every process),
so a benchmark can compare each chunk a client timestamps with when it was really sent. Loopback only.

    python benchmarks/loadgen_token_server.py --port 8765 --ttft 0.02 --itl 0.01 --tokens 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


class TokenServer:
    def __init__(self, ttft: float, itl: float, tokens: int) -> None:
        self.ttft, self.itl, self.tokens = ttft, itl, tokens
        self.log: list[dict] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            received = time.perf_counter()
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = next((int(v.split(":", 1)[1]) for v in lines if v.lower().startswith("content-length")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            if path.endswith("/models") or path == "/stats":
                self._json(writer, self._stats() if path == "/stats" else
                           {"object": "list", "data": [{"id": "tiny", "object": "model"}]})
            else:
                await self._stream(writer, received, int(body.get("max_tokens") or self.tokens))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            writer.close()

    def _stats(self) -> dict:
        log, self.log = self.log, []
        return {"requests": log}

    @staticmethod
    def _json(writer: asyncio.StreamWriter, data: dict) -> None:
        payload = json.dumps(data).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(payload), payload))

    async def _stream(self, writer: asyncio.StreamWriter, received: float, tokens: int) -> None:
        sends: list[float] = []
        self.log.append({"received": received, "sends": sends})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        for i in range(tokens):
            due = received + self.ttft + i * self.itl
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            usage = {"prompt_tokens": 16, "completion_tokens": i + 1, "total_tokens": 17 + i}
            event = b'data: {"id":"x","object":"text_completion","choices":[{"index":0,"text":" tok"}],' \
                    b'"usage":%s}\n\n' % json.dumps(usage).encode()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            sends.append(time.perf_counter())
        done = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))


async def serve(port: int, server: TokenServer) -> None:
    s = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=4096)
    async with s:
        await s.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ttft", type=float, default=0.02)
    parser.add_argument("--itl", type=float, default=0.01)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, TokenServer(args.ttft, args.itl, args.tokens)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
