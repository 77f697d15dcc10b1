"""A Hugging Face fast tokenizer loaded from local files (a model directory or a tokenizer.json)."""

from __future__ import annotations

from pathlib import Path

from llm_dvfs.common.errors import UsageError


class Tokenizer:
    """The three things the load generator needs: encode, decode and the vocabulary size."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        file = Path(path)
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise UsageError(f"--tokenizer: no tokenizer.json at {path}")
        try:
            self._tok = HfTokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises plain Exception for bad files
            raise UsageError(f"--tokenizer: cannot load {file}: {exc}") from None
        self.vocab_size = self._tok.get_vocab_size()
        self.path = str(path)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)
