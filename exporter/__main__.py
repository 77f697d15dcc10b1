"""`python -m exporter`: the same command as `llm-dvfs exporter`."""

import sys

from exporter.cli import main
from llm_dvfs.cli import run_guarded

if __name__ == "__main__":
    sys.exit(run_guarded(main, sys.argv[1:], prog="exporter"))
