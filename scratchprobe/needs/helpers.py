"""Helper programs: a program that executes programs of its own from a directory it was
built to know, and loses them in an image that has only the program.

git runs `git-remote-http` and most sub-commands from its exec path (`/usr/lib/git-core`,
compiled in, overridden by GIT_EXEC_PATH or --exec-path: git's exec-cmd.c); many packages put
such programs in a libexec directory, which the FHS reserves for "binaries run by other
programs", not by users (FHS 3.0, §4.7 /usr/libexec).

Evidence, all of it needed:
- the program starts other programs: it imports or links an exec-family function (execv,
  execve, execvp, execvpe, execl*, fexecve, posix_spawn, posix_spawnp; POSIX.1-2017
  `exec`, `posix_spawn`);
- a string of its own read-only data names a directory under a lib or libexec directory
  (`/usr/lib/git-core`, `/usr/libexec/NAME`), or a program in one;
- that directory exists in the root and holds mostly programs (ELF executables or `#!`
  scripts with an execute bit): a data or plugin directory (`/usr/lib/locale`, Python's
  stdlib with its few executable modules, a directory of .so plugins) is not one.

Confidence: `possible`, always reported, never planned by default. Strong evidence (a
libexec directory, helpers by definition; an exec-path setting, an `EXEC_PATH` / `exec-path`
string beside the directory) is listed, but a program runs only some of its helpers, and
only for some jobs (git needs git-remote-http for HTTP remotes, not for `git log`), and the
helpers' own libraries are not resolved by this need: copying a directory of programs that
cannot start into every image is no fix. `--with helpers` (or `--strict`) copies the
directory whole; naming it as an input too (`scratchprobe inspect PROGRAM DIR`) resolves
the closure of every program in it.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import stat

from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import ElfImage
from scratchprobe.elf.markers import MarkerSet
from scratchprobe.errors import ELFError
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.root import open_regular

EXEC_FUNCTIONS = (
    "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "fexecve",
    "posix_spawn", "posix_spawnp",
)  # fmt: skip

_PREFIXES = (b"/usr/libexec/", b"/usr/lib/", b"/usr/local/libexec/", b"/usr/local/lib/",
             b"/libexec/", b"/lib/")  # fmt: skip


@functools.cache
def _path() -> re.Pattern[bytes]:
    """Compiled on first use: only a helper-directory literal found is matched with it."""
    return re.compile(rb"^/[A-Za-z0-9._+/-]{1,250}$")


_EXEC_PATH_MARKERS = (b"EXEC_PATH\0", b"exec-path")
_SECTIONS = (".rodata", ".rodata1", ".data.rel.ro", ".data")
# Asked of the programs that start others only: one pass of their own (elf/markers.py).
_MARKERS = MarkerSet("helper directories", _SECTIONS)
_MARKERS.declare(*_PREFIXES, *_EXEC_PATH_MARKERS)
_SHOWN = 8
"""Helpers named in the summary; the rest are counted."""


def _strings_with_prefixes(view: ElfImage, ranges: list[tuple[int, int]]) -> set[str]:
    """Whole NUL-terminated strings of the file's data that start with a lib or libexec
    directory (a C string literal, never a piece cut out of a longer one)."""
    found: set[str] = set()
    try:
        for start, end in ranges or [(0, len(view))]:
            for prefix in _PREFIXES:
                at = view.find(prefix, start, end)
                while at >= 0:
                    stop = view.find(b"\0", at, min(end, at + 256))
                    begins_string = at == start or view[at - 1] == 0
                    if stop > at and begins_string:
                        text = view[at:stop]
                        if _path().match(text):
                            found.add(text.decode("ascii"))
                    at = view.find(prefix, at + 1, end)
    except (ELFError, ValueError):
        return set()
    return found


def _has_exec_path_setting(view: ElfImage, ranges: list[tuple[int, int]]) -> bool:
    try:
        return any(
            view.find(marker, start, end) >= 0
            for marker in _EXEC_PATH_MARKERS
            for start, end in ranges or [(0, len(view))]
        )
    except (ELFError, ValueError):
        return False


def _is_program(ctx: Context, host_path: str) -> bool:
    """An ELF executable (ET_EXEC, or ET_DYN with an interpreter: a PIE, not a library) or a
    `#!` script."""
    try:
        with os.fdopen(open_regular(host_path), "rb") as handle:
            magic = handle.read(4)
    except OSError:
        return False
    if magic[:2] == b"#!":
        return True
    if magic != b"\x7fELF":
        return False
    try:
        # The run's parsed files: a helper directory that is also an input is read once.
        elf = ctx.resolver.elf_cache.get(host_path)
    except (ELFError, OSError, ValueError):
        return False
    return elf.elf_type is ElfType.EXEC or (
        elf.elf_type is ElfType.DYN and elf.interpreter is not None
    )


def _helpers_in(ctx: Context, directory: str) -> tuple[str, ...]:
    """Programs directly in `directory` of the root, when they are most of its files."""
    try:
        host_dir = ctx.root.resolve(directory).host_path
        names = sorted(os.listdir(host_dir))
    except OSError:
        return ()
    programs: list[str] = []
    files = 0
    for name in names:
        try:
            resolved = ctx.root.resolve(posixpath.join(directory, name))
        except OSError:
            continue
        if not resolved.is_file:
            continue
        files += 1
        if (
            resolved.mode & 0o111
            and stat.S_ISREG(resolved.mode)
            and _is_program(ctx, resolved.host_path)
        ):
            programs.append(name)
    # A helper directory holds programs; one with a few executable files among data
    # (Python's stdlib, /usr/lib/ssl) is something else.
    if not programs or len(programs) * 2 < files:
        return ()
    return tuple(programs)


def _candidates(strings: set[str], excluded: set[str]) -> list[str]:
    """Directories a string names: itself, or the directory of a program path in it, one
    level or more below a lib or libexec directory, never a library directory itself."""
    dirs: list[str] = []
    for text in sorted(strings):
        path = posixpath.normpath(text)
        for candidate in (path, posixpath.dirname(path)):
            parts = candidate.strip("/").split("/")
            top = {"lib", "libexec"}
            below = [i for i, p in enumerate(parts) if p in top]
            if not below or below[0] + 1 >= len(parts) or candidate in excluded:
                continue
            if candidate not in dirs:
                dirs.append(candidate)
    return dirs


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    if subject.go is not None:
        # Go strings are not NUL-terminated: no whole literal can be told from a cut one.
        return []
    calls = subject.uses(*EXEC_FUNCTIONS)
    if not calls:
        return []
    view = subject.image
    if view is None:
        return []
    ranges = view.section_ranges(_SECTIONS)
    view.expect(_MARKERS)
    strings = _strings_with_prefixes(view, ranges)
    if not strings:
        return []
    closure = subject.closure
    excluded = set(closure.system_dirs if closure is not None else ())
    excluded |= {"/lib", "/usr/lib", "/usr/local/lib", "/libexec", "/usr/libexec"}
    needs: list[RuntimeNeed] = []
    exec_path = None
    seen: set[str] = set()
    for directory in _candidates(strings, excluded):
        real = ctx.real(directory)
        # One need per directory: /lib/systemd and /usr/lib/systemd are one on merged /usr.
        if real is None or real in seen or not ctx.is_dir(directory):
            continue
        seen.add(real)
        helpers = _helpers_in(ctx, directory)
        if not helpers:
            continue
        if exec_path is None:
            exec_path = _has_exec_path_setting(view, ranges)
        libexec = "libexec" in directory.split("/")
        evidence = [f'string "{directory}" in the program', "calls " + ", ".join(calls)]
        if exec_path:
            evidence.append("has an exec-path setting (EXEC_PATH / exec-path)")
        if libexec:
            evidence.append("a libexec directory: programs run by other programs (FHS 4.7)")
        evidence.append(f"programs in {directory}: " + ", ".join(helpers))
        count = f"{len(helpers)} program{'s' if len(helpers) != 1 else ''}"
        shown = ", ".join(helpers[:_SHOWN])
        more = f" and {len(helpers) - _SHOWN} more" if len(helpers) > _SHOWN else ""
        needs.append(
            RuntimeNeed(
                kind=NeedKind.HELPERS,
                confidence=Confidence.POSSIBLE,
                summary=(
                    f"runs helper programs from {directory}, which the image lacks without "
                    f"it: {shown}{more} ({count}); --with helpers copies "
                    f"the directory, whose programs' libraries are resolved only when it "
                    f"is an input too (scratchprobe inspect {subject.path} {directory})"
                ),
                evidence=tuple(evidence),
                files=(NeededFile(directory, "directory", source=directory),),
            )
        )
    return needs
