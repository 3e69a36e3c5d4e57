"""On the host root, `Root.resolve` answers what realpath(strict=True) and the kernel do:
the same path and mode, or the same errno, for links relative and absolute, dangling links,
loops, names below a file, `..` after links and after a file, and chains of links up to
the kernel's limit (MAX_SYMLINKS, fs/namei.c), past which both fail with ELOOP."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from scratchprobe.root import MAX_SYMLINKS, Root


def _oracle(path: str) -> tuple[str, int]:
    """(real path, st_mode) from realpath and lstat, else ("error", errno)."""
    try:
        real = os.path.realpath(path, strict=True)
        return real, os.lstat(real).st_mode
    except OSError as exc:
        return "error", exc.errno or 0


def _resolved(root: Root, path: str) -> tuple[str, int]:
    try:
        found = root.resolve(path)
    except OSError as exc:
        return "error", exc.errno or 0
    assert found.host_path == found.path
    return found.path, found.mode


def _tree(base: Path, rnd: random.Random) -> None:
    dirs = [base]
    for _ in range(8):
        directory = rnd.choice(dirs) / rnd.choice("abcd")
        if not os.path.lexists(directory):
            directory.mkdir()
            dirs.append(directory)
    for _ in range(10):
        where = rnd.choice(dirs) / rnd.choice("abcdf")
        if os.path.lexists(where):
            continue
        if rnd.random() < 0.3:
            where.write_bytes(b"")
            continue
        target = "/".join(rnd.choice(["a", "b", "c", "d", "f", "..", "."]) for _ in range(3))
        if rnd.random() < 0.4:
            target = str(rnd.choice(dirs) / target)
        where.symlink_to(target)


@pytest.mark.parametrize("seed", range(20))
def test_host_resolution_is_realpath(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    _tree(tmp_path, rnd)
    root = Root("/")
    names = ["a", "b", "c", "d", "f", "..", "."]
    for _ in range(300):
        path = str(tmp_path) + "/" + "/".join(rnd.choice(names) for _ in range(rnd.randint(1, 5)))
        assert _resolved(root, path) == _oracle(path), path


def test_a_chain_of_links_stops_where_the_kernel_stops(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "link0").symlink_to("file")
    for index in range(1, MAX_SYMLINKS + 1):
        (tmp_path / f"link{index}").symlink_to(f"link{index - 1}")
    (tmp_path / "loop-a").symlink_to("loop-b")
    (tmp_path / "loop-b").symlink_to("loop-a")
    root = Root("/")
    longest = str(tmp_path / f"link{MAX_SYMLINKS - 1}")  # MAX_SYMLINKS links to the file
    assert root.resolve(longest).path == str(tmp_path / "file")
    os.stat(longest)  # the kernel follows it too
    for past in (str(tmp_path / f"link{MAX_SYMLINKS}"), str(tmp_path / "loop-a")):
        with pytest.raises(OSError, match="symbolic links") as kernel:
            os.stat(past)
        assert kernel.value.errno == errno.ELOOP
        assert _resolved(root, past) == ("error", errno.ELOOP)
