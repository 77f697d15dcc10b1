"""`python -m llm_dvfs.exporter`: the same command as `llm-dvfs exporter`."""

import sys

from llm_dvfs.common.cli_args import run_guarded
from llm_dvfs.exporter.cli import main

if __name__ == "__main__":
    sys.exit(run_guarded(main, sys.argv[1:], prog="llm-dvfs exporter"))
