"""The Locust user: one concurrent stream that sends requests back to back (closed loop), or at the arrival
times of the shared open-loop schedule when --request-rate is given.

A plain `User` with our own socket client rather than HttpUser/FastHttpUser: FastHttpUser's `iter_content`
batches reads (10 timestamps for 60 SSE events, ITL p50 60 ms against a server sending every 10 ms), and we want
the read loop to do nothing but read and timestamp (timing.py). Requests still show in the web UI and --csv
through `events.request`, while the exact raw samples go to our own record. A request the test stops while it is
in flight is recorded too, as `cancelled_at_stop`, so the results account for every request sent.
"""

from __future__ import annotations

import time

import gevent
from gevent import GreenletExit
from locust import User, constant, task

from llm_dvfs.loadgen import plugin
from llm_dvfs.loadgen.request import ENDPOINT_PATHS
from llm_dvfs.loadgen.results import RequestResult

#: pause after a request that never reached the server, so a user facing a dead server does not spin a core
UNREACHABLE_BACKOFF_S = 0.1
UNREACHABLE = ("connection_refused", "connect_timeout", "connection_error")


class StreamFailure(Exception):
    """How a failed request shows in Locust's failure table: its reason and detail."""


class LlmUser(User):
    abstract = True
    wait_time = constant(0)
    #: response header with the prefill duration in seconds (set by the disaggregation locustfile)
    prefill_header: str | None = None

    def on_start(self) -> None:
        self.loadgen = plugin.loadgen_for(self.environment)
        self.stream_client = self.loadgen.client(self.host, self.prefill_header)
        self.name = ENDPOINT_PATHS[self.loadgen.opts.endpoint]

    @task
    def stream(self) -> None:
        lg, client = self.loadgen, self.stream_client
        if lg.arrivals is not None:
            gevent.sleep(max(0.0, lg.arrivals.next_arrival() - time.perf_counter()))
        attempt = client.attempt(lg.next_prompt())
        lg.in_flight += 1
        try:
            result = client.run(attempt)
        except GreenletExit:  # the test stopped with this request in flight (-t, Ctrl-C, --stop-timeout ran out)
            if (cancelled := client.cancelled(attempt)) is not None:
                self._report(cancelled)
            raise
        finally:
            lg.in_flight -= 1
        self._report(result)
        if result.reason in UNREACHABLE:
            gevent.sleep(UNREACHABLE_BACKOFF_S)

    def _report(self, result: RequestResult) -> None:
        """To our record (or the master), and to Locust's statistics (a failure counts in its exit code)."""
        self.loadgen.add(result)
        self.environment.events.request.fire(
            request_type="POST", name=self.name,
            response_time=1000 * (result.e2el_s if result.success else result.elapsed_s),
            response_length=result.output_tokens or 0,
            exception=None if result.success else StreamFailure(result.error), context={})
