"""Where a disaggregated level's prefill hop time goes: queue and engine at the prefill server, and the rest.

The proxy times each prefill hop (`proxy_prefill_seconds`: request sent to prefill's answer read). The prefill
server times the same requests itself: `vllm:request_queue_time_seconds` (waiting for a batch slot) and
`vllm:e2e_request_latency_seconds` (arrival to finish, queue included). Their histograms' `_sum`/`_count` deltas
between the level's before and after snapshots (saved by the sweep with `--instance-metrics prefill=URL`) give the
means over exactly that level's requests, so

    hop = queue + engine (e2e - queue) + rest (hop - e2e: HTTP and API server, connector work outside the
          engine's request, proxy, network)

holds by construction; what checks the measurement is that both sides saw the same requests (`requests` against
`prefill_requests`), that the engine's time does not exceed the hop (`rest_s` >= -`TOLERANCE_S`), and that the
proxy's mean agrees with the load generator's own record of each hop (`X-Prefill-Seconds`, `prefill_s` in
requests.jsonl) within `CLIENT_TOLERANCE`. `vllm:num_requests_waiting` is a gauge: its value halfway through the
steady state is one look at the prefill server's queue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import fmean

from llm_dvfs.analysis.run import Part
from llm_dvfs.loadgen.server_metrics import read_snapshot

HOP, E2E, QUEUE = "proxy_prefill_seconds", "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds"
WAITING = "vllm:num_requests_waiting"
PROXY_ROLE, PREFILL_ROLE = "host", "prefill"
TOLERANCE_S = 0.001  # the engine's mean may exceed the hop's by histogram-sum rounding, no more
CLIENT_TOLERANCE = 0.05  # proxy histogram mean vs the per-request header mean, relative


@dataclass(frozen=True)
class PrefillHop:
    """One level's breakdown; means in seconds over the level's requests (None where a side recorded none)."""

    label: str
    requests: int  # prefill hops the proxy timed during the level
    prefill_requests: int  # requests the prefill server finished during the level
    hop_s: float | None
    queue_s: float | None
    engine_s: float | None  # e2e minus queue: scheduled until finished
    e2e_s: float | None
    rest_s: float | None  # hop minus e2e
    waiting_steady: float | None
    client_hop_s: float | None  # mean prefill_s of requests.jsonl
    consistent: bool

    def to_json(self) -> dict:
        return asdict(self)


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> tuple[float, float] | None:
    """(sum, count) of histogram `name` over the window, or None when a snapshot lacks it."""
    keys = (f"{name}_sum", f"{name}_count")
    if not all(k in before and k in after for k in keys):
        return None
    return after[keys[0]] - before[keys[0]], after[keys[1]] - before[keys[1]]


def _mean(d: tuple[float, float] | None) -> float | None:
    return d[0] / d[1] if d is not None and d[1] > 0 else None


def level_prefill_hop(part: Part) -> PrefillHop | None:
    """The breakdown of one level, or None when its proxy or prefill snapshots are missing."""
    proxy = [read_snapshot(part.directory, PROXY_ROLE, m) for m in ("before", "after")]
    prefill = [read_snapshot(part.directory, PREFILL_ROLE, m) for m in ("before", "after")]
    if None in proxy or None in prefill:
        return None
    hop = _delta(proxy[0], proxy[1], HOP)
    e2e, queue = _delta(prefill[0], prefill[1], E2E), _delta(prefill[0], prefill[1], QUEUE)
    if hop is None or e2e is None:
        return None
    hop_s, e2e_s, queue_s = _mean(hop), _mean(e2e), _mean(queue)
    engine_s = e2e_s - queue_s if e2e_s is not None and queue_s is not None else None
    rest_s = hop_s - e2e_s if hop_s is not None and e2e_s is not None else None
    steady = read_snapshot(part.directory, PREFILL_ROLE, "steady")
    sides = [r.prefill_s for r in part.requests if r.prefill_s is not None]
    client_s = fmean(sides) if sides else None
    consistent = (rest_s is not None and rest_s >= -TOLERANCE_S and round(hop[1]) == round(e2e[1])
                  and client_s is not None and hop_s is not None
                  and abs(client_s - hop_s) <= CLIENT_TOLERANCE * hop_s)
    return PrefillHop(part.name, round(hop[1]), round(e2e[1]), hop_s, queue_s, engine_s, e2e_s, rest_s,
                      steady.get(WAITING) if steady else None, client_s, consistent)
