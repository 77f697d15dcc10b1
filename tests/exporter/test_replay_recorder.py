"""Replay backend (pace, looping, malformed files) and the recorder's CSV/JSON, round-tripped."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pytest

from llm_dvfs.exporter.backends.base import BackendUnavailableError, DeviceNotFoundError, DeviceReadError, GpuSample
from llm_dvfs.exporter.backends.replay import ReplayBackend
from llm_dvfs.exporter.recorder import Recorder
from llm_dvfs.exporter.samples_csv import CORE_FIELDS, SamplesWriter, read_trace, sample_values
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.store import Store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"


class ScriptedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_replay_follows_the_original_pace_and_loops():
    trace = read_trace(FIXTURE)
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0)
    assert [d.source for d in backend.devices()] == ["replay", "replay"]
    power = [row["power"] for row in trace.devices[0]]
    assert backend.read(0).power_w == power[0]
    clock.now += 5.05
    s = backend.read(0)
    assert s.power_w == power[50]
    assert len(s.power_samples) == 50  # every row passed since the last read, none repeated
    clock.now += 20.0  # the trace is 200 rows x 0.1 s: one full loop later, same row
    assert backend.read(0).power_w == power[50]
    assert backend.read(0).replay_position_s == pytest.approx(25.05)


def test_replayed_energy_counter_drops_at_the_loop_and_the_store_survives_it():
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0 + clock.now)
    store = Store(backend.devices())
    sampler = Sampler(backend, store, clock=clock, wall=lambda: 1000.0 + clock.now)
    trace = read_trace(FIXTURE)
    for k in range(400):  # two loops at 0.1 s
        clock.now = 100.0 + k * 0.1
        sampler.tick()
    state = store.snapshot().devices[0]
    one_loop = trace.devices[0][-1]["energy_j"]
    assert state.energy_resets == 1
    # two loops = 2 x the trace's energy + the wrap interval, minus the last row (ticks 0..399)
    assert state.energy_j == pytest.approx(2 * one_loop, rel=0.01)


def test_gpu_ids_select_replayed_gpus():
    assert [d.index for d in ReplayBackend(FIXTURE, gpu_ids=[1]).devices()] == [1]
    with pytest.raises(DeviceNotFoundError):
        ReplayBackend(FIXTURE, gpu_ids=[3])


@pytest.mark.parametrize("content, problem", [
    ("", "no 'timestamp' column"),
    ("timestamp,datetime\n1,a\n2,b\n", "no gpu_<i>_power columns"),
    ("timestamp,datetime,gpu_0_power\n1,a,100\n", "at least two rows"),
    ("timestamp,datetime,gpu_0_power\n1,a,100\n2,b,abc\n", "'abc' is not a number"),
    ("timestamp,datetime,gpu_0_power\n2,a,100\n1,b,100\n", "increasing"),
    ("timestamp,datetime,gpu_0_power\n1,a,100\n2,b\n", "2 cells"),
])
def test_malformed_trace_is_rejected_with_a_reason(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(BackendUnavailableError, match="malformed replay file") as err:
        ReplayBackend(path)
    assert problem in str(err.value)


def test_empty_power_cell_replays_as_a_failed_read(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("timestamp,datetime,gpu_0_power\n1,a,100\n1.1,b,\n1.2,c,100\n")
    clock = ScriptedClock()
    backend = ReplayBackend(path, clock=clock)
    clock.now += 0.15
    with pytest.raises(DeviceReadError):
        backend.read(0)


def test_recorder_writes_the_documented_csv_and_a_json_summary(tmp_path):
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0 + clock.now)
    store = Store(backend.devices())
    sampler = Sampler(backend, store, clock=clock, wall=lambda: 1000.0 + clock.now)
    recorder = Recorder(backend.devices(), tmp_path / "out.csv", tmp_path / "out.json")
    sampler.subscribe(recorder)
    for k in range(30):
        clock.now = 100.0 + k * 0.1
        sampler.tick()
    recorder.close()
    recorder.close()  # idempotent: the signal path and the normal path may both close

    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30
    header = list(rows[0])
    assert header[:2] == ["timestamp", "datetime"]
    assert header[2:2 + len(CORE_FIELDS)] == [f"gpu_0_{f}" for f in CORE_FIELDS]
    assert float(rows[0]["gpu_0_energy_j"]) == 0.0
    assert float(rows[-1]["gpu_0_energy_j"]) > 0
    trace = read_trace(FIXTURE)
    assert [float(r["gpu_1_power"]) for r in rows] == [row["power"] for row in trace.devices[1][:30]]

    doc = json.loads((tmp_path / "out.json").read_text())
    assert len(doc["samples"]) == 30
    stats = doc["stats"]["0"]
    powers = [row["power"] for row in trace.devices[0][:30]]
    assert stats["mean_power_w"] == pytest.approx(sum(powers) / 30)
    assert (stats["min_power_w"], stats["max_power_w"]) == (min(powers), max(powers))
    assert stats["duration_s"] == pytest.approx(2.9)
    assert stats["energy_j"] == pytest.approx(float(rows[-1]["gpu_0_energy_j"]), rel=1e-5)

    # the recorded file is itself a valid replay input
    assert len(read_trace(tmp_path / "out.csv").timestamps) == 30


def test_replay_serves_the_recorded_clock_events():
    trace = read_trace(FIXTURE)
    clock = ScriptedClock()
    backend = ReplayBackend(FIXTURE, clock=clock, wall=lambda: 1000.0)
    for row, active in enumerate(trace.clock_events[0]):
        clock.now = 100.0 + 0.1 * row
        events = backend.read(0).clock_events
        assert set(events) == {"gpu_idle", "sw_power_cap"}  # every reason the trace ever shows, active or not
        assert {reason for reason, on in events.items() if on} == active


def _long_trace(path: Path, rows: int) -> None:
    """A 2-GPU samples CSV of `rows` rows 0.1 s apart, written by the one samples-CSV writer."""
    writer = SamplesWriter(path, [("gpu", 0), ("gpu", 1)])
    for k in range(rows):
        values = [sample_values(GpuSample(power_w=100.0 + k % 50 + i, utilization=0.5, temperature_c=40.0,
                                          memory_used_bytes=1e9, memory_total_bytes=8e10,
                                          clocks_hz={"sm": 1.98e9, "memory": 2.6e9, "graphics": 1.98e9}),
                                energy_j=10.0 * k) for i in range(2)]
        writer.write(1000.0 + 0.1 * k, values)
    writer.close()


def test_replay_starts_without_reading_the_whole_file(tmp_path, capsys):
    # a killed recorder's file: a torn last row. Before, the whole file was parsed first and refused for it.
    path = tmp_path / "long.csv"
    _long_trace(path, 3000)
    with path.open("a") as fh:
        fh.write("1300.1,2026-12-01T00:00:00,123.4,5")
    clock = ScriptedClock()
    backend = ReplayBackend(path, clock=clock, wall=lambda: 1000.0)
    assert backend.read(0).power_w == 100.0
    clock.now += 299.95  # the last whole row (k = 2999)
    assert backend.read(1).power_w == 100.0 + 2999 % 50 + 1
    clock.now += 0.1  # one interval later: the loop starts again at row 0
    assert backend.read(1).power_w == 101.0
    assert "malformed row" in capsys.readouterr().err


def test_replay_memory_does_not_grow_with_the_file(tmp_path):
    # before: the whole trace parsed into memory at ~19x its size (here ~4 MB of CSV: ~70 MB)
    path = tmp_path / "big.csv"
    _long_trace(path, 20_000)
    clock = ScriptedClock()
    tracemalloc.start()
    try:
        backend = ReplayBackend(path, clock=clock, wall=lambda: 1000.0)
        for _ in range(300):
            clock.now += 0.1
            backend.read(0)
            backend.read(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000
    assert backend.read(0).power_w == 100.0 + 300 % 50
