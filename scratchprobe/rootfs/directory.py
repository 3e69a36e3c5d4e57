"""The directory writer: a layout created below an empty directory, never through a link."""

from __future__ import annotations

import os
import posixpath
import shutil

from scratchprobe.plan import FileType
from scratchprobe.rootfs import entries
from scratchprobe.rootfs.destination import DIR_FLAGS, NEW_FILE_FLAGS
from scratchprobe.rootfs.entries import DIR_MODE, Layout

_COPY_CHUNK = 1 << 20


def write_tree(tree: Layout, staging_fd: int, mtime: int) -> None:
    """Create every entry below the empty directory `staging_fd`, never following a link.

    Directory descriptors are kept for the current path only (entries come in depth-first
    order), and a directory's mode and mtime are set when it is left, after its contents,
    so a read-only mode never blocks writing into it and creating children does not bump
    the mtime again.
    """
    stack: list[tuple[str, int, int]] = [("/", os.dup(staging_fd), DIR_MODE)]

    def leave() -> None:
        _, fd, mode = stack.pop()
        try:
            os.fchmod(fd, mode)
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    try:
        for entry in tree.entries:
            parent, name = posixpath.split(entry.path)
            while stack[-1][0] != parent:
                leave()
            parent_fd = stack[-1][1]
            if entry.type is FileType.DIRECTORY:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
                stack.append((entry.path, os.open(name, DIR_FLAGS, dir_fd=parent_fd), entry.mode))
            elif entry.type is FileType.SYMLINK:
                assert entry.target is not None
                os.symlink(entry.target, name, dir_fd=parent_fd)
                os.utime(name, (mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
            else:
                fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd)
                with os.fdopen(fd, "wb") as out:
                    if entry.content is not None:
                        out.write(entry.content)
                    else:
                        with entries.open_source(entry) as src:
                            shutil.copyfileobj(src, out, _COPY_CHUNK)
                    out.flush()
                    os.fchmod(fd, entry.mode)
                    os.utime(fd, (mtime, mtime))
        while stack:
            leave()
    finally:
        for _, fd, _ in stack:
            os.close(fd)
