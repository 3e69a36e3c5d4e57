"""Read the built-in library search path out of a glibc loader binary.

glibc's build writes the "system search path" into ld.so as two adjacent arrays
(elf/dl-load.c includes trusted-dirs.h): `system_dirs`, the directories as one run of
NUL-terminated strings each ending in '/', and `system_dirs_len`, their lengths as size_t.
Finding a run of directory strings whose lengths also appear, packed as size_t in the
loader's byte order, is exact for any distribution's patches (Debian's multiarch, Fedora's
/usr/lib64), so the image's real loader decides, not a table.
"""

from __future__ import annotations

import re
import struct

from scratchprobe.elf.constants import ByteOrder, ElfClass

_DIR_RUN = re.compile(rb"(?:/[\x21-\x7e]{0,254}?/\x00){1,32}")


def system_dirs_from_loader(
    data: bytes, elf_class: ElfClass, byte_order: ByteOrder
) -> tuple[str, ...] | None:
    """The loader's default directories (without trailing '/'), or None if not found."""
    word = "Q" if elf_class is ElfClass.ELF64 else "I"
    prefix = byte_order.struct_prefix
    best: tuple[str, ...] | None = None
    for match in _DIR_RUN.finditer(data):
        start = match.start()
        # The run must begin a string: the byte before is a NUL (or the array's padding).
        if start > 0 and data[start - 1] != 0:
            continue
        dirs = [d for d in match.group().split(b"\x00") if d]
        if not all(d.startswith(b"/") and d.endswith(b"/") for d in dirs):
            continue
        packed = struct.pack(f"{prefix}{len(dirs)}{word}", *(len(d) for d in dirs))
        if packed not in data:
            continue
        candidate = tuple(d[:-1].decode("ascii") or "/" for d in dirs)
        if best is None or len(candidate) > len(best):
            best = candidate
    return best
