"""Symbol tables and section contents, read with `struct` only when a detector asks.

The closure never needs these; the runtime-needs detectors and the policy check do, and only
for the binaries themselves, never for every library. An unstripped static Go program has
tens of thousands of `.symtab` entries (46,866 in the docker CLI): decoding each one as a
whole record (pyelftools does, one construct at a time) was about 90% of such a run. This
reader takes only the two fields of each entry the answer depends on, `st_name` and
`st_shndx` (System V gABI, "Symbol Table": `Elf32_Sym` / `Elf64_Sym`), and decodes a name
only for the entries that end up in the answer. pyelftools stays the oracle it is tested
against (`tests/unit/elf/test_symtab_vs_pyelftools.py`).
"""

from __future__ import annotations

import array
import itertools
import operator
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from scratchprobe.elf.constants import ElfClass
from scratchprobe.elf.image import ElfImage, FileImage, opened
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError

# sh_type values (gABI "Section Header"; SHT_SUNW_LDYNSYM from Solaris, as binutils and
# pyelftools also treat it as a symbol table).
_SHT_SYMTAB = 2
_SHT_STRTAB = 3
_SHT_DYNSYM = 11
_SHT_SUNW_LDYNSYM = 0x6FFFFFF3
_SYMBOL_TABLES = frozenset({_SHT_SYMTAB, _SHT_DYNSYM, _SHT_SUNW_LDYNSYM})
_SHN_UNDEF = 0


@dataclass(frozen=True)
class Symbols:
    """Dynamic symbols of one object: what it imports and what it defines."""

    imported: frozenset[str]
    """Undefined dynamic symbols: functions and data taken from libraries."""
    defined: frozenset[str]
    """Defined symbols (dynamic, plus .symtab when the file is not stripped)."""


@dataclass(frozen=True)
class _Table:
    name: str
    offset: int
    size: int
    entsize: int
    strtab_offset: int
    strtab_size: int


def read_symbols(source: ElfImage | ElfFile) -> Symbols:
    """Symbols of the file from every symbol table section; ELFError when a table is
    malformed. `source` is the run's image of the file (or an ElfFile, read on its own).

    A name is the bytes from `st_name` in the linked string table up to the first NUL,
    decoded as UTF-8 (undecodable bytes replaced), with a version suffix
    (`getpwnam@GLIBC_2.2.5` in `.symtab`) cut off. A name without a NUL before the end of
    the file reads as empty and is skipped, like the null symbol at index 0."""
    return _read_tables(source, _symbols)


_T = TypeVar("_T")


def _read_tables(source: ElfImage | ElfFile, read: Callable[[ElfFile, FileImage], _T]) -> _T:
    """`read(elf, image)` over the file's image, every failure one ELFError."""
    try:
        # Read by pread through a bounded image (elf/image.py), never mapped: a mapped file
        # that shrinks while it is read kills the process with SIGBUS.
        with opened(source) as data:
            if len(data) == 0:
                raise ELFError("cannot read the symbol tables: the file is empty")
            return read(data.elf, data)
    except OSError as exc:
        raise ELFError(f"cannot read the symbol tables: {exc.strerror or exc}") from None
    except (struct.error, ValueError) as exc:
        if isinstance(exc, ELFError):
            raise
        raise ELFError(f"cannot read the symbol tables: {exc}") from None


@dataclass(frozen=True)
class _NameTable:
    """What `DefinedNames` keeps of one symbol table."""

    strings: bytes
    """The linked string table, ending in NUL."""
    pieces: frozenset[bytes]
    """Its NUL-separated strings: a name not among them starts no string."""
    versioned: frozenset[bytes]
    """The names before the "@" of its strings that hold one (`getpwnam@GLIBC_2.2.5`)."""
    defined: frozenset[int]
    """`st_name` of every defined entry that starts a string of the table."""


class DefinedNames:
    """`name in names`: whether a defined symbol (dynamic, or in `.symtab`) carries `name`,
    version suffix cut: the same answer as `read_symbols(...).defined` gives.

    The detectors ask a static program for a few dozen names; an unstripped static Go
    program defines tens of thousands (46,831 in the docker CLI, a 3.4 MB string table),
    and decoding each cost more than the rest of its analysis. Here the string table is
    split once, in C, into a set of byte strings, and the defined entries' `st_name`
    values are collected from the raw entries; a queried name that starts no string is
    answered at once, one that does is confirmed by finding where it starts and whether a
    defined entry points there. Only the names of defined entries that point inside a
    string (a linker merging a name into the tail of a longer one) are decoded up front.
    Tables this cannot answer exactly (an odd entry size, a string table not wholly in the
    file or without a final NUL, an `st_name` past it) are decoded whole, as
    `read_symbols` does."""

    __slots__ = ("_decoded", "_tables")

    def __init__(self, tables: tuple[_NameTable, ...], decoded: frozenset[str]) -> None:
        self._tables = tables
        self._decoded = decoded
        """Names decoded up front: tail-merged ones, or every name of an inexact file."""

    def __contains__(self, name: object) -> bool:
        # read_symbols cuts every name at its first "@": none it gives holds one.
        if not isinstance(name, str) or not name or "@" in name:
            return False
        if name in self._decoded:
            return True
        if "\ufffd" in name:
            # It may stand for any undecodable byte: compare decoded names, as read_symbols.
            return any(name in set(_decoded(t.strings, t.defined)) for t in self._tables)
        raw = name.encode("utf-8", "surrogateescape")
        for table in self._tables:
            if raw in table.pieces or raw in table.versioned:
                for end in (b"\0", b"@"):
                    if any(o in table.defined for o in _starts(table.strings, raw + end)):
                        return True
        return False


def _starts(strings: bytes, needle: bytes) -> Iterator[int]:
    """Offsets where `needle` begins a string of `strings` (at 0 or after a NUL)."""
    if strings.startswith(needle):
        yield 0
    at = strings.find(b"\0" + needle)
    while at >= 0:
        yield at + 1
        at = strings.find(b"\0" + needle, at + 1)


def read_defined(source: ElfImage | ElfFile) -> DefinedNames:
    """The defined symbol names of the file as a lookup (`DefinedNames`); ELFError when a
    table is malformed, as `read_symbols` raises."""
    return _read_tables(source, _defined)


def _defined(elf: ElfFile, data: FileImage) -> DefinedNames:
    is64 = elf.arch.elf_class is ElfClass.ELF64
    prefix = elf.arch.byte_order.struct_prefix
    # Elf64_Sym: st_name at 0, st_shndx at 6 of 24 bytes; Elf32_Sym: 0 and 14 of 16.
    entsize, shndx_at = (24, 6) if is64 else (16, 14)
    tables: list[_NameTable] = []
    tails: set[str] = set()
    for table in _tables(elf, data):
        begin, end = table.strtab_offset, table.strtab_offset + table.strtab_size
        strings = data[begin:end] if end <= len(data) else b""
        if table.entsize != entsize or not strings.endswith(b"\0"):
            return DefinedNames((), _symbols(elf, data).defined)
        entries = data[table.offset : table.offset + table.size]
        words = array.array(_U32, entries)
        if sys.byteorder != ("little" if prefix == "<" else "big"):
            words.byteswap()
        names = words[:: entsize // 4]
        # An st_name past the strings reads beyond the table: only the whole decode does.
        if max(names, default=0) >= len(strings):
            return DefinedNames((), _symbols(elf, data).defined)
        view = memoryview(entries)
        # Defined: st_shndx (two bytes, either order) is not SHN_UNDEF. All in C: these
        # tables have tens of thousands of rows.
        shndx = map(operator.or_, view[shndx_at::entsize], view[shndx_at + 1 :: entsize])
        defined = frozenset(itertools.compress(names, shndx))
        # A defined st_name inside a string (not after a NUL) is a tail-merged name: those
        # few are decoded now. The byte before each st_name is picked out in C.
        inner = defined - {0}
        before = operator.itemgetter(*map((-1).__add__, inner))(strings) if inner else ()
        if any(before if isinstance(before, tuple) else (before,)):
            inside = {o for o in inner if strings[o - 1] != 0}
            tails.update(_decoded(strings, inside))
            defined = defined - inside
        pieces = frozenset(strings.split(b"\0"))
        # Cut once per table, not once per query: most tables hold no "@" at all.
        versioned = (
            frozenset(p.partition(b"@")[0] for p in pieces if b"@" in p)
            if b"@" in strings
            else frozenset()
        )
        tables.append(_NameTable(strings, pieces, versioned, defined))
    return DefinedNames(tuple(tables), frozenset(tails))


def _decoded(strings: bytes, offsets: Iterable[int]) -> Iterator[str]:
    """The names at `offsets` of a string table that ends in NUL, decoded as `_names`
    decodes them (UTF-8, undecodable bytes replaced, version suffix cut, empty skipped)."""
    for offset in offsets:
        name = strings[offset : strings.index(b"\0", offset)].decode("utf-8", "replace")
        if name:
            yield name.split("@", 1)[0]


_U32 = next(code for code in "IL" if array.array(code).itemsize == 4)
"""The array type code of an unsigned 32-bit word on this platform."""


def _unpack(layout: struct.Struct, data: FileImage, offset: int) -> tuple[int, ...]:
    """`layout.unpack_from` over the image; ELFError when the record is not all in the file."""
    values: tuple[int, ...] = layout.unpack(data.read(offset, layout.size, "a symbol table record"))
    return values


def _symbols(elf: ElfFile, data: FileImage) -> Symbols:
    is64 = elf.arch.elf_class is ElfClass.ELF64
    e = elf.arch.byte_order.struct_prefix
    imported: set[str] = set()
    defined: set[str] = set()
    # Elf64_Sym: st_name(I) st_info(B) st_other(B) st_shndx(H) st_value(Q) st_size(Q);
    # Elf32_Sym: st_name(I) st_value(I) st_size(I) st_info(B) st_other(B) st_shndx(H).
    entry = struct.Struct(e + ("I2xH16x" if is64 else "I10xH"))
    for table in _tables(elf, data):
        dynamic = table.name == ".dynsym"
        count = table.size // table.entsize
        if table.entsize == entry.size:
            rows = list(entry.iter_unpack(data[table.offset : table.offset + table.size]))
        else:
            rows = [_unpack(entry, data, table.offset + i * table.entsize) for i in range(count)]
        defined |= _names(data, table, {n for n, shndx in rows if shndx != _SHN_UNDEF})
        if dynamic:
            imported |= _names(data, table, {n for n, shndx in rows if shndx == _SHN_UNDEF})
    return Symbols(frozenset(imported), frozenset(defined))


def _names(data: FileImage, table: _Table, offsets: set[int]) -> set[str]:
    """The names at `offsets` of the table's string table, version suffix cut.

    The usual string table is ASCII (mangled C++ and Rust names, Go's package paths): it is
    decoded once and split at its NULs, and a name that starts a piece is looked up by its
    offset. Any other offset (a name sharing the tail of a longer one, which linkers may
    do, one outside the table, or a table with other bytes) is read on its own from the
    file, up to the first NUL, as UTF-8 with undecodable bytes replaced."""
    found: set[str] = set()
    rest = offsets
    begin, end = table.strtab_offset, table.strtab_offset + table.strtab_size
    blob = data[begin:end] if end <= len(data) else b""
    if blob and blob.isascii():
        pieces = blob.decode("ascii").split("\0")
        # The last piece has no NUL inside the table: it is never a whole name here.
        starts = itertools.accumulate(map((1).__add__, map(len, pieces)), initial=0)
        by_start = dict(zip(starts, pieces[:-1], strict=False))
        known = offsets & by_start.keys()
        found = set(map(by_start.__getitem__, known))
        rest = offsets - known
    size = len(data)
    for offset in rest:
        start = begin + offset
        stop = data.find(b"\0", start) if start < size else -1
        if stop > start:
            found.add(data[start:stop].decode("utf-8", "replace"))
    # The empty test comes before the version is cut: "@VERSION" alone gives "".
    found.discard("")
    if "@" in "\0".join(found):
        return {name.split("@", 1)[0] for name in found}
    return found


def _tables(elf: ElfFile, data: FileImage) -> list[_Table]:
    """The symbol table sections in header order, each with its linked string table
    (`sh_link`), from the reader's section headers."""
    tables = []
    sections = elf.sections
    for section in sections:
        if section.type not in _SYMBOL_TABLES:
            continue
        name = section.name
        if section.entsize == 0 or section.size % section.entsize != 0:
            raise ELFError(f"cannot read the symbol tables: {name} has a bad entry size")
        if section.offset + section.size > len(data):
            raise ELFError(f"cannot read the symbol tables: {name} lies outside the file")
        link = section.link
        if link >= len(sections) or sections[link].type != _SHT_STRTAB:
            raise ELFError(f"cannot read the symbol tables: {name} links no string table")
        strtab = sections[link]
        tables.append(
            _Table(name, section.offset, section.size, section.entsize, strtab.offset, strtab.size)
        )
    return tables


def read_section(source: ElfImage | ElfFile, name: str, limit: int = 64 << 20) -> bytes | None:
    """Raw bytes of the named section (None when absent, empty or NOBITS): the image's
    `section`, for callers that hold only an ElfFile."""
    with opened(source) as image:
        return image.section(name, limit)
