"""The crossing of settings and its checks against what each GPU supports, before anything changes."""

from __future__ import annotations

import pytest

from llm_dvfs.commands.dvfs.control import GpuIdentity, Limits
from llm_dvfs.commands.dvfs.plan import Request, cross, touched, validate
from llm_dvfs.common.errors import UsageError

GPUS = {i: GpuIdentity(i, f"GPU-{i}", "NVIDIA H100", "nvidia") for i in (0, 1)}
LIMITS = {i: Limits((345, 1200, 1600, 1755, 1980), (2619,), (200.0, 700.0), 700.0) for i in (0, 1)}


def test_every_clock_crosses_every_power_limit_on_every_gpu_then_the_default():
    settings = cross(Request({("all", "sm_clock"): [1980, 1200], ("all", "power_limit"): [700, 350]},
                             {"all": [0, 1]}))
    assert [s.label for s in settings] == ["sm1980-pl700", "sm1980-pl350", "sm1200-pl700", "sm1200-pl350",
                                           "default"]
    assert settings[1].values == {0: {"sm_clock": 1980, "power_limit": 350}, 1: {"sm_clock": 1980,
                                                                               "power_limit": 350}}
    assert settings[-1].is_default and settings[-1].values == {}
    assert touched(settings) == {0: ["sm_clock", "power_limit"], 1: ["sm_clock", "power_limit"]}


def test_prefill_and_decode_gpus_get_their_own_clocks():
    settings = cross(Request({("prefill", "sm_clock"): [1980, 1200], ("decode", "sm_clock"): [1600]},
                             {"all": [0, 1], "prefill": [0], "decode": [1]}))
    assert [s.label for s in settings] == ["prefill-sm1980-decode-sm1600", "prefill-sm1200-decode-sm1600",
                                           "default"]
    assert settings[1].values == {0: {"sm_clock": 1200}, 1: {"sm_clock": 1600}}


def test_a_gpu_given_one_knob_twice_is_refused():
    with pytest.raises(UsageError, match="GPU 0 gets a SM clock from both"):
        cross(Request({("all", "sm_clock"): [1980], ("prefill", "sm_clock"): [1200]},
                      {"all": [0, 1], "prefill": [0]}))


@pytest.mark.parametrize("values, message", [
    ({("all", "sm_clock"): [1650]}, "SM clock 1650 MHz is not supported; nearest supported: 1600 or 1755 MHz"),
    ({("all", "sm_clock"): [2100]}, "nearest supported: 1755 or 1980 MHz"),
    ({("all", "memory_clock"): [1593]}, "memory clock 1593 MHz is not supported; nearest supported: 2619 MHz"),
    ({("all", "power_limit"): [150]}, "power limit 150 W is outside its range 200-700 W"),
])
def test_an_unsupported_value_is_refused_naming_the_nearest_supported(values, message):
    with pytest.raises(UsageError, match=message):
        validate(cross(Request(values, {"all": [0, 1]})), GPUS, LIMITS)


def test_a_gpu_that_is_not_there_is_refused():
    with pytest.raises(UsageError, match="no GPU with index 2"):
        validate(cross(Request({("decode", "sm_clock"): [1200]}, {"all": [0, 1], "decode": [2]})), GPUS, LIMITS)


def test_clock_locking_on_amd_says_it_is_nvidia_only():
    amd = {0: GpuIdentity(0, "x", "AMD Instinct MI300X", "amd")}
    with pytest.raises(UsageError, match="locking the SM clock is NVIDIA-only"):
        validate(cross(Request({("all", "sm_clock"): [1200]}, {"all": [0]})), amd,
                 {0: Limits(None, None, (300.0, 750.0), 750.0)})
