"""What the disaggregation proxy itself adds to a request: the same two instant upstreams called directly
(prefill then decode, as the proxy would) and through the proxy, sequentially and with concurrency.

    python benchmarks/proxy_overhead.py [--requests 300] [--concurrency 1 16] [--chunks 64] [--gap 0.002]

The upstreams answer at once (no model), so the difference is the proxy's own cost per request: two extra local
HTTP exchanges' worth of parsing, JSON rewriting and relaying; with `--gap`, events leave one by one and the
events/s column shows how many token events the proxy relays per second. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instant_upstream(chunks: int, gap: float) -> web.Application:
    """Answers prefill with JSON and decode with `chunks` SSE events: all in one write, or one write per event
    `gap` seconds apart (like tokens leaving vLLM one by one)."""
    events = [f'data: {json.dumps({"choices": [{"text": f"t{i}"}]})}\n\n'.encode() for i in range(chunks)]

    async def completion(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({"choices": [{"text": "x"}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if gap <= 0:
            await resp.write(b"".join(events) + b"data: [DONE]\n\n")
            return resp
        for event in events:
            await resp.write(event)
            await asyncio.sleep(gap)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/completions", completion)
    app.router.add_get("/health", health)
    return app


async def timed(session: aiohttp.ClientSession, url: str, body: dict) -> None:
    """One POST, its answer read to the end."""
    async with session.post(url, json=body) as resp:
        async for _ in resp.content.iter_any():
            pass


async def measure(call, n: int, concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    out: list[float] = []

    async def one() -> None:
        async with sem:
            start = time.perf_counter()
            await call()
            out.append(time.perf_counter() - start)

    await asyncio.gather(*(one() for _ in range(n)))
    return out


async def main_async(args: argparse.Namespace) -> None:
    runners = []
    urls = []
    for _ in range(2):
        runner = web.AppRunner(instant_upstream(args.chunks, args.gap), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")
    proxy_port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "llm_dvfs.cli", "proxy", "--prefill", urls[0], "--decode", urls[1],
                              "--port", str(proxy_port), "--log-level", "WARNING"], cwd=ROOT)
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    body = {"model": "m", "prompt": "hello", "max_tokens": args.chunks, "stream": True}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for _ in range(100):
                try:
                    async with session.get(f"{proxy_url}/metrics") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)

            async def two_hops_direct() -> None:
                await timed(session, f"{urls[0]}/v1/completions", {**body, "max_tokens": 1, "stream": False})
                await timed(session, f"{urls[1]}/v1/completions", body)

            async def via_proxy() -> None:
                await timed(session, f"{proxy_url}/v1/completions", body)

            await measure(via_proxy, 20, 4)  # warm-up
            print(f"{args.chunks} events per answer, gap {args.gap * 1e3:.1f} ms")
            print(f"{'concurrency':>11} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'events/s':>9}")
            for c in args.concurrency:
                for name, call in (("direct", two_hops_direct), ("proxy", via_proxy)):
                    start = time.perf_counter()
                    lat = sorted(await measure(call, args.requests, c))
                    rate = len(lat) / (time.perf_counter() - start)
                    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
                    print(f"{c:>11} {name:>8} {statistics.median(lat) * 1e3:>8.2f} {p99 * 1e3:>8.2f} {rate:>8.1f} "
                          f"{rate * args.chunks:>9.0f}")
    finally:
        proxy.terminate()
        proxy.wait(10)
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--chunks", type=int, default=64, help="SSE events per decode answer")
    p.add_argument("--gap", type=float, default=0.0,
                   help="seconds between decode events, each its own write (default 0: one write)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
