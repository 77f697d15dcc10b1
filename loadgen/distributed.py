"""Raw samples from workers to the master, each exactly once, over Locust's own messaging.

Workers buffer finished results and hand the buffer over whole (swap, then send) in every stats report and when
they stop. At the end the master sends `loadgen_flush` with a round number; each worker stops its users (letting
them finish within --stop-timeout), sends what is left and answers with that round, and the master waits for all
answers before it writes results. Swapping the buffer before sending is what makes a sample go exactly once.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Callable

import gevent
from locust.env import Environment
from locust.runners import STATE_STOPPED, STATE_STOPPING

from llm_dvfs.loadgen.results import RequestResult

SAMPLES, FLUSH = "loadgen_samples", "loadgen_flush"
log = logging.getLogger(__name__)


class SampleForwarder:
    """Worker side: `add` results; they reach the master with the next report or at stop."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.buffer: list[dict[str, Any]] = []
        self.in_flight = 0

    def register(self) -> "SampleForwarder":
        events, runner = self.env.events, self.env.runner
        events.report_to_master.add_listener(self._on_report)
        events.test_stop.add_listener(lambda **_: self._send())
        runner.register_message(FLUSH, self._on_flush, concurrent=True)
        return self

    def add(self, result: RequestResult) -> None:
        self.buffer.append(result.to_json())

    def _take(self) -> list[dict[str, Any]]:
        taken, self.buffer = self.buffer, []
        return taken

    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        data[SAMPLES] = self._take()
        data["loadgen_in_flight"] = self.in_flight

    def _send(self, round_: int | None = None) -> None:
        self.env.runner.send_message(SAMPLES, {"samples": self._take(), "round": round_})

    def _on_flush(self, environment: Environment, msg: Any, **_: Any) -> None:
        runner = environment.runner
        if runner.state not in (STATE_STOPPED, STATE_STOPPING):
            runner.stop()  # fires test_stop, which sends the rest
        self._send(msg.data["round"])


class SampleCollector:
    """Master side: every sample from every worker goes to `sink`; `flush` collects the last ones."""

    def __init__(self, environment: Environment, sink: Callable[[RequestResult], None]) -> None:
        self.env, self.sink = environment, sink
        self.answered: dict[int, set[str]] = {}
        self.in_flight: dict[str, int] = {}
        self._rounds = itertools.count(1)

    def register(self) -> "SampleCollector":
        self.env.events.worker_report.add_listener(self._on_report)
        self.env.runner.register_message(SAMPLES, self._on_samples)
        return self

    def _take(self, samples: list[dict[str, Any]]) -> None:
        for sample in samples:
            self.sink(RequestResult.from_json(sample))

    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        self._take(data.get(SAMPLES, []))
        if "loadgen_in_flight" in data:
            self.in_flight[client_id] = data["loadgen_in_flight"]

    def _on_samples(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._take(msg.data["samples"])
        if msg.data.get("round") is not None:
            self.answered.setdefault(msg.data["round"], set()).add(msg.node_id)

    def flush(self, timeout: float) -> bool:
        """Ask every connected worker for its last samples; True if all answered within `timeout` seconds."""
        workers = {client.id for client in self.env.runner.clients.all}
        round_ = next(self._rounds)
        self.answered[round_] = set()
        for worker in workers:
            self.env.runner.send_message(FLUSH, {"round": round_}, client_id=worker)
        deadline = time.monotonic() + timeout
        while not workers <= self.answered[round_] and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = workers - self.answered[round_]
        if missing:
            log.error("loadgen: no final samples from %d worker(s) within %.0f s: %s", len(missing), timeout,
                      ", ".join(sorted(missing)))
        self.in_flight.clear()
        return not missing
