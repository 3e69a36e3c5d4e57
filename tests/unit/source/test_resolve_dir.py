"""The unpacker's directory lookup is root.follow_links with a step that reads (and, when
asked, creates) the private root's directories: the same chroot semantics and ELOOP limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scratchprobe.root import MAX_SYMLINKS
from scratchprobe.source.unpack import ImageSourceError, _resolve_dir


def test_symlinks_are_followed_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("/real", tmp_path / "abs")
    os.symlink("../../../real", tmp_path / "climb")
    root = str(tmp_path)
    assert _resolve_dir(root, ("abs",), "layer", create=False) == f"{root}/real"
    assert _resolve_dir(root, ("climb",), "layer", create=False) == f"{root}/real"
    assert _resolve_dir(root, (), "layer", create=False) == root


def test_missing_directories_are_created_only_when_asked(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert _resolve_dir(root, ("a", "b"), "layer", create=False) is None
    assert _resolve_dir(root, ("a", "b"), "layer", create=True) == f"{root}/a/b"
    assert (tmp_path / "a/b").is_dir()


def test_a_file_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    root = str(tmp_path)
    assert _resolve_dir(root, ("f", "x"), "layer", create=False) is None
    with pytest.raises(ImageSourceError, match=r"a parent is not a directory \(f\)"):
        _resolve_dir(root, ("f", "x"), "layer", create=True)


def test_past_max_symlinks_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "end").mkdir()
    for i in range(MAX_SYMLINKS + 1):
        os.symlink(f"l{i + 1}" if i < MAX_SYMLINKS else "end", tmp_path / f"l{i}")
    root = str(tmp_path)
    assert _resolve_dir(root, ("l1",), "layer", create=False) == f"{root}/end"
    with pytest.raises(ImageSourceError, match="too many symbolic links"):
        _resolve_dir(root, ("l0",), "layer", create=False)
