"""Differential test: the struct reader against LIEF, an independent full ELF parser, on every
ELF file of /usr/bin and on the committed corpus (foreign architectures, big-endian)."""

from __future__ import annotations

import os

import pytest

from scratchprobe.discover import walk_elf_files
from scratchprobe.elf.reader import read_elf
from tests.conftest import TESTBINS

lief = pytest.importorskip("lief")


def lief_facts(path: str) -> dict[str, object]:
    binary = lief.ELF.parse(path)
    assert binary is not None, path
    dyn = {entry.tag: entry for entry in binary.dynamic_entries}
    tags = lief.ELF.DynamicEntry.TAG

    def text(tag: object, attr: str) -> str | None:
        entry = dyn.get(tag)
        if entry is None:
            return None
        value: str = getattr(entry, attr)
        return value

    return {
        "interpreter": binary.interpreter if binary.has_interpreter else None,
        "needed": [e.name for e in binary.dynamic_entries if e.tag == tags.NEEDED],
        "soname": text(tags.SONAME, "name"),
        "runpath": text(tags.RUNPATH, "runpath"),
        "rpath": text(tags.RPATH, "rpath"),
        "machine": int(binary.header.machine_type.value),
    }


def our_facts(path: str) -> dict[str, object]:
    elf = read_elf(path)
    return {
        "interpreter": elf.interpreter,
        "needed": list(elf.needed),
        "soname": elf.soname,
        "runpath": elf.runpath,
        "rpath": elf.rpath,
        "machine": elf.arch.machine,
    }


def corpus() -> list[str]:
    return [p for p in walk_elf_files(str(TESTBINS)) if "/broken/" not in p]


@pytest.mark.parametrize("path", corpus(), ids=lambda p: os.path.relpath(p, TESTBINS))
def test_corpus_agrees_with_lief(path: str) -> None:
    assert our_facts(path) == lief_facts(path)
