"""Big-Bench-Hard: a directory of task files `<task>.json`, each {"examples": [{"input", "target"}, ...]}.

`--dataset-path DIR` draws from every task, `--dataset-path DIR/<task>.json` from one. `python -m
loadgen.datasets.bbh DIR` lists the tasks; add `--task T -n N` to print N random questions, as the original picker.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Sequence

from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.datasets.sharegpt import CHARS_PER_TOKEN
from llm_dvfs.loadgen.tokenizer import Tokenizer


def task_files(path: str | Path) -> dict[str, Path]:
    """{task name: file} for a BBH directory, or the one task a file holds."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p] if p.is_file() else []
    if not files:
        raise UsageError(f"--dataset-path: no BBH task JSON files at {path}")
    return {f.stem: f for f in files}


def questions(file: Path) -> list[str]:
    try:
        examples = json.loads(file.read_text())["examples"]
        return [str(e["input"]) for e in examples]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--dataset-path: {file} is not a BBH task file: {exc}") from None


def pick(path: str | Path, n: int, rng: random.Random, task: str | None = None) -> list[tuple[str, str]]:
    """N random (task, question) pairs from one task or from all, without repeats while the pool lasts."""
    files = task_files(path)
    if task is not None and task not in files:
        raise UsageError(f"unknown BBH task {task!r}; tasks: {', '.join(files)}")
    pool = [(name, q) for name, f in files.items() if task in (None, name) for q in questions(f)]
    return rng.sample(pool, min(n, len(pool)))


class BbhDataset:
    def __init__(self, path: str | Path, output_len: int, tokenizer: Tokenizer | None = None) -> None:
        count = (lambda s: len(tokenizer.encode(s))) if tokenizer else (lambda s: max(1, len(s) // CHARS_PER_TOKEN))
        self.samples = [SampleRequest(q, count(q), output_len, prompt_len_exact=bool(tokenizer))
                        for f in task_files(path).values() for q in questions(f)]
        if not self.samples:
            raise UsageError(f"--dataset-path: the BBH tasks at {path} hold no examples")
        self.length_source = "tokenizer" if tokenizer else f"approximate: {CHARS_PER_TOKEN} characters per token"

    def draw(self, rng: random.Random) -> SampleRequest:
        return rng.choice(self.samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = UsageErrorParser(prog="python -m llm_dvfs.loadgen.datasets.bbh", description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--task")
    parser.add_argument("-n", type=int, default=0, help="print N random questions instead of the task list")
    parser.add_argument("--seed", type=int)
    try:
        args = parser.parse_args(argv)
        if args.n:
            for name, q in pick(args.path, args.n, random.Random(args.seed), args.task):
                print(json.dumps({"task": name, "prompt": q}))
        else:
            for name, f in task_files(args.path).items():
                print(f"{name}\t{len(questions(f))}")
    except UsageError as exc:
        print(f"bbh: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
