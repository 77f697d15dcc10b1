"""The report's "Prefill vs decode on one GPU" section, and the phases.json written beside it.

It computes the phase figures from the run's own files (so runs made before the sweep recorded them get them
too), and pools the levels of `--combine` runs into the differential fit (e.g. outputs 1, 64 and 256 made as three
sweeps).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from llm_dvfs.analysis.attribution import BOOTSTRAP_RESAMPLES
from llm_dvfs.analysis.phases import LevelPhases, differential_fits, level_phases, overall
from llm_dvfs.analysis.plots import phases as plots
from llm_dvfs.analysis.run import Part, Run
from llm_dvfs.common.atomic_file import atomic_write_text

NA = "n/a"


def _f(v: float | None, spec: str = ".4f") -> str:
    return NA if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return NA if v is None else f"{100 * v:.1f}%"


def _ci(lv: LevelPhases, key: str, value: float | None) -> str:
    ci = lv.attribution.ci95.get(key) if lv.attribution else None
    return _f(value) + (f" ({_f(ci[0])}–{_f(ci[1])})" if ci else "")


def _shape(run: Run, part: Part) -> tuple[str | None, int | None, int | None]:
    entry, sweep, results = part.sweep_entry or {}, run.sweep or {}, part.results or {}
    workload = entry.get("workload") or sweep.get("workload") or results.get("workload")
    return workload, entry.get("input_len") or sweep.get("input_len"), \
        entry.get("output_len") or sweep.get("output_len")


def run_phases(run: Run, prefix: str = "") -> list[LevelPhases]:
    out = []
    for part in run.parts:
        workload, input_len, output_len = _shape(run, part)
        out.append(level_phases(prefix + part.name, part.requests, part.samples, part.window, part.concurrency,
                                workload, input_len, output_len))
    return out


def _prefix_cache(part: Part) -> str:
    r = part.results or {}
    if "prefix_cache_hit_tokens" not in r:
        return "not recorded"
    if r["prefix_cache_hit_tokens"] is None:
        return "not reported by the server"
    return f"{r['prefix_cache_hit_tokens']:.0f} of {r['prefix_cache_query_tokens']:.0f} tokens hit"


def _level_table(run: Run, levels: list[LevelPhases]) -> list[str]:
    rows = ["| level | workload | prompt/output | energy J | prefill J | decode J | idle J | unattributed J "
            "| prefill / decode / idle share | J per prompt token (95% CI) | J per output token (95% CI) "
            "| fit R² | prefix cache |",
            "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for part, lv in zip(run.parts, levels):
        a = lv.attribution
        if a is None:
            rows.append(f"| {lv.label} | {lv.workload} | {lv.input_len}/{lv.output_len} | {NA} | " +
                        " | ".join(NA for _ in range(8)) + f" | {_prefix_cache(part)} |")
            continue
        s = a.shares()
        rows.append(f"| {lv.label} | {lv.workload} | {lv.input_len}/{lv.output_len} | {a.energy_joules:.0f} "
                    f"| {a.prefill_joules:.0f} | {a.decode_joules:.0f} | {a.idle_joules:.0f} "
                    f"| {a.unattributed_joules:.0f} | {_pct(s['prefill'])} / {_pct(s['decode'])} / "
                    f"{_pct(s['idle'])} | {_ci(lv, 'joules_per_prompt_token', a.joules_per_prompt_token)} "
                    f"| {_ci(lv, 'joules_per_output_token', a.joules_per_output_token)} | {_f(a.r2, '.2f')} "
                    f"| {_prefix_cache(part)} |")
    total = overall(levels)
    if total and len(levels) > 1:
        rows.append(f"| **all levels** | | | {total['energy_joules']:.0f} | {total['prefill_joules']:.0f} "
                    f"| {total['decode_joules']:.0f} | {total['idle_joules']:.0f} "
                    f"| {total['unattributed_joules']:.0f} | {_pct(total['prefill_share'])} / "
                    f"{_pct(total['decode_share'])} / {_pct(total['idle_share'])} "
                    f"| {_f(total['joules_per_prompt_token'])} | {_f(total['joules_per_output_token'])} | | |")
    return rows


def _decode_context(input_len: int | None, output_len: int | None) -> str:
    """Mean context a decode step reads (prompt + tokens so far): J per output token grows with it, because
    every step reads each sequence's KV cache, so decode figures compare only at like contexts."""
    if not input_len or not output_len or output_len < 2:
        return NA
    return f"{input_len + output_len / 2:.0f}"


def _methods_table(levels: list[LevelPhases], fits: list[dict]) -> list[str]:
    rows = ["| method | where | J per prompt token | J per output token | decode context, tokens (mean) "
            "| energy counted |",
            "|---|---|---:|---:|---:|---|"]
    for lv in levels:
        a = lv.attribution
        if a is not None:
            rows.append(f"| attribution | {lv.label} ({lv.workload}, {lv.input_len}/{lv.output_len}) "
                        f"| {_f(a.joules_per_prompt_token)} | {_f(a.joules_per_output_token)} "
                        f"| {_decode_context(lv.input_len, lv.output_len)} | above idle |")
    for lv in levels:
        iso = lv.isolated()
        if iso:
            rows.append(f"| phase workload ({lv.workload}) | {lv.label} | {_f(iso.get('joules_per_prompt_token'))} "
                        f"| {_f(iso.get('joules_per_output_token'))} "
                        f"| {_decode_context(lv.input_len, lv.output_len)} | above idle |")
    for fit in fits:
        where = f"concurrency {fit['concurrency']}, {fit['workload']}, " + \
            (f"prompt {fit['input_len']}, outputs {'/'.join(str(p['output_len']) for p in fit['points'])}"
             if fit["over"] == "output_len" else
             f"output {fit['output_len']}, prompts {'/'.join(str(p['input_len']) for p in fit['points'])}")
        context = NA
        if fit["over"] == "output_len":
            longest = max(p["output_len"] for p in fit["points"])
            context = f"{fit['input_len'] + 1}–{fit['input_len'] + longest - 1}"
        for basis in ("above_idle", "total"):
            line = fit.get(basis)
            if line:
                rows.append(f"| differential | {where} | {_f(line.get('joules_per_prompt_token'))} "
                            f"| {_f(line.get('joules_per_output_token'))} | {context} | {basis.replace('_', ' ')} |")
    return rows


def _workload_table(levels: list[LevelPhases]) -> list[str]:
    """The phase-workload levels' own figures: what a prefill-only or decode-only load costs."""
    rows = []
    for lv in levels:
        iso = lv.isolated()
        if not iso:
            continue
        if lv.workload == "prefill":
            ttft = iso["ttft_s_p50"]
            rows.append(f"| {lv.label} | prefill | {_f(iso['joules_per_prompt_token'])} / "
                        f"{_f(iso['joules_per_prompt_token_total'])} | {_f(iso['prompt_tokens_per_s'], '.0f')} "
                        f"| {NA if ttft is None else f'{1000 * ttft:.1f}'} | | |")
        else:
            rows.append(f"| {lv.label} | decode | | | | {_f(iso['joules_per_output_token'])} / "
                        f"{_f(iso['joules_per_output_token_total'])} | {_pct(iso['prefill_share_of_above_idle'])} |")
    if not rows:
        return []
    return ["#### Phase workloads", "",
            "| level | workload | J per prompt token above idle / total | prompt tokens/s | TTFT p50 ms "
            "| J per output token above idle / total | prefill's share above idle |",
            "|---|---|---:|---:|---:|---:|---:|", *rows, ""]


def _fit_details(fits: list[dict]) -> list[str]:
    lines: list[str] = []
    for fit in fits:
        over = "decode tokens (output − 1)" if fit["over"] == "output_len" else "prompt tokens"
        line = fit.get("above_idle") or fit["total"]
        basis = "above idle" if fit.get("above_idle") else "total"
        r2 = "R² n/a (two points)" if line["r2"] is None else f"R² {line['r2']:.4f}"
        lines.append(f"- concurrency {fit['concurrency']} ({fit['workload']}), energy per request ({basis}) = "
                     f"{line['intercept_joules']:.3f} J + {line['slope_joules_per_token']:.5f} J × {over}; {r2}")
        for p, r in zip(fit["points"], line["residuals_joules"]):
            value = p["above_idle_joules_per_request"] if basis == "above idle" else p["joules_per_request"]
            lines.append(f"  - {p['label']}: {p['input_len']}/{p['output_len']} tokens, {value:.3f} J per "
                         f"request over {p['completed']} requests, residual {r:+.3f} J")
    return lines


def _gpu_table(run: Run, levels: list[LevelPhases]) -> list[str]:
    """Disaggregated (or any multi-GPU) runs: each GPU's own energy above its idle beside the attribution
    applied to their sum."""
    gpus = sorted({g for lv in levels for g in lv.above_idle_by_gpu})
    if len(gpus) < 2:
        return []
    disagg = run.mode == "disaggregated"
    names = {0: "GPU 0 (prefill instance)", 1: "GPU 1 (decode instance)"} if disagg and len(gpus) == 2 else {}
    head = "| level | " + " | ".join(f"{names.get(g, f'GPU {g}')} above idle J" for g in gpus) + \
        " | attribution on the sum: prefill J | decode J | idle J (all GPUs) |"
    rows = [head, "|---|" + "---:|" * (len(gpus) + 3)]
    for lv in levels:
        a = lv.attribution
        if a is None:
            continue
        rows.append(f"| {lv.label} | " + " | ".join(_f(lv.above_idle_by_gpu.get(g), ".0f") for g in gpus) +
                    f" | {a.prefill_joules:.0f} | {a.decode_joules:.0f} | {a.idle_joules:.0f} |")
    why = ["", "The per-GPU columns are what each GPU drew above its own idle power; the attribution columns "
           "apply the one-GPU model to the sum of all GPUs. "
           + ("Disaggregated, the prefill GPU's measured energy is its prefill work plus the power it draws while "
              "it waits between prompts (above its idle floor: clocks stay up, memory stays hot); on one "
              "instance that waiting time does not exist, because the same GPU decodes meanwhile. The gap between "
              "the prefill GPU's column and the attributed prefill energy is that cost of disaggregation, and "
              "the idle power of the second GPU (in the idle column) is paid in full." if disagg else
              "Each GPU's idle is counted in the idle column; the split is of their summed energy.")]
    return ["#### Per GPU vs attribution on the sum", "", *rows, *why, ""]


def section(run: Run, combine: Sequence[Run], out: Path) -> list[str]:
    """The report section's markdown; also writes out/phases.json and the section's PNGs."""
    levels = run_phases(run)
    pooled = levels + [lv for other in combine for lv in run_phases(other, f"{other.path.name}: ")]
    fits = differential_fits(pooled)
    md = ["## Prefill vs decode on one GPU", ""]
    if not any(lv.attribution for lv in levels):
        return md + ["No energy readings (no samples CSV, or no power sensor): nothing to split.", ""]
    # one phrase per kind of idle source, the levels' sample counts left out
    idle_sources = sorted({re.sub(r"the \d+ samples", "the samples", lv.attribution.idle.source)
                           for lv in levels if lv.attribution})
    md += ["Each level's steady-window energy split into prefill, decode and idle by the interval regression "
           "(docs/phase-energy.md): per interval, energy above idle = a × prompt tokens in prefill + b × decode "
           "tokens produced, fitted by non-negative least squares; each interval's measured energy above idle is "
           f"split in the ratio of the two terms. 95% intervals: {BOOTSTRAP_RESAMPLES} moving-block bootstrap "
           "resamples of the intervals. J per prompt token = prefill J / prompt tokens in prefill; J per output "
           "token = decode J / decode tokens (every output token after the first, which the prefill makes). "
           f"Idle power: {'; '.join(idle_sources)}.", "", *_level_table(run, levels), ""]
    stuck = [lv.label for lv in levels if lv.attribution and lv.attribution.degenerate]
    if stuck:
        md += [f"**Not separable:** at {', '.join(stuck)} the fit priced one phase at zero although both ran: the "
               "intervals did not vary the two activities independently (e.g. long queueing before the first "
               "token spreads every prompt over most of the window). Use the phase workloads or the differential "
               "fit there; docs/phase-energy.md lists when this happens.", ""]
    bars = plots.energy_bars(levels, out / "phases-energy.png")
    if bars:
        md += [f"![energy by phase]({bars.name})", ""]
    md += _gpu_table(run, levels)
    md += ["### The three methods", "",
           "Attribution works on any load; a phase workload isolates one phase (a prefill level is all prefill, "
           "a decode level all but a few prompt tokens); the differential fit compares levels that differ in "
           "one length" + (f", pooled with {', '.join(f'`{o.path}`' for o in combine)}" if combine else "")
           + ". They measure different things at the margin (docs/phase-energy.md says which), so where they "
           "differ the tables above show how. Decode figures compare only at like contexts: each decode step "
           "reads every sequence's KV cache, so J per output token grows with the mean context (prompt plus "
           "tokens so far) shown beside it.", "", *_methods_table(pooled, fits), ""]
    md += _workload_table(pooled)
    if fits:
        md += ["#### Differential fits", "", *_fit_details(fits), ""]
    md += ["### Power and phase activity", ""]
    for part, lv in zip(run.parts, levels):
        path = plots.activity_timeline(lv, out / f"{part.slug}-phases.png")
        if path:
            md += [f"**{lv.label}**", "", f"![{lv.label} phases]({path.name})", ""]
    data = {"levels": [{"label": lv.label, "concurrency": lv.concurrency, **lv.to_json()} for lv in levels],
            "overall": overall(levels), "differential": fits,
            "combined_with": [str(o.path) for o in combine]}
    atomic_write_text(out / "phases.json", json.dumps(data, indent=2) + "\n")
    return md
