"""The stored file-name indexes of apk's and rpm's databases (packages/fileindex.py): the
full read's owners, from the index on the next run without reading the database, and never
once the database (or rpm's write-ahead log) changed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from scratchprobe.packages import apk, find_owners, rpm
from scratchprobe.root import Root
from tests.unit.packages.test_sbom_packages import (
    INSTALLED,
    real_header,
    rpm_root,
    synthetic_header,
    write,
)

APK_WANTED = frozenset({"/lib/ld-musl-x86_64.so.1", "/usr/lib/libz.so.1.3.1", "/usr/bin/none"})
RPM_WANTED = frozenset({"/usr/bin/curl", "/usr/lib64/libdemo.so.1.2.3", "/usr/bin/none"})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    monkeypatch.delenv("SCRATCHPROBE_NO_CACHE", raising=False)
    return directory


def owners(root: Path, wanted: frozenset[str]) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    found = find_owners(Root(str(root)), wanted)
    return {path: (p.name, p.purl, p.licenses) for path, p in found.owners}


def full_read(
    root: Path, wanted: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    with monkeypatch.context() as patch:
        patch.setenv("SCRATCHPROBE_NO_CACHE", "1")
        return owners(root, wanted)


def indexes(cache: Path, kind: str) -> list[Path]:
    return sorted((cache / "scratchprobe").glob(f"{kind}-*.idx"))


def apk_root(tmp_path: Path) -> Path:
    root = tmp_path / "alpine"
    write(root, "/etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
    write(root, "/lib/apk/db/installed", INSTALLED)
    write(root, "/lib/ld-musl-x86_64.so.1", "musl")
    write(root, "/usr/lib/libz.so.1.3.1", "z")
    return root


def fedora_root(tmp_path: Path) -> Path:
    curl = synthetic_header("curl", {"/usr/bin/": ["curl"], "/usr/lib64/": ["libcurl.so.4.8.0"]})
    root = rpm_root(tmp_path, [real_header(), curl])
    write(root, "/usr/bin/curl", "c")
    write(root, "/usr/lib64/libdemo.so.1.2.3", "d")
    return root


def no_database_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("the database was read")

    monkeypatch.setattr(apk, "parse_installed", refuse)
    monkeypatch.setattr(rpm, "_read_blobs", refuse)


def test_apk_index_gives_the_full_read_answer_without_reading_the_database(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = apk_root(tmp_path)
    expected = full_read(root, APK_WANTED, monkeypatch)
    assert set(expected) == {"/lib/ld-musl-x86_64.so.1", "/usr/lib/libz.so.1.3.1"}
    assert not indexes(cache, "apk")
    assert owners(root, APK_WANTED) == expected  # builds the index
    assert len(indexes(cache, "apk")) == 1
    no_database_read(monkeypatch)
    assert owners(root, APK_WANTED) == expected


def test_rpm_index_gives_the_full_read_answer_without_reading_the_database(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fedora_root(tmp_path)
    expected = full_read(root, RPM_WANTED, monkeypatch)
    assert set(expected) == {"/usr/bin/curl", "/usr/lib64/libdemo.so.1.2.3"}
    assert owners(root, RPM_WANTED) == expected
    assert len(indexes(cache, "rpm")) == 1
    with monkeypatch.context() as patch:
        no_database_read(patch)
        assert owners(root, RPM_WANTED) == expected


def test_a_changed_apk_database_is_read_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = apk_root(tmp_path)
    owners(root, APK_WANTED)
    # apk writes a new file and renames it over the old one: zlib now owns the loader.
    changed = INSTALLED.replace("R:ld-musl-x86_64.so.1\n", "").replace(
        "R:libz.so.1\n", "R:libz.so.1\nF:lib\nR:ld-musl-x86_64.so.1\n"
    )
    write(root, "/lib/apk/db/installed.new", changed)
    os.replace(root / "lib/apk/db/installed.new", root / "lib/apk/db/installed")
    answer = owners(root, APK_WANTED)
    assert answer["/lib/ld-musl-x86_64.so.1"][0] == "zlib"
    assert answer == full_read(root, APK_WANTED, monkeypatch)


def test_a_changed_rpm_database_is_read_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fedora_root(tmp_path)
    assert "/usr/bin/tool" not in owners(root, RPM_WANTED | {"/usr/bin/tool"})
    tool = synthetic_header("tool", {"/usr/bin/": ["tool"]})
    with sqlite3.connect(root / "var/lib/rpm/rpmdb.sqlite") as connection:  # in place
        connection.execute("INSERT INTO Packages (blob) VALUES (?)", (tool,))
    answer = owners(root, RPM_WANTED | {"/usr/bin/tool"})
    assert answer["/usr/bin/tool"][0] == "tool"


def test_an_rpm_write_ahead_log_is_part_of_the_identity(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fedora_root(tmp_path)
    owners(root, RPM_WANTED)
    (root / "var/lib/rpm/rpmdb.sqlite-wal").write_bytes(b"")
    read: list[str] = []
    original = rpm._read_blobs

    def counting(host_path: str) -> list[tuple[object, object]]:
        read.append(host_path)
        return original(host_path)

    monkeypatch.setattr(rpm, "_read_blobs", counting)
    assert owners(root, RPM_WANTED) == full_read(root, RPM_WANTED, monkeypatch)
    assert len(read) == 2  # this run and the full read: the index was not used


@pytest.mark.parametrize("kind", ["apk", "rpm"])
def test_a_damaged_index_is_ignored(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    root, wanted = (
        (apk_root(tmp_path), APK_WANTED) if kind == "apk" else (fedora_root(tmp_path), RPM_WANTED)
    )
    expected = owners(root, wanted)
    (stored,) = indexes(cache, kind)
    data = stored.read_bytes()
    header_end = data.index(b"\n", data.index(b"\n") + 1)
    # The header kept, every name line broken: the lookup falls back to a full read.
    body = b"\n".join(
        line.split(b"\t")[0] + b"\t[[" for line in data[header_end + 1 :].split(b"\n")
    )
    stored.write_bytes(data[: header_end + 1] + body)
    assert owners(root, wanted) == expected
    stored.write_bytes(b"garbage")
    assert owners(root, wanted) == expected
