"""`llm-dvfs dashboards`: write the generated dashboards and provisioning, or check the committed ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from llm_dvfs.commands.dashboards.generate import (DEFAULT_GRAFANA_DASHBOARDS_PATH, DEFAULT_PROMETHEUS_URL, dashboard_files,
                                          provisioning_files)
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError


def _parser() -> argparse.ArgumentParser:
    p = UsageErrorParser(prog="llm-dvfs dashboards", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("grafana/dashboards"),
                   help="directory for the dashboard JSON (default: grafana/dashboards)")
    p.add_argument("--provisioning", type=Path, default=Path("grafana/provisioning"),
                   help="directory for Grafana provisioning (default: grafana/provisioning)")
    p.add_argument("--prometheus-url", default=DEFAULT_PROMETHEUS_URL,
                   help=f"Prometheus URL as Grafana reaches it (default: {DEFAULT_PROMETHEUS_URL})")
    p.add_argument("--dashboards-path", default=DEFAULT_GRAFANA_DASHBOARDS_PATH,
                   help="where Grafana reads the JSON from (default: the compose mount, "
                        f"{DEFAULT_GRAFANA_DASHBOARDS_PATH})")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the files that differ from a fresh generation")
    return p


def _wanted(args: argparse.Namespace) -> dict[Path, str]:
    files = {args.out / name: text for name, text in dashboard_files().items()}
    files.update({args.provisioning / name: text
                  for name, text in provisioning_files(args.prometheus_url, args.dashboards_path).items()})
    return files


def stale_files(wanted: dict[Path, str]) -> list[Path]:
    """Files missing or different from what would be generated."""
    return [path for path, text in wanted.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    for directory in (args.out, args.provisioning):
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"{directory} exists and is not a directory")
    wanted = _wanted(args)
    if args.check:
        stale = stale_files(wanted)
        for path in stale:
            print(f"stale: {path} (run `llm-dvfs dashboards` to regenerate)", file=sys.stderr)
        return 1 if stale else 0
    try:
        for path, text in wanted.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    print(f"wrote {len(wanted)} files under {args.out} and {args.provisioning}")
    return 0
