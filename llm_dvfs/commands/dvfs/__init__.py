"""`llm-dvfs dvfs`: GPU clock and power-limit control for DVFS sweeps, with a restore journal so every change is
undone; `show` (read-only) and `restore` are its subcommands."""

from llm_dvfs.commands.dvfs.cli import main

__all__ = ["main"]
