"""Write the plan as a root filesystem: a directory, or a reproducible tar for `ADD rootfs.tar /`.

The writer reads only `Plan.files`, the list the JSON manifest and the COPY lines come from, so
the three cannot describe different trees. One module per job:
- `entries`: from plan to layout, and the safety checks on it;
- `destination`: the destination policy (refusals, staging, locks, publishing);
- `directory` and `tar`: the two writers of one layout. The directory output gets the same
  modes and mtimes as the tar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from scratchprobe.plan import FileType, Plan
from scratchprobe.root import Root
from scratchprobe.rootfs.destination import (
    MARKER_SUFFIX,
    Destination,
    DestinationRefused,
    OutputKind,
    check_destination,
    open_parent,
    publish_directory,
    publish_file,
    remove_stale_staging,
    sigterm_unwinds,
    source_date_epoch,
)
from scratchprobe.rootfs.directory import write_tree
from scratchprobe.rootfs.entries import Entry, Layout, RootfsError, layout
from scratchprobe.rootfs.tar import write_tar

__all__ = [
    "MARKER_SUFFIX",
    "Destination",
    "DestinationRefused",
    "Entry",
    "Layout",
    "OutputKind",
    "RootfsError",
    "RootfsResult",
    "layout",
    "source_date_epoch",
    "stream_rootfs",
    "write_rootfs",
    "write_tar",
]


@dataclass(frozen=True)
class RootfsResult:
    destination: Destination
    layout: Layout

    @property
    def file_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.FILE)

    @property
    def directory_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.DIRECTORY)

    @property
    def symlink_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.SYMLINK)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.layout.entries)


def write_rootfs(
    plan: Plan,
    root: Root,
    destination: Destination,
    *,
    force: bool = False,
    mtime: int = 0,
) -> RootfsResult:
    """Write `plan` to `destination`; the previous output survives any failure, and no
    staging file survives a failure or SIGTERM (one left by SIGKILL is removed next time)."""
    parent = open_parent(destination.path)
    try:
        existing = check_destination(destination, parent, root, force)
        tree = layout(plan, root)
        with sigterm_unwinds():
            remove_stale_staging(parent)
            if destination.kind is OutputKind.TAR:
                publish_file(parent, lambda out: write_tar(tree, out, mtime))
            else:
                publish_directory(parent, existing, lambda fd: write_tree(tree, fd, mtime))
    finally:
        os.close(parent.fd)
    return RootfsResult(destination, tree)


def stream_rootfs(plan: Plan, root: Root, out: IO[bytes], *, mtime: int = 0) -> Layout:
    """Write `plan` as a tar stream to `out` (`--tar -`): the same bytes as the tar file."""
    tree = layout(plan, root)
    write_tar(tree, out, mtime, stream=True)
    return tree
