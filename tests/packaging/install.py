"""Install llm-dvfs the three ways users do, for the packaging tests: editable (the venv), from the wheel, and as
docker/Dockerfile builds its image.

Non-editable installs go into a `--target` folder and run with `python -S` and PYTHONPATH = that folder + the
venv's site-packages: `-S` skips the .pth files, so the venv's editable finder cannot stand in for the install
under test while the dependencies (Locust, Quart, ...) still come from the venv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_SITE = sysconfig.get_paths()["purelib"]


def build_wheel(source: Path, dist: Path) -> Path:
    """`pip wheel` without network: no build isolation, no dependencies."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("llm_dvfs-*.whl")
    return wheel


def pip_install_target(spec: str, target: Path) -> None:
    """`pip install SPEC` into `target`, dependencies left to the venv (they are installed there)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q",
                    "--target", str(target), spec], check=True, capture_output=True, timeout=300)


@dataclass(frozen=True)
class Install:
    """How to run Python (and so Locust) against one install of llm-dvfs, from `cwd`."""

    name: str
    cwd: Path
    site: Path | None = None  # None: the venv's own (editable) install

    def python(self) -> list[str]:
        return [sys.executable] if self.site is None else [sys.executable, "-S"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if self.site is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.site), VENV_SITE])
        return env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.python(), *args], cwd=self.cwd, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)


def docker_image(dockerfile: Path, context: Path, root: Path) -> Install:
    """Emulate the image `dockerfile` builds (no Docker engine here): its WORKDIR, COPY and RUN lines, in order,
    replayed under `root` as the filesystem root. A `RUN pip install ...` becomes a `--target` install whose paths
    are mapped under `root`; any other RUN line is refused, so a new Dockerfile step makes this fail loudly."""
    workdir = Path("/")
    site = root / "site-packages"

    def inside(path: str) -> Path:
        absolute = Path(path) if path.startswith("/") else workdir / path
        return root / absolute.relative_to("/")

    for line in _instructions(dockerfile):
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "WORKDIR":
            workdir = Path(rest) if rest.startswith("/") else workdir / rest
            inside(str(workdir)).mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *sources, dest = shlex.split(rest)
            for src in sources:
                target = inside(dest) / Path(src).name if dest.endswith("/") else inside(dest)
                if (context / src).is_dir():
                    shutil.copytree(context / src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context / src, target)
        elif op == "RUN":
            words = shlex.split(rest)
            if words[:2] != ["pip", "install"]:
                raise AssertionError(f"cannot emulate Dockerfile step: {line}")
            for spec in (w for w in words[2:] if not w.startswith("-")):
                path, _, extras = spec.partition("[")
                pip_install_target(str(inside(path)) + (f"[{extras}" if extras else ""), site)
        elif op not in ("FROM", "ENTRYPOINT", "CMD", "ENV", "LABEL", "EXPOSE", "ARG"):
            raise AssertionError(f"cannot emulate Dockerfile step: {line}")
    return Install("docker image (emulated)", inside(str(workdir)), site)


def _instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, comments dropped and `\\` continuations joined."""
    out, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out
