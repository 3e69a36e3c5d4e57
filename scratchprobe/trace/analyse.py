"""One traced run against the plan and the builder's filesystem.

- a **miss** is a path the program tried that the image lacks (ENOENT or ENOTDIR) but the
  builder (`--root`) has, or a directory it listed in the image that holds less than the
  builder's; each is classified and carries the syscall that proves it, and the include
  entry that covers it: the whole directory when the program listed it, a single file when
  it opened one, an empty directory when it only checked that the directory exists (a
  listing in a later round then learns its contents);
- **confirmed**: plan entries the run opened, executed or listed (the loader named in
  PT_INTERP is opened by the kernel during execve, which the trace shows as the execve);
- **untouched**: plan entries this run never opened: a hint, never a removal;
- **runtime-provided**: what the container runtime supplies (/proc, /sys, /dev, /etc/hosts,
  /etc/resolv.conf, /etc/hostname), which the plan never copies.

A path is compared with the image after following the image's own symlinks (as the kernel
would inside it), and with the builder after following the builder's (scratchprobe.root).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from scratchprobe.elf.classify import ObjectKind
from scratchprobe.elf.classify import classify as classify_elf
from scratchprobe.elf.constants import ElfType
from scratchprobe.errors import ELFError
from scratchprobe.loader.closure import ElfCache, Resolver
from scratchprobe.plan import FileKind, FileType, ImageFile, Plan, library_image_path
from scratchprobe.root import PathLoopError, Root, follow_links, normalize, open_regular
from scratchprobe.rootfs import Entry, Layout
from scratchprobe.sandbox import EMULATOR_DIR
from scratchprobe.trace.includes import Include
from scratchprobe.trace.strace import PathEvent

RUNTIME_PROVIDED = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
"""Mounted by every container runtime (OCI runtime spec, "Default Filesystems"; Docker and
Podman bind /etc/hosts, /etc/resolv.conf and /etc/hostname)."""

WHOLE_DIRECTORY_LIMIT = 512 * 1024 * 1024
"""A listed directory larger than this is learned as an empty directory, with a note: a
program listing /usr/lib must not pull the builder's whole library directory."""

_MISSING = frozenset({"ENOENT", "ENOTDIR"})

LOADER_OWN = ("/etc/ld.so.cache", "/etc/ld.so.preload")
"""Never learned: the image has no /etc/ld.so.cache on purpose (the builder's names files
the image lacks; plan.py places libraries where the loader looks by default), and an
ld.so.preload would load libraries into every program."""


class MissKind(Enum):
    LIBRARY = "shared-library"
    PROGRAM = "program"
    LOCALE = "locale"
    GCONV = "gconv"
    CERTIFICATES = "certificates"
    CONFIG = "config"
    MODULE = "module"
    DATA_DIRECTORY = "data-directory"
    DIRECTORY = "directory"
    DATA_FILE = "data-file"


MISS_WORDS: dict[MissKind, str] = {
    MissKind.LIBRARY: "shared library (dlopen, or a DT_NEEDED of one)",
    MissKind.PROGRAM: "program it executes",
    MissKind.LOCALE: "locale data",
    MissKind.GCONV: "gconv module (iconv)",
    MissKind.CERTIFICATES: "certificate store",
    MissKind.CONFIG: "configuration file",
    MissKind.MODULE: "interpreter module",
    MissKind.DATA_DIRECTORY: "data directory it lists",
    MissKind.DIRECTORY: "directory it checks",
    MissKind.DATA_FILE: "data file",
}

_CERT_DIRS = (
    "/etc/ssl",
    "/etc/pki",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/lib/ssl",
    "/usr/local/share/ca-certificates",
)
_LOCALE_DIRS = ("/usr/lib/locale", "/usr/share/locale", "/usr/share/i18n", "/usr/lib64/locale")
_LOCALE_DIRECTORY = re.compile(r"^/usr/lib(64)?/locale/(?!locale-archive$)[^/]+")
_PYTHON_DIR = re.compile(r"/python\d+(\.\d+)?(/|$)|/(site|dist)-packages(/|$)")


@dataclass(frozen=True)
class Miss:
    path: str
    """The image path the program tried (after the image's symlinks)."""
    kind: MissKind
    evidence: str
    """The syscall, its result in the image, and the process."""
    include: Include
    """The entry that covers it."""
    directory: bool = False
    """It is a directory in the builder (copied whole, or created empty: `include.tree`)."""


@dataclass(frozen=True)
class Seen:
    path: str
    evidence: str


@dataclass(frozen=True)
class TraceReport:
    started: bool
    """The program's own execve was seen (else nothing after it could be attributed)."""
    truncated: bool
    misses: tuple[Miss, ...]
    confirmed: tuple[Seen, ...]
    untouched: tuple[str, ...]
    runtime_provided: tuple[Seen, ...]
    notes: tuple[str, ...]


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class ImageView:
    """The written image, as a lookup of its layout (every entry, copied trees included)."""

    def __init__(self, layout: Layout) -> None:
        self.entries: Mapping[str, Entry] = {e.path: e for e in layout.entries}
        children: dict[str, set[str]] = {}
        for path in self.entries:
            children.setdefault(posixpath.dirname(path), set()).add(posixpath.basename(path))
        self.children = children

    def canonical(self, path: str) -> str:
        """`path` with the image's symlinks followed as the kernel would (root.follow_links),
        the missing tail kept as it is; a loop of links is left as it is written."""

        def step(candidate: str, more: bool) -> str | None:
            entry = self.entries.get(candidate)
            if entry is not None and entry.type is FileType.SYMLINK and entry.target:
                return entry.target
            return None

        try:
            return follow_links(path, step)
        except PathLoopError:
            return normalize(path)

    def has(self, path: str) -> bool:
        return path == "/" or path in self.entries


def _elf_role(host_path: str) -> MissKind | None:
    """PROGRAM or LIBRARY for an ELF file, None for anything else. A PIE program is ET_DYN
    like a library; what tells them apart is a SONAME (libc.so.6 has a PT_INTERP too)."""
    try:
        with os.fdopen(open_regular(host_path), "rb") as handle:
            if handle.read(4) != b"\x7fELF":
                return None
        elf = ElfCache().get(host_path)
    except (OSError, ELFError, ValueError):
        return None
    if elf.elf_type not in (ElfType.EXEC, ElfType.DYN):
        return None
    _linkage, kind = classify_elf(elf)
    if kind is ObjectKind.EXECUTABLE and elf.soname is None:
        return MissKind.PROGRAM
    return MissKind.LIBRARY


def classify(path: str, host_path: str, is_dir: bool, event: PathEvent) -> MissKind:
    if "/gconv/" in path + "/":
        return MissKind.GCONV
    if _under(path, _LOCALE_DIRS):
        return MissKind.LOCALE
    if _under(path, _CERT_DIRS):
        return MissKind.CERTIFICATES
    if not is_dir and event.executed:
        return MissKind.PROGRAM
    role = None if is_dir else _elf_role(host_path)
    if role is not None:
        return role
    if _PYTHON_DIR.search(path):
        return MissKind.MODULE
    if _under(path, ("/etc",)):
        return MissKind.CONFIG
    if is_dir:
        return MissKind.DATA_DIRECTORY if event.directory else MissKind.DIRECTORY
    return MissKind.DATA_FILE


def _tree_size(host_dir: str, limit: int) -> int:
    total = 0
    for current, _dirs, files in os.walk(host_dir):
        for name in files:
            try:
                total += os.lstat(os.path.join(current, name)).st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def _reason(event: PathEvent, detail: str = "in the image") -> str:
    result = event.errno or event.result
    return f"seen by verify --trace: {event.syscall}({event.path}) = {result} {detail}"


def analyse(
    events: tuple[PathEvent, ...],
    started: bool,
    truncated: bool,
    plan: Plan,
    layout: Layout,
    root: Root,
    library_path: tuple[str, ...] = (),
) -> TraceReport:
    image = ImageView(layout)
    notes: list[str] = []
    provided: dict[str, str] = {}
    opened: dict[str, str] = {}
    """Canonical image path -> first evidence, for successful opens, execs and listings."""
    raw_opened: dict[str, str] = {}
    misses: dict[str, Miss] = {}
    by_source: set[str] = set()
    analysed_dirs = _analysis_directories(plan)

    canonical = [image.canonical(e.path) for e in events]
    # Directories the program looked inside (any path below them): a listing followed by
    # that is a walk, which the whole directory covers; a bare listing is not.
    looked_inside = {posixpath.dirname(p) for p in canonical}
    for directory in list(looked_inside):
        parent = directory
        while parent not in ("/", ""):
            parent = posixpath.dirname(parent)
            looked_inside.add(parent)

    def learn(event: PathEvent, path: str, listed_in_image: bool) -> None:
        if _under(path, (EMULATOR_DIR, *LOADER_OWN)):
            return
        try:
            resolved = root.resolve(path)
        except OSError:
            return
        existing = misses.get(path)
        if existing is not None:
            # Checked first, listed later in the same run: the listing decides.
            if not (existing.directory and not existing.include.tree and event.directory):
                return
            del misses[path]
            by_source.discard(resolved.path)
        if resolved.path in by_source:
            # Another name of a file already learned: the program found it under the
            # first name it tried, and stops there.
            return
        kind = classify(path, resolved.host_path, resolved.is_dir, event)
        whole_locale = _LOCALE_DIRECTORY.match(path)
        if whole_locale is not None and whole_locale.group(0) != path:
            # setlocale loads every category file of a locale from its directory
            # (glibc locale/findlocale.c, _nl_find_locale), and stops at the first one
            # missing: the directory is the unit, else each round would learn one file.
            path = whole_locale.group(0)
            if path in misses:
                return
            try:
                resolved = root.resolve(path)
            except OSError:
                return
            if not resolved.is_dir:
                return
            include = Include(
                source=path,
                reason=_reason(event, "in the image (the whole locale)"),
                origin="verify --trace",
                kind=kind.value,
            )
            misses[path] = Miss(path, kind, event.evidence(), include, True)
            by_source.add(resolved.path)
            return
        tree = False
        if resolved.is_dir and event.directory:
            if path in analysed_dirs:
                notes.append(
                    f"{path}: listed, but the analysis places files in it; not learned whole "
                    "(include it by hand if the program needs the builder's whole directory)"
                )
                if listed_in_image:
                    return
            elif listed_in_image and path not in looked_inside:
                # Listed, nothing inside used (Python's site lists site-packages for .pth
                # files): the empty directory the image has already answers the same.
                return
            elif _tree_size(resolved.host_path, WHOLE_DIRECTORY_LIMIT) > WHOLE_DIRECTORY_LIMIT:
                notes.append(
                    f"{path}: listed, but larger than {WHOLE_DIRECTORY_LIMIT >> 20} MiB; "
                    "learned as an empty directory"
                )
            else:
                tree = True
        elif resolved.is_dir and listed_in_image:
            return
        detail = "in the image"
        if listed_in_image:
            detail = "in the image, which lacks entries the builder's directory has"
        include = Include(
            source=path,
            reason=_reason(event, detail),
            origin="verify --trace",
            kind=kind.value,
            tree=tree if resolved.is_dir else True,
        )
        misses[path] = Miss(path, kind, event.evidence(), include, resolved.is_dir)
        by_source.add(resolved.path)

    for event, path in zip(events, canonical, strict=True):
        if _under(event.path, RUNTIME_PROVIDED):
            provided.setdefault(event.path, event.evidence())
            continue
        if event.errno is None and not event.result.startswith("-1"):
            if event.opened:
                opened.setdefault(path, event.evidence())
                raw_opened.setdefault(event.path, event.evidence())
            if event.directory and image.has(path):
                # A listing in the image: learned when the builder's directory has more.
                builder = root.listdir(path)
                if builder - image.children.get(path, set()):
                    learn(event, path, listed_in_image=True)
            continue
        if event.errno in _MISSING and not image.has(path):
            learn(event, path, listed_in_image=False)

    extra = _library_closures(tuple(misses.values()), image, root, library_path)
    for miss in extra:
        if miss.path not in misses:
            misses[miss.path] = miss

    confirmed, untouched = _confirmed(plan, opened, raw_opened, events, started)
    if not started:
        notes.append(
            "the program's own execve never appeared in the trace: nothing was attributed to it"
        )
    if truncated:
        notes.append("the trace was truncated at its size limit: later syscalls are not counted")
    return TraceReport(
        started=started,
        truncated=truncated,
        misses=tuple(misses.values()),
        confirmed=confirmed,
        untouched=untouched,
        runtime_provided=tuple(Seen(p, e) for p, e in provided.items()),
        notes=tuple(dict.fromkeys(notes)),
    )


def _analysis_directories(plan: Plan) -> frozenset[str]:
    """Directories the analysis (not an include) puts files in directly."""
    return frozenset(
        posixpath.dirname(f.path)
        for f in plan.files
        if f.kind is not FileKind.INCLUDED and f.type is FileType.FILE
    )


def _library_closures(
    misses: tuple[Miss, ...], image: ImageView, root: Root, library_path: tuple[str, ...]
) -> list[Miss]:
    """The libraries a learned shared library needs in turn (its DT_NEEDED closure, resolved
    like every closure): the loader stops at the first one it cannot find, so without this
    each round would learn one more level."""
    cache = ElfCache()
    resolver = Resolver(root, library_path, cache)
    out: list[Miss] = []
    for miss in misses:
        if miss.kind not in (MissKind.LIBRARY, MissKind.PROGRAM):
            continue
        try:
            elf = cache.get(root.resolve(miss.path).host_path)
            closure = resolver.resolve(miss.path, elf)
        except (OSError, ELFError, ValueError):
            continue
        # A program it executes needs its own loader (PT_INTERP) too.
        objects = [(closure.interpreter.path, closure.interpreter)] if closure.interpreter else []
        objects += [(library_image_path(obj, closure)[0], obj) for obj in closure.libraries]
        for path, obj in objects:
            if image.has(image.canonical(path)):
                continue
            include = Include(
                source=obj.real_path,
                dest=path,
                reason=f"{obj.name}, needed by {obj.needed_by}, in the closure of "
                f"{miss.path}, which verify --trace saw the program load or run "
                f"({miss.evidence})",
                origin="verify --trace",
                kind=MissKind.LIBRARY.value,
            )
            how = "PT_INTERP" if obj is closure.interpreter else "DT_NEEDED"
            out.append(Miss(path, MissKind.LIBRARY, f"{how} of {obj.needed_by}", include))
    return out


def _confirmed(
    plan: Plan,
    opened: Mapping[str, str],
    raw_opened: Mapping[str, str],
    events: tuple[PathEvent, ...],
    started: bool,
) -> tuple[tuple[Seen, ...], tuple[str, ...]]:
    execve = next((e for e in events if e.executed and e.errno is None), None)
    confirmed: list[Seen] = []
    untouched: list[str] = []
    for entry in plan.files:
        evidence = _evidence_for(entry, opened, raw_opened)
        if evidence is None and entry.kind is FileKind.INTERPRETER and started and execve:
            evidence = f"{execve.evidence()}: the kernel loads PT_INTERP during execve"
        if evidence is not None:
            confirmed.append(Seen(entry.path, evidence))
        elif entry.type is not FileType.SYMLINK and _untouchable(entry):
            untouched.append(entry.path)
    return tuple(confirmed), tuple(untouched)


def _untouchable(entry: ImageFile) -> bool:
    """Entries a run can leave untouched: files and directories with contents."""
    return entry.type is FileType.FILE or entry.source is not None


def _evidence_for(
    entry: ImageFile, opened: Mapping[str, str], raw: Mapping[str, str]
) -> str | None:
    for table in (opened, raw):
        found = table.get(entry.path)
        if found is not None:
            return found
    if entry.type is FileType.DIRECTORY or entry.type is FileType.SYMLINK:
        prefix = entry.path + "/"
        for table in (opened, raw):
            for path, evidence in table.items():
                if path.startswith(prefix):
                    return evidence
    return None
