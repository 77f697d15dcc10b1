"""What each `--workload` asks of the server, shared by the load generator and the sweep (one rule, one place).

- `mixed`: today's requests, prompt and output lengths as given;
- `prefill`: `max_tokens` 1, so the request is its prefill (the one output token comes out of the prefill step);
- `decode`: a prompt of a few tokens and long outputs, so the request is almost all decode.
"""

from __future__ import annotations

from llm_dvfs.common.errors import UsageError

WORKLOADS = ("mixed", "prefill", "decode")
#: prompt tokens of a decode request when --input-len is not given: a few tokens, one KV block at most
DECODE_PROMPT_LEN = 16
#: the longest prompt a decode workload accepts: beyond it the prefill is no longer "small"
DECODE_PROMPT_MAX = 64


def request_shape(workload: str, input_len: int | None, output_len: int | None,
                  default_input: int, default_output: int) -> tuple[int, int]:
    """(prompt tokens, max output tokens) for `workload`; None means "not given". Raises UsageError."""
    if workload not in WORKLOADS:
        raise UsageError(f"--workload {workload!r}: choose from {', '.join(WORKLOADS)}")
    if workload == "prefill":
        if output_len not in (None, 1):
            raise UsageError(f"--workload prefill sends max_tokens 1: --output-len must be 1 or left out, "
                             f"got {output_len}")
        return (default_input if input_len is None else input_len), 1
    if workload == "decode":
        prompt = DECODE_PROMPT_LEN if input_len is None else input_len
        if prompt > DECODE_PROMPT_MAX:
            raise UsageError(f"--workload decode sends a short prompt: --input-len must be at most "
                             f"{DECODE_PROMPT_MAX}, got {prompt}")
        return prompt, (default_output if output_len is None else output_len)
    return (default_input if input_len is None else input_len), (default_output if output_len is None
                                                                  else output_len)


def workload_figures(workload: str, prompt_tokens: int, seconds: float, energy_joules: float | None) -> dict:
    """results.json keys the phase workloads add: a prefill run's energy is all prefill, so it is priced per
    prompt token; the prompt throughput is reported for every workload."""
    figures: dict = {"prompt_throughput": prompt_tokens / seconds if seconds > 0 else None}
    if workload == "prefill":
        figures["joules_per_prompt_token"] = (energy_joules / prompt_tokens
                                              if energy_joules is not None and prompt_tokens else None)
    return figures
