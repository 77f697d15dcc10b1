"""Prompt sources: one file per dataset kind, all implementing `base.Dataset`; `load` picks one by name."""

from __future__ import annotations

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets.base import Dataset, SampleRequest
from llm_dvfs.loadgen.tokenizer import Tokenizer

KINDS = ("random", "sharegpt", "bbh", "jsonl")


def load(kind: str, path: str | None, input_len: int, output_len: int, range_ratio: float = 0.0,
         tokenizer: Tokenizer | None = None, token_ids: bool = False,
         output_len_given: bool = False) -> Dataset:
    """Build the dataset named `kind`; file-based kinds need `path`. Raises UsageError for bad input."""
    if kind == "random":
        from llm_dvfs.loadgen.datasets.random_tokens import RandomDataset

        return RandomDataset(input_len, output_len, range_ratio, tokenizer, token_ids)
    if kind not in KINDS:
        raise UsageError(f"--dataset {kind!r}: choose from {', '.join(KINDS)}")
    if not path:
        raise UsageError(f"--dataset {kind} needs --dataset-path")
    if kind == "sharegpt":
        from llm_dvfs.loadgen.datasets.sharegpt import ShareGptDataset

        return ShareGptDataset(path, tokenizer, output_len if output_len_given else None)
    if kind == "bbh":
        from llm_dvfs.loadgen.datasets.bbh import BbhDataset

        return BbhDataset(path, output_len, tokenizer)
    from llm_dvfs.loadgen.datasets.jsonl import JsonlDataset

    return JsonlDataset(path, tokenizer, output_len)


__all__ = ["Dataset", "KINDS", "SampleRequest", "load"]
