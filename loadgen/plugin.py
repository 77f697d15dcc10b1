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
from locust.env import Environment
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen import datasets
from llm_dvfs.loadgen.arrivals import ArrivalSchedule
from llm_dvfs.loadgen.distributed import SampleCollector, SampleForwarder
from llm_dvfs.loadgen.energy import EnergyReadError, EnergyWindow, read_energy
from llm_dvfs.loadgen.metrics import LoadgenMetrics
from llm_dvfs.loadgen.options import LoadgenOptions, add_options, check_results_dir
from llm_dvfs.loadgen.prefix_cache import PrefixCacheWindow
from llm_dvfs.loadgen.record import RunRecord
from llm_dvfs.loadgen.request import CANCELLED, StreamClient
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.loadgen.served_model import served_model
from llm_dvfs.loadgen.tokenizer import Tokenizer
from llm_dvfs.loadgen.webui.routes import add_energy_view
from llm_dvfs.loadgen.workloads import workload_figures

log = logging.getLogger("loadgen")
_processes: "weakref.WeakKeyDictionary[Environment, Loadgen]" = weakref.WeakKeyDictionary()
#: Locust's exit code when the results could not be written (as for its own unhandled errors)
WRITE_FAILED_EXIT_CODE = 2


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
        self.summary: dict[str, Any] | None = None  # what the last test wrote to results.json
        self.energy: EnergyWindow | None = None
        self.prefix_cache: PrefixCacheWindow | None = None
        self.dataset: datasets.Dataset | None = None
        self.tokenizer: Tokenizer | None = None
        self.arrivals: ArrivalSchedule | None = None
        self.model: str | None = None
        self.seed: int | None = None
        self.prompt_rng = random.Random()
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
        if o.results_dir:
            check_results_dir(o.results_dir)
        if getattr(self.env.parsed_options, "headless", False) and not self.env.host:
            raise UsageError("--host is required (the server's base URL, e.g. http://127.0.0.1:8000)")
        served = served_model(self.env.host, o.request_headers) if self.env.host else None
        if served is not None and served.max_model_len is not None:
            o.check_context(served.max_model_len)
        if o.exporter_urls:
            try:
                for url in o.exporter_urls:
                    read_energy(url)
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
        served = served_model(self.env.host, o.request_headers) if self.env.host and not o.model else None
        self.model = o.model or (served.id if served else None)
        if self.model and not o.model:
            parsed.model = self.model  # travels to workers with the spawn message
        if self.role == "master":
            parsed.loadgen_processes = max(1, self.env.runner.worker_count)
        if self.role != "worker":  # one seed per test, given or drawn, sent to the workers and recorded
            parsed.loadgen_seed = o.seed if o.seed is not None else random.SystemRandom().randrange(1 << 32)
        self.seed = parsed.loadgen_seed
        stream = f"worker {self.env.runner.worker_index}" if self.role == "worker" else "local"
        self.prompt_rng = random.Random(f"{self.seed} prompts {stream}")
        share = getattr(parsed, "loadgen_processes", 1) if self.role == "worker" else 1
        self.arrivals = (None if math.isinf(o.request_rate) else
                         ArrivalSchedule(o.request_rate / share, o.burstiness, time.perf_counter(),
                                         random.Random(f"{self.seed} arrivals {stream}")))
        if self.role == "worker":
            return
        self._finished = False
        self.summary = None
        self.record = RunRecord(self._meta(), self.metrics, o.results_dir, o.goodput)
        self.metrics.test_start.set(self.record.start_time)
        self.energy = None
        if o.exporter_urls:
            self.energy = EnergyWindow(o.exporter_urls)
            try:
                self.energy.start()
            except EnergyReadError as exc:
                log.error("loadgen: energy not measured: %s", exc)
                self.record.extra["energy_error"] = str(exc)
                self.energy = None
        self.prefix_cache = PrefixCacheWindow(self.env.host) if self.env.host else None
        if self.prefix_cache is not None:
            self.prefix_cache.start()
        self._gauge_updater = gevent.spawn(self._gauges)

    def _meta(self) -> dict[str, Any]:
        o = self.opts
        return {"backend": "openai-chat" if o.endpoint == "chat" else "openai", "model_id": self.model,
                "tokenizer_id": o.tokenizer, "host": self.env.host, "endpoint": o.endpoint,
                "request_rate": "inf" if math.isinf(o.request_rate) else o.request_rate,
                "burstiness": o.burstiness,
                "max_concurrency": getattr(self.env.parsed_options, "num_users", None),
                "dataset": o.dataset, "prompt_length_source": self.dataset.length_source,
                "ignore_eos": o.ignore_eos, "goodput_slos_ms": o.goodput or None, "workload": o.workload,
                "seed": self.seed}

    def client(self, host: str, prefill_header: str | None) -> StreamClient:
        o = self.opts
        return StreamClient(host, o.endpoint, self.model, ignore_eos=o.ignore_eos, tokenizer=self.tokenizer,
                            prefill_header=prefill_header, headers=o.request_headers)

    def next_prompt(self) -> datasets.SampleRequest:
        """The process's next prompt, in the order requests are sent: with one seed, the same sequence every run,
        whichever user sends it."""
        return self.dataset.draw(self.prompt_rng)

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
        if self.prefix_cache is not None:
            self.prefix_cache.stop()
            self.record.extra |= self.prefix_cache.figures()
        ok = [r for r in self.record.results if r.success]
        self.record.extra |= workload_figures(self.opts.workload, sum(r.prompt_tokens or 0 for r in ok),
                                              self.record.stop_time - self.record.start_time,
                                              self.record.extra.get("energy_joules"))
        self.metrics.in_flight.set(0)
        try:
            s = self.record.write()
        except (OSError, UsageError) as exc:
            log.error("loadgen: cannot write results to %s: %s", self.opts.results_dir, exc)
            self.env.process_exit_code = WRITE_FAILED_EXIT_CODE
            s = self.record.summary()
        self.summary = s
        log.info("loadgen: %d completed, %d failed, %.2f req/s, mean TTFT %.1f ms, mean TPOT %.2f ms%s",
                 s["completed"], s["failed"], s["request_throughput"], s["mean_ttft_ms"], s["mean_tpot_ms"],
                 f"; results in {self.opts.results_dir}" if self.opts.results_dir else "")


    def forgive_cut_requests(self) -> None:
        """A timed run (`-t` with Locust's default `--stop-timeout 0`) always cuts the requests still in flight:
        they are recorded as `cancelled_at_stop` and shown in Locust's failure table, but on their own they do
        not fail a run that completed requests, or every timed run would exit 1. A run where nothing completed
        (a server that never answers) still exits 1."""
        if self.role == "worker" or self.record is None or self.env.process_exit_code is not None:
            return
        results = self.record.results
        failed = [r for r in results if not r.success]
        if failed and len(failed) < len(results) and all(r.reason == CANCELLED for r in failed) \
                and not self.env.runner.exceptions:
            self.env.process_exit_code = 0

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
            if environment.web_ui is not None:
                add_energy_view(environment, lg)
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
    """Ctrl-C and SIGTERM come here with the test still running, before Locust stops it: stop it now, as
    Locust would next, letting the requests in flight finish within --stop-timeout (test_stop then writes the
    files), so the files hold every request and the exit code, set after this, counts them."""
    if environment in _processes:
        runner = environment.runner
        if runner is not None and runner.state != STATE_STOPPED and not isinstance(runner, WorkerRunner):
            runner.stop()
        _processes[environment].finish()
        _processes[environment].forgive_cut_requests()
