"""What the web UI's Energy view costs the Locust process that has it: CPU per one-second tick (one scrape of each
exporter and a snapshot of the load generator's metrics) and per `/energy/data` call, with metrics that already
hold many requests. In a local run that process also timestamps the streams, so this is the view's whole cost to
the timed loop (it does nothing inside a request).

Each exporter is a real `python -m llm_dvfs.exporter --backend replay:TRACE` process on loopback.

    python benchmarks/webui_energy_view.py --exporters 1 --requests 100000 --ticks 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from llm_dvfs.loadgen.metrics import LoadgenMetrics
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.loadgen.webui.live import LiveEnergy

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "data" / "traces" / "h200x2-vllm0.23-disagg-llama8b-shape-sweep.csv"


@contextlib.contextmanager
def exporters(count: int, first_port: int):
    procs, urls = [], []
    for i in range(count):
        port = first_port + i
        procs.append(subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{TRACE}",
                                       "--listen-address", "127.0.0.1", "--port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}/metrics")
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    if requests.get(url, timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"exporter {url} did not start")
                time.sleep(0.2)
        yield urls
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporters", type=int, default=1)
    ap.add_argument("--requests", type=int, default=100_000, help="requests already in the metrics")
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--port", type=int, default=19_545, help="first exporter port")
    args = ap.parse_args()
    metrics = LoadgenMetrics()
    for i in range(args.requests):
        metrics.observe(RequestResult(start_time=i, success=True, ttft_s=0.05 + (i % 50) / 1000,
                                      itl_s=[0.01 + (i % 7) / 1000] * 255, e2el_s=3.0, prompt_tokens=512,
                                      output_tokens=256))
    with exporters(args.exporters, args.port) as urls:
        live = LiveEnergy(urls, metrics.registry)
        live.start()
        live.stop()  # ticked by hand below, on the same schedule as the greenlet
        live.running = True
        ticks, views = [], []
        for _ in range(args.ticks):
            t0 = time.process_time()
            live.tick()
            ticks.append(time.process_time() - t0)
            t0 = time.process_time()
            json.dumps(live.view(since=max(0, live.appended - 1)))
            views.append(time.process_time() - t0)
            time.sleep(max(0.0, 1.0 - ticks[-1] - views[-1]))
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    print(json.dumps({"exporters": args.exporters, "requests_in_metrics": args.requests, "ticks": args.ticks,
                      "tick_cpu_ms_median": round(ms(ticks), 3), "tick_cpu_ms_max": round(1000 * max(ticks), 3),
                      "data_call_cpu_ms_median": round(ms(views), 3),
                      "cpu_share_of_one_core": round((sum(ticks) + sum(views)) / args.ticks, 5)}))


if __name__ == "__main__":
    main()
