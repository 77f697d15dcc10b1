"""AMD: the power cap through amdsmi at its call boundary; clock locking is refused as NVIDIA-only."""

from __future__ import annotations

import pytest

from llm_dvfs.commands.dvfs.amdsmi import AmdSmiControl
from llm_dvfs.commands.dvfs.control import Limits, NoPermissionError
from llm_dvfs.commands.dvfs.plan import Request, cross, validate
from llm_dvfs.commands.dvfs.session import DvfsSession
from llm_dvfs.common.errors import UsageError
from tests.dvfs.fake_amdsmi_control import AMDSMI_STATUS_NO_PERM, FakeAmdSmiControl
from tests.exporter.fake_amdsmi import FakeAmdGpu


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_power_cap_is_set_in_microwatts_and_restored_to_the_value_read_before(tmp_path):
    fake = FakeAmdSmiControl([FakeAmdGpu(power_cap_uw=700_000_000)])
    control = AmdSmiControl(fake)
    assert control.limits(0) == Limits(None, None, (300.0, 750.0), 750.0)
    settings = cross(Request({("all", "power_limit"): [450]}, {"all": [0]}))
    validate(settings, {0: control.gpus()[0]}, {0: control.limits(0)})
    with DvfsSession(control, settings, tmp_path / "j.json", None, say=lambda _: None) as session:
        session.apply(settings[0])
        assert fake.gpus[0].power_cap_uw == 450_000_000
    assert [cap for _, cap, _ in fake.log] == [450_000_000, 700_000_000]  # the change, then the restore
    assert fake.gpus[0].power_cap_uw == 700_000_000


def test_locking_clocks_on_amd_is_refused_up_front_as_nvidia_only():
    control = AmdSmiControl(FakeAmdSmiControl())
    with pytest.raises(UsageError, match="locking the SM clock is NVIDIA-only"):
        validate(cross(Request({("all", "sm_clock"): [1500]}, {"all": [0]})), {0: control.gpus()[0]},
                 {0: control.limits(0)})


def test_no_permission_is_one_line_saying_root_is_needed():
    control = AmdSmiControl(FakeAmdSmiControl(refuse=AMDSMI_STATUS_NO_PERM))
    with pytest.raises(NoPermissionError, match="GPU 0: setting the power cap to 450 W: no permission; .*needs root"):
        control.set_power_limit(0, 450)
