"""The wheel installs one top-level name, `llm_dvfs`, and every Python package folder of the checkout in it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.packaging.install import ROOT

PART_FOLDERS = ("exporter", "loadgen", "serving", "analysis")

pytestmark = pytest.mark.timeout(300)


def _package_folders() -> set[str]:
    """Every folder with an __init__.py under the parts and llm_dvfs/, as the wheel must name it."""
    found = set()
    for top in (*PART_FOLDERS, "llm_dvfs"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT).as_posix()
            found.add(rel if top == "llm_dvfs" else f"llm_dvfs/{rel}")
    return found


def test_top_level_is_only_llm_dvfs_and_every_package_is_in_the_wheel(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["llm_dvfs"]
    assert {n.split("/")[0] for n in names} == {"llm_dvfs", Path(top_level).parent.name}
    packaged = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    missing = _package_folders() - packaged
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert "llm_dvfs/loadgen/single.py" in names and "llm_dvfs/exporter/__main__.py" in names


@pytest.mark.parametrize("kind", ["editable", "wheel", "docker"])
def test_python_m_llm_dvfs_exporter_help(installs, kind):
    done = installs[kind].run("-m", "llm_dvfs.exporter", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: llm-dvfs exporter")


def test_the_wheel_alone_imports_every_part_outside_the_checkout(installs, tmp_path):
    wheel = installs["wheel"]
    done = type(wheel)("wheel, elsewhere", tmp_path, wheel.site).run("-c", (
        "import llm_dvfs, llm_dvfs.loadgen.user, llm_dvfs.exporter.cli, llm_dvfs.serving.proxy.cli, "
        "llm_dvfs.analysis.report, llm_dvfs.commands.sweep.cli; print(llm_dvfs.loadgen.user.__file__)"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(wheel.site))


@pytest.mark.parametrize("old", ["exporter", "loadgen", "serving", "analysis"])
def test_the_old_top_level_names_are_not_installed(installs, tmp_path, old):
    """`python -m exporter` is gone: outside the checkout the install has no `exporter` (nor loadgen, ...)."""
    wheel = installs["wheel"]
    done = type(wheel)("wheel, elsewhere", tmp_path, wheel.site).run("-m", old)
    assert done.returncode == 1 and f"No module named {old}" in done.stderr, done.stdout + done.stderr
