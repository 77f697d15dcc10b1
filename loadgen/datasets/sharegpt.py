"""ShareGPT conversations (the public JSON list of {"conversations": [{"from", "value"}, ...]}).

As `vllm bench serve` does: the first turn is the prompt and the second the reference reply, whose length is the
output length unless --output-len overrides it; pairs too short (< 4 tokens) or too long are skipped.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.tokenizer import Tokenizer

CHARS_PER_TOKEN = 4  # the usual English estimate, used only without a tokenizer


class ShareGptDataset:
    def __init__(self, path: str | Path, tokenizer: Tokenizer | None = None, output_len: int | None = None,
                 max_len: int = 2048) -> None:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--dataset-path: cannot read ShareGPT JSON {path}: {exc}") from None
        count = (lambda s: len(tokenizer.encode(s))) if tokenizer else (lambda s: max(1, len(s) // CHARS_PER_TOKEN))
        self.samples: list[SampleRequest] = []
        for entry in data if isinstance(data, list) else []:
            turns = entry.get("conversations") if isinstance(entry, dict) else None
            if not turns or len(turns) < 2:
                continue
            prompt, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
            n_in, n_out = count(prompt), count(reply)
            if n_in < 4 or n_out < 4 or n_in + n_out > max_len:
                continue
            self.samples.append(SampleRequest(prompt, n_in, output_len or n_out, prompt_len_exact=bool(tokenizer)))
        if not self.samples:
            raise UsageError(f"--dataset-path: no usable ShareGPT conversations in {path}")
        self.length_source = "tokenizer" if tokenizer else f"approximate: {CHARS_PER_TOKEN} characters per token"

    def draw(self, rng: random.Random) -> SampleRequest:
        return rng.choice(self.samples)
