"""One wheel per test session, and the three installs the packaging tests run against."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.install import ROOT, Install, build_wheel, docker_image, pip_install_target
from tests.support import clean_copy


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout, so the build never writes build/ or egg-info into the shared tree."""
    source = clean_copy(tmp_path_factory.mktemp("source"))
    return build_wheel(source, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Install]:
    site = tmp_path_factory.mktemp("wheel-site")
    pip_install_target(str(wheel), site)
    return {
        "editable": Install("editable (the venv)", ROOT),
        # cwd = the checkout: its own llm_dvfs/ comes first on sys.path, ahead of the installed one
        "wheel": Install("wheel, run from the checkout", ROOT, site),
        "docker": docker_image(ROOT / "docker" / "Dockerfile", ROOT, tmp_path_factory.mktemp("image")),
    }
