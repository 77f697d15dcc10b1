"""The load generator inside a Locust process: options, per-test state, result sinks, metrics and energy.

Importing this module registers its Locust event listeners (what a locustfile's decorators would do), so the
locustfiles stay a user class each. Roles: a local runner measures and reports; a worker measures and forwards
raw samples (distributed.py); the master collects, serves metrics and writes the files.
"""

from __future__ import annotations

from locust import events  # first: Locust monkey-patches the socket and ssl modules on import

import logging
import math
import random
import sys
import time
import weakref
from typing import Any

import gevent
import requests
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen import datasets
from llm_dvfs.loadgen.arrivals import ArrivalSchedule
from llm_dvfs.loadgen.distributed import SampleCollector, SampleForwarder
from llm_dvfs.loadgen.energy import EnergyReadError, EnergyWindow, read_energy
from llm_dvfs.loadgen.metrics import LoadgenMetrics
from llm_dvfs.loadgen.options import LoadgenOptions, add_options
from llm_dvfs.loadgen.record import RunRecord
from llm_dvfs.loadgen.request import RequestResult, StreamClient
from llm_dvfs.loadgen.tokenizer import Tokenizer

log = logging.getLogger("loadgen")
_processes: "weakref.WeakKeyDictionary[Environment, Loadgen]" = weakref.WeakKeyDictionary()


def first_model_id(host: str, timeout: float = 5.0) -> str | None:
    """The first model the server lists at /v1/models, or None if it cannot tell."""
    base = host.rstrip("/")
    try:
        data = requests.get(base + ("/models" if base.endswith("/v1") else "/v1/models"), timeout=timeout).json()
        return data["data"][0]["id"]
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None


class Loadgen:
    """One Locust process's share of the load generator."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        runner = environment.runner
        self.role = ("worker" if isinstance(runner, WorkerRunner) else
                     "master" if isinstance(runner, MasterRunner) else "local")
        self.opts: LoadgenOptions | None = None
        self.metrics = LoadgenMetrics() if self.role != "worker" else None
        self.forwarder = SampleForwarder(environment).register() if self.role == "worker" else None
        self.collector = SampleCollector(environment, self._record).register() if self.role == "master" else None
        self.record: RunRecord | None = None
        self.energy: EnergyWindow | None = None
        self.dataset: datasets.Dataset | None = None
        self.tokenizer: Tokenizer | None = None
        self.arrivals: ArrivalSchedule | None = None
        self.model: str | None = None
        self.in_flight = 0
        self._finished = True
        self._gauge_updater: gevent.Greenlet | None = None

    # -- set-up -------------------------------------------------------------------------------------------------
    def configure(self) -> None:
        """Validate options and load the dataset; raise UsageError (one line) for anything wrong."""
        self.opts = LoadgenOptions.from_parsed(self.env.parsed_options)
        o = self.opts
        self.tokenizer = Tokenizer(o.tokenizer) if o.tokenizer else None
        self.dataset = datasets.load(o.dataset, o.dataset_path, o.input_len, o.output_len, o.range_ratio,
                                     self.tokenizer, o.token_ids, o.output_len_given)

    def check_before_start(self) -> None:
        """What only the reporting process checks, before any user starts."""
        o = self.opts
        if getattr(self.env.parsed_options, "headless", False) and not self.env.host:
            raise UsageError("--host is required (the server's base URL, e.g. http://127.0.0.1:8000)")
        if o.exporter_url:
            try:
                read_energy(o.exporter_url)
            except EnergyReadError as exc:
                raise UsageError(f"--exporter-url: {exc}") from None
        if o.metrics_port:
            try:
                self.metrics.serve(o.metrics_port, getattr(self.env.parsed_options, "web_host", "") or "")
            except OSError as exc:
                raise UsageError(f"--metrics-port {o.metrics_port}: {exc}") from None

    # -- one test -------------------------------------------------------------------------------------------------
    def on_test_start(self) -> None:
        if self.role == "worker":
            self.configure()  # options as the master sent them
        o, parsed = self.opts, self.env.parsed_options
        self.model = o.model or (first_model_id(self.env.host) if self.env.host else None)
        if self.model and not o.model:
            parsed.model = self.model  # travels to workers with the spawn message
        if self.role == "master":
            parsed.loadgen_processes = max(1, self.env.runner.worker_count)
        share = getattr(parsed, "loadgen_processes", 1) if self.role == "worker" else 1
        self.arrivals = (None if math.isinf(o.request_rate) else
                         ArrivalSchedule(o.request_rate / share, o.burstiness, time.perf_counter(),
                                         random.Random()))
        if self.role == "worker":
            return
        self._finished = False
        self.record = RunRecord(self._meta(), self.metrics, o.results_dir, o.goodput)
        self.metrics.test_start.set(self.record.start_time)
        self.energy = None
        if o.exporter_url:
            self.energy = EnergyWindow(o.exporter_url)
            try:
                self.energy.start()
            except EnergyReadError as exc:
                log.error("loadgen: energy not measured: %s", exc)
                self.record.extra["energy_error"] = str(exc)
                self.energy = None
        self._gauge_updater = gevent.spawn(self._gauges)

    def _meta(self) -> dict[str, Any]:
        o = self.opts
        return {"backend": "openai-chat" if o.endpoint == "chat" else "openai", "model_id": self.model,
                "tokenizer_id": o.tokenizer, "host": self.env.host, "endpoint": o.endpoint,
                "request_rate": "inf" if math.isinf(o.request_rate) else o.request_rate,
                "burstiness": o.burstiness,
                "max_concurrency": getattr(self.env.parsed_options, "num_users", None),
                "dataset": o.dataset, "prompt_length_source": self.dataset.length_source,
                "ignore_eos": o.ignore_eos, "goodput_slos_ms": o.goodput or None}

    def client(self, host: str, prefill_header: str | None) -> StreamClient:
        o = self.opts
        return StreamClient(host, o.endpoint, self.model, ignore_eos=o.ignore_eos, tokenizer=self.tokenizer,
                            prefill_header=prefill_header)

    def add(self, result: RequestResult) -> None:
        """A user finished a request: forward it (worker) or record it."""
        if self.forwarder is not None:
            self.forwarder.add(result)
        else:
            self._record(result)

    def _record(self, result: RequestResult) -> None:
        if self.record is not None:
            self.record.add(result)

    def _gauges(self) -> None:
        while True:
            self.metrics.active_users.set(self.env.runner.user_count)
            in_flight = sum(self.collector.in_flight.values()) if self.collector else self.in_flight
            self.metrics.in_flight.set(in_flight)
            gevent.sleep(1.0)

    def finish(self) -> None:
        """Collect the last samples, close the energy window and write the files; once per test."""
        if self._finished or self.record is None:
            return
        self._finished = True
        if self._gauge_updater is not None:
            self._gauge_updater.kill(block=False)
        if self.collector is not None:
            self.collector.flush(timeout=(self.env.stop_timeout or 0) + 30)
        self.record.stop_time = time.time()
        if self.energy is not None:
            try:
                self.energy.stop()
                ok = [r for r in self.record.results if r.success]
                self.record.extra |= self.energy.figures(sum(r.output_tokens or 0 for r in ok), len(ok))
            except EnergyReadError as exc:
                log.error("loadgen: energy not measured: %s", exc)
                self.record.extra["energy_error"] = str(exc)
        self.metrics.in_flight.set(0)
        try:
            s = self.record.write()
        except OSError as exc:
            log.error("loadgen: cannot write results to %s: %s", self.opts.results_dir, exc)
            s = self.record.summary()
        log.info("loadgen: %d completed, %d failed, %.2f req/s, mean TTFT %.1f ms, mean TPOT %.2f ms%s",
                 s["completed"], s["failed"], s["request_throughput"], s["mean_ttft_ms"], s["mean_tpot_ms"],
                 f"; results in {self.opts.results_dir}" if self.opts.results_dir else "")


def loadgen_for(environment: Environment) -> Loadgen:
    return _processes[environment]


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if environment.runner is None:
        return
    lg = _processes[environment] = Loadgen(environment)
    try:
        lg.configure()  # a worker checks its own command line: --processes children share the master's
        if lg.role != "worker":
            lg.check_before_start()
    except UsageError as exc:
        if lg.role != "worker":  # the master says it once; its workers just leave
            sys.stderr.write(f"locust: error: {exc}\n")
        sys.exit(2)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if environment in _processes:
        _processes[environment].on_test_start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if environment in _processes:
        _processes[environment].finish()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if environment in _processes:
        _processes[environment].finish()
