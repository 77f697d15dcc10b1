"""The argument parser every llm-dvfs command uses, so bad flags end the same way everywhere.

argparse's own `error` prints the whole usage text and exits; raising `UsageError` instead lets the dispatcher
print one `llm-dvfs <command>: error: ...` line and exit 2, like any other bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn, Sequence

from llm_dvfs.common.errors import UsageError


class UsageErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one `UsageError` line instead of usage text and SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def run_guarded(entry: Callable[[Sequence[str]], int], argv: Sequence[str], prog: str = "llm-dvfs") -> int:
    """Run a subcommand so that bad input ends in one line on stderr and exit 2, never a traceback."""
    try:
        return entry(argv)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
