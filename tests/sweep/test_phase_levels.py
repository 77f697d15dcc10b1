"""A sweep over request shapes: every load level at every length, each with its own directory and Locust flags."""

from __future__ import annotations

from pathlib import Path

from llm_dvfs.commands.sweep.levels import Level, Load, locust_command, shaped_levels

LOAD = Load(host="http://127.0.0.1:8000", mode="single", model="m", input_len=512, output_len=1, workload="mixed")


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_every_level_runs_at_every_shape_under_its_own_name():
    levels = shaped_levels([Level(concurrency=64)], [512], [1, 64, 256])
    assert [lv.name for lv in levels] == ["level-64-in512-out1", "level-64-in512-out64", "level-64-in512-out256"]
    assert levels[1].label == "concurrency 64, 512/64 tokens"
    cmd = locust_command(LOAD, levels[2], Path("/tmp/x"), 1, None)
    assert (_flag(cmd, "--input-len"), _flag(cmd, "--output-len"), _flag(cmd, "--workload")) == ("512", "256", "mixed")


def test_a_one_shape_sweep_keeps_the_names_older_runs_have():
    levels = shaped_levels([Level(concurrency=1), Level(concurrency=16)], [512], [256])
    assert [lv.name for lv in levels] == ["level-1", "level-16"]
    prefill = Load(host="http://127.0.0.1:8000", mode="single", model="m", input_len=2048, output_len=1,
                   workload="prefill")
    cmd = locust_command(prefill, levels[0], Path("/tmp/x"), 1, None)
    assert (_flag(cmd, "--input-len"), _flag(cmd, "--output-len"), _flag(cmd, "--workload")) == ("2048", "1", "prefill")
