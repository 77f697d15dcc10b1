"""`python -m serving.proxy`: the proxy without the `llm-dvfs` dispatcher."""

import sys

from llm_dvfs.common.cli_args import run_guarded
from llm_dvfs.serving.proxy.cli import main

sys.exit(run_guarded(main, sys.argv[1:], prog="llm-dvfs proxy"))
