"""`llm-dvfs sweep`: the load generator at several load levels with an exporter recording; `sweep.json` out."""

from llm_dvfs.commands.sweep.cli import main

__all__ = ["main"]
