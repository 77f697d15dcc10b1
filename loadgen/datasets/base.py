"""What every dataset yields, and the one protocol datasets implement."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SampleRequest:
    """One prompt to send: text, or token ids for servers without a tokenizer.

    `prompt_len` is exact when `prompt_len_exact` is true (counted by the tokenizer, or the number of ids), else an
    estimate; `output_len` is the `max_tokens` to ask for (None: the server decides).
    """

    prompt: str | list[int]
    prompt_len: int
    output_len: int | None
    prompt_len_exact: bool = True


class Dataset(Protocol):
    """A source of prompts; `draw` is called once per request, so it must be cheap."""

    #: how prompt lengths were obtained, recorded in results.json ("tokenizer", "token ids", "approximate: ...")
    length_source: str

    def draw(self, rng: random.Random) -> SampleRequest: ...
