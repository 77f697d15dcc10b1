"""results.json and requests.jsonl: the one record type of requests.jsonl, its writer and its reader.

The files are written atomically (temporary file + rename) and always as a pair: requests.jsonl is replaced first
and results.json second from the same list of results, so at every moment the directory holds either the old pair
or the new one plus a newer requests.jsonl, never a half-written file. Everything that reads requests.jsonl (the
report, the sweep, tests) reads it through `read_requests`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.timing import TokenTiming

RESULTS, REQUESTS = "results.json", "requests.jsonl"


@dataclass
class RequestResult:
    """The raw measurement of one request: one line of requests.jsonl (times in seconds, `start_time` Unix s).

    A plain record: `from_json` ignores keys it does not know and missing ones take their defaults, so a field
    added later costs one line here and older files still read."""

    start_time: float
    success: bool
    error: str | None = None  # "<reason>: <detail>" (reasons listed in loadgen/request.py)
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2el_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    prefill_s: float | None = None
    output_tokens_source: str | None = None
    elapsed_s: float | None = None  # the whole exchange, also for failures (which have no E2EL)

    @property
    def tpot_s(self) -> float | None:
        """(E2EL − TTFT) / (output tokens − 1), as `vllm bench serve` defines it; None for failures."""
        if not self.success or self.ttft_s is None or self.e2el_s is None or not self.output_tokens:
            return None
        return TokenTiming(self.ttft_s, self.itl_s, self.e2el_s).tpot(self.output_tokens)

    @property
    def reason(self) -> str | None:
        return self.error.split(":", 1)[0] if self.error else None

    @property
    def end_time(self) -> float | None:
        """When the request stopped occupying its user: the end of the exchange, else its last token."""
        held = self.elapsed_s if self.elapsed_s is not None else self.e2el_s
        return self.start_time + held if held is not None else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tpot_s": self.tpot_s}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RequestResult":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def write(directory: str | Path, summary: dict[str, Any], results: Iterable[RequestResult]) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REQUESTS, "".join(json.dumps(r.to_json()) + "\n" for r in results))
    atomic_write_text(out / RESULTS, json.dumps(summary, indent=2) + "\n")


def read_requests(path: str | Path) -> list[RequestResult]:
    """Every record of the requests.jsonl at `path`, sorted by start time. A torn last line (a writer killed
    mid-line) is skipped; a missing file or any other line that is not a record is a UsageError."""
    path = Path(path)
    records: list[RequestResult] = []
    torn: str | None = None
    try:
        with path.open() as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if torn is not None:
                    raise UsageError(torn)
                try:
                    records.append(RequestResult.from_json(json.loads(line)))
                except (ValueError, TypeError, AttributeError) as exc:
                    torn = f"{path}:{number}: not a request record ({exc})"
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return sorted(records, key=lambda r: r.start_time)
