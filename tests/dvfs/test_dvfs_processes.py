"""The sweep and `llm-dvfs dvfs` as real processes, with the fake GPU at the NVML call boundary: a fake `pynvml`
module first on the subprocess's PYTHONPATH whose state (and log of every set and reset) persists to a JSON file,
so it survives a real kill -9 and is seen by the later `llm-dvfs dvfs restore`. No product code knows of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dvfs.fake_nvml_control import NVML_ERROR_NO_PERMISSION, FakeNvmlControl, as_found, h100s
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYNVML = Path(__file__).resolve().parent / "fake_pynvml"


@dataclass
class FakeDevice:
    state: Path
    env: dict[str, str]

    def load(self) -> FakeNvmlControl:
        return FakeNvmlControl.load(self.state)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "llm_dvfs.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "llm_dvfs.cli", *args], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fake_device(tmp_path: Path, gpus=None) -> FakeDevice:
    state = tmp_path / "fake-nvml.json"
    FakeNvmlControl(gpus or h100s(2)).save(state)
    env = {**os.environ, "FAKE_NVML_STATE": str(state), "XDG_STATE_HOME": str(tmp_path / "xdg"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_PYNVML), os.environ.get("PYTHONPATH")]))}
    return FakeDevice(state, env)


@pytest.fixture
def device(tmp_path) -> FakeDevice:
    return fake_device(tmp_path)


def sweep(run_dir: Path, *extra: str) -> list[str]:
    """A sweep that contacts no server before its first level (model and mode given)."""
    return ["sweep", "--host", f"http://127.0.0.1:{free_port()}", "--model", "tiny", "--mode", "single",
            "--concurrency", "1", "--run-dir", str(run_dir), *extra]


CHANGES = ("--sm-clocks", "1200", "--power-limits", "300", "--allow-clock-changes")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def final_error(result: subprocess.CompletedProcess) -> str:
    """A sweep that got going prints progress first; its error is still one line, the last, with no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("llm-dvfs sweep: error: ")
    return last


def changed(device: FakeDevice) -> bool:
    gpus = device.load().gpus
    return all(g.locked_sm == [1200, 1200] and g.power_limit_mw == 300_000 for g in gpus)


def assert_restored(device: FakeDevice, journal: Path) -> None:
    fake = device.load()
    assert all(as_found(g, 700_000) for g in fake.gpus)
    resets = [(e["call"], e["args"]) for e in fake.log[-4:]]
    assert resets == [("nvmlDeviceResetGpuLockedClocks", []), ("nvmlDeviceSetPowerManagementLimit", [700_000])] * 2
    assert json.loads(journal.read_text())["restored"] is True
    assert not (Path(device.env["XDG_STATE_HOME"]) / "llm-dvfs" / "active-journal").exists()


def test_without_the_flag_the_sweep_refuses_in_one_line_and_sets_nothing(device, tmp_path):
    err = one_line_error(device.run(*sweep(tmp_path / "run", "--sm-clocks", "1200")))
    assert "needs --allow-clock-changes" in err and "nothing was changed" in err
    assert device.load().log == []


@pytest.mark.parametrize("args, message", [
    (("--sm-clocks", "1650"), "SM clock 1650 MHz is not supported; nearest supported: 1600 or 1755 MHz"),
    (("--memory-clocks", "2000"), "memory clock 2000 MHz is not supported; nearest supported: 1593 or 2619 MHz"),
    (("--power-limits", "750"), "power limit 750 W is outside its range 200-700 W"),
    (("--decode-sm-clocks", "1200"), "need --decode-gpus"),
    (("--decode-sm-clocks", "1200", "--decode-gpus", "5"), "no GPU with index 5"),
])
def test_unsupported_values_are_refused_up_front(device, tmp_path, args, message):
    err = one_line_error(device.run(*sweep(tmp_path / "run", *args, "--allow-clock-changes")))
    assert message in err
    assert device.load().log == [] and not (tmp_path / "run").exists()


def test_dry_run_prints_every_change_and_restore_and_calls_no_setter(device, tmp_path):
    result = device.run(*sweep(tmp_path / "run", "--sm-clocks", "1600,1200", "--prefill-power-limits", "300",
                               "--prefill-gpus", "0", "--dry-run"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    u0, u1 = (g.uuid for g in device.load().gpus)
    assert lines == [
        f"dry run: would write the restore journal {tmp_path / 'run' / 'dvfs-journal.json'} (nothing is changed)",
        *[line for clock in (1600, 1200) for line in (
            f"would lock the SM clock at {clock} MHz on GPU 0 ({u0}) [sm{clock}-prefill-pl300]",
            f"would set the power limit to 300 W on GPU 0 ({u0}) [sm{clock}-prefill-pl300]",
            f"would lock the SM clock at {clock} MHz on GPU 1 ({u1}) [sm{clock}-prefill-pl300]",
            f"would wait 5 s, then run concurrency 1 into {tmp_path / 'run' / f'setting-sm{clock}-prefill-pl300'}")],
        f"would reset the locked SM clock on GPU 0 ({u0}) [default]",
        f"would set the power limit back to 700 W on GPU 0 ({u0}) [default]",
        f"would reset the locked SM clock on GPU 1 ({u1}) [default]",
        f"would wait 5 s, then run concurrency 1 into {tmp_path / 'run' / 'setting-default'}",
        f"would restore GPU 0 ({u0}): reset the locked SM clock",
        f"would restore GPU 0 ({u0}): set the power limit back to 700 W",
        f"would restore GPU 1 ({u1}): reset the locked SM clock"]
    assert device.load().log == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_the_sweep_restores_every_gpu(device, tmp_path, sig):
    proc = device.start(*sweep(tmp_path / "run", *CHANGES, "--settle", "120"))
    try:
        assert wait_until(lambda: changed(device), timeout=60), proc.stderr
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert_restored(device, tmp_path / "run" / "dvfs-journal.json")


def test_an_exception_in_the_sweep_restores_and_ends_in_one_line(device, tmp_path):
    result = device.run(*sweep(tmp_path / "run", *CHANGES, "--settle", "0", "--backend",
                               f"replay:{tmp_path / 'no-such-trace.csv'}"))
    assert "the exporter exited" in final_error(result)
    assert_restored(device, tmp_path / "run" / "dvfs-journal.json")
    assert [e["args"] for e in device.load().log[:2]] == [[1200, 1200], [300_000]]  # it did change, then undid


def test_after_kill_9_a_new_sweep_refuses_and_dvfs_restore_puts_everything_back(device, tmp_path):
    journal = tmp_path / "run" / "dvfs-journal.json"
    proc = device.start(*sweep(tmp_path / "run", *CHANGES, "--settle", "120"))
    try:
        assert wait_until(lambda: changed(device), timeout=60)
    finally:
        proc.kill()  # SIGKILL: no handler, no finally
        proc.wait(timeout=30)
    assert changed(device) and json.loads(journal.read_text())["restored"] is False
    setters = len(device.load().log)

    err = one_line_error(device.run(*sweep(tmp_path / "run2", *CHANGES)))
    assert f"an unrestored restore journal exists at {journal}" in err and "llm-dvfs dvfs restore" in err
    assert len(device.load().log) == setters and not (tmp_path / "run2").exists()

    restored = device.run("dvfs", "restore")
    assert restored.returncode == 0, restored.stderr
    assert f"restored every GPU in {journal}" in restored.stdout
    assert_restored(device, journal)

    again = device.run("dvfs", "restore")  # nothing pending: harmless
    assert again.returncode == 0 and "nothing to restore" in again.stdout
    explicit = device.run("dvfs", "restore", "--journal", str(journal))
    assert explicit.returncode == 0 and "already restored" in explicit.stdout
    assert len(device.load().log) == setters + 4


def test_a_gpu_refusing_half_way_leaves_the_first_restored(tmp_path):
    gpus = h100s(2)
    gpus[1].fail_calls = {"nvmlDeviceSetPowerManagementLimit": NVML_ERROR_NO_PERMISSION}
    device = fake_device(tmp_path, gpus)
    err = final_error(device.run(*sweep(tmp_path / "run", "--power-limits", "300", "--allow-clock-changes",
                                        "--settle", "0")))
    assert "GPU 1: setting the power limit to 300 W: no permission" in err and "needs root" in err
    fake = device.load()
    assert [(e["call"], e["uuid"] == fake.gpus[1].uuid, e["args"], e["error"]) for e in fake.log] == [
        ("nvmlDeviceSetPowerManagementLimit", False, [300_000], None),
        ("nvmlDeviceSetPowerManagementLimit", True, [300_000], NVML_ERROR_NO_PERMISSION),
        ("nvmlDeviceSetPowerManagementLimit", False, [700_000], None)]  # GPU 1 changed nothing: no undo
    assert fake.gpus[0].power_limit_mw == 700_000
    journal = json.loads((tmp_path / "run" / "dvfs-journal.json").read_text())
    assert journal["restored"] and [g["applied"] for g in journal["gpus"]] == [["power_limit"], []]


def test_show_lists_supported_values_and_privilege_and_changes_nothing(device):
    result = device.run("dvfs", "show")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "GPU 1 NVIDIA H100 80GB HBM3 (GPU-00000001-fake-ctrl-0000-000000000000, nvidia)" in out
    assert "supported SM clocks: 11 values, 345-1980 MHz" in out and "supported memory clocks: 1593, 2619 MHz" in out
    assert "power limit range: 200-700 W, default 700 W" in out and "now: SM clock 1980 MHz" in out
    assert "privilege: " in out and "restore journal: none pending" in out
    assert device.load().log == []
