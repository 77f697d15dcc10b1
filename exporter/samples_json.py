"""The exporter's `--json` file: written as it goes, so memory stays flat and a crash keeps what was written.

Layout (one JSON document; line breaks are part of the format so that a cut file can be mended):

    {"format": "llm-dvfs-samples-json/2", <metadata>, "devices": [...], "samples": [
    {"timestamp": ..., "devices": {"0": {<the samples CSV's fields>}, ...}}
    ,{"timestamp": ..., ...}
    ...
    ], "started_at": ..., "ended_at": ..., "stats": {...}, "complete": true}

The first line is the head, each sample is one line (the second and later with a leading comma), and the last
line closes the array and carries the start/end times and per-device statistics. After a clean stop the file is
valid JSON; after a crash (or a full disk at the end) it ends after some whole sample line, and
`read_samples_json` mends it: the samples are all there, `complete` is false and the statistics are absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Mapping

FORMAT = "llm-dvfs-samples-json/2"


class SamplesJsonWriter:
    """Writes the head at construction, one line per `write`, the tail at `finish` into `out` (a text stream
    whose `write` is called once per line; `out.flush()` is the caller's business)."""

    def __init__(self, out: IO[str], metadata: Mapping[str, Any], devices: list[dict[str, Any]]) -> None:
        self._out = out
        self._first = True
        head = json.dumps({"format": FORMAT, **metadata, "devices": devices})
        out.write(head[:-1] + ', "samples": [\n')

    def write(self, timestamp: float, devices: Mapping[str, Mapping[str, Any]]) -> None:
        line = json.dumps({"timestamp": timestamp, "devices": devices}, separators=(",", ":"))
        self._out.write(("" if self._first else ",") + line + "\n")
        self._first = False

    def finish(self, started_at: float | None, ended_at: float | None, stats: Mapping[str, Any]) -> None:
        tail = json.dumps({"started_at": started_at, "ended_at": ended_at, "stats": stats, "complete": True})
        self._out.write("], " + tail[1:] + "\n")


def read_samples_json(path: str | Path) -> dict[str, Any]:
    """The document, mended when the writer did not finish (crash, kill, disk full): every whole sample line is
    kept, `complete` is false and `stats`, `started_at`, `ended_at` are absent."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = text.split("\n")
    samples = []
    for line in lines[1:]:
        try:
            samples.append(json.loads(line.lstrip(",")))
        except json.JSONDecodeError:
            break  # the cut line (or the tail of a file cut inside it)
    doc = json.loads(lines[0].removesuffix('"samples": [').rstrip().rstrip(",") + "}")
    return {**doc, "samples": samples, "complete": False}
