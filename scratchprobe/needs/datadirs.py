"""Data a program reads from directories it was built to know.

- An embedded CPython (libpython3.X in the closure) imports its standard library from
  PREFIX/lib/python3.X at start-up (`encodings` first); without it initialisation fails
  ("init_fs_encoding: failed to get the Python codec", docs/runtime-facts.md, "CPython").
- A program that names its own data directory, /usr/share/<its name> (gdb, groff), reads it
  at start-up; the exact string must be in the program and the directory in the root.
- A relocatable program finds its data relative to its own executable: it reads
  /proc/self/exe (proc(5); Go's os.Executable does, os/executable_procfs.go), then opens
  PREFIX/share/NAME-VERSION beside bin/ (CMake's CMAKE_DATA_DIR "/share/cmake-X.Y"), a lib/
  tree searched upward from its directory (Zig: lib/std/std.zig), or assets beside it. The
  evidence is both halves: the self-location, and a relative path literal of the program
  that names a directory which really surrounds the binary in --root (`share/NAME` as a
  whole component, or `NAME/FILE` where that file exists inside `lib/NAME`, `share/NAME` or
  the binary's own directory). No directory is planned on a name alone; what no evidence
  shows is for `scratchprobe verify --trace`.
"""

from __future__ import annotations

import functools
import posixpath
import re

from scratchprobe.elf.image import FileImage
from scratchprobe.elf.markers import MarkerSet
from scratchprobe.errors import ELFError
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import SELF_EXE, STRING_SECTIONS, Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.toolchain.signs import EXECUTABLE

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
    if not _names_exactly(subject, directory.encode()):
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


def _names_exactly(subject: Subject, literal: bytes) -> bool:
    """The literal as a whole string or a path prefix ("/usr/share/gdb" or ".../gdb/..."),
    searched in the file's shared, bounded image (elf/image.py), not a whole-file read."""
    view = subject.image
    if view is None:
        return False
    try:
        at = view.find(literal)
        while at >= 0:
            if view[at + len(literal) : at + len(literal) + 1] in (b"\0", b"/"):
                return True
            at = view.find(literal, at + 1)
    except (OSError, ELFError):
        return False
    return False


_PATH_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-/")
_TREES = ("share", "lib", "libexec")
"""Directories beside bin/ (or beside the program) a relocatable layout keeps data in."""
_SYSTEM_PREFIXES = frozenset({"/", "/usr", "/usr/local"})
# Shared directories every system has, which no program's own layout owns: FHS 3.0 §4.11
# (/usr/share: dict, doc, info, locale, man, misc, nls, ppd, sgml, terminfo, tmac, xml,
# zoneinfo) and §4.6 (/usr/lib), the XDG and shared-mime-info directories, shell
# completions, and the kernel's (firmware, modules). A program naming one of them by a
# relative path (help text, a completion script) is not locating its own data.
_SHARED_DIRS = frozenset({
    "dict", "doc", "info", "locale", "man", "misc", "nls", "ppd", "sgml", "terminfo", "tmac",
    "xml", "zoneinfo", "applications", "icons", "mime", "fonts", "pixmaps", "metainfo",
    "themes", "sounds", "help", "menu", "dbus-1", "polkit-1", "bash-completion", "zsh", "fish",
    "vim", "emacs", "aclocal", "pkgconfig", "common-licenses", "i18n", "X11", "lintian",
    "firmware", "modules", "systemd", "udev", "sysctl.d", "tmpfiles.d", "modprobe.d",
    "binfmt.d", "sysusers.d", "environment.d", "debug", "os-release", "ssl", "gconv",
})  # fmt: skip


@functools.cache
def _versioned() -> re.Pattern[str]:
    """Compiled on first use: only the entries of a system prefix are matched with it."""
    return re.compile(r"-\d+(\.\d+)*$")


_MAX_ENTRIES = 400
_MAX_HITS = 2000


@functools.cache
def _rest() -> re.Pattern[bytes]:
    """Compiled on first use: only a relative `NAME/` literal found is matched with it."""
    return re.compile(rb"[A-Za-z0-9_.+/-]{1,200}")


def _self_location(subject: Subject) -> str | None:
    go = subject.go
    if go is not None:
        found = go.found(EXECUTABLE)
        return f"calls {found[0]} (reads /proc/self/exe)" if found else None
    return f'string "{SELF_EXE}" in the program' if SELF_EXE in subject.binary.strings else None


class _Literals:
    """Relative path literals of the program, searched in its read-only data."""

    def __init__(self, view: FileImage, ranges: list[tuple[int, int]]) -> None:
        self.view = view
        self.ranges = ranges

    def _starts_relative(self, at: int, start: int) -> bool:
        """The literal begins here, after an optional "/" or "../"s: a path meant to be
        joined to a directory, not the tail of an absolute one (/usr/share/locale)."""
        view = self.view
        p = at
        if p > start and view[p - 1] == 0x2F:
            p -= 1
            while p - 2 >= start and view[p - 2 : p] == b"..":
                p -= 2
                if p > start and view[p - 1] == 0x2F:
                    p -= 1
        if p - 2 >= start and view[p - 2 : p] == b"%s":
            p -= 2  # a format string joining the program's directory: "%s/../share/..."
        return p == start or view[p - 1] not in _PATH_CHARS

    def component(self, needle: bytes) -> bool:
        """`needle` (like b"share/cmake-4.4") as whole relative path components."""
        for start, end in self.ranges:
            at = self.view.find(needle, start, end)
            hits = 0
            while at >= 0 and hits < _MAX_HITS:
                hits += 1
                after = at + len(needle)
                whole = (
                    after >= end
                    or self.view[after] not in _PATH_CHARS
                    or (self.view[after] == 0x2F)
                )
                if whole and self._starts_relative(at, start):
                    return True
                at = self.view.find(needle, at + 1, end)
        return False

    def landmarks(self, name: bytes) -> list[str]:
        """The rest of every relative literal `NAME/REST` (e.g. b"std/std.zig")."""
        found: list[str] = []
        needle = name + b"/"
        for start, end in self.ranges:
            at = self.view.find(needle, start, end)
            hits = 0
            while at >= 0 and hits < _MAX_HITS:
                hits += 1
                if self._starts_relative(at, start):
                    rest = at + len(needle)
                    match = _rest().match(self.view[rest : min(end, rest + 4096)])
                    text = match.group(0).decode("ascii").strip("/") if match else ""
                    if text and ".." not in text.split("/") and text not in found:
                        found.append(text)
                at = self.view.find(needle, at + 1, end)
        return found[:64]


def _exe_relative(
    subject: Subject, ctx: Context, claimed: set[str], note: bool = True
) -> list[RuntimeNeed]:
    located = _self_location(subject)
    if located is None:
        return []
    here = posixpath.dirname(subject.path)
    if not here.startswith("/"):
        return []
    prefix = posixpath.dirname(here)
    system_dirs = set(subject.closure.system_dirs) if subject.closure is not None else set()
    if not system_dirs:
        system_dirs = set(ctx.resolver.system_dirs(None, subject.elf.arch)[0])
    go = subject.go is not None
    stem = posixpath.basename(subject.path)
    # Installed in a system prefix (/usr/bin/cmake): its neighbours are everybody's.
    system = prefix in _SYSTEM_PREFIXES or here in _SYSTEM_PREFIXES
    # Where the layout keeps data: lib/, share/, libexec/ beside bin/ (the prefix), and the
    # program's own directory (assets, or lib/ next to a top-level executable).
    places: list[tuple[str, str]] = []
    for base in dict.fromkeys((prefix, here)):
        for tree in _TREES:
            places.append((base, tree))
    places.append((here, ""))
    needs: list[RuntimeNeed] = []
    try:
        # The run's pread-based image of the file (elf/image.py): no mmap, so no SIGBUS.
        view = subject.image
        if view is None:
            return needs
        ranges = view.section_ranges(STRING_SECTIONS) or [(0, len(view))]
        literals = _Literals(view, ranges)
        # Go's strings are not NUL-terminated and its package paths look like relative
        # ones ("mime/multipart"): only whole "share/NAME" names count. A system prefix's
        # programs name their own directory whole (share/cmake-3.25): landmarks are for the
        # layouts of relocatable distributions.
        landmarks = not go and not system
        candidates = [
            (tree, parent, _own_entries(ctx, parent, stem, system, claimed, system_dirs, here))
            for base, tree in places
            if (parent := posixpath.join(base, tree) if tree else base) not in system_dirs
            and ctx.is_dir(parent)
        ]
        # Every literal the loop below may search, searched for in one pass (elf/markers.py).
        searched = MarkerSet("data directories", STRING_SECTIONS)
        for tree, _parent, names in candidates:
            for name in names:
                searched.declare(*_why_literals(tree, name, landmarks))
        view.expect(searched)
        for tree, parent, names in candidates:
            named: list[tuple[str, str]] = []
            for name in names:
                directory = posixpath.join(parent, name)
                if directory in claimed:
                    continue  # claimed by an earlier place of this loop (a tree taken whole)
                reason = _why(literals, ctx, tree, name, directory, landmarks=landmarks)
                if reason is not None:
                    named.append((directory, reason))
            if not named:
                continue
            if len(named) >= 2 and tree and not system:
                # Several entries of one tree beside the program: the tree is the
                # layout's data root (Zig's lib/), taken whole.
                claimed.add(parent)
                reasons = tuple(r for _d, r in named[:3])
                needs.append(_relative_need(subject, parent, located, reasons))
                continue
            for directory, reason in named:
                claimed.add(directory)
                needs.append(_relative_need(subject, directory, located, (reason,)))
    except (OSError, ValueError, ELFError):
        return needs
    if note and not needs and not system:
        needs.append(
            RuntimeNeed(
                kind=NeedKind.DATA_DIRECTORY,
                confidence=Confidence.POSSIBLE,
                summary=(
                    "locates itself at run time, so it may read files relative to "
                    f"{here}; no path in the program names one beside it: run "
                    "`scratchprobe verify --trace` on its real job to see what it opens"
                ),
                evidence=(located,),
            )
        )
    return needs


def _own_entries(
    ctx: Context,
    parent: str,
    stem: str,
    system: bool,
    claimed: set[str],
    system_dirs: set[str],
    here: str,
) -> list[str]:
    """The entries of `parent` that may be the program's own data directory."""
    names = []
    for name in sorted(ctx.root.listdir(parent))[:_MAX_ENTRIES]:
        directory = posixpath.join(parent, name)
        # In a system prefix a directory is the program's own only when its name says so:
        # a version (cmake-3.25) or the program's name (perf-core).
        owned = _versioned().search(name) is not None or name.startswith(stem)
        if (
            name in _SHARED_DIRS
            or (system and not owned)
            or directory in claimed
            or directory in system_dirs
            or directory == here
            or not ctx.is_dir(directory)
        ):
            continue
        names.append(name)
    return names


def _why_literals(tree: str, name: str, landmarks: bool) -> tuple[bytes, ...]:
    """What `_why` searches for `name` (in this order)."""
    whole = (f"{tree}/{name}".encode(),) if tree else ()
    return (*whole, name.encode() + b"/") if landmarks else whole


def _why(
    literals: _Literals, ctx: Context, tree: str, name: str, directory: str, landmarks: bool
) -> str | None:
    """Which literal of the program names `directory`, in words; None when none does."""
    if tree and literals.component(f"{tree}/{name}".encode()):
        return f'the relative path "{tree}/{name}" is in the program'
    for rest in literals.landmarks(name.encode()) if landmarks else ():
        if ctx.exists(posixpath.join(directory, rest)):
            return f'the relative path "{name}/{rest}" is in the program and exists there'
    return None


def _relative_need(
    subject: Subject, directory: str, located: str, reasons: tuple[str, ...]
) -> RuntimeNeed:
    where = posixpath.relpath(directory, posixpath.dirname(subject.path))
    return RuntimeNeed(
        kind=NeedKind.DATA_DIRECTORY,
        confidence=Confidence.LIKELY,
        summary=(
            f"finds its data relative to its own executable: {directory} ({where} from the "
            "program's directory) goes into the image at the same place; anything else it "
            "opens that way shows in `scratchprobe verify --trace`"
        ),
        evidence=(located, *reasons),
        files=(NeededFile(directory, "directory", source=directory, note="beside the program"),),
    )


# A Go root (go/build isGOROOT and cmd/go's findGOROOT: a directory holding pkg/tool), with
# what a toolchain reads from it: the standard library's sources, the tools, lib/ (time's
# zoneinfo.zip), the VERSION and go.env files (Go 1.21+).
_GO_ROOT_MARK = "pkg/tool"
_GO_ROOT_PARTS = ("src", "pkg", "lib", "misc", "VERSION", "go.env")


def _go_root(subject: Subject, ctx: Context, claimed: set[str]) -> list[RuntimeNeed]:
    """A Go program built with -trimpath has no root baked in (runtime.GOROOT is empty
    without $GOROOT, Go 1.21 runtime/extern.go); a toolchain then finds its root from its
    own path: the directory above bin/ when it holds pkg/tool."""
    go = subject.go
    if go is None or go.buildinfo is None or not go.found(EXECUTABLE):
        return []
    if go.buildinfo.setting("-trimpath") != "true":
        return []
    here = posixpath.dirname(subject.path)
    root = posixpath.dirname(here)
    if posixpath.basename(here) != "bin" or root in _SYSTEM_PREFIXES:
        return []
    if not ctx.is_dir(posixpath.join(root, _GO_ROOT_MARK)):
        return []
    files = []
    for part in _GO_ROOT_PARTS:
        path = posixpath.join(root, part)
        if path in claimed or not ctx.exists(path):
            continue
        kind = "directory" if ctx.is_dir(path) else "file"
        files.append(NeededFile(path, kind, source=path, note="the Go root beside bin/"))
    if not files:
        return []
    return [
        RuntimeNeed(
            kind=NeedKind.DATA_DIRECTORY,
            confidence=Confidence.LIKELY,
            summary=(
                f"a Go toolchain layout: built with -trimpath, it finds its Go root from its "
                f"own path ({root}, which holds {_GO_ROOT_MARK}); the root's parts go into "
                "the image at the same place (what else it opens: `scratchprobe verify "
                "--trace`)"
            ),
            evidence=(
                *go.evidence("locates itself", EXECUTABLE),
                "build setting -trimpath=true (no Go root baked in)",
                f"{root}/{_GO_ROOT_MARK} exists beside bin/",
            ),
            files=tuple(files),
        )
    ]


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    found = _python(subject, ctx) + _own_data(subject, ctx)
    claimed = {f.path for n in found for f in n.files}
    go_root = _go_root(subject, ctx, claimed)
    claimed |= {f.path for n in go_root for f in n.files}
    return found + go_root + _exe_relative(subject, ctx, claimed, note=not go_root)
