"""The report of a settings sweep (`dvfs.json` + `setting-<label>/` sweeps): per phase and GPU role, J/token
against TTFT and ITL for each setting, what the GPU did (observed SM clock, throttle reasons), and per load
level the energy-optimal setting meeting the SLOs with its saving against the default setting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError

SLO_FIGURES = {"ttft": "ttft_ms_p99", "itl": "itl_ms_p99", "tpot": "tpot_ms_p50"}
NA = "n/a"


@dataclass(frozen=True)
class Row:
    """One setting at one load level."""

    setting: str
    default: bool
    described: str
    phase: str
    level: str
    entry: dict
    observed: dict
    role_j_per_token: dict[str, float | None]

    @property
    def j_per_token(self) -> float | None:
        return self.entry.get("joules_per_output_token")

    def meets(self, slos: dict[str, float]) -> bool:
        return all(self.entry.get(SLO_FIGURES[k]) is not None and self.entry[SLO_FIGURES[k]] <= ms
                   for k, ms in slos.items())


def is_settings_run(run_dir: Path) -> bool:
    return (Path(run_dir) / "dvfs.json").is_file()


def _f(v: float | None, spec: str = ".1f") -> str:
    return NA if v is None else format(v, spec)


def _level_name(entry: dict) -> str:
    c, rate = entry.get("concurrency"), entry.get("request_rate")
    return f"concurrency {c}" if c is not None else f"{rate:g} req/s"


def rows(run_dir: Path, record: dict) -> list[Row]:
    """Every (setting, level) the sweep finished, with its sweep.json figures."""
    roles = record.get("roles") or {}
    out = []
    for s in record["settings"]:
        sweep_json = run_dir / s["dir"] / "sweep.json"
        if not sweep_json.exists():
            continue
        sweep = json.loads(sweep_json.read_text())
        observed = {lv["level"]: lv["observed"] for lv in s.get("levels", [])}
        described = "; ".join(f"GPU {g}: {d}" for g, d in s.get("described", {}).items())
        for entry in sweep.get("levels", []):
            tokens = entry.get("output_tokens") or 0
            by_gpu = entry.get("energy_joules_by_gpu") or {}
            role_j = {}
            for role, gpus in roles.items():
                joules = [by_gpu.get(str(g)) for g in gpus]
                role_j[role] = sum(joules) / tokens if tokens and joules and None not in joules else None
            name = _level_name(entry)
            out.append(Row(s["label"], s["default"], described or "default",
                           entry.get("workload") or sweep.get("workload") or "mixed", name, entry,
                           observed.get(name, {}), role_j))
    return out


def _observed(row: Row) -> str:
    parts = []
    for gpu, o in sorted(row.observed.items()):
        reasons = ", ".join(f"{k} {v:.0%}" for k, v in o.get("throttle_reasons", {}).items() if k != "gpu_idle")
        parts.append(f"GPU {gpu} {_f(o.get('sm_clock_mhz'), '.0f')} MHz" + (f" ({reasons})" if reasons else ""))
    return "; ".join(parts) or NA


def table(all_rows: list[Row], roles: list[str]) -> list[str]:
    head = "| phase | level | setting | requested | observed SM clock (throttle reasons) | J/token | " + \
        "".join(f"{r} J/token | " for r in roles) + "TTFT ms p50 / p99 | ITL ms p50 / p99 |"
    lines = [head, "|---|---|---|---|---|---:|" + "---:|" * len(roles) + "---:|---:|"]
    for r in sorted(all_rows, key=lambda r: (r.phase, r.level)):
        e = r.entry
        lines.append(f"| {r.phase} | {r.level} | {r.setting} | {r.described} | {_observed(r)} "
                     f"| {_f(r.j_per_token, '.4f')} | " + "".join(f"{_f(r.role_j_per_token.get(x), '.4f')} | "
                                                          for x in roles)
                     + f"{_f(e.get('ttft_ms_p50'))} / {_f(e.get('ttft_ms_p99'))} "
                     f"| {_f(e.get('itl_ms_p50'), '.2f')} / {_f(e.get('itl_ms_p99'), '.2f')} |")
    return lines


def optimal(all_rows: list[Row], slos: dict[str, float]) -> list[str]:
    """Per phase and level: the lowest J/token among settings meeting every SLO, and its saving vs default."""
    slo_text = ", ".join(f"{k} {'p50' if k == 'tpot' else 'p99'} <= {ms:g} ms" for k, ms in slos.items()) or \
        "none given (every setting qualifies)"
    lines = [f"SLOs: {slo_text}.", "",
             "| phase | level | energy-optimal setting | J/token | default J/token | saving vs default |",
             "|---|---|---|---:|---:|---:|"]
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in all_rows:
        groups.setdefault((r.phase, r.level), []).append(r)
    for (phase, level), group in sorted(groups.items()):
        default = next((r for r in group if r.default), None)
        ok = [r for r in group if r.j_per_token is not None and r.meets(slos)]
        best = min(ok, key=lambda r: r.j_per_token) if ok else None
        base = default.j_per_token if default else None
        saving = 1 - best.j_per_token / base if best and base else None
        lines.append(f"| {phase} | {level} | {best.setting if best else 'none meets the SLOs'} "
                     f"| {_f(best.j_per_token if best else None, '.4f')} | {_f(base, '.4f')} "
                     f"| {_f(saving * 100 if saving is not None else None)}{'%' if saving is not None else ''} |")
    return lines


def write_settings_report(run_dir: Path, write_report: Callable[[Path], Path]) -> Path:
    """report.md of a settings sweep, each setting's own sweep report written beside it (by `write_report`)."""
    from llm_dvfs.analysis.plots import dvfs as dvfs_plots

    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "dvfs.json").read_text())
    except ValueError as exc:
        raise UsageError(f"{run_dir / 'dvfs.json'} is not JSON: {exc}") from None
    all_rows = rows(run_dir, record)
    if not all_rows:
        raise UsageError(f"{run_dir / 'dvfs.json'} lists no setting with a finished level")
    roles = sorted(record.get("roles") or {})
    md = [f"# DVFS settings sweep: {run_dir.name}", "",
          f"- {len(record['settings'])} settings x the load levels, {record.get('mode') or 'single'} serving; GPUs: "
          + ", ".join(f"{g} {v['name']} ({v['uuid']})" for g, v in record.get("gpus", {}).items()),
          "- requested values are what was set; the observed SM clock is the mean over each level's steady window "
          "from the exporter's samples, with the share of samples each throttle reason was active in "
          "(`sw_power_cap` means the power controller overrode the clock)", "",
          "## Energy-optimal setting per load level", "", *optimal(all_rows, record.get("slo_ms") or {}), "",
          "## Every setting and level", "", *table(all_rows, roles), ""]
    plot = dvfs_plots.tradeoff(all_rows, run_dir / "dvfs-tradeoff.png")
    if plot:
        md += ["## J/token against TTFT and ITL", "", f"![dvfs tradeoff]({plot.name})", ""]
    md += ["## Per-setting reports", ""]
    for s in record["settings"]:
        if (run_dir / s["dir"] / "sweep.json").exists():
            write_report(run_dir / s["dir"])
            md.append(f"- [{s['label']}]({s['dir']}/report.md)")
    report = run_dir / "report.md"
    atomic_write_text(report, "\n".join(md) + "\n")
    return report
