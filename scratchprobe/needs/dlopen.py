"""Libraries loaded with dlopen, which no DT_NEEDED shows.

- systemd's .note.dlopen (owner "FDO", type 0x407c0c0a): JSON that names the sonames a
  program may dlopen, with a priority (the ELF dlopen metadata specification,
  https://systemd.io/ELF_DLOPEN_METADATA/).
- Mozilla NSS: libnss3 loads its softoken, freebl and built-in roots modules by full path
  from its own directory (nss lib/pk11wrap/pk11load.c, lib/freebl/loader.c).
- Any other dlopen is reported: static analysis cannot follow a name made at run time.
The loaders of one family have a module each: unwinder.py (libgcc_s), nssmodules.py,
gconv.py, openssl.py. docs/runtime-facts.md, "dlopen".
"""

from __future__ import annotations

import json
import posixpath

from scratchprobe.elf.image import ElfImage, opened
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

_FDO_DLOPEN_TYPE = 0x407C0C0A
_PRIORITY = {
    "required": Confidence.CERTAIN,
    "recommended": Confidence.LIKELY,
    "suggested": Confidence.POSSIBLE,
}


def library_file(path: str, real: str, note: str) -> NeededFile:
    """A library the program loads with dlopen, at the path it is found under."""
    return NeededFile(path, "file", source=real, note=note)


def _mozilla_nss(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    needs = []
    nss3 = subject.library("libnss3.so")
    if nss3 is not None and subject.closure is not None:
        lib = next(o for o in subject.closure.libraries if (o.soname or o.name) == nss3.soname)
        directory = posixpath.dirname(lib.path)
        files = []
        for name in ("libsoftokn3.so", "libfreeblpriv3.so", "libnssckbi.so"):
            real = ctx.real(posixpath.join(posixpath.dirname(lib.real_path), name))
            if real:
                files.append(NeededFile(posixpath.join(directory, name), "file", source=real))
        needs.append(
            RuntimeNeed(
                kind=NeedKind.DLOPEN,
                confidence=Confidence.LIKELY,
                summary=(
                    "Mozilla NSS loads its softoken, freebl and built-in roots modules by full "
                    "path from libnss3's directory"
                ),
                evidence=("libnss3.so in the closure",),
                files=tuple(files),
            )
        )
    return needs


def dlopen_notes(source: ElfImage | ElfFile) -> list[dict[str, object]]:
    """Entries of systemd's .note.dlopen (FDO ELF dlopen metadata specification)."""
    elf = source.elf if isinstance(source, ElfImage) else source
    if elf.section(".note.dlopen") is None:
        return []
    out: list[dict[str, object]] = []
    try:
        with opened(source) as image:
            notes = image.notes(".note.dlopen")
    except ELFError:
        return []
    # The bounded JSON parser (its regexes) loads only for a file that has the note.
    from scratchprobe import boundedjson

    for owner, ntype, desc in notes:
        if owner == b"FDO" and ntype == _FDO_DLOPEN_TYPE:
            try:
                entries = boundedjson.loads(desc.rstrip(b"\0"))
            except ValueError:
                entries = []
            if isinstance(entries, list):
                out += [x for x in entries if isinstance(x, dict)]
    return out


def _notes_and_calls(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    needs = []
    for entry in dlopen_notes(subject.image or subject.elf):
        sonames = entry.get("soname")
        if not isinstance(sonames, list) or not sonames:
            continue
        priority = str(entry.get("priority", "recommended"))
        files = []
        problems = []
        for soname in sonames:
            located = ctx.locate_library(str(soname), subject.elf, subject.closure)
            if located is not None:
                files.append(library_file(located.path, located.real_path, "from .note.dlopen"))
                break  # the sonames are alternatives, in preference order
        else:
            problems.append("none of " + ", ".join(map(str, sonames)) + " is in the root")
        needs.append(
            RuntimeNeed(
                kind=NeedKind.DLOPEN,
                confidence=_PRIORITY.get(priority, Confidence.POSSIBLE),
                summary=f"dlopens {sonames[0]} for {entry.get('feature', 'a feature')} "
                f"({priority}, per its .note.dlopen)",
                evidence=(f".note.dlopen: {json.dumps(entry, sort_keys=True)}",),
                files=tuple(files),
                problems=tuple(problems),
            )
        )
    calls = subject.uses("dlopen", "dlmopen")
    if calls and not needs:
        needs.append(
            RuntimeNeed(
                kind=NeedKind.DLOPEN,
                confidence=Confidence.POSSIBLE,
                summary=(
                    "loads libraries with dlopen by names made at run time, which static "
                    "analysis cannot follow: run `scratchprobe verify` on its real workload"
                ),
                evidence=("calls " + ", ".join(calls),),
            )
        )
    return needs


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    return _mozilla_nss(subject, ctx) + _notes_and_calls(subject, ctx)
