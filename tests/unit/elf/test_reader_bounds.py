"""The names an ELF file gives are bounded and decoded once per offset
(docs/security-inputs.md, "Bounds"): thousands of section headers naming one long string
were gigabytes of copies, a hang, and thousands of DT_NEEDED each naming their own long
string held a hundred times the file's size."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from scratchprobe.elf.reader import read_elf


def _sections_named_at(path: Path, names: bytes, count: int, name_at: int) -> None:
    """An ELF64 shared object with no segments: section 1 is the name table `names`, and
    every other of `count` section headers is named by offset `name_at` in it."""
    names_off = 64
    shoff = (names_off + len(names) + 7) & ~7
    data = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    data += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, count, 1)
    data += names + bytes(shoff - names_off - len(names))
    for index in range(count):
        if index == 1:
            data += struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
        else:
            data += struct.pack("<IIQQQQIIQQ", name_at, 1, 0, 0, 0, 0, 0, 0, 1, 0)
    path.write_bytes(bytes(data))


def test_thousands_of_sections_naming_one_long_string(tmp_path: Path) -> None:
    target = tmp_path / "long-names"
    _sections_named_at(target, b"\0" + b"A" * (256 << 10) + b"\0", 1024, 1)
    elf = read_elf(str(target))
    assert len(elf.section_rows) == 1024
    # Past the bound a section has no name, as one without a NUL has none.
    assert {row[0] for i, row in enumerate(elf.section_rows) if i != 1} == {""}


def test_a_name_shared_by_thousands_of_sections_is_decoded_once(tmp_path: Path) -> None:
    target = tmp_path / "shared-name"
    _sections_named_at(target, b"\0.text\0", 4096, 1)
    elf = read_elf(str(target))
    shared = [row[0] for i, row in enumerate(elf.section_rows) if i != 1]
    assert set(shared) == {".text"}
    assert len({id(name) for name in shared}) == 1
    assert elf.section(".text") is elf.sections[0]


def test_needed_names_each_at_their_own_offset_are_bounded(tmp_path: Path) -> None:
    """16,000 DT_NEEDED, each naming its own 3 to 4 KiB string of one 64 KiB table: 56 MB
    of names from 315 KiB of file, far past the bound of one file's names."""
    from scratchprobe.errors import ELFError
    from tests.hostile_elf import BASE, DT_NEEDED, DT_STRSZ, DT_STRTAB, ElfBuilder

    run = b"a" * 4095 + b"\0"
    names = b"\0" + run * 4 * 4
    builder = ElfBuilder()
    at = builder.add(names)
    entries = [(DT_STRTAB, BASE + at), (DT_STRSZ, len(names))]
    entries += [(DT_NEEDED, 1 + (i // 1000) * 4096 + i % 1000) for i in range(16_000)]
    builder.dynamic(entries)
    target = tmp_path / "needed-apart"
    target.write_bytes(builder.build())
    with pytest.raises(ELFError, match="add up to more than 4 MiB"):
        read_elf(str(target))
