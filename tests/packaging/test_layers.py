"""README's architecture drawing, enforced: imports only go down (cli → commands → parts → common).

Parts may read what another part owns (analysis reads the exporter's CSV and loadgen's records, loadgen reads the
exporter's scrape), but never the reverse of those edges, never a command, never the dispatcher; the leaf layer
imports nothing of llm_dvfs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

LEVEL = {"common": 0, "exporter": 1, "loadgen": 1, "serving": 1, "analysis": 1, "commands": 2, "cli": 3}
#: part → the other parts it may import (the data flows exporter → loadgen → analysis; serving stands alone)
PART_READS = {"exporter": set(), "serving": set(), "loadgen": {"exporter"}, "analysis": {"exporter", "loadgen"}}


def _layer_of_file(path: Path, root: Path) -> str:
    rel = path.relative_to(root).parts
    if rel[0] != "llm_dvfs":
        return rel[0]
    if rel[1] == "cli.py":
        return "cli"
    return rel[1] if rel[1] in ("common", "commands") else "root"


def _layer_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "llm_dvfs" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "llm_dvfs":  # `from llm_dvfs import loadgen`
                names += [f"llm_dvfs.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def _violations(root: Path) -> list[str]:
    found = []
    for top in ("exporter", "loadgen", "serving", "analysis", "llm_dvfs"):
        for path in sorted((root / top).rglob("*.py")):
            src = _layer_of_file(path, root)
            for name in _imports(path):
                dst = _layer_of_module(name)
                if dst is None or dst == src or dst not in LEVEL or src not in LEVEL:
                    continue
                if LEVEL[dst] > LEVEL[src]:
                    found.append(f"{path.relative_to(root)} imports {name} (up: {src} → {dst})")
                elif LEVEL[dst] == LEVEL[src] == 1 and dst not in PART_READS[src]:
                    found.append(f"{path.relative_to(root)} imports {name} (sideways: {src} → {dst})")
    return found


def test_imports_only_go_down_the_layers() -> None:
    assert _violations(ROOT) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward and a sideways import are both reported."""
    (tmp_path / "exporter").mkdir()
    (tmp_path / "exporter" / "probe.py").write_text("from llm_dvfs.cli import main\nfrom llm_dvfs.analysis import x\n")
    (tmp_path / "llm_dvfs" / "common").mkdir(parents=True)
    (tmp_path / "llm_dvfs" / "common" / "probe.py").write_text("from llm_dvfs.commands.sweep import cli\n")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "fine.py").write_text("from llm_dvfs.loadgen.results import read_requests\n")
    found = _violations(tmp_path)
    assert sorted(found) == [
        "exporter/probe.py imports llm_dvfs.analysis (sideways: exporter → analysis)",
        "exporter/probe.py imports llm_dvfs.cli (up: exporter → cli)",
        "llm_dvfs/common/probe.py imports llm_dvfs.commands.sweep (up: common → commands)",
    ]
