"""A JSONL file of prompts: one {"prompt": str, "output_len"?: int} per line (`max_tokens` is accepted too)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.datasets.sharegpt import CHARS_PER_TOKEN
from llm_dvfs.loadgen.tokenizer import Tokenizer


class JsonlDataset:
    def __init__(self, path: str | Path, tokenizer: Tokenizer | None = None, output_len: int | None = None) -> None:
        self.samples: list[SampleRequest] = []
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"--dataset-path: cannot read {path}: {exc}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompt = row["prompt"]
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"--dataset-path: {path} line {number} is not {{\"prompt\": ...}}") from None
            n_in = len(tokenizer.encode(prompt)) if tokenizer else max(1, len(prompt) // CHARS_PER_TOKEN)
            out = row.get("output_len", row.get("max_tokens")) or output_len
            self.samples.append(SampleRequest(prompt, n_in, out, prompt_len_exact=bool(tokenizer)))
        if not self.samples:
            raise UsageError(f"--dataset-path: no prompts in {path}")
        self.length_source = "tokenizer" if tokenizer else f"approximate: {CHARS_PER_TOKEN} characters per token"

    def draw(self, rng: random.Random) -> SampleRequest:
        return rng.choice(self.samples)
