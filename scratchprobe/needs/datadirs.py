"""Data a program reads from directories it was built to know.

- An embedded CPython (libpython3.X in the closure) imports its standard library from
  PREFIX/lib/python3.X at start-up (`encodings` first); without it initialisation fails
  ("init_fs_encoding: failed to get the Python codec", runtime-deps.md §9).
- A program that names its own data directory, /usr/share/<its name> (gdb, groff), reads it
  at start-up; the exact string must be in the program and the directory in the root.
"""

from __future__ import annotations

import posixpath
import re

from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

_LIBPYTHON = re.compile(r"^libpython(\d+\.\d+)[a-z]*\.so")
_PREFIXES = ("/usr", "/usr/local", "")


def _python(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    for lib in subject.libraries:
        match = _LIBPYTHON.match(lib.soname or "")
        if match is None:
            continue
        version = match.group(1)
        for prefix in _PREFIXES:
            stdlib = f"{prefix}/lib/python{version}"
            if ctx.is_dir(stdlib) and ctx.exists(posixpath.join(stdlib, "os.py")):
                return [
                    RuntimeNeed(
                        kind=NeedKind.PYTHON,
                        confidence=Confidence.LIKELY,
                        summary=(
                            f"embeds Python {version}, which imports its standard library "
                            f"from {stdlib} when it starts"
                        ),
                        evidence=(f"{lib.name} in the closure",),
                        files=(NeededFile(stdlib, "directory", source=stdlib),),
                    )
                ]
        return [
            RuntimeNeed(
                kind=NeedKind.PYTHON,
                confidence=Confidence.LIKELY,
                summary=f"embeds Python {version}, whose standard library the root lacks",
                evidence=(f"{lib.name} in the closure",),
                problems=(f"no lib/python{version} with os.py under /usr, /usr/local or /",),
            )
        ]
    return []


def _own_data(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    name = posixpath.basename(subject.path)
    directory = f"/usr/share/{name}"
    if not name or not ctx.is_dir(directory):
        return []
    if not _names_exactly(subject.elf.path, directory.encode()):
        return []
    return [
        RuntimeNeed(
            kind=NeedKind.DATA_DIRECTORY,
            confidence=Confidence.LIKELY,
            summary=f"reads its own data directory {directory}, compiled into the program",
            evidence=(f'string "{directory}" in the program',),
            files=(NeededFile(directory, "directory", source=directory),),
        )
    ]


def _names_exactly(path: str, literal: bytes) -> bool:
    """The literal as a whole string or a path prefix ("/usr/share/gdb" or ".../gdb/...")."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    at = data.find(literal)
    while at >= 0:
        if data[at + len(literal) : at + len(literal) + 1] in (b"\0", b"/"):
            return True
        at = data.find(literal, at + 1)
    return False


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    return _python(subject, ctx) + _own_data(subject, ctx)
