"""Changing and restoring settings at the NVML call boundary, in process: FakeNvmlControl records every set and
reset. The journal comes first, the restore always follows, restoring twice is harmless, a dry run sets nothing."""

from __future__ import annotations

import json

import pytest

from llm_dvfs.commands.dvfs import journal as journals
from llm_dvfs.commands.dvfs.control import NoPermissionError
from llm_dvfs.commands.dvfs.nvml import NvmlControl
from llm_dvfs.commands.dvfs.plan import Request, cross
from llm_dvfs.commands.dvfs.session import DvfsSession
from llm_dvfs.common.errors import UsageError
from tests.dvfs.fake_nvml_control import NVML_ERROR_NO_PERMISSION, FakeNvmlControl, as_found, h100s

SM_AND_LIMIT = Request({("all", "sm_clock"): [1200], ("all", "power_limit"): [350]}, {"all": [0, 1]})


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def calls(fake: FakeNvmlControl) -> list[tuple[str, str, list, int | None]]:
    """(call, GPU index as "000", args, error) of every set and reset, in order."""
    index = {g.uuid: f"{i:03d}" for i, g in enumerate(fake.gpus)}
    return [(e["call"], index[e["uuid"]], e["args"], e["error"]) for e in fake.log]


def test_journal_first_then_changes_then_restore_on_normal_end(tmp_path):
    fake = FakeNvmlControl(h100s(2))
    path = tmp_path / "run" / "dvfs-journal.json"
    with DvfsSession(NvmlControl(fake), cross(SM_AND_LIMIT), path, tmp_path / "run", say=lambda _: None) as s:
        assert fake.log == []  # the journal is on disk before the first change
        journal = json.loads(path.read_text())
        assert [(g["uuid"], g["changes"], g["original"]) for g in journal["gpus"]] == [
            (fake.gpus[i].uuid, ["sm_clock", "power_limit"], {"sm_clock": 1980, "power_limit": 700.0}) for i in (0, 1)]
        assert journals.active() == path.resolve() and not journal["restored"]
        s.apply(s.settings[0])
        assert fake.gpus[0].locked_sm == [1200, 1200] and fake.gpus[1].power_limit_mw == 350_000
    assert all(as_found(g, 700_000) for g in fake.gpus)
    assert calls(fake)[-4:] == [("nvmlDeviceResetGpuLockedClocks", "000", [], None),
                                ("nvmlDeviceSetPowerManagementLimit", "000", [700_000], None),
                                ("nvmlDeviceResetGpuLockedClocks", "001", [], None),
                                ("nvmlDeviceSetPowerManagementLimit", "001", [700_000], None)]
    assert json.loads(path.read_text())["restored"] is True and journals.active() is None


def test_an_exception_inside_the_sweep_still_restores(tmp_path):
    fake = FakeNvmlControl(h100s(1))
    with pytest.raises(RuntimeError):
        with DvfsSession(NvmlControl(fake), cross(Request({("all", "sm_clock"): [600]}, {"all": [0]})),
                         tmp_path / "j.json", None, say=lambda _: None) as s:
            s.apply(s.settings[0])
            assert fake.gpus[0].clocks_mhz[1] == 600
            raise RuntimeError("a level failed")
    assert as_found(fake.gpus[0], 700_000) and fake.gpus[0].clocks_mhz[1] == 1980


def test_a_change_refused_half_way_restores_the_gpu_already_changed(tmp_path):
    gpus = h100s(2)
    gpus[1].fail_calls = {"nvmlDeviceSetGpuLockedClocks": NVML_ERROR_NO_PERMISSION}
    fake = FakeNvmlControl(gpus)
    with pytest.raises(NoPermissionError, match="GPU 1: locking the SM clock at 1200 MHz: no permission; .*needs "
                                                "root"):
        with DvfsSession(NvmlControl(fake), cross(Request({("all", "sm_clock"): [1200]}, {"all": [0, 1]})),
                         tmp_path / "j.json", None, say=lambda _: None) as s:
            s.apply(s.settings[0])
    assert calls(fake) == [("nvmlDeviceSetGpuLockedClocks", "000", [1200, 1200], None),
                           ("nvmlDeviceSetGpuLockedClocks", "001", [1200, 1200], NVML_ERROR_NO_PERMISSION),
                           ("nvmlDeviceResetGpuLockedClocks", "000", [], None)]  # GPU 1 never changed
    assert as_found(gpus[0], 700_000) and json.loads((tmp_path / "j.json").read_text())["restored"]


def test_restoring_twice_is_harmless(tmp_path):
    fake = FakeNvmlControl(h100s(1))
    path = tmp_path / "j.json"
    session = DvfsSession(NvmlControl(fake), cross(Request({("all", "power_limit"): [300]}, {"all": [0]})), path, None,
                          say=lambda _: None)
    with session:
        session.apply(session.settings[0])
    journals.restore(NvmlControl(fake), path, say=lambda _: None)
    assert as_found(fake.gpus[0], 700_000)
    assert [c[0] for c in calls(fake)] == ["nvmlDeviceSetPowerManagementLimit"] * 3
    assert [c[2] for c in calls(fake)] == [[300_000], [700_000], [700_000]]


def test_a_dry_run_prints_every_change_and_restore_and_sets_nothing(tmp_path):
    fake = FakeNvmlControl(h100s(2))
    said: list[str] = []
    session = DvfsSession(NvmlControl(fake), cross(SM_AND_LIMIT), tmp_path / "j.json", None, dry_run=True,
                          say=said.append)
    with session:
        for setting in session.settings:
            session.apply(setting)
    assert fake.log == [] and not (tmp_path / "j.json").exists() and journals.active() is None
    text = "\n".join(said)
    for gpu in ("GPU-00000000", "GPU-00000001"):
        assert f"would lock the SM clock at 1200 MHz on GPU {int(gpu[-1])} ({gpu}" in text
        assert f"would set the power limit to 350 W on GPU {int(gpu[-1])} ({gpu}" in text
        assert f"would restore GPU {int(gpu[-1])} ({gpu}-fake-ctrl-0000-000000000000): reset the locked SM clock" \
            in text
        assert f"would restore GPU {int(gpu[-1])} ({gpu}-fake-ctrl-0000-000000000000): set the power limit back " \
               "to 700 W" in text
    assert not any(call.startswith("nvmlDeviceSet") or call.startswith("nvmlDeviceReset")
                   for g in fake.gpus for call in g.calls)


def test_a_new_session_refuses_while_a_journal_is_unrestored(tmp_path):
    fake = FakeNvmlControl(h100s(1))
    first = tmp_path / "first.json"
    journals.save(first, journals.new_journal(NvmlControl(fake).gpus(), {0: ["sm_clock"]},
                                              {0: {"sm_clock": 1980}}, None))
    journals.activate(first)
    with pytest.raises(UsageError, match=f"an unrestored restore journal exists at {first}"):
        with DvfsSession(NvmlControl(fake), cross(Request({("all", "sm_clock"): [600]}, {"all": [0]})),
                         tmp_path / "second.json", None, say=lambda _: None):
            pass
    assert fake.log == []
