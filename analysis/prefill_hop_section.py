"""The report's "Where the prefill hop time goes" section for disaggregated runs, and prefill_hop.json beside it."""

from __future__ import annotations

import json
from pathlib import Path

from llm_dvfs.analysis.prefill_hop import CLIENT_TOLERANCE, PREFILL_ROLE, TOLERANCE_S, PrefillHop, level_prefill_hop
from llm_dvfs.analysis.run import Run
from llm_dvfs.common.atomic_file import atomic_write_text

NA = "n/a"


def _ms(v: float | None) -> str:
    return NA if v is None else f"{1000 * v:.1f}"


def _share(part: float | None, whole: float | None) -> str:
    return NA if part is None or not whole else f"{100 * part / whole:.0f}%"


def _row(h: PrefillHop) -> str:
    waiting = NA if h.waiting_steady is None else f"{h.waiting_steady:g}"
    return (f"| {h.label} | {h.requests} / {h.prefill_requests} | {_ms(h.hop_s)} | {_ms(h.queue_s)} "
            f"({_share(h.queue_s, h.hop_s)}) | {_ms(h.engine_s)} ({_share(h.engine_s, h.hop_s)}) | {_ms(h.rest_s)} "
            f"({_share(h.rest_s, h.hop_s)}) | {waiting} | {_ms(h.client_hop_s)} | {'yes' if h.consistent else 'NO'} |")


def section(run: Run, out: Path) -> list[str]:
    """Nothing for a single-instance run; for a disaggregated one the table, or why it cannot be made."""
    if run.mode != "disaggregated":
        return []
    hops = [(part.name, level_prefill_hop(part)) for part in run.parts]
    md = ["## Where the prefill hop time goes", ""]
    found = [h for _, h in hops if h is not None]
    if not found:
        return md + [f"No level has the proxy's and the prefill server's /metrics saved before and after it (the "
                     f"sweep saves them with `--instance-metrics {PREFILL_ROLE}=URL`).", ""]
    atomic_write_text(out / "prefill_hop.json", json.dumps({"levels": [h.to_json() for h in found]}, indent=2) + "\n")
    md += ["Means per level, in ms, from histogram deltas between the snapshots before and after each level: the "
           "proxy's `proxy_prefill_seconds` (hop), the prefill server's `vllm:request_queue_time_seconds` (queue) "
           "and `vllm:e2e_request_latency_seconds` (engine = e2e − queue). Rest = hop − e2e: HTTP and the API "
           "server, connector work outside the engine's request, the proxy and the network (with NixlConnector "
           "decode reads the KV after the hop, so the transfer itself shows in decode's first token, not here). "
           "Shares are of the hop. Waiting: `vllm:num_requests_waiting` halfway through the steady state. "
           f"Consistent: both sides counted the same requests, engine ≤ hop (within {1000 * TOLERANCE_S:g} ms), "
           f"and the hop agrees with the load generator's per-request `X-Prefill-Seconds` mean within "
           f"{100 * CLIENT_TOLERANCE:g}%.", "",
           "| level | hops (proxy / prefill) | hop | queue | engine | rest | waiting | hop per requests.jsonl "
           "| consistent |", "|---|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    md += [_row(h) for h in found]
    missing = [name for name, h in hops if h is None]
    if missing:
        md += ["", "No snapshots for: " + ", ".join(missing) + "."]
    return md + ["", "Per level figures: `prefill_hop.json`.", ""]
