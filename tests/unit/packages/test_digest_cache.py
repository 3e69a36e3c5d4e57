"""The digests of `annotate`: each file's bytes read once per run, hard links included, and
never one file's digest given to another."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from scratchprobe.annotate import _digest


def test_hard_links_are_read_once_and_distinct_files_are_not_confused(tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.write_bytes(b"one" * 1000)
    linked = tmp_path / "a-link"
    os.link(first, linked)
    other = tmp_path / "b"
    other.write_bytes(b"two" * 1000)  # same size, other bytes
    os.utime(other, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))
    cache: dict[str, tuple[str | None, int]] = {}
    answers = {p: _digest(str(p), cache) for p in (first, linked, other)}
    for path, (sha, size) in answers.items():
        assert (sha, size) == (hashlib.sha256(path.read_bytes()).hexdigest(), 3000), path
    assert answers[first] == answers[linked]
    assert answers[first] != answers[other]
    by_inode = [key for key in cache if key.startswith("\0")]
    assert len(by_inode) == 2  # a and a-link share one inode
