"""What the installed code needs is declared, and the installed files name no machine's own paths."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.packaging.install import ROOT

SOURCE_FOLDERS = ("exporter", "loadgen", "serving", "analysis", "llm_dvfs")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    return {_canonical(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0]) for spec in specs}


def _imported_top_level() -> dict[str, str]:
    """Third-party top-level module -> one file importing it."""
    found: dict[str, str] = {}
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("llm_dvfs", "__future__"):
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared_in_pyproject():
    declared, owners = _declared(), packages_distributions()
    undeclared = {module: where for module, where in _imported_top_level().items()
                  if not ({_canonical(d) for d in owners.get(module, [])} | {_canonical(module)}) & declared}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies or extras: {undeclared}"
    assert "hypercorn" in declared


def test_no_file_names_a_path_outside_the_repository():
    machine_path = re.compile(r"(?<![\w.~])/(?:work|home|Users|tmp/stage|mnt)/\w")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for folder in (*SOURCE_FOLDERS, "scripts", "docker")
                 for path in (ROOT / folder).rglob("*") if path.is_file() and path.suffix in (".py", ".sh", ".md", "")
                 for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                 if machine_path.search(line)]
    assert not offenders, offenders
