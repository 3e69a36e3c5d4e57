"""Imported dynamic symbols, read with `struct` (the runtime-needs evidence of dynamic files).

A batch over /usr/bin reads the imports of every binary and of every library in the closures:
pyelftools' symbol iterators cost ~50 ms on a large library, this costs ~1 ms, and only the
undefined entries' names are decoded. The table is found through the section headers, or,
when they are stripped, through DT_SYMTAB with its size taken from DT_HASH / DT_GNU_HASH
(as the loader itself does).
"""

from __future__ import annotations

import struct

from scratchprobe.elf.constants import ElfClass
from scratchprobe.elf.image import ElfImage, FileImage, opened
from scratchprobe.elf.reader import ElfFile, vaddr_to_offset
from scratchprobe.errors import ELFError

_SHT_DYNSYM = 11
_DT_HASH = 4
_DT_SYMTAB = 6
_DT_GNU_HASH = 0x6FFFFEF5
_MAX_SYMBOLS = 1 << 20
_MAX_STRTAB = 64 << 20  # as the reader's bound on DT_STRSZ


def imported_symbols(source: ElfImage | ElfFile) -> frozenset[str]:
    """Names of undefined dynamic symbols: what the object takes from its libraries.
    `source` is the run's image of the file (or an ElfFile, read on its own)."""
    elf = source.elf if isinstance(source, ElfImage) else source
    if not elf.has_dynamic:
        return frozenset()
    try:
        with opened(source) as data:
            return _imports(elf, data)
    except ELFError as exc:
        if "outside the file" not in str(exc):
            raise
        raise ELFError("the dynamic symbol table is truncated") from None
    except (struct.error, ValueError):
        raise ELFError("the dynamic symbol table is truncated") from None


class _Unpacker:
    """struct.unpack_from over the file's image, so every read is bounded and cannot fault."""

    def __init__(self, image: FileImage) -> None:
        self.image = image

    def __len__(self) -> int:
        return self.image.size

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        raw = self.image.read(offset, struct.calcsize(fmt), "the dynamic symbol table")
        return struct.unpack(fmt, raw)


def _imports(elf: ElfFile, image: FileImage) -> frozenset[str]:
    is64 = elf.arch.elf_class is ElfClass.ELF64
    e = elf.arch.byte_order.struct_prefix
    entsize = 24 if is64 else 16
    data = _Unpacker(image)
    table = _locate(elf, data, e, entsize)
    if table is None:
        return frozenset()
    sym_offset, count, str_offset, str_size = table
    strtab = image[str_offset : str_offset + min(str_size, _MAX_STRTAB)]
    # One read of the whole table (at most _MAX_SYMBOLS entries), then unpack from memory.
    symbols = image.read(sym_offset, count * entsize, "the dynamic symbol table")
    out = set()
    # Elf64_Sym: name(I) info(B) other(B) shndx(H) value(Q) size(Q);
    # Elf32_Sym: name(I) value(I) size(I) info(B) other(B) shndx(H). Unpacked a row at a
    # time in C (iter_unpack), from entry 1 (entry 0 is the null symbol).
    row, shndx_at = (e + "IBBHQQ", 3) if is64 else (e + "IIIBBH", 5)
    for entry in struct.iter_unpack(row, memoryview(symbols)[entsize:]):
        if entry[shndx_at] != 0:
            continue
        name = entry[0]
        end = strtab.find(b"\0", name)
        if name and end > name:
            out.add(strtab[name:end].decode("utf-8", "replace"))
    return frozenset(out)


def _locate(
    elf: ElfFile, data: _Unpacker, e: str, entsize: int
) -> tuple[int, int, int, int] | None:
    for section in elf.sections:
        if section.type == _SHT_DYNSYM and section.size:
            link = _dynstr(elf, data)
            if link is None:
                break
            count = min(section.size // entsize, _MAX_SYMBOLS)
            if section.offset + count * entsize > len(data):
                raise ELFError("the dynamic symbol table lies outside the file")
            return section.offset, count, link[0], link[1]
    return _locate_from_dynamic(elf, data, e, entsize)


def _dynstr(elf: ElfFile, data: _Unpacker) -> tuple[int, int] | None:
    """Offset and size of .dynstr, the string table .dynsym names point into."""
    names = [s for s in elf.sections if s.name == ".dynstr"]
    if not names:
        return None
    strtab = names[0]
    if strtab.offset + strtab.size > len(data):
        raise ELFError("the dynamic string table lies outside the file")
    return strtab.offset, strtab.size


def _locate_from_dynamic(
    elf: ElfFile, data: _Unpacker, e: str, entsize: int
) -> tuple[int, int, int, int] | None:
    tags = dict(elf.dynamic_entries)
    if _DT_SYMTAB not in tags or 5 not in tags:
        return None
    sym = vaddr_to_offset(elf.segments, tags[_DT_SYMTAB], entsize)
    strtab = vaddr_to_offset(elf.segments, tags[5], tags.get(10, 0))
    if sym is None or strtab is None:
        return None
    count = 0
    if _DT_HASH in tags:
        hash_at = vaddr_to_offset(elf.segments, tags[_DT_HASH], 8)
        if hash_at is not None:
            count = int(data.unpack(e + "II", hash_at)[1])
    elif _DT_GNU_HASH in tags:
        count = _gnu_hash_count(elf, data, e, tags[_DT_GNU_HASH])
    count = min(count, _MAX_SYMBOLS, (len(data) - sym) // entsize)
    return sym, count, strtab, tags.get(10, 0)


def _gnu_hash_count(elf: ElfFile, data: _Unpacker, e: str, vaddr: int) -> int:
    """Symbol count from DT_GNU_HASH: the highest bucket start, then walk its chain."""
    at = vaddr_to_offset(elf.segments, vaddr, 16)
    if at is None:
        return 0
    nbuckets, symoffset, bloom_size, _shift = data.unpack(e + "IIII", at)
    if nbuckets > _MAX_SYMBOLS or bloom_size > _MAX_SYMBOLS:
        return 0  # no real table has more buckets than symbols
    word = 8 if elf.arch.elf_class is ElfClass.ELF64 else 4
    buckets_at = at + 16 + bloom_size * word
    buckets = data.unpack(f"{e}{nbuckets}I", buckets_at)
    last = max(buckets, default=0)
    if last < symoffset:
        return int(symoffset)
    chain_at = buckets_at + nbuckets * 4
    index = last
    while index - symoffset < _MAX_SYMBOLS:
        (value,) = data.unpack(e + "I", chain_at + (index - symoffset) * 4)
        index += 1
        if value & 1:
            break
    return index
