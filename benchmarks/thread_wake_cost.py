"""What one wake-up of a sleeping Python thread costs in CPU time, here: the fixed price of every exporter tick.

    python benchmarks/thread_wake_cost.py [--threads 1] [--period 0.1] [--seconds 10]

Each thread sleeps to a fixed schedule and does nothing else; the process's CPU time over the run divided by the
wake-ups is the cost of one (issue 16: 55-150 µs on the VMs measured, more than a GPU's whole read).
"""

from __future__ import annotations

import argparse
import threading
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--period", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    stop = threading.Event()

    def sleeper() -> None:
        start, k = time.monotonic(), 0
        while not stop.is_set():
            k += 1
            time.sleep(max(0.0, start + k * args.period - time.monotonic()))

    for _ in range(args.threads):
        threading.Thread(target=sleeper, daemon=True).start()
    time.sleep(1.0)
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stop.set()
    wakes = args.threads * wall / args.period
    print(f"{args.threads} thread(s) every {args.period:g} s: {100 * cpu / wall:.3f}% of a core, "
          f"{1e6 * cpu / wakes:.1f} µs per wake-up")


if __name__ == "__main__":
    main()
