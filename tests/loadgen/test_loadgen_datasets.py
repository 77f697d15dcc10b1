"""Datasets on fixtures in the real ShareGPT / BBH / JSONL formats, and random prompts of exact lengths."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen import datasets
from llm_dvfs.loadgen.datasets import bbh
from llm_dvfs.loadgen.tokenizer import Tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return Tokenizer(tiny_model)


def draws(dataset, n=50, seed=0):
    rng = random.Random(seed)
    return [dataset.draw(rng) for _ in range(n)]


def test_random_with_tokenizer_has_exact_lengths(tokenizer):
    ds = datasets.load("random", None, input_len=64, output_len=16, range_ratio=0.5, tokenizer=tokenizer)
    for s in draws(ds):
        assert len(tokenizer.encode(s.prompt)) == s.prompt_len and 32 <= s.prompt_len <= 96
        assert 8 <= s.output_len <= 24 and s.prompt_len_exact
    assert ds.length_source == "tokenizer"


def test_random_token_ids_and_approximate_text(tokenizer):
    ids = datasets.load("random", None, 20, 5, token_ids=True, tokenizer=tokenizer)
    s = ids.draw(random.Random(0))
    assert isinstance(s.prompt, list) and len(s.prompt) == 20 and max(s.prompt) < tokenizer.vocab_size
    no_tok = datasets.load("random", None, 20, 5, token_ids=True).draw(random.Random(0))
    assert all(100 <= i < 1000 for i in no_tok.prompt)
    words = datasets.load("random", None, 20, 5)
    s = words.draw(random.Random(0))
    assert len(s.prompt.split()) == 20 and not s.prompt_len_exact
    assert words.length_source.startswith("approximate")


def test_sharegpt_takes_first_turn_pair_and_skips_unusable(tokenizer):
    ds = datasets.load("sharegpt", str(FIXTURES / "sharegpt.json"), 0, 128, tokenizer=tokenizer)
    prompts = {s.prompt for s in ds.samples}
    assert "Write a haiku about autumn rain on a tin roof." in prompts
    assert "hi" not in prompts and not any("GPU power limit" in p for p in prompts)  # too short; no reply
    haiku = next(s for s in ds.samples if s.prompt.startswith("Write a haiku"))
    assert haiku.output_len == len(tokenizer.encode("Drumming on the tin,\nthe cold rain counts the hours\n"
                                                    "leaves drift to the ground."))
    fixed = datasets.load("sharegpt", str(FIXTURES / "sharegpt.json"), 0, 99, output_len_given=True)
    assert {s.output_len for s in fixed.samples} == {99}


def test_bbh_tasks_and_picks():
    root = FIXTURES / "bbh"
    assert list(bbh.task_files(root)) == ["boolean_expressions", "date_understanding"]
    picked = bbh.pick(root, 3, random.Random(0), task="date_understanding")
    assert len(picked) == 3 and {t for t, _ in picked} == {"date_understanding"}
    assert len({q for _, q in picked}) == 3
    assert len(bbh.pick(root, 100, random.Random(0))) == 7  # all questions of all tasks, no repeats
    one = datasets.load("bbh", str(root / "boolean_expressions.json"), 0, 32)
    assert len(one.samples) == 4 and all(s.output_len == 32 for s in one.samples)
    with pytest.raises(UsageError):
        bbh.pick(root, 1, random.Random(0), task="nope")


def test_bbh_command_lists_tasks(capsys):
    assert bbh.main([str(FIXTURES / "bbh")]) == 0
    assert capsys.readouterr().out.splitlines() == ["boolean_expressions\t4", "date_understanding\t3"]
    assert bbh.main([str(FIXTURES / "bbh"), "-n", "2", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_jsonl_lengths_from_lines_or_default():
    ds = datasets.load("jsonl", str(FIXTURES / "prompts.jsonl"), 0, 128)
    assert [s.output_len for s in ds.samples] == [32, 128, 64]


@pytest.mark.parametrize("kind, path", [("sharegpt", "prompts.jsonl"), ("jsonl", "sharegpt.json"),
                                        ("bbh", "sharegpt.json"), ("sharegpt", None)])
def test_wrong_files_are_usage_errors(kind, path):
    with pytest.raises(UsageError):
        datasets.load(kind, str(FIXTURES / path) if path else None, 10, 10)
