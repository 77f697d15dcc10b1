"""A real Prometheus scraping the exporter (replay backend) every second: rate(gpu_energy_joules_total) equals
the replayed trace's mean power over the same stretch, within 2%, for every trace in data/traces/ and the
synthetic fixture."""

from __future__ import annotations

import bisect
import time
from pathlib import Path

import pytest

from llm_dvfs.exporter.samples_csv import Trace, read_trace

from .exporter_process import ExporterProcess, PrometheusProcess
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
TRACES = sorted((ROOT / "data" / "traces").glob("*.csv")) + [
    ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"]
WINDOW_S = 25


class TraceEnergy:
    """Cumulative energy of a looping trace as the exporter serves it: the value of the row being played
    (energy column where recorded, else trapezoids of power), each loop adding one wrap interval."""

    def __init__(self, trace: Trace, gpu: int) -> None:
        rows = trace.devices[gpu]
        self.offsets = [t - trace.timestamps[0] for t in trace.timestamps]
        self.loop = self.offsets[-1] + trace.interval
        power = [r["power"] or 0.0 for r in rows]
        if all(r.get("energy_j") is not None for r in rows):
            energy = [r["energy_j"] for r in rows]
        else:
            energy = [0.0]
            for k in range(1, len(rows)):
                energy.append(energy[-1] + (self.offsets[k] - self.offsets[k - 1]) * (power[k] + power[k - 1]) / 2)
        self.energy = energy
        self.per_loop = energy[-1] - energy[0] + trace.interval * (power[-1] + power[0]) / 2

    def at(self, played: float) -> float:
        loop, offset = divmod(played, self.loop)
        row = max(0, bisect.bisect_right(self.offsets, offset + 1e-3) - 1)
        return loop * self.per_loop + self.energy[row]


@pytest.mark.prometheus
@pytest.mark.timeout(180)
def test_prometheus_rate_matches_replayed_mean_power(tmp_path):
    exporters = {f"trace{k}": ExporterProcess("--backend", f"replay:{path}") for k, path in enumerate(TRACES)}
    prom = None
    try:
        prom = PrometheusProcess(tmp_path, {job: f"127.0.0.1:{e.port}" for job, e in exporters.items()})
        assert wait_until(lambda: len(prom.query('up == 1')) == len(exporters), timeout=30)
        time.sleep(WINDOW_S + 3)
        at = time.time()
        checked = 0
        for (job, _), path in zip(exporters.items(), TRACES):
            trace = read_trace(path)
            rates = prom.query(f'rate(gpu_energy_joules_total{{job="{job}"}}[{WINDOW_S}s])', at)
            assert {r["metric"]["gpu"] for r in rates} == {str(i) for i in trace.devices}
            for r in rates:
                gpu = r["metric"]["gpu"]
                energy = prom.query(f'gpu_energy_joules_total{{job="{job}",gpu="{gpu}"}}[{WINDOW_S}s]', at)
                played = prom.query(
                    f'llm_dvfs_exporter_replay_position_seconds{{job="{job}",gpu="{gpu}"}}[{WINDOW_S}s]', at)
                e_ts = {float(ts): float(v) for ts, v in energy[0]["values"]}
                p_ts = {float(ts): float(v) for ts, v in played[0]["values"]}
                common = sorted(set(e_ts) & set(p_ts))  # same scrape, same timestamp
                assert len(common) >= WINDOW_S - 5
                model = TraceEnergy(trace, int(gpu))
                x1, x2 = p_ts[common[0]], p_ts[common[-1]]
                expected_w = (model.at(x2) - model.at(x1)) / (x2 - x1)
                got_w = float(r["value"][1])
                assert got_w == pytest.approx(expected_w, rel=0.02), (path.name, gpu, got_w, expected_w)
                checked += 1
        assert checked >= 2
    finally:
        if prom is not None:
            prom.stop()
        for e in exporters.values():
            e.stop()
