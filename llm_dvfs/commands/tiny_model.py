"""`llm-dvfs tiny-model DIR`: a tiny Llama that a real vLLM can serve with `--load-format dummy`.

vLLM needs a config.json and a tokenizer, not weights: `--load-format dummy` fills random weights. The tokenizer is
a byte-level BPE trained here on a generated corpus, so nothing is downloaded and every string tokenizes (no UNK).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator, Sequence

from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError

BOS, EOS = "<s>", "</s>"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _corpus(lines: int, seed: int = 0) -> Iterator[str]:
    """Deterministic English-looking text: the tokenizer only needs a realistic spread of merges."""
    rng = random.Random(seed)
    onsets = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr", "pl", "gr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
    codas = ["", "n", "r", "s", "t", "l", "nd", "ng", "st", "ck"]
    words = ["".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 3)))
             for _ in range(3000)]
    for _ in range(lines):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 16)))
        yield sentence.capitalize() + rng.choice([".", ".", "?", "!", ","]) + f" {rng.randint(0, 999)}"


HEAD_DIM = 64  # vLLM's CPU attention kernels support 64 but not smaller head sizes such as 16


def write_tiny_model(out: Path, vocab_size: int = 2048, layers: int = 2, hidden: int = 128,
                     max_len: int = 4096) -> Path:
    """Write config.json, tokenizer.json and tokenizer_config.json into `out`; return `out`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(20000), trainer=trainer)
    tok.save(str(out / "tokenizer.json"))
    real_vocab = tok.get_vocab_size()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS,
        "add_bos_token": False, "model_max_length": max_len, "chat_template": CHAT_TEMPLATE,
    }, indent=2))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": hidden * 2, "num_hidden_layers": layers,
        "num_attention_heads": hidden // HEAD_DIM, "num_key_value_heads": 1, "head_dim": HEAD_DIM,
        "vocab_size": real_vocab, "max_position_embeddings": max_len, "rms_norm_eps": 1e-5,
        "bos_token_id": tok.token_to_id(BOS), "eos_token_id": tok.token_to_id(EOS),
        "torch_dtype": "bfloat16", "tie_word_embeddings": False, "rope_theta": 10000.0, "hidden_act": "silu",
    }, indent=2))
    return out


def main(argv: Sequence[str]) -> int:
    parser = UsageErrorParser(prog="llm-dvfs tiny-model", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="directory to write the model into (created if missing)")
    parser.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary size (default 2048)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    parser.add_argument("--hidden", type=int, default=128, help=f"hidden size, a multiple of {HEAD_DIM} (default 128)")
    args = parser.parse_args(argv)
    if args.hidden % HEAD_DIM or args.hidden <= 0 or args.layers <= 0 or args.vocab_size < 300:
        raise UsageError(f"--hidden must be a positive multiple of {HEAD_DIM}, --layers positive, "
                         "--vocab-size at least 300")
    try:
        write_tiny_model(args.dir, args.vocab_size, args.layers, args.hidden)
    except OSError as exc:
        raise UsageError(f"cannot write {args.dir}: {exc.strerror or exc}") from None
    print(f"tiny model written to {args.dir}")
    return 0
