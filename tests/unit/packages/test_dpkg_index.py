"""The stored file-name index of dpkg's lists (packages/dpkgindex.py): the same owners as a
full scan, built on the first run, used on the next, and never used once any list or the
status file changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scratchprobe.packages import find_owners
from scratchprobe.root import Root
from tests.unit.packages.test_sbom_packages import dpkg_root, write

WANTED = (
    "/usr/lib/x86_64-linux-gnu/libfoo.so.1.0",
    "/usr/lib/i386-linux-gnu/libfoo.so.1.0",
    "/usr/bin/tool",
    "/etc/gone.conf",
    "/usr/bin/unowned",
    "/usr/bin/new-tool",
)


def owners(root: Path) -> dict[str, tuple[str, str, str | None]]:
    found = find_owners(Root(str(root)), frozenset(WANTED), licenses=False)
    return {path: (p.name, p.version, p.arch) for path, p in found.owners}


def indexes(cache: Path) -> list[Path]:
    return sorted((cache / "scratchprobe").glob("dpkg-*.idx"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    monkeypatch.delenv("SCRATCHPROBE_NO_CACHE", raising=False)
    return directory


def full_scan(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[str, str, str | None]]:
    with monkeypatch.context() as patch:
        patch.setenv("SCRATCHPROBE_NO_CACHE", "1")
        return owners(root)


def replace_file(root: Path, path: str, text: str) -> None:
    """Write the way dpkg does: a new file renamed over the old one."""
    write(root, path + "-new", text)
    os.replace(root / (path.lstrip("/") + "-new"), root / path.lstrip("/"))


def test_index_gives_the_full_scan_answer(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dpkg_root(tmp_path)
    expected = full_scan(root, monkeypatch)
    assert not indexes(cache)
    assert owners(root) == expected  # builds the index
    assert len(indexes(cache)) == 1
    stored = indexes(cache)[0].read_bytes()
    assert owners(root) == expected  # reads it
    assert indexes(cache)[0].read_bytes() == stored
    assert expected["/usr/bin/tool"][0] == "tool"
    assert "/usr/bin/unowned" not in expected


def test_a_changed_list_or_status_is_seen(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dpkg_root(tmp_path)
    write(root, "/usr/bin/new-tool", "x")
    before = owners(root)
    assert "/usr/bin/new-tool" not in before
    # An upgrade of `tool` that adds a file: a new list renamed into place.
    replace_file(root, "/var/lib/dpkg/info/tool.list", "/usr/bin/tool\n/usr/bin/new-tool\n")
    after = owners(root)
    assert after == full_scan(root, monkeypatch)
    assert after["/usr/bin/new-tool"][0] == "tool"
    # The status file changes: `tool` removed, its configuration kept.
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: tool\n" in status
    replace_file(
        root,
        "/var/lib/dpkg/status",
        status.replace(
            "Package: tool\nStatus: install ok installed",
            "Package: tool\nStatus: deinstall ok config-files",
        ),
    )
    removed = owners(root)
    assert removed == full_scan(root, monkeypatch)
    assert "/usr/bin/tool" not in removed
    # A list written in place (same inode) is seen too: its size and times change.
    with open(root / "var/lib/dpkg/info/libfoo1:amd64.list", "a") as handle:
        handle.write("/usr/bin/unowned\n")
    assert owners(root) == full_scan(root, monkeypatch)
    assert owners(root)["/usr/bin/unowned"][0] == "libfoo1"


def install_newpkg(root: Path) -> None:
    """A package installed as dpkg does: its status paragraph and a new list."""
    status = (root / "var/lib/dpkg/status").read_text()
    replace_file(
        root,
        "/var/lib/dpkg/status",
        status
        + "\nPackage: newpkg\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n",
    )
    write(root, "/var/lib/dpkg/info/newpkg.list", "/usr/bin/new-tool\n")


def test_a_new_list_is_seen(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = dpkg_root(tmp_path)
    write(root, "/usr/bin/new-tool", "x")
    owners(root)
    install_newpkg(root)
    assert owners(root)["/usr/bin/new-tool"] == ("newpkg", "1", "amd64")


def test_no_index_for_a_symlinked_list(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dpkg_root(tmp_path)
    (root / "var/lib/dpkg/info/tool.list").unlink()
    (root / "var/lib/dpkg/info/tool.list").symlink_to("/etc/passwd")  # out of the root
    assert owners(root) == full_scan(root, monkeypatch)
    assert not indexes(cache)


def test_a_damaged_index_is_ignored_and_rebuilt(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dpkg_root(tmp_path)
    expected = owners(root)
    (index,) = indexes(cache)
    good = index.read_bytes()
    magic, header_line, body = good.split(b"\n", 2)
    damaged = (
        b"",
        magic + b"\n{not json\n",
        b"\xff" * 100,
        # A valid header over a body whose entries point past the lists and directories,
        # or are not numbers: the lists are read instead, and a new index stored.
        good.replace(b"tool\t3.4\n", b"tool\t999.4\n"),
        good.replace(b"tool\t3.4\n", b"tool\t3.99999\n"),
        good.replace(b"tool\t3.4\n", b"tool\t3.-1\n"),
        good.replace(b"tool\t3.4\n", b"tool\tx.4\n"),
        good.replace(b'["tool", ', b"[7, "),  # a record that is not one
        good.replace(b'["tool", ', b"{ "),
        magic + b"\n" + header_line + b"\n" + body[:10],
    )
    assert b"tool\t3.4\n" in good
    assert b'["tool", ' in good
    for garbage in damaged:
        assert garbage != good
        index.write_bytes(garbage)
        assert owners(root) == expected
        assert index.read_bytes() == good


def test_an_unwritable_cache_only_means_no_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dpkg_root(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert owners(root) == full_scan(root, monkeypatch)


def test_the_list_directory_is_listed_only_when_its_entries_changed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scratchprobe.packages import dpkgindex

    root = dpkg_root(tmp_path)
    write(root, "/usr/bin/new-tool", "x")
    # Files the test just wrote count as settled: their directory's identity is kept.
    monkeypatch.setattr(dpkgindex, "SETTLED_NS", -(10**12))
    listed: list[str] = []
    real_listdir = Root.listdir

    def listdir(self: Root, path: str) -> frozenset[str]:
        listed.append(path)
        return real_listdir(self, path)

    monkeypatch.setattr(Root, "listdir", listdir)
    expected = full_scan(root, monkeypatch)
    assert owners(root) == expected  # builds the index, listing the directory
    assert "/var/lib/dpkg/info" in listed
    listed.clear()
    assert owners(root) == expected  # the same entries: the stored names, no listing
    assert "/var/lib/dpkg/info" not in listed
    # A package installed since: a new list (and status) in the directory.
    install_newpkg(root)
    assert owners(root)["/usr/bin/new-tool"] == ("newpkg", "1", "amd64")
    assert "/var/lib/dpkg/info" in listed
    assert owners(root) == full_scan(root, monkeypatch)
