"""The committed dashboards are what the code generates, and are well-formed for Grafana (which cannot be
installed here): every panel queries the provisioned datasource, ids are unique, positions do not overlap."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.dashboards.panel_queries import (DASHBOARDS_DIR, NOT_IN_REPLAY, PROVISIONING_DIR, ROOT, load_dashboards,
                                     needs_hardware, panels, queries)
from llm_dvfs.commands.dashboards import cli
from llm_dvfs.commands.dashboards.generate import dashboard_files
from llm_dvfs.commands.dashboards.variables import DATASOURCE_UID

DASHBOARDS = load_dashboards()


def test_committed_files_are_fresh():
    """Fails when llm_dvfs/commands/dashboards changed but `llm-dvfs dashboards` was not re-run."""
    assert cli.main(["--check", "--out", str(DASHBOARDS_DIR), "--provisioning", str(PROVISIONING_DIR)]) == 0
    assert sorted(DASHBOARDS) == sorted(dashboard_files())


def test_check_reports_a_stale_file(tmp_path, capsys):
    out, prov = tmp_path / "dashboards", tmp_path / "provisioning"
    assert cli.main(["--out", str(out), "--provisioning", str(prov)]) == 0
    assert cli.main(["--check", "--out", str(out), "--provisioning", str(prov)]) == 0
    target = out / "llm-dvfs-overview.json"
    target.write_text(target.read_text().replace("Power per GPU", "Power per gpu"))
    assert cli.main(["--check", "--out", str(out), "--provisioning", str(prov)]) == 1
    assert "stale: " + str(target) in capsys.readouterr().err


def test_the_three_dashboards_exist():
    titles = {d["title"] for d in DASHBOARDS.values()}
    assert titles == {"LLM energy overview", "LLM prefill vs decode", "llm-dvfs exporter health"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_query_the_provisioned_datasource(name):
    dashboard = DASHBOARDS[name]
    data_panels = [p for p in panels(dashboard) if p["type"] != "row"]
    assert data_panels
    for panel in data_panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == DATASOURCE_UID
    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_ids_unique_and_titles_unique(name):
    all_panels = list(panels(DASHBOARDS[name]))
    ids = [p["id"] for p in all_panels]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in all_panels if p["type"] != "row"]
    assert len(titles) == len(set(titles))
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_grid_positions_fit_and_do_not_overlap(name):
    boxes = [(p["title"], p["gridPos"]) for p in panels(DASHBOARDS[name])]
    for title, g in boxes:
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, title
        assert g["x"] + g["w"] <= 24, title
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                 or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
        assert apart, f"{ta!r} overlaps {tb!r}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_template_variables_and_load_test_annotations(name):
    dashboard = DASHBOARDS[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"gpu", "instance"}
    for v in variables.values():
        assert v["datasource"]["uid"] == DATASOURCE_UID and v["includeAll"] and v["allValue"] == ".*"
    exprs = [a["expr"] for a in dashboard["annotations"]["list"]]
    assert any("llm_test_start_time_seconds" in e for e in exprs)
    start = next(a for a in dashboard["annotations"]["list"] if "llm_test_start_time_seconds" in a["expr"])
    assert start["useValueForTime"] and "* 1000" in start["expr"]  # Grafana wants milliseconds


def test_gpu_and_instance_variables_are_used():
    text = "\n".join(q.expr for d in DASHBOARDS.values() for q in queries(d))
    assert '$gpu"' in text and '$instance"' in text


def test_provisioning_points_grafana_at_the_datasource_and_dashboards():
    ds = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(d["uid"], d["type"]) for d in ds] == [(DATASOURCE_UID, "prometheus")]
    providers = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "llm-dvfs.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_grafana_is_not_a_python_package():
    assert not list((ROOT / "grafana").rglob("__init__.py"))


def test_command_line_bad_out_is_one_line_exit_2(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    done = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "dashboards", "--out", str(not_a_dir)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"llm-dvfs dashboards: error: {not_a_dir} exists and is not a "
                                                 "directory"]


def test_command_line_writes_into_the_working_directory(tmp_path):
    done = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "dashboards"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == sorted([*(f"grafana/dashboards/{n}" for n in DASHBOARDS),
                              "grafana/provisioning/dashboards/llm-dvfs.yml",
                              "grafana/provisioning/datasources/prometheus.yml"])
    assert (tmp_path / "grafana/dashboards/llm-dvfs-overview.json").read_text() == \
        (DASHBOARDS_DIR / "llm-dvfs-overview.json").read_text()


def test_hardware_only_queries_are_few_and_use_documented_names():
    """The queries a replayed trace cannot feed (skipped by the data check of the integration tests) name metrics
    from docs/interfaces.md, and hide no other exporter metric behind the exemption."""
    interfaces = (ROOT / "docs" / "interfaces.md").read_text()
    assert all(f"`{name}" in interfaces for name in NOT_IN_REPLAY)
    exempt = [q for d in DASHBOARDS.values() for q in queries(d) if needs_hardware(q)]
    assert exempt
    for q in exempt:
        assert set(re.findall(r"\bgpu_[a-z_]+", q.expr)) <= set(NOT_IN_REPLAY), q


def _exprs_everywhere() -> list[str]:
    """Panel and annotation queries plus the recording rules' expressions."""
    rules = yaml.safe_load((ROOT / "prometheus" / "rules.yml").read_text())
    return [q.expr for d in DASHBOARDS.values() for q in queries(d)] + \
        [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _names(prefix: str) -> set[str]:
    """Metric names with `prefix` in every expression, without histogram suffixes; recording-rule names (which
    carry colons) are left out."""
    found = set()
    for expr in _exprs_everywhere():
        for name in re.findall(rf"(?<![:\w])({prefix}\w+)(?![:\w])", expr):
            found.add(re.sub(r"_(bucket|count|sum)$", "", name))
    return found


def test_project_metric_names_are_the_documented_ones():
    """Catches a rename between the parts (docs/interfaces.md is the contract) without starting anything."""
    interfaces = (ROOT / "docs" / "interfaces.md").read_text()
    names = _names("gpu_") | _names("llm_") | _names("proxy_")
    names = {n for n in names if not n.startswith("llm_dvfs_exporter_")}  # self-metrics: only the prefix is fixed
    assert len(names) > 20
    undocumented = sorted(n for n in names if n not in interfaces and n.removesuffix("_total") not in interfaces)
    assert not undocumented


def test_vllm_metric_names_exist_in_the_installed_vllm():
    spec = importlib.util.find_spec("vllm")  # located, not imported: importing vLLM takes seconds
    if spec is None or spec.origin is None:
        pytest.skip("vllm not installed")
    metrics_dir = Path(spec.origin).parent / "v1" / "metrics"
    source = "".join(p.read_text() for p in metrics_dir.glob("*.py"))
    names = _names("vllm:")
    assert {"vllm:kv_cache_usage_perc", "vllm:time_to_first_token_seconds"} <= names
    unknown = sorted(n for n in names if f'"{n.removesuffix("_total")}"' not in source)
    assert not unknown
