"""The tar writer: a layout as a reproducible tar stream, for `ADD rootfs.tar /`.

Entries sorted by path components (a directory right before its contents), uid/gid 0 with
empty owner names, mtime from SOURCE_DATE_EPOCH (else 0), modes normalised, GNU format (a
GNU long-name record only for names over 100 bytes, never a pax header). `--tar -` streams
the same tar to stdout (tarfile's non-seeking `w|` mode writes the same blocks).
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import IO, Literal

from scratchprobe.plan import FileType
from scratchprobe.rootfs import entries
from scratchprobe.rootfs.entries import Entry, Layout


def _tar_info(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path[1:])
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    if entry.type is FileType.DIRECTORY:
        info.type = tarfile.DIRTYPE
    elif entry.type is FileType.SYMLINK:
        assert entry.target is not None
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.type = tarfile.REGTYPE
    return info


def write_tar(tree: Layout, out: IO[bytes], mtime: int, stream: bool = False) -> None:
    """The layout as a tar stream: the same bytes for the same layout and mtime. `stream`:
    `out` cannot seek (a pipe); tarfile's `w|` mode writes the same blocks and padding."""
    mode: Literal["w", "w|"] = "w|" if stream else "w"
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.GNU_FORMAT) as tar:
        for entry in tree.entries:
            info = _tar_info(entry, mtime)
            if entry.type is not FileType.FILE:
                tar.addfile(info)
            elif entry.content is not None:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
            else:
                with entries.open_source(entry) as src:
                    info.size = os.fstat(src.fileno()).st_size
                    tar.addfile(info, src)
