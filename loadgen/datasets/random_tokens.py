"""Random prompts of chosen lengths, as `vllm bench serve --dataset-name random` makes them.

Lengths are drawn uniformly from [len·(1−r), len·(1+r)]. With a tokenizer the text is exactly that many tokens;
with `token_ids` the prompt is a list of ids (for servers started with --skip-tokenizer-init); with neither it is
a run of common words, about one token each, and the results say the length is approximate.
"""

from __future__ import annotations

import random

from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.tokenizer import Tokenizer

WORDS = ("the of and to in is was for on that with as by at from his her it an are were be this which or has had "
         "not but they you one all new more time two first after year also would out up some who other").split()
#: ids used when no tokenizer tells the vocabulary: clear of the special tokens at the start of most vocabularies
ID_RANGE = (100, 1000)


class RandomDataset:
    def __init__(self, input_len: int, output_len: int, range_ratio: float = 0.0,
                 tokenizer: Tokenizer | None = None, token_ids: bool = False) -> None:
        self.input_len, self.output_len, self.range_ratio = input_len, output_len, range_ratio
        self.tokenizer, self.token_ids = tokenizer, token_ids
        self._words: list[int] | None = None
        self.length_source = ("token ids" if token_ids else "tokenizer" if tokenizer
                              else "approximate: one common word per token")

    def _length(self, rng: random.Random, n: int) -> int:
        return max(1, rng.randint(int(n * (1 - self.range_ratio)), int(n * (1 + self.range_ratio))))

    def draw(self, rng: random.Random) -> SampleRequest:
        n, out = self._length(rng, self.input_len), self._length(rng, self.output_len)
        if self.token_ids:
            low, high = (0, self.tokenizer.vocab_size) if self.tokenizer else ID_RANGE
            return SampleRequest([rng.randrange(low, high) for _ in range(n)], n, out)
        if self.tokenizer is None:
            return SampleRequest(" ".join(rng.choice(WORDS) for _ in range(n)), n, out, prompt_len_exact=False)
        return self._exact(rng, n, out)

    def _word_ids(self) -> list[int]:
        """Ids of tokens that are one whole word with its leading space and survive decode→encode unchanged:
        joined, they re-tokenise to the same ids, which is what makes the length exact."""
        if self._words is None:
            tok = self.tokenizer
            self._words = [i for i in range(tok.vocab_size)
                           if (t := tok.decode([i])).startswith(" ") and t[1:].isalpha() and tok.encode(t) == [i]]
            if not self._words:
                self._words = list(range(tok.vocab_size))
        return self._words

    def _exact(self, rng: random.Random, n: int, out: int) -> SampleRequest:
        """Text of `n` tokens; should the tokenizer still merge differently, the length is the counted one."""
        tok = self.tokenizer
        text = tok.decode(rng.choices(self._word_ids(), k=n))
        return SampleRequest(text, len(tok.encode(text)), out)
