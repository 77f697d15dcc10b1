"""The samples CSV reader: empty cells stay None, CPU-only recordings are read, bad files are one error."""

from __future__ import annotations

import pytest

from llm_dvfs.analysis.samples import read_samples
from llm_dvfs.common.errors import UsageError


def test_empty_cells_are_none_and_unknown_columns_are_ignored(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("timestamp,datetime,gpu_0_power,gpu_0_energy_j,gpu_0_pstate,other\n"
                 "1.0,x,100.5,,P0,z\n2.0,x,,3.5,,z\n3.0,x,10")  # torn last row: missing cells
    s = read_samples(p)
    assert s.timestamps == [1.0, 2.0, 3.0]
    assert s.series(0, "power") == [100.5, None, 10.0]
    assert s.series(0, "energy_j") == [None, 3.5, None]
    assert s.has(0, "power") and not s.has(0, "temperature") and s.gpus == [0]


def test_host_backend_cpu_columns_are_read_as_devices(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("timestamp,datetime,cpu_0_power,cpu_0_utilization\n1.0,x,,12\n")
    s = read_samples(p)
    assert s.prefix == "cpu" and s.gpus == [0] and s.series(0, "power") == [None]


def test_not_a_samples_csv_is_a_usage_error(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="not a samples CSV"):
        read_samples(p)
    with pytest.raises(UsageError, match="cannot read"):
        read_samples(tmp_path / "missing.csv")
