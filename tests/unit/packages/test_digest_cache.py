"""The digests of `annotate`: each file's bytes read once per run, hard links included, and
never one file's digest given to another; a digest kept from an earlier run is used only for
the same unchanged file (scratchprobe/digeststore.py)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from scratchprobe import digeststore
from scratchprobe.annotate import _content_digest, _digest


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


# ------------------------------------------------------------------ digests kept between runs


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("SCRATCHPROBE_NO_CACHE", raising=False)
    return home


def _settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as old enough to store (their ctime is now)."""
    monkeypatch.setattr(digeststore, "_SETTLED_NS", -(10**12))


def test_a_stored_digest_is_used_for_the_same_file(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settled(monkeypatch)
    target = tmp_path / "lib.so"
    target.write_bytes(b"library" * 500)
    store = digeststore.open_store()
    real = _digest(str(target), {}, store)
    store.save()
    assert real[0] == hashlib.sha256(target.read_bytes()).hexdigest()
    # What the next run reads from the store is what it answers, without reading the file.
    saved = next((cache_home / "scratchprobe").glob("digests-*"))
    saved.write_bytes(saved.read_bytes().replace(real[0].encode(), b"f" * 64))
    assert _digest(str(target), {}, digeststore.open_store()) == ("f" * 64, real[1])


def test_a_changed_file_is_hashed_again(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settled(monkeypatch)
    target = tmp_path / "lib.so"
    target.write_bytes(b"A" * 4096)
    before = target.stat()
    store = digeststore.open_store()
    _digest(str(target), {}, store)
    store.save()
    time.sleep(0.05)  # past the filesystem clock's tick: the write stamps a new ctime
    with open(target, "r+b") as handle:  # same inode, same size, mtime put back
        handle.write(b"B")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = _digest(str(target), {}, digeststore.open_store())
    assert again == (hashlib.sha256(b"B" + b"A" * 4095).hexdigest(), 4096)


def test_a_recently_changed_file_is_not_stored(tmp_path: Path, cache_home: Path) -> None:
    target = tmp_path / "fresh"
    target.write_bytes(b"new" * 100)
    store = digeststore.open_store()
    _digest(str(target), {}, store)
    store.save()
    assert not list((cache_home / "scratchprobe").glob("digests-*"))


def test_a_damaged_store_is_ignored(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settled(monkeypatch)
    (cache_home / "scratchprobe").mkdir(parents=True)
    target = tmp_path / "f"
    target.write_bytes(b"x" * 10)
    store = digeststore.open_store()
    _digest(str(target), {}, store)
    store.save()
    saved = cache_home / "scratchprobe" / digeststore._NAME
    good = saved.read_bytes()
    magic, header, table = good.split(b"\n", 2)
    for garbage in (
        b"\xff garbage\n" + b"0" * 9000,
        magic + b"\n" + header + b"\n" + b"9999\n" + table,  # offsets past the data
        good.replace(b" 10\n", b" xx\n"),  # a size that is no number
        good.replace(b" 10\n", b" 11\n"),  # another size: never this file's digest
    ):
        assert garbage != good
        saved.write_bytes(garbage)
        assert _digest(str(target), {}, digeststore.open_store()) == (
            hashlib.sha256(b"x" * 10).hexdigest(),
            10,
        )


def test_generated_content_is_kept_under_its_bytes(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = [b"root:x:0:0::/:\n", b"root:x:0:0::/:\\n", b"a\\\nb", b"a\\\\nb", b""]
    store = digeststore.open_store()
    for data in contents:
        assert _content_digest(data, store) == hashlib.sha256(data).hexdigest()
    store.save()
    # The next run answers from the store: each content its own digest, none confused.
    saved = next((cache_home / "scratchprobe").glob("digests-*"))
    for data in contents:
        digest = hashlib.sha256(data).hexdigest().encode()
        assert saved.read_bytes().count(digest) == 1
    again = digeststore.open_store()
    keys = {digeststore.content_identity(data) for data in contents}
    assert len(keys) == len(contents)
    for data in contents:
        assert _content_digest(data, again) == hashlib.sha256(data).hexdigest()
    # What is answered is what was stored (no digest taken again).
    first = hashlib.sha256(contents[0]).hexdigest().encode()
    saved.write_bytes(saved.read_bytes().replace(first, b"e" * 64))
    assert _content_digest(contents[0], digeststore.open_store()) == "e" * 64
    assert digeststore.content_identity(b"x" * 5000) is None  # too big to be a key


def test_no_store_when_caching_is_off(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settled(monkeypatch)
    monkeypatch.setenv("SCRATCHPROBE_NO_CACHE", "1")
    target = tmp_path / "f"
    target.write_bytes(b"x" * 10)
    store = digeststore.open_store()
    _digest(str(target), {}, store)
    store.save()
    assert not cache_home.exists()
