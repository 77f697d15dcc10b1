"""Everything measured in one test, in the process that reports it (the master in distributed runs).

Each result is kept raw (for requests.jsonl and exact percentiles) and observed into the Prometheus metrics; the
pair of result files is written from the same list when the test stops (Ctrl-C and SIGTERM included). There are no
periodic checkpoints: percentiles over every ITL of a long run take seconds, and that time would be taken from the
streams being timestamped in this process.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any, Callable

from llm_dvfs.loadgen import results as results_files
from llm_dvfs.loadgen.metrics import LoadgenMetrics
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.loadgen.stats import calculate_metrics


class RunRecord:
    """Results of one test plus what results.json says about the run (`meta`: backend, model, options...)."""

    def __init__(self, meta: dict[str, Any], metrics: LoadgenMetrics | None = None,
                 results_dir: str | None = None, goodput: dict[str, float] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.meta, self.metrics, self.results_dir = meta, metrics, results_dir
        self.goodput = goodput or {}
        self.wall_clock = wall_clock
        self.results: list[RequestResult] = []
        self.start_time = wall_clock()
        self.stop_time: float | None = None
        self.extra: dict[str, Any] = {}

    def add(self, result: RequestResult) -> None:
        self.results.append(result)
        if self.metrics is not None:
            self.metrics.observe(result)

    def summary(self) -> dict[str, Any]:
        end = self.stop_time if self.stop_time is not None else self.wall_clock()
        figures = calculate_metrics(self.results, end - self.start_time, self.goodput)
        sources = Counter(r.output_tokens_source for r in self.results if r.success)
        return {"date": datetime.fromtimestamp(self.start_time).strftime("%Y%m%d-%H%M%S"), **self.meta,
                "num_prompts": len(self.results), **figures,
                "output_tokens_source": dict(sources), "test_start_time": self.start_time,
                "test_stop_time": self.stop_time, **self.extra}

    def write(self) -> dict[str, Any]:
        """Write results.json and requests.jsonl (only with a results dir); return the summary."""
        summary = self.summary()
        if self.results_dir:
            results_files.write(self.results_dir, summary, list(self.results))
        return summary
