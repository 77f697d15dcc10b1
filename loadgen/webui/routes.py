"""The Energy view's routes on Locust's web UI (its Flask app), the way Locust's docs extend it.

- an "Energy" tab in Locust's own page: `extended_tabs` + `extended_tables` in `web_ui.template_args`, its rows
  added to `/stats/requests` as `extended_stats` (Locust's page refreshes it every 2 s while a test runs, and its
  extended tabs can only be tables);
- the full view with its charts at `<web base path>/energy`, a page of ours that reads `/energy/data` every second;
- results.json and requests.jsonl as downloads (`extended_csv_files` in Locust's "Download Data" tab too), served
  from `--results-dir` once the test has stopped and they are written.

Every route only reads what `LiveEnergy` stored and the summary the load generator wrote: a route call does no
work on the raw samples while a test runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flask import Blueprint, Response, jsonify, make_response, request, send_from_directory
from locust.env import Environment

from llm_dvfs.loadgen.results import REQUESTS, RESULTS
from llm_dvfs.loadgen.webui.live import LiveEnergy

if TYPE_CHECKING:
    from llm_dvfs.loadgen.plugin import Loadgen

STATIC = Path(__file__).parent / "static"
TAB = "energy"
#: results.json keys the view shows; when the test has stopped they come from results.json itself
FIGURES = ("completed", "failed", "total_input_tokens", "total_output_tokens", "output_throughput",
           "median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms", "energy_joules", "avg_watts",
           "joules_per_output_token", "joules_per_prompt_token", "joules_per_request")
START_EXPORTER = ("No --exporter-url, so no watts or joules. Start an exporter on the GPU host: "
                  "llm-dvfs exporter --backend auto --port 9945 (or python -m llm_dvfs.exporter), then start Locust "
                  "with --exporter-url http://HOST:9945/metrics (one per host: repeat it or join them with commas).")
NEEDS_PHASES = "needs the phase attribution, or a prefill-only run (--workload prefill)"


class EnergyView:
    """The routes and the live data of one Locust process's web UI."""

    def __init__(self, environment: Environment, live: LiveEnergy, summary: Callable[[], dict[str, Any] | None],
                 results_dir: str | None, base_path: str = "") -> None:
        self.env, self.live, self.summary = environment, live, summary
        self.results_dir, self.base_path = results_dir, base_path.rstrip("/")

    # -- the data ----------------------------------------------------------------------------------------------------
    def data(self, since: int = 0) -> dict[str, Any]:
        summary = None if self.live.running else self.summary()
        final = {key: summary.get(key) for key in FIGURES} if summary else None
        if final is not None and "energy_error" in summary:
            final["energy_error"] = summary["energy_error"]
        return {**self.live.view(since), "final": final,
                "energy_configured": bool(self.live.urls),
                "start_exporter": None if self.live.urls else START_EXPORTER,
                "prompt_token_note": NEEDS_PHASES,
                "downloads": self.downloads()}

    def downloads(self) -> list[dict[str, str]]:
        """The result files of the test that stopped, once written (files of an earlier test are not offered)."""
        if self.live.running or not self.results_dir or self.summary() is None:
            return []
        return [{"name": name, "href": f"{self.base_path}/energy/download/{name}"}
                for name in (RESULTS, REQUESTS) if (Path(self.results_dir) / name).is_file()]

    def tab_rows(self) -> list[dict[str, str]]:
        """The rows of the Energy tab in Locust's own page: the same figures, as text."""
        d = self.data(since=1 << 62)  # no points: the tab is a table
        figures = d["final"] or d["totals"]
        rows = [{"name": "Charts", "value": f"open {self.base_path}/energy"}]
        if not d["energy_configured"]:
            rows.append({"name": "Energy", "value": START_EXPORTER})
        else:
            total = sum(g["power_watts"] or 0 for g in d["gpus"])
            rows.append({"name": "Watts, all GPUs (latest)", "value": _fmt(total, "W")})
            for g in d["gpus"]:
                label = g["key"] + (f" ({g['role']})" if g["role"] else "")
                clocks = (f"SM {_fmt(_mhz(g['sm_clock_hertz']), 'MHz', 0)}"
                          + (f" of {_fmt(_mhz(g['max_sm_clock_hertz']), 'MHz', 0)}" if g["max_sm_clock_hertz"] else ""))
                reasons = ", ".join(g["throttle_reasons"]) or "none"
                rows.append({"name": label, "value": f"{_fmt(g['power_watts'], 'W')}; {clocks}; throttle: {reasons}"})
        for key, title, unit in (("joules_per_output_token", "J per output token", "J"),
                                 ("joules_per_prompt_token", "J per prompt token", "J"),
                                 ("joules_per_request", "J per request", "J"),
                                 ("output_throughput", "Output tokens/s", "tok/s"),
                                 ("median_ttft_ms", "TTFT p50", "ms"), ("p99_ttft_ms", "TTFT p99", "ms"),
                                 ("median_itl_ms", "ITL p50", "ms"), ("p99_itl_ms", "ITL p99", "ms")):
            if key.startswith("joules") and not d["energy_configured"]:
                continue
            value = figures.get(key)
            if key == "joules_per_prompt_token" and value is None:
                rows.append({"name": title, "value": NEEDS_PHASES})
            else:
                rows.append({"name": title, "value": _fmt(value, unit)})
        return rows

    # -- wiring --------------------------------------------------------------------------------------------------
    def register(self) -> "EnergyView":
        web_ui = self.env.web_ui
        blueprint = Blueprint("llm_dvfs_energy", __name__, url_prefix=self.base_path or None)
        guard = web_ui.auth_required_if_enabled

        @blueprint.route("/energy")
        @guard
        def page() -> Response:
            return send_from_directory(STATIC, "energy.html")

        @blueprint.route("/energy/static/<path:name>")
        @guard
        def static(name: str) -> Response:
            return send_from_directory(STATIC, name)

        @blueprint.route("/energy/data")
        @guard
        def data() -> Response:
            return jsonify(_finite(self.data(since=request.args.get("since", 0, type=int))))

        @blueprint.route("/energy/download/<name>")
        @guard
        def download(name: str) -> Response:
            offered = {d["name"] for d in self.downloads()}
            if name not in offered:
                return make_response(f"{name} is offered once the test has stopped and written it "
                                     "(start Locust with --results-dir DIR)", 404)
            return send_from_directory(Path(self.results_dir).resolve(), name, as_attachment=True)

        web_ui.app.register_blueprint(blueprint)

        @web_ui.app.after_request
        def add_tab_rows(response: Response) -> Response:
            if request.path == f"{self.base_path}/stats/requests" and response.is_json:
                body = response.get_json()
                body["extended_stats"] = [*body.get("extended_stats", []), {"key": TAB, "data": self.tab_rows()}]
                response.set_data(json.dumps(_finite(body)))
            return response

        args = web_ui.template_args
        args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Energy", "key": TAB}]
        args["extended_tables"] = [*args.get("extended_tables", []), {"key": TAB, "structure": [
            {"key": "name", "title": "Energy"}, {"key": "value", "title": "Now (whole test so far)"}]}]
        args["extended_csv_files"] = [*args.get("extended_csv_files", []), *(
            {"href": f"{self.base_path}/energy/download/{name}", "title": f"Download {name} (when the test stops)"}
            for name in (RESULTS, REQUESTS))]

        events = self.env.events
        events.test_start.add_listener(lambda **_: self.live.start())
        events.test_stop.add_listener(lambda **_: self.live.stop())
        return self


def add_energy_view(environment: Environment, loadgen: "Loadgen") -> EnergyView:
    """Add the Energy view to the web UI of the process that reports (local runner or master)."""
    opts = loadgen.opts
    live = LiveEnergy(list(opts.exporter_urls), loadgen.metrics.registry,
                      disaggregated=any(getattr(u, "prefill_header", None) for u in environment.user_classes),
                      prompt_priced=getattr(opts, "workload", "mixed") == "prefill")
    base = getattr(environment.parsed_options, "web_base_path", "") or ""
    return EnergyView(environment, live, lambda: loadgen.summary, opts.results_dir, base).register()


def _mhz(hertz: float | None) -> float | None:
    return None if hertz is None else hertz / 1e6


def _fmt(value: float | None, unit: str, digits: int | None = None) -> str:
    if value is None:
        return "—"
    digits = (4 if abs(value) < 1 else 1) if digits is None else digits
    return f"{value:.{digits}f} {unit}"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: send null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
