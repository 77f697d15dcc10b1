"""What the prefill/decode attribution costs on a big run: a 30-minute recording (100 ms ticks, 18,000 rows) with
100,000 requests, time and peak memory of the attribution alone (interval data, fit, 200 bootstrap resamples).

The run is built in memory, in the records the report reads (loadgen `RequestResult`, analysis `Samples`), so the
figure is the attribution's own cost, not the JSON and CSV parsing before it (that is the readers' cost and is
timed separately with --files, which writes and reads the real files through their owners).

    python benchmarks/attribution_bench.py [--requests 100000] [--minutes 30] [--output-len 64] [--files]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from llm_dvfs.analysis import attribution as attr
from llm_dvfs.analysis.samples import Samples, read_samples
from llm_dvfs.exporter.samples_csv import SamplesWriter
from llm_dvfs.loadgen import results as results_files
from llm_dvfs.loadgen.results import RequestResult, read_requests

T0 = 1_800_000_000.0


def build(requests: int, minutes: float, output_len: int, seed: int = 7) -> tuple[list[RequestResult], Samples]:
    rng = random.Random(seed)
    seconds = minutes * 60
    out = []
    for k in range(requests):
        start = T0 + seconds * k / requests
        ttft = rng.uniform(0.02, 0.3)
        itl = [rng.uniform(0.005, 0.02) for _ in range(output_len - 1)]
        out.append(RequestResult(start_time=start, success=True, ttft_s=ttft, itl_s=itl, e2el_s=ttft + sum(itl),
                                 prompt_tokens=rng.randint(128, 1024), output_tokens=output_len,
                                 elapsed_s=ttft + sum(itl)))
    ticks = int(seconds / 0.1) + 50
    times = [T0 - 3 + 0.1 * i for i in range(ticks)]
    power = [120.0 + (400.0 if i > 30 else 0.0) + rng.uniform(-5, 5) for i in range(ticks)]
    energy, total = [], 0.0
    for p in power:
        energy.append(total)
        total += p * 0.1
    return out, Samples(Path("in-memory"), times, {(0, "power"): power, (0, "energy_j"): energy})


def attribute_once(requests: list[RequestResult], samples: Samples) -> attr.Attribution:
    data = attr.intervals(requests, samples, T0, T0 + (samples.timestamps[-1] - T0) - 1)
    return attr.attribute(data, attr.idle_power(samples, [0], T0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--files", action="store_true", help="also write and read requests.jsonl and samples.csv")
    args = p.parse_args()
    requests, samples = build(args.requests, args.minutes, args.output_len)
    tracemalloc.start()
    started = time.perf_counter()
    result = attribute_once(requests, samples)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{args.requests} requests x {args.output_len} output tokens, {args.minutes:g} min, "
          f"{len(samples.timestamps)} samples, {result.intervals} intervals")
    print(f"attribution (with {attr.BOOTSTRAP_RESAMPLES} bootstrap resamples): {elapsed:.2f} s, "
          f"peak traced memory {peak / 2**20:.0f} MiB; prefill share {result.shares()['prefill']:.3f}")
    if args.files:
        with tempfile.TemporaryDirectory() as d:
            results_files.write(d, {}, requests)
            writer = SamplesWriter(Path(d) / "samples.csv", [("gpu", 0)])
            for t, pw, e in zip(samples.timestamps, samples.series(0, "power"), samples.series(0, "energy_j")):
                writer.write(t, [{"power": pw, "energy_j": e}])
            writer.close()
            started = time.perf_counter()
            read_requests(Path(d) / "requests.jsonl")
            read_samples(Path(d) / "samples.csv")
            took = time.perf_counter() - started
            print(f"reading requests.jsonl + samples.csv (their owners' readers): {took:.2f} s")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
