"""Differential test: the `struct` symbol-table reader (`elf/sections.py`) against pyelftools,
which reads every field of every entry, on the committed corpus (every architecture and byte
order of it, the deliberately broken files too), a freshly built unstripped static Go
program with tens of thousands of `.symtab` entries, and a sample of host files."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from scratchprobe.discover import walk_elf_files
from scratchprobe.elf.reader import read_elf
from scratchprobe.elf.sections import Symbols, read_defined, read_symbols
from scratchprobe.errors import ELFError
from tests.conftest import TESTBINS

elftools = pytest.importorskip("elftools")


def pyelftools_symbols(path: str) -> Symbols:
    """The answer as pyelftools gives it: every symbol table section, every entry."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    imported: set[str] = set()
    defined: set[str] = set()
    with open(path, "rb") as handle:
        parsed = ELFFile(handle)
        for section in parsed.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            dynamic = section.name == ".dynsym"
            for symbol in section.iter_symbols():
                name = symbol.name
                if not name:
                    continue
                name = name.split("@", 1)[0]
                if symbol["st_shndx"] == "SHN_UNDEF":
                    if dynamic:
                        imported.add(name)
                else:
                    defined.add(name)
    return Symbols(frozenset(imported), frozenset(defined))


def _elf_paths(directory: str, limit: int | None = None) -> list[str]:
    paths = sorted(walk_elf_files(directory))
    return paths[:limit] if limit is not None else paths


def _agree(path: str) -> None:
    try:
        elf = read_elf(path)
    except ELFError:
        return  # not readable at all: neither reader is ever asked
    try:
        expected = pyelftools_symbols(path)
    except Exception:
        # pyelftools raises errors of many types on damaged tables; ours must refuse them
        # the documented way, or read what is there.
        with contextlib.suppress(ELFError):
            read_symbols(elf)
        return
    assert read_symbols(elf) == expected, path
    _lookup_agrees(path, expected.defined)


def _lookup_agrees(path: str, defined: frozenset[str]) -> None:
    """`read_defined` answers `in` as the decoded set does: for every defined name, and for
    near misses (a character more, a head or a tail cut off, an imported name)."""
    lookup = read_defined(read_elf(path))
    probes = set(defined) | {"main", "getpwnam", "dlopen", "\ufffd", "x\ufffd"}
    for name in list(defined)[:2000]:
        probes |= {name + "x", name[1:], name[:-1], name + "@", "@" + name}
    wrong = sorted(p for p in probes if (p in lookup) != (p in defined))
    assert not wrong, (path, wrong[:10])


@pytest.mark.parametrize(
    "path",
    _elf_paths(str(TESTBINS)),
    ids=lambda p: os.path.relpath(p, TESTBINS),
)
def test_corpus_agrees_with_pyelftools(path: str) -> None:
    _agree(path)


def test_host_sample_agrees_with_pyelftools() -> None:
    # Every 8th ELF file of /usr/bin and of the multiarch library directory: dynamic
    # tables of big libraries, and whatever unstripped files the host has.
    sample: list[str] = []
    for directory in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/local/bin"):
        if os.path.isdir(directory):
            sample += _elf_paths(directory)[::8]
    if not sample:
        pytest.skip("no host ELF files")
    for path in sample:
        _agree(path)


_C_PROGRAM = """#include <pwd.h>
#include <stdio.h>
int main(void) { struct passwd *p = getpwnam("root"); printf("%p\\n", (void *)p); return 0; }
"""


@pytest.fixture(scope="module")
def unstripped_c(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small unstripped C programs (the committed corpus is stripped): dynamic and static
    glibc, static musl, each with a full .symtab."""
    directory = tmp_path_factory.mktemp("unstripped")
    source = directory / "prog.c"
    source.write_text(_C_PROGRAM)
    built: dict[str, Path] = {}
    for name, compiler, flags in (
        ("glibc-dynamic", "gcc", []),
        ("glibc-static", "gcc", ["-static"]),
        ("musl-static", "musl-gcc", ["-static"]),
    ):
        if shutil.which(compiler) is None:
            continue
        out = directory / name
        subprocess.run([compiler, *flags, "-o", str(out), str(source)], check=True)
        built[name] = out
    if "glibc-dynamic" not in built:
        pytest.skip("gcc is not installed")
    return built


@pytest.mark.parametrize("name", ["glibc-dynamic", "glibc-static", "musl-static"])
def test_unstripped_c_agrees_with_pyelftools(unstripped_c: dict[str, Path], name: str) -> None:
    if name not in unstripped_c:
        pytest.skip(f"no compiler for {name}")
    path = str(unstripped_c[name])
    assert ".symtab" in read_elf(path).section_names
    ours = read_symbols(read_elf(path))
    assert ours == pyelftools_symbols(path)
    assert "main" in ours.defined
    _lookup_agrees(path, ours.defined)


def _patched(source: Path, target: Path, edit: dict[int, bytes]) -> str:
    data = bytearray(source.read_bytes())
    for offset, value in edit.items():
        data[offset : offset + len(value)] = value
    target.write_bytes(bytes(data))
    return str(target)


def _symtab_header(path: Path) -> tuple[int, int]:
    """File offset of the .symtab section header of a little-endian ELF64 file, and its
    sh_entsize."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    elf = read_elf(str(path))
    for index, section in enumerate(elf.sections[:shnum]):
        if section.name == ".symtab":
            header = shoff + index * shentsize
            (entsize,) = struct.unpack_from("<Q", data, header + 56)
            return header, entsize
    raise AssertionError("no .symtab")


@pytest.mark.parametrize(
    ("what", "field_offset", "value"),
    [
        ("zero entry size", 56, struct.pack("<Q", 0)),
        ("size not a multiple of the entry size", 32, struct.pack("<Q", 24 * 3 + 5)),
        ("table past the end of the file", 24, struct.pack("<Q", 1 << 40)),
        ("link to a section that is no string table", 40, struct.pack("<I", 0)),
        ("link past the last section", 40, struct.pack("<I", 0xFFFF)),
    ],
)
def test_damaged_symtab_is_one_elf_error(
    tmp_path: Path, unstripped_c: dict[str, Path], what: str, field_offset: int, value: bytes
) -> None:
    source = unstripped_c["glibc-dynamic"]
    header, _entsize = _symtab_header(source)
    path = _patched(source, tmp_path / "damaged", {header + field_offset: value})
    with pytest.raises(ELFError, match="cannot read the symbol tables"):
        read_symbols(read_elf(path))
    # pyelftools refuses it too, with an error type of its own.
    with pytest.raises(Exception, match=r"."):
        pyelftools_symbols(path)


def test_names_off_the_fast_path_agree(tmp_path: Path, unstripped_c: dict[str, Path]) -> None:
    """A non-ASCII byte in .strtab (decoded with replacement), and a name offset in the middle
    of another name (linkers may share tails), are read the way pyelftools reads them."""
    source = unstripped_c["glibc-dynamic"]
    elf = read_elf(str(source))
    strtab = elf.section(".strtab")
    assert strtab is not None
    header, entsize = _symtab_header(source)
    data = source.read_bytes()
    (symtab_offset,) = struct.unpack_from("<Q", data, header + 24)
    # Entry 2's name moves one byte into itself; the first name's first byte becomes 0xff.
    (st_name,) = struct.unpack_from("<I", data, symtab_offset + 2 * entsize)
    assert st_name > 1
    path = _patched(
        source,
        tmp_path / "odd-names",
        {
            symtab_offset + 2 * entsize: struct.pack("<I", st_name + 1),
            strtab.offset + 1: b"\xff",
        },
    )
    ours = read_symbols(read_elf(path))
    assert ours == pyelftools_symbols(path)
    assert any("\ufffd" in name for name in ours.defined | ours.imported)
    _lookup_agrees(path, ours.defined)
