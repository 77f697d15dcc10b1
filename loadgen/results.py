"""results.json and requests.jsonl, written atomically (temporary file + rename) and always as a pair.

requests.jsonl is replaced first and results.json second from the same list of results, so at every moment the
directory holds either the old pair or the new one plus a newer requests.jsonl, never a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from llm_dvfs.loadgen.request import RequestResult

RESULTS, REQUESTS = "results.json", "requests.jsonl"


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, never leaving a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write(directory: str | Path, summary: dict[str, Any], results: Iterable[RequestResult]) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / REQUESTS, "".join(json.dumps(r.to_json()) + "\n" for r in results))
    atomic_write(out / RESULTS, json.dumps(summary, indent=2) + "\n")


def read_requests(directory: str | Path) -> list[RequestResult]:
    path = Path(directory) / REQUESTS
    return [RequestResult.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
