"""The samples CSV's one writer and one reader: a round trip, row-by-row reading, strict and lenient modes."""

from __future__ import annotations

import pytest

from llm_dvfs.exporter.backends.base import GpuSample
from llm_dvfs.exporter.samples_csv import FIELDS, SamplesReader, SamplesWriter, TraceFormatError, sample_values

MB = 1024 * 1024


def sample(watts: float, busy: bool) -> GpuSample:
    return GpuSample(power_w=watts, utilization=0.5, temperature_c=40.0, memory_used_bytes=1000 * MB,
                     memory_total_bytes=81559 * MB, clocks_hz={"sm": 1980e6, "memory": 2619e6},
                     power_limit_w=700.0, performance_state=0,
                     clock_events={"gpu_idle": not busy, "sw_power_cap": busy})


def test_what_the_writer_writes_the_reader_reads_back(tmp_path):
    path = tmp_path / "s.csv"
    out = SamplesWriter(path, [("gpu", 0), ("gpu", 1)])
    out.write(1000.0, [sample_values(sample(100.5, False), 0.0), sample_values(None, None)])  # GPU 1 not read
    out.write(1000.1, [sample_values(sample(350.25, True), 22.5), sample_values(sample(90.0, False), 9.0)])
    out.close()
    reader = SamplesReader(path)
    assert reader.prefix == "gpu" and reader.devices == [0, 1]
    assert reader.fields(0) == [f for f in FIELDS if f != "clock_events"]
    first, second = reader.rows()
    assert (first.line, first.timestamp, second.timestamp) == (2, 1000.0, 1000.1)
    assert first.values[1] == dict.fromkeys(reader.fields(1)) and first.clock_events[1] is None
    assert first.clock_events[0] == {"gpu_idle"} and second.clock_events[0] == {"sw_power_cap"}
    v = second.values[0]
    assert (v["power"], v["utilization"], v["memory_used"], v["sm_clock"], v["energy_j"], v["graphics_clock"]) == \
        (350.25, 50.0, 1000.0, 1980.0, 22.5, None)


def test_rows_are_read_one_at_a_time_and_can_be_read_again(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,datetime,gpu_0_power\n1,a,100\n2,b,110\n3,c,oops\n")
    rows = SamplesReader(path).rows()
    assert next(rows).values[0]["power"] == 100.0 and next(rows).timestamp == 2.0  # before the bad line is read
    with pytest.raises(TraceFormatError, match=r"s\.csv:4: 'oops' is not a number"):
        next(rows)
    assert [r.timestamp for r in SamplesReader(path, strict=False).rows()] == [1.0, 2.0, 3.0]


def test_lenient_reading_keeps_what_a_report_can_use(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,datetime,gpu_0_power,gpu_0_pstate,gpu_0_foo,cpu_0_power\n"
                    "1,a,100,P0,x,5\n,b,100,,,\n2,c,nan,3,,\n3,d,10")  # no timestamp; NaN; torn last line
    reader = SamplesReader(path, strict=False)
    assert reader.devices == [0] and reader.fields(0) == ["power", "pstate"]  # unknown and other-prefix columns
    assert [(r.timestamp, r.values[0]["power"], r.values[0]["pstate"]) for r in reader.rows()] == \
        [(1.0, 100.0, None), (2.0, None, 3.0), (3.0, 10.0, None)]
    with pytest.raises(TraceFormatError, match="'P0' is not a number"):
        list(SamplesReader(path).rows())


def test_strict_reading_refuses_a_value_that_is_not_finite(tmp_path):
    """The other strict refusals are checked through the replay backend (test_replay_recorder.py)."""
    path = tmp_path / "s.csv"
    path.write_text("timestamp,datetime,gpu_0_power\n1,a,inf\n")
    with pytest.raises(TraceFormatError, match=r"s\.csv:2: 'inf' is not a finite number"):
        list(SamplesReader(path).rows())


def test_an_unreadable_file_is_one_error(tmp_path):
    with pytest.raises(TraceFormatError, match="cannot read samples CSV .*missing.csv"):
        SamplesReader(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"timestamp,datetime\n\xff\xfe\x00\n")
    with pytest.raises(TraceFormatError, match="cannot read samples CSV"):
        list(SamplesReader(tmp_path / "bin.csv").rows())
