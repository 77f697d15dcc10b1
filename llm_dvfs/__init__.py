"""llm-dvfs: what LLM serving costs in watts and joules, phase by phase."""

__version__ = "0.1.0"
