"""Read the loader-relevant facts of an ELF file with a few small `struct` reads.

Why not pyelftools here: resolving a closure needs only the ELF header, the program headers,
the dynamic segment, its string table and the version tables. Reading those with `struct` costs
about 0.01 s for 600 files where pyelftools' segment iterators cost 0.9 s (docs/architecture.md,
"Parsers"), and a batch over /usr/bin reads every library once. Deeper reads (symbols, section
contents) go through `scratchprobe.elf.sections` and the other readers of the file's image
(`scratchprobe.elf.image`).

Every offset and count is checked against the file before it is used: the input is untrusted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Protocol

from scratchprobe.elf.arch import Architecture
from scratchprobe.elf.constants import (
    DF_1_NODEFLIB,
    DF_1_PIE,
    ELF_MAGIC,
    VER_FLG_BASE,
    ByteOrder,
    DynamicTag,
    ElfClass,
    ElfType,
    SegmentType,
)
from scratchprobe.errors import ELFError

# Bounds that no real file reaches; hostile files that do are refused instead of looped over.
_MAX_DYNAMIC_ENTRIES = 1 << 16
_MAX_VERSION_ENTRIES = 1 << 14
_MAX_STRTAB = 64 << 20
_MAX_SECTIONS = 1 << 16
# A section name longer than this is no name (docs/security-inputs.md, "Bounds"): the longest
# in /usr/bin and /usr/lib/x86_64-linux-gnu here is 50 bytes (.gnu.warning.SYMBOL), and
# every name the readers look up is short; 65,536 headers each naming a long string were
# quadratic (gigabytes of copies).
_MAX_SECTION_NAME = 1024
# PATH_MAX (linux/limits.h): the longest path open(2) accepts, so the longest interpreter
# the kernel can start (fs/binfmt_elf.c refuses a PT_INTERP over PATH_MAX) and the longest
# name or search path the loader can use. A string past it is reported, never copied.
PATH_MAX = 4096
# A search path (DT_RPATH, DT_RUNPATH) is a list of directories, each under PATH_MAX; glibc
# sets no limit on the list (Nix store paths make long ones), so the bound is generous.
_MAX_SEARCH_PATH = 1 << 20
# What the names one file's dynamic section uses (DT_NEEDED, DT_SONAME, the search paths,
# the version names) may add up to, each decoded once: a real library's are a few KiB, a
# long RUNPATH adds its own; 60,000 DT_NEEDED each naming its own 4 KiB string made 1 MB of
# file hold 150 MB (docs/security-inputs.md, "Bounds").
_MAX_NAMES_TOTAL = 4 << 20

# The tags the dynamic loop reads, as plain ints (a member lookup per entry costs more).
_STRING_TAGS = tuple(
    int(t)
    for t in (
        DynamicTag.NEEDED,
        DynamicTag.SONAME,
        DynamicTag.RPATH,
        DynamicTag.RUNPATH,
        DynamicTag.FLAGS_1,
    )
)

# (index into the dynamic string table, what it is for error messages) -> the string.
_StringLookup = Callable[[int, str], str]


@dataclass(frozen=True)
class VersionNeed:
    """One .gnu.version_r record: versions of `file` (a soname) this object requires."""

    file: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class Segment:
    """A program header, with the fields the reader and the scanners use."""

    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int


@dataclass(frozen=True)
class Section:
    """A section header, named (an empty name where the name table is absent)."""

    name: str
    type: int
    addr: int
    offset: int
    size: int
    link: int = 0
    """sh_link: for a symbol table, the index of its string table (gABI "Section Header")."""
    entsize: int = 0
    """sh_entsize: the size of one entry of a table section (0 for other sections)."""


SectionRow = tuple[str, int, int, int, int, int, int]
"""(name, sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_entsize): a Section's fields."""


@dataclass(frozen=True)
class ElfFile:
    """What an ELF file tells the loader, read without executing anything."""

    path: str
    """Host path the facts were read from."""
    size: int
    arch: Architecture
    elf_type: ElfType
    entry: int
    interpreter: str | None
    """PT_INTERP, the loader the kernel starts; None for static files and libraries."""
    has_dynamic: bool
    """Whether a PT_DYNAMIC segment exists."""
    needed: tuple[str, ...]
    """DT_NEEDED in file order, the order glibc loads them breadth-first."""
    soname: str | None
    rpath: str | None
    """DT_RPATH (ignored by glibc when DT_RUNPATH is present, see `effective_rpath`)."""
    runpath: str | None
    flags_1: int
    version_needs: tuple[VersionNeed, ...]
    version_defs: tuple[str, ...]
    """Version names this object provides (DT_VERDEF, base entry excluded)."""
    segments: tuple[Segment, ...]
    section_rows: tuple[SectionRow, ...]
    """The section headers as read, in order; `sections` holds them as Section objects,
    made when a reader first asks (the loader never does: most libraries of a closure
    are never asked)."""
    dynamic_entries: tuple[tuple[int, int], ...] = ()
    """(d_tag, d_val) of PT_DYNAMIC up to DT_NULL, for readers of other tables."""

    @cached_property
    def sections(self) -> tuple[Section, ...]:
        return tuple(Section(*row) for row in self.section_rows)

    @property
    def nodeflib(self) -> bool:
        """DF_1_NODEFLIB: the loader skips ld.so.cache and the default directories for it."""
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def pie_flag(self) -> bool:
        return bool(self.flags_1 & DF_1_PIE)

    @property
    def effective_rpath(self) -> str | None:
        """glibc's get-dynamic-info.h: if both RPATH and RUNPATH are given, RUNPATH wins."""
        return None if self.runpath is not None else self.rpath

    @cached_property
    def section_names(self) -> frozenset[str]:
        return frozenset(row[0] for row in self.section_rows)

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    @property
    def max_glibc(self) -> tuple[int, ...] | None:
        """Highest GLIBC_x.y this object requires from any library, as a tuple to compare."""
        best: tuple[int, ...] | None = None
        for need in self.version_needs:
            for version in need.versions:
                parsed = parse_glibc_version(version)
                if parsed is not None and (best is None or parsed > best):
                    best = parsed
        return best


def parse_glibc_version(name: str) -> tuple[int, ...] | None:
    """`GLIBC_2.34` -> (2, 34); other version names (GLIBC_PRIVATE, GCC_3.0) -> None."""
    if not name.startswith("GLIBC_"):
        return None
    parts = name[len("GLIBC_") :].split(".")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def format_version(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


class ByteSource(Protocol):
    """What the parser reads through: the file's size, and exactly `length` bytes at
    `offset` (an ELFError when they are not all in the file). `_Source` is one, and so is
    the run's image of the file (`elf/image.py` FileImage), which a run parses through so
    that the file is opened once for the parse and every later reader."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int, what: str) -> bytes: ...


class _Source:
    """Bounded reads from an open file; every read past the end is an ELFError."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ELFError(f"{what} lies outside the file")
        self.handle.seek(offset)
        data = self.handle.read(length)
        if len(data) != length:
            raise ELFError(f"{what} is truncated")
        return data


def read_elf(path: str) -> ElfFile:
    """Parse `path`. Raises OSError for unreadable files and ELFError for malformed ones.

    For one-off readers (tests, a trace's lookups); a run parses through its images
    instead (`parse_elf` on the file's image, `elf/image.py` Images.parse)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return parse_elf(path, _Source(handle, size))


class _ReadAhead:
    """The parser's reads served from one block read ahead of them: the headers, the
    dynamic segment, its strings and the version tables (16-byte records) of a file mostly
    sit together, so a parse costs a few preads of the run's image, not one per record. A
    read is checked against the file's size first, and a block never reaches past it."""

    _BLOCK = 4096

    def __init__(self, src: ByteSource) -> None:
        self._src = src
        self.size = src.size
        self._base = 0
        self._data = b""

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ELFError(f"{what} lies outside the file")
        at = offset - self._base
        if at >= 0 and at + length <= len(self._data):
            return self._data[at : at + length]
        if length >= self._BLOCK:
            return self._src.read(offset, length, what)
        self._data = self._src.read(offset, min(self._BLOCK, self.size - offset), what)
        self._base = offset
        return self._data[:length]


def parse_elf(path: str, source: ByteSource) -> ElfFile:
    """Parse the file at `path` whose bytes `source` reads. Raises ELFError for a malformed
    file (and whatever `source` raises for one it cannot read)."""
    src = _ReadAhead(source)
    if src.size == 0:
        raise ELFError("empty file, not an ELF file")
    ident = src.read(0, min(16, src.size), "ELF identification")
    if ident[:4] != ELF_MAGIC:
        raise ELFError("not an ELF file (bad magic)")
    if len(ident) < 16:
        raise ELFError("truncated ELF header")
    try:
        elf_class = ElfClass(ident[4])
    except ValueError:
        raise ELFError(f"invalid ELF class {ident[4]}") from None
    if ident[5] == 1:
        order = ByteOrder.LITTLE
    elif ident[5] == 2:
        order = ByteOrder.BIG
    else:
        raise ELFError(f"invalid ELF byte order {ident[5]}")
    e = order.struct_prefix
    is64 = elf_class is ElfClass.ELF64
    header_fmt = e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    header_size = 16 + struct.calcsize(header_fmt)
    if src.size < header_size:
        raise ELFError("truncated ELF header")
    (
        e_type,
        e_machine,
        _version,
        e_entry,
        e_phoff,
        e_shoff,
        e_flags,
        _ehsize,
        e_phentsize,
        e_phnum,
        e_shentsize,
        e_shnum,
        e_shstrndx,
    ) = struct.unpack(header_fmt, src.read(16, header_size - 16, "ELF header"))
    try:
        elf_type = ElfType(e_type)
    except ValueError:
        raise ELFError(f"unknown ELF type {e_type}") from None
    arch = Architecture(e_machine, elf_class, order, e_flags)

    segments = _read_segments(src, e, is64, e_phoff, e_phentsize, e_phnum)
    sections = _read_sections(src, e, is64, e_shoff, e_shentsize, e_shnum, e_shstrndx)

    interpreter = None
    for seg in segments:
        if seg.type == SegmentType.INTERP:
            if seg.filesz > PATH_MAX:
                raise ELFError(f"PT_INTERP is {seg.filesz} bytes, longer than PATH_MAX")
            raw = src.read(seg.offset, seg.filesz, "PT_INTERP")
            end = raw.find(b"\0")
            if end < 0:
                raise ELFError("PT_INTERP is not NUL-terminated")
            interpreter = raw[:end].decode("utf-8", "surrogateescape")
            if not interpreter:
                raise ELFError("PT_INTERP is empty")
            break

    dynamic = [s for s in segments if s.type == SegmentType.DYNAMIC]
    needed: list[str] = []
    soname = rpath = runpath = None
    flags_1 = 0
    version_needs: tuple[VersionNeed, ...] = ()
    version_defs: tuple[str, ...] = ()
    entries: list[tuple[int, int]] = []
    if dynamic:
        entries = _read_dynamic(src, e, is64, dynamic[0])
        tags: dict[int, int] = {}
        for tag, value in entries:
            tags.setdefault(tag, value)
        strtab = b""
        if DynamicTag.STRTAB in tags:
            strsz = tags.get(DynamicTag.STRSZ, 0)
            if not 0 < strsz <= _MAX_STRTAB:
                raise ELFError(f"implausible DT_STRSZ {strsz}")
            offset = vaddr_to_offset(segments, tags[DynamicTag.STRTAB], strsz)
            if offset is None:
                raise ELFError("the dynamic string table (DT_STRTAB) is not mapped by any PT_LOAD")
            strtab = src.read(offset, strsz, "dynamic string table")

        # Decoded once per offset: names are shared (a soname is also a version need's
        # file), and a crafted table points thousands of entries at one string.
        decoded: dict[int, str] = {}
        spent = [0]  # bytes decoded so far, against _MAX_NAMES_TOTAL

        def string(index: int, what: str, limit: int = PATH_MAX) -> str:
            found = decoded.get(index)
            if found is not None and len(found) <= limit:
                return found
            if not strtab:
                raise ELFError(f"{what} present but DT_STRTAB is missing")
            if index >= len(strtab):
                raise ELFError(f"{what} points past the dynamic string table")
            end = strtab.find(b"\0", index, index + limit + 1)
            if end < 0:
                if len(strtab) - index > limit:
                    raise ELFError(f"{what} is longer than {limit} bytes")
                raise ELFError(f"{what} is not NUL-terminated")
            spent[0] += end - index
            if spent[0] > _MAX_NAMES_TOTAL:
                raise ELFError(
                    f"the names of the dynamic string table add up to more than "
                    f"{_MAX_NAMES_TOTAL >> 20} MiB"
                )
            found = strtab[index:end].decode("utf-8", "surrogateescape")
            decoded[index] = found
            return found

        dt_needed, dt_soname, dt_rpath, dt_runpath, dt_flags_1 = _STRING_TAGS
        for tag, value in entries:
            if tag == dt_needed:
                needed.append(string(value, "DT_NEEDED"))
            elif tag == dt_soname and soname is None:
                soname = string(value, "DT_SONAME")
            elif tag == dt_rpath and rpath is None:
                rpath = string(value, "DT_RPATH", _MAX_SEARCH_PATH)
            elif tag == dt_runpath and runpath is None:
                runpath = string(value, "DT_RUNPATH", _MAX_SEARCH_PATH)
            elif tag == dt_flags_1:
                flags_1 |= value
        if DynamicTag.VERNEED in tags and strtab:
            version_needs = _read_verneed(
                src,
                e,
                segments,
                tags[DynamicTag.VERNEED],
                tags.get(DynamicTag.VERNEEDNUM, 0),
                string,
            )
        if DynamicTag.VERDEF in tags and strtab:
            version_defs = _read_verdef(
                src, e, segments, tags[DynamicTag.VERDEF], tags.get(DynamicTag.VERDEFNUM, 0), string
            )

    return ElfFile(
        path=path,
        size=src.size,
        arch=arch,
        elf_type=elf_type,
        entry=e_entry,
        interpreter=interpreter,
        has_dynamic=bool(dynamic),
        needed=tuple(needed),
        soname=soname,
        rpath=rpath,
        runpath=runpath,
        flags_1=flags_1,
        version_needs=version_needs,
        version_defs=version_defs,
        segments=segments,
        section_rows=sections,
        dynamic_entries=tuple(entries),
    )


def _read_segments(
    src: ByteSource, e: str, is64: bool, phoff: int, phentsize: int, phnum: int
) -> tuple[Segment, ...]:
    if phnum == 0:
        return ()
    fmt = e + ("IIQQQQQQ" if is64 else "IIIIIIII")
    if phentsize != struct.calcsize(fmt):
        raise ELFError(f"unexpected program header size {phentsize}")
    if phoff == 0 or phoff + phnum * phentsize > src.size:
        raise ELFError("program header table lies outside the file")
    table = src.read(phoff, phnum * phentsize, "program header table")
    if is64:
        return tuple(
            Segment(p_type, p_offset, p_vaddr, p_filesz, p_memsz, p_flags)
            for p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align in (
                struct.iter_unpack(fmt, table)
            )
        )
    return tuple(
        Segment(p_type, p_offset, p_vaddr, p_filesz, p_memsz, p_flags)
        for p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, _align in (
            struct.iter_unpack(fmt, table)
        )
    )


def _read_sections(
    src: ByteSource, e: str, is64: bool, shoff: int, shentsize: int, shnum: int, shstrndx: int
) -> tuple[SectionRow, ...]:
    if shoff == 0:
        return ()
    fmt = e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
    if shentsize != struct.calcsize(fmt):
        raise ELFError(f"unexpected section header size {shentsize}")
    if shoff + shentsize > src.size:
        raise ELFError("section header table lies past the end of the file")
    first = struct.unpack(fmt, src.read(shoff, shentsize, "section header table"))
    # Extended numbering (gABI): counts too large for the header live in section 0.
    if shnum == 0:
        shnum = first[5]
    if shstrndx == 0xFFFF:
        shstrndx = first[7]
    if shnum > _MAX_SECTIONS or shoff + shnum * shentsize > src.size:
        raise ELFError("section header table lies past the end of the file")
    table = src.read(shoff, shnum * shentsize, "section header table")
    raw = list(struct.iter_unpack(fmt, table))
    names = b""
    if 0 < shstrndx < shnum:
        _n, sh_type, _f, _a, off, size, *_ = raw[shstrndx]
        if sh_type != 8 and off + size <= src.size and size <= _MAX_STRTAB:
            names = src.read(off, size, "section name table")
    out = []
    decoded: dict[int, str] = {}
    for name_index, sh_type, _flags, addr, offset, size, link, _info, _align, entsize in raw:
        name = decoded.get(name_index)
        if name is None:
            name = ""
            if name_index < len(names):
                # Each name is looked for within its bound only, and decoded once per
                # offset: 65,536 headers naming one long string stay linear.
                end = names.find(b"\0", name_index, name_index + _MAX_SECTION_NAME + 1)
                if end >= 0:
                    name = names[name_index:end].decode("ascii", "replace")
            decoded[name_index] = name
        out.append((name, sh_type, addr, offset, size, link, entsize))
    return tuple(out)


def _read_dynamic(src: ByteSource, e: str, is64: bool, seg: Segment) -> list[tuple[int, int]]:
    fmt = e + ("QQ" if is64 else "II")
    entsize = struct.calcsize(fmt)
    count = min(seg.filesz // entsize, _MAX_DYNAMIC_ENTRIES)
    if count == 0:
        raise ELFError("PT_DYNAMIC is empty")
    data = src.read(seg.offset, count * entsize, "dynamic segment (PT_DYNAMIC)")
    entries = []
    null = int(DynamicTag.NULL)
    for tag, value in struct.iter_unpack(fmt, data):
        if tag == null:
            break
        entries.append((tag, value))
    return entries


def vaddr_to_offset(segments: tuple[Segment, ...], vaddr: int, length: int) -> int | None:
    """Map a virtual address to a file offset through PT_LOAD, as the loader's mmap does.

    None when no PT_LOAD holds the whole range in the file: the caller reports the table as
    unmapped (an address outside every segment is never taken as a file offset).
    """
    loads = [s for s in segments if s.type == SegmentType.LOAD]
    for seg in loads:
        if seg.vaddr <= vaddr and vaddr + length <= seg.vaddr + seg.filesz:
            return seg.offset + (vaddr - seg.vaddr)
    return None


def _read_verneed(
    src: ByteSource,
    e: str,
    segments: tuple[Segment, ...],
    vaddr: int,
    count: int,
    string: _StringLookup,
) -> tuple[VersionNeed, ...]:
    offset = vaddr_to_offset(segments, vaddr, 16)
    if offset is None:
        raise ELFError("DT_VERNEED is not mapped by any PT_LOAD")
    out = []
    seen = 0
    for _ in range(min(count, _MAX_VERSION_ENTRIES)):
        _ver, cnt, file_idx, aux, nxt = struct.unpack(e + "HHIII", src.read(offset, 16, "verneed"))
        versions = []
        aux_off = offset + aux
        for _ in range(min(cnt, _MAX_VERSION_ENTRIES)):
            _hash, _flags, _other, name_idx, anext = struct.unpack(
                e + "IHHII", src.read(aux_off, 16, "vernaux")
            )
            versions.append(string(name_idx, "version need name"))
            seen += 1
            if anext == 0 or seen > _MAX_VERSION_ENTRIES:
                break
            aux_off += anext
        out.append(VersionNeed(string(file_idx, "version need file"), tuple(versions)))
        if nxt == 0:
            break
        offset += nxt
    return tuple(out)


def _read_verdef(
    src: ByteSource,
    e: str,
    segments: tuple[Segment, ...],
    vaddr: int,
    count: int,
    string: _StringLookup,
) -> tuple[str, ...]:
    offset = vaddr_to_offset(segments, vaddr, 20)
    if offset is None:
        raise ELFError("DT_VERDEF is not mapped by any PT_LOAD")
    out = []
    for _ in range(min(count, _MAX_VERSION_ENTRIES)):
        _ver, flags, _ndx, cnt, _hash, aux, nxt = struct.unpack(
            e + "HHHHIII", src.read(offset, 20, "verdef")
        )
        if cnt and not flags & VER_FLG_BASE:
            (name_idx, _anext) = struct.unpack(e + "II", src.read(offset + aux, 8, "verdaux"))
            out.append(string(name_idx, "version definition name"))
        if nxt == 0:
            break
        offset += nxt
    return tuple(out)
