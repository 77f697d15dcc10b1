"""`llm-dvfs report RUN_DIR [--compare OTHER_RUN_DIR]`: RUN_DIR/report.md with PNG plots beside it.

Works on a sweep directory (`sweep.json`, `level-*/`) and on one plain load-generator run (results.json,
requests.jsonl and the exporter's samples CSV). Every figure in the summary is over the part's steady window;
the statistics section, like the original monitor's text report, covers the whole recording.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from llm_dvfs.analysis.energy import COUNTER, INTEGRATED, NO_SENSOR
from llm_dvfs.analysis import phase_section, prefill_hop_section
from llm_dvfs.analysis.dvfs_summary import is_settings_run, write_settings_report
from llm_dvfs.analysis.plots import latency, scatter, sweep, timeline
from llm_dvfs.analysis.run import Part, Run, load_run
from llm_dvfs.analysis.stats import gpu_power_stats
from llm_dvfs.analysis.summary import Summary, summarize
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.cli_args import UsageErrorParser

NA = "n/a"


def _f(v: float | None, spec: str = ".1f") -> str:
    return NA if v is None else format(v, spec)


def _pair(p: tuple[float | None, float | None]) -> str:
    return f"{_f(p[0])} / {_f(p[1])}"


def _latency_table(summaries: list[Summary]) -> list[str]:
    rows = ["| level | steady s | TTFT ms p50 / p99 | ITL ms p50 / p99 | TPOT ms p50 / p99 | E2E ms p50 / p99 "
            "| output tok/s | req/s | goodput req/s | failed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        rows.append(f"| {s.name} | {_f(s.duration_s)} | {_pair(s.latency_ms['TTFT'])} | {_pair(s.latency_ms['ITL'])} "
                    f"| {_pair(s.latency_ms['TPOT'])} | {_pair(s.latency_ms['E2E'])} | {_f(s.output_tok_s)} "
                    f"| {_f(s.request_s, '.2f')} | {_f(s.goodput, '.2f')} | {s.failed} |")
    return rows


def _energy_table(summaries: list[Summary], label: str) -> list[str]:
    gpus = sorted({g for s in summaries for g in s.energy})
    head = "| level | energy J | J/token | J/request | mean W (all) | " + \
        " | ".join(f"{label} {g} mean / max W" for g in gpus) + " | energy from |"
    rows = [head, "|---|" + "---:|" * (4 + len(gpus)) + "---|"]
    for s in summaries:
        if s.no_sensor or not s.energy:
            why = "no power sensor on this machine: energy not measured" if s.no_sensor else "no samples CSV"
            rows.append(f"| {s.name} | {NA} | {NA} | {NA} | {NA} | " + " | ".join(NA for _ in gpus) + f" | {why} |")
            continue
        sources = sorted({e.source for e in s.energy.values()})
        per_gpu = " | ".join(f"{_f(s.mean_w.get(g))} / {_f(s.max_w.get(g))}" for g in gpus)
        rows.append(f"| {s.name} | {_f(s.energy_j)} | {_f(s.j_per_token, '.4f')} | {_f(s.j_per_request, '.2f')} "
                    f"| {_f(s.total_w)} | {per_gpu} | {', '.join(sources)} |")
    return rows


def _statistics(part: Part) -> list[str]:
    """The original monitor's text report: per-GPU power statistics over the whole recording."""
    samples = part.samples
    if samples is None:
        return []
    label = samples.device_label
    lines = [f"{part.name}: {samples.path.name}, {samples.duration_s:.1f} s, {len(samples.timestamps)} samples"]
    for g in samples.gpus:
        st = gpu_power_stats(samples, g)
        if st.samples == 0:
            lines.append(f"  {label} {g}: no power readings ({NO_SENSOR})")
            continue
        energy = f"{st.energy.joules:.1f} J ({st.energy.source})" if st.energy.joules is not None else NA
        lines.append(f"  {label} {g}: mean {st.mean_w:.1f} W, max {st.max_w:.1f} W, min {st.min_w:.1f} W, "
                     f"energy {energy}, duration {st.duration_s:.1f} s")
    return lines


def _plots(part: Part, out: Path) -> list[tuple[str, Path]]:
    makers: list[tuple[str, str, Callable[[Part, Path], Path | None]]] = [
        ("Power per GPU, requests in flight and utilization", "power", timeline.power_per_gpu),
        ("All GPUs and total", "power-all", timeline.power_all),
        ("Utilization vs power", "util-power", scatter.utilization_vs_power),
        ("Temperature and clocks", "thermals", timeline.thermals),
        ("Latency distributions", "latency", latency.distributions),
    ]
    made = []
    for title, stem, make in makers:
        path = make(part, out / f"{part.slug}-{stem}.png")
        if path is not None:
            made.append((title, path))
    return made


def _header(run: Run) -> list[str]:
    lines = [f"# Power and performance report: {run.title}", ""]
    s = run.sweep
    if s:
        lines.append(f"- model `{s.get('model')}`, {s.get('input_len')} input / {s.get('output_len')} output tokens "
                     f"per request, {s.get('mode')} serving on "
                     + (f"{s['gpu_count']} GPU(s): {s.get('device')}" if s.get("gpu_count") else f"{s.get('device')}"))
    for part in run.parts:
        if part.window:
            lines.append(f"- {part.name}: window {part.window.duration_s:.1f} s ({part.window.reason})")
    lines.append(f"- written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `llm-dvfs report`")
    return lines + [""]


def _notes(summaries: list[Summary]) -> list[str]:
    sources = {e.source for s in summaries for e in s.energy.values()}
    notes = ["## How the figures were computed", "",
             "- All summary figures are over each part's window above: for a sweep level the steady state (from "
             "when the target concurrency is first reached, or the warm-up ends if later, until the in-flight "
             "count falls below the target for the last time); latencies are of the successful requests that "
             "started in it, tokens are counted by their arrival times.",
             "- Goodput is the load generator's whole-run `request_goodput` (requests meeting every SLO per second)."]
    if COUNTER in sources:
        notes.append("- Energy: the delta of the GPU's cumulative energy counter (`energy_j`), interpolated at "
                     "the window's ends; a counter that went backwards counts as reset.")
    if INTEGRATED in sources:
        notes.append("- Energy: some GPUs had no energy counter readings, so their power was integrated "
                     "(trapezoids over the samples) instead — less exact than a hardware counter.")
    if NO_SENSOR in sources:
        notes.append("- Energy: **no power sensor** on the recording machine; energy columns read n/a.")
    return notes + [""]


def _legend(run: Run) -> str:
    """How a run is named in plots: what it served on what, e.g. "llama on 1× NVIDIA H100 (single)"."""
    return run.title if run.sweep else f"{run.mode}: {run.path.name}"


def write_report(run_dir: Path, compare_dir: Path | None = None, samples: Path | None = None,
                 combine: Sequence[Path] = ()) -> Path:
    if is_settings_run(run_dir) and compare_dir is None and samples is None and not combine:
        return write_settings_report(run_dir, write_report)  # a DVFS sweep: one sweep per setting inside
    run = load_run(run_dir, samples)
    other = load_run(compare_dir) if compare_dir else None
    pooled = [load_run(d) for d in combine]
    summaries = [summarize(p) for p in run.parts]
    label = next((p.samples.device_label for p in run.parts if p.samples), "GPU")
    out = run.path
    md = _header(run)
    md += ["## Summary", "", "### Latency and throughput", "", *_latency_table(summaries), "",
           "### Energy", "", *_energy_table(summaries, label), ""]
    name = _legend(run)
    runs = {name: summaries}
    if other is not None:
        other_summaries = [summarize(p) for p in other.parts]
        other_name = _legend(other)
        runs[other_name if other_name != name else f"{other_name} [{other.path.name}]"] = other_summaries
        md += [f"## Compared with `{other.path}` ({other.title})", "", "### Latency and throughput", "",
               *_latency_table(other_summaries), "", "### Energy", "", *_energy_table(other_summaries, label), ""]
        compare = sweep.side_by_side(runs, out / "compare.png")
        if compare:
            md += [f"![side by side]({compare.name})", ""]
    if len(run.parts) > 1 or other is not None:
        p = sweep.pareto(runs, out / "pareto.png")
        if p:
            md += ["## Throughput vs energy per token", "", f"![pareto]({p.name})", ""]
    md += phase_section.section(run, pooled, out)
    md += prefill_hop_section.section(run, out)
    md += ["## Plots", ""]
    for part in run.parts:
        md += [f"### {part.name}", ""]
        for title, path in _plots(part, out):
            md += [f"**{title}**", "", f"![{title}]({path.name})", ""]
    stats = [line for part in run.parts for line in _statistics(part)]
    if stats:
        md += ["## Power statistics (whole recording)", "", "```", *stats, "```", ""]
    md += _notes(summaries)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(md))
    return report


def main(argv: Sequence[str]) -> int:
    p = UsageErrorParser(prog="llm-dvfs report", description="Write RUN_DIR/report.md and PNG plots for a sweep or a "
                "load-generator run directory (results.json, requests.jsonl, samples CSV).")
    p.add_argument("run_dir", type=Path, help="a sweep directory or a load-generator results directory")
    p.add_argument("--compare", type=Path, metavar="OTHER_RUN_DIR",
                   help="another run (e.g. disaggregated vs single) to put side by side")
    p.add_argument("--combine", type=Path, action="append", default=[], metavar="OTHER_SWEEP_DIR",
                   help="pool this run's levels into the prefill/decode differential fit (repeatable), e.g. "
                   "output lengths 1, 64 and 256 made as separate sweeps")
    p.add_argument("--samples", type=Path, metavar="CSV",
                   help="for a plain run: the exporter's samples CSV, when it is not inside RUN_DIR")
    args = p.parse_args(list(argv))
    report = write_report(args.run_dir, args.compare, args.samples, args.combine)
    print(f"wrote {report}")
    return 0
