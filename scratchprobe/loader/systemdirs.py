"""Read the built-in library search path out of a glibc loader binary.

glibc's build writes the "system search path" into ld.so as two adjacent arrays
(elf/dl-load.c includes trusted-dirs.h): `system_dirs`, the directories as one run of
NUL-terminated strings each ending in '/', and `system_dirs_len`, their lengths as size_t.
Finding a run of directory strings whose lengths also appear, packed as size_t in the
loader's byte order, is exact for any distribution's patches (Debian's multiarch, Fedora's
/usr/lib64), so the image's real loader decides, not a table.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator

from scratchprobe.elf.constants import ByteOrder, ElfClass
from scratchprobe.root import open_regular

# A run of directory strings, each beginning right after a NUL (the lookbehind): the engine
# tries only string starts, so the scan is linear in the loader's size even for a crafted
# file of nothing but slashes.
_DIR_RUN = re.compile(rb"(?<![^\x00])(?:/[\x21-\x7e]{0,254}?/\x00){1,32}")
# Both arrays are in the .rodata of one object file (dl-load.o), a few KiB in every glibc
# loader we have seen (x86-64, i686, armhf, arm64, riscv64: under 1.1 KiB apart), so the
# lengths are looked for within 1 MiB of the strings, not in the whole file.
_WINDOW = 1 << 20
# Real loaders have one or two runs of directory strings; a crafted one with thousands is
# not searched for them all (each search costs the window): the table decides then.
_MAX_CANDIDATES = 64


def system_dirs_from_loader(
    data: bytes, elf_class: ElfClass, byte_order: ByteOrder
) -> tuple[str, ...] | None:
    """The loader's default directories (without trailing '/'), or None if not found."""
    word = "Q" if elf_class is ElfClass.ELF64 else "I"
    prefix = byte_order.struct_prefix
    best: tuple[str, ...] | None = None
    for count, match in enumerate(dir_runs(data)):
        if count >= _MAX_CANDIDATES:
            break
        start = match.start()
        dirs = [d for d in match.group().split(b"\x00") if d]
        if best is not None and len(dirs) <= len(best):
            continue
        packed = struct.pack(f"{prefix}{len(dirs)}{word}", *(len(d) for d in dirs))
        if data.find(packed, max(0, start - _WINDOW), match.end() + _WINDOW) < 0:
            continue
        best = tuple(d[:-1].decode("ascii") or "/" for d in dirs)
    return best


def dir_runs(data: bytes) -> Iterator[re.Match[bytes]]:
    """`_DIR_RUN.finditer(data)`, match for match: a run can only start at the file's start
    or right after a NUL, before a '/', so the regex is tried only where `find` (memchr
    speed) sees "\\0/" instead of at every byte (2.1 ms -> 0.3 ms over x86-64's ld.so). The
    lookbehind still sees the byte before `pos`: `Pattern.match(data, pos)` does not slice."""
    pos = 0
    if data[:1] == b"/":
        match = _DIR_RUN.match(data, 0)
        if match is not None:
            yield match
            pos = match.end()
    while True:
        # A candidate at or after `pos`: its NUL may be the byte just before `pos`.
        nul = data.find(b"\x00/", max(pos - 1, 0))
        if nul < 0:
            return
        match = _DIR_RUN.match(data, nul + 1)
        if match is not None:
            yield match
            pos = match.end()
        else:
            pos = nul + 2


# glibc's ld.so is ~200 KiB to 2 MiB; its system_dirs array sits in .rodata near the start.
LOADER_READ = 16 << 20


def read_loader_data(host_path: str, limit: int = LOADER_READ) -> bytes:
    """The first `limit` bytes (16 MiB) of the loader file (regular files only; OSError
    otherwise)."""
    fd = open_regular(host_path)
    try:
        return os.pread(fd, limit, 0)
    finally:
        os.close(fd)
