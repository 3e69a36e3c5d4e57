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

import itertools
import struct
from dataclasses import dataclass

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
    try:
        # Read by pread through a bounded image (elf/image.py), never mapped: a mapped file
        # that shrinks while it is read kills the process with SIGBUS.
        with opened(source) as data:
            if len(data) == 0:
                raise ELFError("cannot read the symbol tables: the file is empty")
            return _symbols(data.elf, data)
    except OSError as exc:
        raise ELFError(f"cannot read the symbol tables: {exc.strerror or exc}") from None
    except (struct.error, ValueError) as exc:
        if isinstance(exc, ELFError):
            raise
        raise ELFError(f"cannot read the symbol tables: {exc}") from None


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
