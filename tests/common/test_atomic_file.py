"""Atomic results files: never through a guessable PATH.tmp, never over a device node or directory, fsynced."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from llm_dvfs.common import atomic_file
from llm_dvfs.common.atomic_file import atomic_write_text
from llm_dvfs.common.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_replaces_the_file_and_leaves_no_temporary_behind(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the old file's permissions are kept
    atomic_write_text(tmp_path / "fresh.json", "x")
    assert stat.S_IMODE((tmp_path / "fresh.json").stat().st_mode) == 0o644  # readable, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.json", "results.json"]


def test_a_symlink_planted_at_path_tmp_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "out.json"
    (tmp_path / "out.json.tmp").symlink_to(victim)
    atomic_write_text(path, "{}")
    assert victim.read_text() == "precious"
    assert path.read_text() == "{}" and not path.is_symlink()


def test_a_symlink_at_path_itself_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "out.json"
    path.symlink_to(victim)
    atomic_write_text(path, "{}")
    assert victim.read_text() == "precious" and not path.is_symlink() and path.read_text() == "{}"


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_refuses_to_replace_what_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "target"
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    with pytest.raises(UsageError, match="not a regular file"):
        atomic_write_text(path, "x")
    assert (path.is_dir() if kind == "directory" else stat.S_ISFIFO(path.lstat().st_mode))
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_refuses_a_device_node():
    with pytest.raises(UsageError, match="/dev/null exists and is not a regular file"):
        atomic_write_text("/dev/null", "x")


def test_data_and_directory_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic_file.os, "fsync", lambda fd: (calls.append(
        "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic_file.os, "replace", lambda a, b: (calls.append("rename"), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "steady.json", "{}")
    assert calls == ["file", "rename", "dir"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "sweep.json"
    path.write_text("old")
    monkeypatch.setattr(atomic_file.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["sweep.json"]


def test_exporter_json_never_writes_through_a_planted_path_tmp(tmp_path):
    """Issue 11 item 7 end to end: `llm-dvfs exporter --json PATH` with a symlink planted at PATH.tmp. (The JSON is
    now streamed to PATH by the exporter's recorder, so this guards the command, not this module.)"""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "run.json"
    (tmp_path / "run.json.tmp").symlink_to(victim)
    csv = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
    proc = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{csv}",
                           "--interval", "0.05", "--duration", "0.5", "--json", str(out), "--no-http"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert "samples" in json.loads(out.read_text())
