"""Prometheus config, recording rules and every dashboard query pass Debian's promtool; the rules compute the
figures they claim on hand-computable series."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards.panel_queries import ROOT, load_dashboards, queries, substitute

PROMETHEUS_DIR = ROOT / "prometheus"
RULES_TEST = ROOT / "tests" / "fixtures" / "dashboards" / "rules_test.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def check_exprs_as_rules(exprs: list[str], path: Path) -> subprocess.CompletedProcess:
    """promtool parses PromQL only inside rule files: wrap each query as a recording rule."""
    rules = [{"record": f"dashboard_query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    return promtool("check", "rules", str(path))


def test_prometheus_config_is_valid():
    done = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_recording_rules_are_valid():
    done = promtool("check", "rules", str(PROMETHEUS_DIR / "rules.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_recording_rules_compute_the_documented_figures():
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_parses(tmp_path):
    all_queries = [q for d in load_dashboards().values() for q in queries(d)]
    assert len(all_queries) > 40
    done = check_exprs_as_rules([substitute(q.expr, range_s=300) for q in all_queries], tmp_path / "q.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(all_queries)} rules found" in done.stdout + done.stderr


def test_template_variable_queries_parse(tmp_path):
    """label_values(SELECTOR, label) is Grafana's; the SELECTOR inside must be valid PromQL."""
    selectors = []
    for d in load_dashboards().values():
        for v in d["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", v["query"])
            assert m, v["query"]
            selectors.append(m.group(1))
    done = check_exprs_as_rules(selectors, tmp_path / "v.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checker_rejects_a_broken_query(tmp_path):
    done = check_exprs_as_rules(["sum by (gpu (gpu_power_watts)"], tmp_path / "bad.yml")
    assert done.returncode != 0
