"""Write small, deliberately hostile ELF files with `struct` (no toolchain, no mock).

Every file is a real little-endian x86-64 ELF64 image: one PT_LOAD maps the whole file at
BASE (so any offset `o` is the address BASE + o), and the caller adds the program headers and
tables the case needs. The kernel would refuse most of them; scratchprobe must report them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

BASE = 0x400000
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFE, 0x6FFFFFFF
ET_EXEC, ET_DYN = 2, 3
_HEADER_ROOM = 1024  # the ELF header and up to 17 program headers


@dataclass(frozen=True)
class Phdr:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@dataclass
class ElfBuilder:
    """Append tables, then `build()`; offsets returned by `add` are final file offsets."""

    body: bytearray = field(default_factory=bytearray)
    phdrs: list[Phdr] = field(default_factory=list)
    e_type: int = ET_DYN
    map_all: bool = True
    """Prepend the PT_LOAD that maps the whole file read-only at BASE."""
    sections: list[tuple[bytes, int, int, int]] = field(default_factory=list)
    """(name, sh_type, offset, size): written as a section header table with .shstrtab."""

    def section(self, name: bytes, data: bytes, sh_type: int = 1) -> int:
        """Add `data` as section `name` (SHT_PROGBITS unless told); returns its offset."""
        offset = self.add(data)
        self.sections.append((name, sh_type, offset, len(data)))
        return offset

    def add(self, data: bytes, align: int = 8) -> int:
        while (_HEADER_ROOM + len(self.body)) % align:
            self.body.append(0)
        offset = _HEADER_ROOM + len(self.body)
        self.body += data
        return offset

    def phdr(self, type_: int, offset: int, filesz: int, flags: int = PF_R, **kw: int) -> None:
        vaddr = kw.get("vaddr", BASE + offset)
        self.phdrs.append(Phdr(type_, flags, offset, vaddr, filesz, kw.get("memsz", filesz)))

    def dynamic(self, entries: list[tuple[int, int]]) -> int:
        """A PT_DYNAMIC array (DT_NULL appended) and its program header."""
        raw = b"".join(struct.pack("<qQ", t, v) for t, v in [*entries, (DT_NULL, 0)])
        offset = self.add(raw)
        self.phdr(PT_DYNAMIC, offset, len(raw))
        return offset

    def build(self) -> bytes:
        shoff = shnum = shstrndx = 0
        if self.sections:
            names, index = strtab(*[n for n, *_ in self.sections], b".shstrtab")
            names_at = self.add(names)
            rows = [(0, 0, 0, 0)] + [
                (index[n], t, o, z) for n, t, o, z in self.sections
            ] + [(index[b".shstrtab"], 3, names_at, len(names))]  # fmt: skip
            table = b"".join(
                struct.pack("<IIQQQQIIQQ", n, t, 0, BASE + o if o else 0, o, z, 0, 0, 1, 0)
                for n, t, o, z in rows
            )
            shoff, shnum, shstrndx = self.add(table), len(rows), len(rows) - 1
        size = _HEADER_ROOM + len(self.body)
        phdrs = list(self.phdrs)
        if self.map_all:
            phdrs.insert(0, Phdr(PT_LOAD, PF_R, 0, BASE, size, size))
        if len(phdrs) > 17:
            raise ValueError("too many program headers for the header room")
        header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
        header += struct.pack(
            "<HHIQQQIHHHHHH", self.e_type, 62, 1, BASE, 64, shoff, 0, 64, 56, len(phdrs), 64,
            shnum, shstrndx,
        )  # fmt: skip
        table = b"".join(
            struct.pack(
                "<IIQQQQQQ", p.type, p.flags, p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, 8
            )
            for p in phdrs
        )
        head = header + table
        return head + bytes(_HEADER_ROOM - len(head)) + bytes(self.body)


def strtab(*names: bytes) -> tuple[bytes, dict[bytes, int]]:
    """A string table (leading NUL) and each name's index."""
    data = bytearray(b"\0")
    index = {}
    for name in names:
        index[name] = len(data)
        data += name + b"\0"
    return bytes(data), index


def dynamic_library(
    needed: list[bytes], *, runpath: bytes | None = None, rpath: bytes | None = None,
    soname: bytes | None = None, interp: bytes | None = None, e_type: int = ET_DYN,
) -> bytes:  # fmt: skip
    """A dynamic object naming `needed` (and the given search paths) in its string table."""
    extra = [n for n in (runpath, rpath, soname) if n is not None]
    table, index = strtab(*dict.fromkeys([*needed, *extra]))
    builder = ElfBuilder(e_type=e_type)
    if interp is not None:
        at = builder.add(interp + b"\0")
        builder.phdr(PT_INTERP, at, len(interp) + 1)
    str_at = builder.add(table)
    entries = [(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(table))]
    if soname is not None:
        entries.append((DT_SONAME, index[soname]))
    if rpath is not None:
        entries.append((DT_RPATH, index[rpath]))
    if runpath is not None:
        entries.append((DT_RUNPATH, index[runpath]))
    entries += [(DT_NEEDED, index[name]) for name in needed]
    builder.dynamic(entries)
    return builder.build()
