"""Every llm-dvfs command reports a bad flag the same way: one `llm-dvfs <command>: error:` line, exit 2."""

from __future__ import annotations

import pytest

from llm_dvfs.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_a_bad_flag_is_one_line_and_exit_2(command, capsys):
    assert main([command, "--no-such-flag"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"llm-dvfs {command}: error:")  # unknown flag, or a required one missing
    assert captured.out == ""
