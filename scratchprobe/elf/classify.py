"""Linkage and libc flavour of an ELF file, from its headers and, for static files, its bytes."""

from __future__ import annotations

import posixpath
from enum import Enum

from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import ElfImage, opened
from scratchprobe.elf.reader import ElfFile
from scratchprobe.elf.strings import literals_in
from scratchprobe.errors import ELFError


class Linkage(Enum):
    """How the program gets its code at run time (the JSON contract's `linkage`)."""

    STATIC = "static"
    STATIC_PIE = "static-pie"
    DYNAMIC = "dynamic"


class ObjectKind(Enum):
    """What the file is for: something to run, or something loaded by something else."""

    EXECUTABLE = "executable"
    SHARED_LIBRARY = "shared-library"


class Libc(Enum):
    GLIBC = "glibc"
    MUSL = "musl"


def classify(elf: ElfFile) -> tuple[Linkage, ObjectKind]:
    """Static, static-pie or dynamic, and executable or library.

    A static PIE is ET_DYN with a PT_DYNAMIC but no PT_INTERP and no DT_NEEDED; GNU ld marks
    it DF_1_PIE (docs/runtime-facts.md, "ELF triage"). Without that flag, an ET_DYN with no
    interpreter is a shared library unless it looks like a program (an entry point and no
    SONAME).
    """
    if elf.interpreter is not None:
        return Linkage.DYNAMIC, ObjectKind.EXECUTABLE
    if elf.elf_type is ElfType.EXEC:
        if elf.needed:
            # An executable with DT_NEEDED but no PT_INTERP cannot start; report it as what
            # it asks for, and the missing interpreter is flagged by the resolver.
            return Linkage.DYNAMIC, ObjectKind.EXECUTABLE
        return Linkage.STATIC, ObjectKind.EXECUTABLE
    if elf.pie_flag and not elf.needed:
        return Linkage.STATIC_PIE, ObjectKind.EXECUTABLE
    if not elf.needed and elf.soname is None and elf.entry != 0 and not elf.version_defs:
        return Linkage.STATIC_PIE, ObjectKind.EXECUTABLE
    return Linkage.DYNAMIC, ObjectKind.SHARED_LIBRARY


_GLIBC_MARKERS = (b"GLIBC_TUNABLES", b"glibc-ld.so.cache", b"Fatal glibc error")
_MUSL_MARKERS = (b"MUSL_LOCPATH", b"/etc/ld-musl-", b"Dynamic loading not supported")
_GO_MAGIC = b"\xff Go buildinf:"


def is_go(elf: ElfFile) -> bool:
    return bool(elf.section_names & {".go.buildinfo", ".gopclntab", ".note.go.buildid"})


def libc_from_names(interpreter: str | None, needed: tuple[str, ...]) -> Libc | None:
    """glibc or musl from PT_INTERP and DT_NEEDED alone (docs/runtime-facts.md, "ELF triage")."""
    if interpreter is not None:
        base = posixpath.basename(interpreter)
        if base.startswith("ld-musl-"):
            return Libc.MUSL
        if base.startswith(("ld-linux", "ld64.so")):
            return Libc.GLIBC
    for name in needed:
        if name == "libc.so.6":
            return Libc.GLIBC
        if name.startswith("libc.musl-") or name == "libc.so":
            return Libc.MUSL
    return None


def static_libc(source: ElfImage | ElfFile) -> Libc | None:
    """The libc linked into a static file, from evidence inside it, or None when none is found.

    glibc's static start code carries the .note.ABI-tag note and strings such as
    GLIBC_TUNABLES; musl leaves only a few strings and only when the functions that use them
    are linked, so a tiny static musl program may carry no evidence at all. Go links no libc.
    `source` is the run's image of the file (or an ElfFile, opened only when searched).
    """
    elf = source.elf if isinstance(source, ElfImage) else source
    if is_go(elf):
        return None
    if ".note.ABI-tag" in elf.section_names:
        return Libc.GLIBC
    try:
        with opened(source) as image:
            found = _scan_strings(image, _GLIBC_MARKERS + _MUSL_MARKERS + (_GO_MAGIC,))
    except ELFError:
        found = set()
    if _GO_MAGIC in found:
        return None
    if found & set(_GLIBC_MARKERS):
        return Libc.GLIBC
    if found & set(_MUSL_MARKERS):
        return Libc.MUSL
    return None


def _scan_strings(image: ElfImage, needles: tuple[bytes, ...]) -> set[bytes]:
    """Which needles occur in the read-only data (the whole file when sections are stripped)."""
    return literals_in(image, (".rodata", ".rodata1", ".data.rel.ro", ".go.buildinfo"), needles)
