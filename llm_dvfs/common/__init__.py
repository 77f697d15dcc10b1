"""The leaf layer: pieces every part uses (errors, child processes, argument parsing, file writes, statistics);
nothing here imports another llm_dvfs package."""
