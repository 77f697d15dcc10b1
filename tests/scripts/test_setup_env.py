"""scripts/setup_env.sh never stops, disables or kills what it did not start, installs Debian packages without
recommends, and keeps the package's postinst from starting a system Prometheus through a temporary policy-rc.d.

apt-get itself is never run here: a stand-in `apt-get` first on PATH records what it was asked and what the
policy-rc.d in place answered while it ran, in a temporary root."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "scripts" / "setup_env.sh", ROOT / "scripts" / "apt_install.sh"]

STAND_IN = """#!/bin/sh
# stand-in apt-get: what was asked, and what policy-rc.d answers right now for starting prometheus
echo "args: $*" >> "$LOG"
if [ -x "$POLICY" ]; then "$POLICY" prometheus start; echo "policy: $?" >> "$LOG"; else echo "policy: none" >> "$LOG"; fi
exit "${STAND_IN_STATUS:-0}"
"""


def _commands(path: Path) -> list[str]:
    return [line.split("#", 1)[0] for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_nothing_is_stopped_disabled_or_killed(script):
    for line in _commands(script):
        assert not re.search(r"\b(systemctl|service|pkill|killall|kill|invoke-rc\.d)\b", line), line


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_apt_install_skips_recommends(script):
    installs = [line for line in _commands(script) if re.search(r"apt(-get)?\s.*\binstall\b", line)]
    assert all("--no-install-recommends" in line for line in installs), installs
    assert installs or script.name == "setup_env.sh"


def test_setup_env_installs_through_the_policy_helper():
    text = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert "apt_install_without_starting" in text and "apt_install.sh" in text


def _install(tmp_path: Path, status: int = 0) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    bin_dir, policy = tmp_path / "bin", tmp_path / "usr" / "sbin" / "policy-rc.d"
    bin_dir.mkdir(exist_ok=True)
    policy.parent.mkdir(parents=True, exist_ok=True)
    (bin_dir / "apt-get").write_text(STAND_IN)
    (bin_dir / "apt-get").chmod(0o755)
    log = tmp_path / "apt.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log),
           "POLICY": str(policy), "LLM_DVFS_POLICY_RC_D": str(policy), "STAND_IN_STATUS": str(status)}
    done = subprocess.run(["bash", "-c", f'set -euo pipefail; . "{ROOT}/scripts/apt_install.sh"; '
                           'apt_install_without_starting "" prometheus docker-compose'],
                          env=env, capture_output=True, text=True, timeout=30)
    return done, log.read_text().splitlines(), policy


def test_no_service_may_start_during_the_install_and_the_policy_goes_after(tmp_path):
    done, log, policy = _install(tmp_path)
    assert done.returncode == 0, done.stderr
    assert log == ["args: install -y -qq --no-install-recommends prometheus docker-compose", "policy: 101"]
    assert not policy.exists()


def test_an_existing_policy_rc_d_is_left_alone(tmp_path):
    policy = tmp_path / "usr" / "sbin" / "policy-rc.d"
    policy.parent.mkdir(parents=True)
    admin = "#!/bin/sh\n# the administrator's own policy\nexit 0\n"
    policy.write_text(admin)
    policy.chmod(0o755)
    done, log, _ = _install(tmp_path)
    assert done.returncode == 0 and log[-1] == "policy: 0"
    assert policy.read_text() == admin


def test_a_failed_install_fails_and_still_removes_the_policy(tmp_path):
    done, log, policy = _install(tmp_path, status=100)
    assert done.returncode == 100 and log[-1] == "policy: 101"
    assert not policy.exists()
