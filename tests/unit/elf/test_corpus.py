"""The committed testbins: our reader agrees with what binutils' readelf recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.elf.classify import (
    Libc,
    Linkage,
    ObjectKind,
    classify,
    libc_from_names,
    static_libc,
)
from scratchprobe.elf.reader import format_version, read_elf
from tests.conftest import TESTBINS, manifest

CORPUS = manifest()


def test_every_built_elf_is_recorded() -> None:
    """Names and records stay in step: a binary without a record is tested by nothing."""
    found = set()
    for dirpath, _dirs, files in os.walk(TESTBINS):
        if Path(dirpath).name == "broken":
            continue
        for name in files:
            path = Path(dirpath) / name
            if path.read_bytes()[:4] == b"\x7fELF":
                found.add(str(path.relative_to(TESTBINS)))
    assert found == set(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_reader_matches_readelf(name: str) -> None:
    record: dict[str, Any] = CORPUS[name]
    elf = read_elf(str(TESTBINS / name))
    assert elf.arch.elf_class.bits == record["class"]
    assert elf.arch.byte_order.value == record["endian"]
    assert elf.arch.machine == record["machine"]
    assert elf.elf_type.name == record["type"]
    assert elf.interpreter == record["interpreter"]
    assert list(elf.needed) == record["needed"]
    assert elf.rpath == record["rpath"]
    assert elf.runpath == record["runpath"]
    assert elf.soname == record["soname"]
    assert elf.nodeflib == record["nodeflib"]
    expected_glibc = record["max_glibc"]
    got = elf.max_glibc
    assert (f"GLIBC_{format_version(got)}" if got else None) == expected_glibc


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_linkage_and_libc(name: str) -> None:
    record = CORPUS[name]
    elf = read_elf(str(TESTBINS / name))
    linkage, kind = classify(elf)
    if record["linkage"] == "shared-library":
        assert kind is ObjectKind.SHARED_LIBRARY
        assert linkage is Linkage.DYNAMIC
    else:
        assert kind is ObjectKind.EXECUTABLE
        assert linkage.value == record["linkage"]
    if linkage is Linkage.DYNAMIC:
        libc = libc_from_names(elf.interpreter, elf.needed)
    else:
        libc = static_libc(elf)
    expected = record["libc"]
    if expected == "musl" and linkage is not Linkage.DYNAMIC and libc is None:
        # A tiny static musl program may carry no evidence of musl at all; None is honest,
        # and claiming glibc would be wrong.
        return
    if kind is ObjectKind.SHARED_LIBRARY and not elf.version_needs:
        # A library that takes nothing from libc itself (libA only calls libB) carries no
        # evidence of a libc; None is the honest answer there.
        expected = None
    assert (libc.value if libc else None) == expected


def test_go_static_has_no_libc() -> None:
    elf = read_elf(str(TESTBINS / "go-static"))
    assert static_libc(elf) is None
    assert static_libc(read_elf(str(TESTBINS / "c-glibc-static"))) is Libc.GLIBC
