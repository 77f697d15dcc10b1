"""The `llm-dvfs` command: one entry point whose subcommands live in the packages that own them.

Each subcommand is a plain `main(argv) -> int` function, imported only when chosen, so `llm-dvfs exporter`
never pays for importing Locust or Quart and tests can call any of them directly.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from llm_dvfs.common.cli_args import run_guarded

# subcommand -> (module, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "exporter": ("llm_dvfs.exporter.cli", "sample GPU power/energy/clocks every 100 ms; serve /metrics and record CSV/JSON"),
    "proxy": ("llm_dvfs.serving.proxy.cli", "the disaggregated prefill/decode proxy (Quart)"),
    "serve": ("llm_dvfs.serving.launch", "start vLLM single or disaggregated (prefill + decode + proxy) with health waiting"),
    "dashboards": ("llm_dvfs.commands.dashboards.cli", "generate the Grafana dashboards and provisioning (grafanalib)"),
    "sweep": ("llm_dvfs.commands.sweep", "run the load generator at several load levels with an exporter; write sweep.json"),
    "dvfs": ("llm_dvfs.commands.dvfs", "GPU clock/power-limit settings: `show` (read-only), `restore` (from the journal)"),
    "report": ("llm_dvfs.analysis.report", "write report.md with plots for a run or sweep directory"),
    "tiny-model": ("llm_dvfs.commands.tiny_model", "write a tiny random-weight Llama config and a locally trained tokenizer"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: llm-dvfs <command> [options]   (llm-dvfs <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)



def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"llm-dvfs: error: unknown command {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return run_guarded(module.main, rest, prog=f"llm-dvfs {name}")


if __name__ == "__main__":
    sys.exit(main())
