"""The plan: every file a scratch image needs, at every path it will be opened by.

One plan serves every output: the JSON `files` list, the COPY lines, the Dockerfile and the
root filesystem writer all read it, so they cannot disagree. It also records, once, where each
object a binary's loader opens lands in the image and which files each binary needs
(`Plan.binaries`): the JSON `libraries`, the per-binary sizes, the SBOM's edges and the
`--install` re-plan read that record instead of applying the placement rule again.

Placement rule: the image has no /etc/ld.so.cache (copying the builder's would point at
files the image lacks), so a library the builder's loader found only through its cache or
ld.so.conf, in a directory the image's loader does not search by default, is placed in the
first default directory of the image's loader under the name it is requested by.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property

from scratchprobe.loader.closure import Closure, FoundVia, LoadedObject
from scratchprobe.needs.model import NeedKind, RuntimeNeed
from scratchprobe.root import Root


class FileType(Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


class FileKind(Enum):
    """Why a file is in the image, for the loader's part. Runtime files carry the NeedKind
    of the need that added them; both give the JSON `kind` through `.value`."""

    BINARY = "binary"
    INTERPRETER = "interpreter"
    LIBRARY = "library"
    INCLUDED = "included"
    """Added by --include / --include-from (by hand, or learned by verify --trace)."""


ImageKind = FileKind | NeedKind
"""The `kind` of an image entry."""

# Included entries come last: they add to what the analysis planned.
_KIND_ORDER: dict[ImageKind, int] = {
    kind: index
    for index, kind in enumerate(
        (*(k for k in FileKind if k is not FileKind.INCLUDED), *NeedKind, FileKind.INCLUDED)
    )
}


@dataclass(frozen=True)
class ImageFile:
    """One entry of the image's filesystem."""

    path: str
    """Absolute path inside the image."""
    type: FileType
    kind: ImageKind
    reason: str
    source: str | None = None
    """Absolute path inside the root to copy from (None for generated entries)."""
    from_context: bool = False
    """True when `source` is a host path outside --root (COPY from the build context)."""
    content: str | None = None
    target: str | None = None
    mode: str | None = None
    size: int = 0
    """Bytes of the source file (0 for directories and generated entries)."""
    origin: str | None = None
    """Included entries: `--include` or the include file they came from."""

    @property
    def copied(self) -> bool:
        """Whether the image gets this entry's bytes from `source` (a file, or a directory
        copied whole); False for the entries a writer creates itself: generated content,
        empty directories and symlinks (COPY follows a symlink given as its source, so a
        symlink entry is never copied)."""
        return self.source is not None and self.type is not FileType.SYMLINK


@dataclass(frozen=True)
class PlannedBinary:
    """A binary and where it goes, as the planner needs it."""

    path: str
    """Image path of the binary."""
    source: str
    from_context: bool
    size: int
    closure: Closure | None
    needs: tuple[RuntimeNeed, ...] = ()
    """Runtime needs selected for the image (already filtered by confidence and kind)."""


@dataclass(frozen=True)
class Placement:
    """Where the image has one thing a binary needs."""

    paths: tuple[str, ...]
    """Its image path; for a library, then its glibc-hwcaps copies (they stand in for it)."""
    loaded: str | None = None
    """The binary itself, its interpreter and its libraries: the in-root path the builder's
    loader opened it at (`LoadedObject.path`, what the closure's edges name). None for a
    runtime file."""


@dataclass(frozen=True)
class BinaryFiles:
    """Everything one input binary needs in the image, where it lands, in load order: the
    binary, its interpreter, its libraries, then its runtime files."""

    binary: str
    """Image path of the binary."""
    placements: tuple[Placement, ...]

    @cached_property
    def files(self) -> tuple[str, ...]:
        """Image paths of every file the binary needs, itself first, each once (a runtime
        directory the plan refused to copy is still listed: the binary needs it)."""
        return tuple(dict.fromkeys(path for p in self.placements for path in p.paths))

    @cached_property
    def loaded(self) -> dict[str, tuple[str, ...]]:
        """In-root path the builder's loader opened -> image paths of that object."""
        return {p.loaded: p.paths for p in self.placements if p.loaded is not None}


@dataclass(frozen=True)
class Plan:
    files: tuple[ImageFile, ...]
    warnings: tuple[str, ...]
    binaries: tuple[BinaryFiles, ...] = ()
    """Per input binary, in input order: where what it needs lands (placement and
    membership, recorded by build_plan)."""

    @cached_property
    def _binaries(self) -> dict[str, BinaryFiles]:
        return {b.binary: b for b in self.binaries}

    @cached_property
    def _sizes(self) -> dict[str, int]:
        return {f.path: f.size for f in self.files}

    def binary(self, path: str) -> BinaryFiles:
        """What the input binary at image path `path` needs (KeyError for another path)."""
        return self._binaries[path]

    def size_of(self, binary: str) -> int:
        """Bytes of the plan's entries the binary at image path `binary` needs."""
        return sum(self._sizes.get(path, 0) for path in self.binary(binary).files)


def library_image_path(obj: LoadedObject, closure: Closure) -> tuple[str, str | None]:
    """Where the image's loader will open `obj`, and a note when it is moved there (the
    placement rule of this module's docstring). build_plan records the result for every
    planned binary (`Plan.binaries`); read that, and call this only for a closure the plan
    does not hold (a library verify --trace learned)."""
    if obj.via in (FoundVia.LD_CACHE, FoundVia.LD_CONF, FoundVia.LIBRARY_PATH):
        directory = posixpath.dirname(obj.path)
        if directory not in closure.system_dirs and closure.system_dirs:
            placed = posixpath.join(closure.system_dirs[0], obj.name)
            how = {
                FoundVia.LD_CACHE: "/etc/ld.so.cache",
                FoundVia.LD_CONF: "/etc/ld.so.conf",
                FoundVia.LIBRARY_PATH: "--library-path",
            }[obj.via]
            note = (
                f"the builder finds it at {obj.path} only through {how}, which the image "
                f"lacks; placed in {closure.system_dirs[0]}, a default directory of the "
                "image's loader"
            )
            return placed, note
    return obj.path, None


def _source_size(sizes: dict[str, int], source: str | None) -> int:
    return sizes.get(source, 0) if source is not None else 0


def build_plan(binaries: tuple[PlannedBinary, ...], sizes: dict[str, int] | None = None) -> Plan:
    """Merge what every binary needs into one list of image entries, without duplicates, and
    record for each binary where what it needs lands (`Plan.binaries`)."""
    sizes = sizes or {}
    entries: dict[str, ImageFile] = {}
    first_needer: dict[str, str] = {}
    warnings: list[str] = []
    placed: list[BinaryFiles] = []

    def add(entry: ImageFile, needer: str) -> None:
        existing = entries.get(entry.path)
        if existing is None:
            entries[entry.path] = entry
            first_needer[entry.path] = needer
        elif existing.source != entry.source and entry.source is not None:
            warnings.append(
                f"{entry.path}: {needer} needs it from {entry.source} but "
                f"{first_needer[entry.path]} from {existing.source}; keeping the first"
            )

    for binary in binaries:
        placements = [Placement((binary.path,), loaded=binary.path)]
        add(
            ImageFile(
                path=binary.path,
                type=FileType.FILE,
                kind=FileKind.BINARY,
                reason="the binary",
                source=binary.source,
                from_context=binary.from_context,
                size=binary.size,
            ),
            binary.path,
        )
        closure = binary.closure
        if closure is not None:
            interp = closure.interpreter
            if interp is not None:
                placements.append(Placement((interp.path,), loaded=interp.path))
                add(
                    ImageFile(
                        path=interp.path,
                        type=FileType.FILE,
                        kind=FileKind.INTERPRETER,
                        reason=f"PT_INTERP of {binary.path}: the kernel starts this loader first",
                        source=interp.real_path,
                        size=interp.elf.size,
                    ),
                    binary.path,
                )
            for obj in closure.libraries:
                path, note = library_image_path(obj, closure)
                variants = [v.path for v in obj.hwcaps_variants]
                placements.append(Placement((path, *variants), loaded=obj.path))
                reason = f"{obj.name}, needed by {obj.needed_by} (found via {obj.via.value})"
                if note:
                    reason += f"; {note}"
                add(
                    ImageFile(
                        path=path,
                        type=FileType.FILE,
                        kind=FileKind.LIBRARY,
                        reason=reason,
                        source=obj.real_path,
                        size=obj.elf.size,
                    ),
                    binary.path,
                )
                for variant in obj.hwcaps_variants:
                    add(
                        ImageFile(
                            path=variant.path,
                            type=FileType.FILE,
                            kind=FileKind.LIBRARY,
                            reason=f"glibc-hwcaps copy of {obj.name}: loaded instead on CPUs "
                            "that support this level",
                            source=variant.real_path,
                            size=variant.size,
                        ),
                        binary.path,
                    )

        for need in binary.needs:
            for needed in need.files:
                placements.append(Placement((needed.path,)))
                reason = need.summary
                if needed.note:
                    reason += f" ({needed.note})"
                add(
                    ImageFile(
                        path=needed.path,
                        type=FileType(needed.type),
                        kind=need.kind,
                        reason=reason,
                        source=needed.source,
                        content=needed.content,
                        target=needed.target,
                        mode=needed.mode,
                        size=_source_size(sizes, needed.source),
                    ),
                    binary.path,
                )
        placed.append(BinaryFiles(binary.path, tuple(placements)))

    ordered = sorted(
        entries.values(),
        key=lambda f: (_KIND_ORDER[f.kind], f.path),
    )
    return Plan(tuple(ordered), tuple(dict.fromkeys(warnings)), tuple(placed))


def with_included(plan: Plan, included: tuple[ImageFile, ...]) -> Plan:
    """The plan with the entries --include / --include-from add, after everything the
    analysis planned. A path the plan already holds keeps its planned entry (the analysis
    knows why it is there); a different source for it is a warning."""
    entries = {f.path: f for f in plan.files}
    warnings = list(plan.warnings)
    added: dict[str, ImageFile] = {}
    for entry in included:
        existing = entries.get(entry.path) or added.get(entry.path)
        if existing is not None:
            if (
                existing.source is not None
                and entry.source is not None
                and existing.source != entry.source
            ):
                warnings.append(
                    f"{entry.path}: included from {entry.source} but already planned from "
                    f"{existing.source}; keeping the planned entry"
                )
            continue
        added[entry.path] = entry
    ordered = sorted(added.values(), key=lambda f: f.path)
    return replace(plan, files=(*plan.files, *ordered), warnings=tuple(dict.fromkeys(warnings)))


def image_path_problem(path: str) -> str | None:
    """Why `path` cannot be a path of the image, or None: it must be absolute, below `/`
    (not `/` itself), without a NUL byte (a path is a C string, path_resolution(7)) and
    without an empty, `.` or `..` component, so that it names exactly one place."""
    if not path.startswith("/") or path == "/":
        return "not an absolute path below /"
    if "\0" in path:
        return "contains a NUL byte"
    if any(part in ("", ".", "..") for part in path[1:].split("/")):
        return "has an empty, '.' or '..' component"
    return None


# Kernel pseudo-filesystems: never runtime data, and reading them copies the machine's state
# (or never ends: /proc/kcore, /dev/zero).
_PSEUDO = ("/proc", "/sys", "/dev")


def directory_refusal(resolved: str) -> str | None:
    """Why a runtime directory whose source resolves (inside the root) to `resolved` must not
    be copied whole, judged from that path alone; None when nothing forbids it."""
    if resolved == "/":
        return "it resolves to the root of the builder itself"
    if any(resolved == p or resolved.startswith(p + "/") for p in _PSEUDO):
        return f"it resolves to {resolved}, a kernel pseudo-filesystem"
    return None


def checked_directories(plan: Plan, root: Root) -> Plan:
    """The plan without runtime directories that would copy more than their kind of data.

    A directory entry (zoneinfo, gconv, OpenSSL modules, ...) is copied whole, following the
    symlinks of its own path inside the root. Copied only when that resolves to a real
    directory that is not the root, a pseudo-filesystem, nor an ancestor of the source of
    another file the plan puts elsewhere in the image: /usr/share/zoneinfo -> / would
    otherwise put the whole builder, its /etc/shadow included, into the image. Its contents
    are never followed out of it (rootfs copies symlinks inside as symlinks, as COPY of a
    directory does).
    """
    resolved: dict[str, str] = {}
    for entry in plan.files:
        if entry.source is not None and not entry.from_context:
            try:
                resolved[entry.path] = root.resolve(entry.source).path
            except OSError:
                continue
    kept: list[ImageFile] = []
    warnings = list(plan.warnings)
    for entry in plan.files:
        if entry.type is not FileType.DIRECTORY or entry.source is None or entry.from_context:
            kept.append(entry)
            continue
        reason: str | None
        try:
            found = root.resolve(entry.source)
        except OSError as exc:
            found, reason = None, f"it cannot be resolved in the root ({exc.strerror or exc})"
        if found is not None:
            reason = directory_refusal(found.path)
            if reason is None and not found.is_dir:
                reason = f"it resolves to {found.path}, which is not a directory"
            if reason is None:
                # A file planned at its place inside this directory (a module of it) is
                # fine; one planned elsewhere means the directory is someone else's.
                prefix = found.path.rstrip("/") + "/"
                own = entry.path.rstrip("/") + "/"
                inside = sorted(
                    source
                    for path, source in resolved.items()
                    if path != entry.path
                    and (source + "/").startswith(prefix)
                    and not path.startswith(own)
                )
                if inside:
                    reason = (
                        f"it resolves to {found.path}, which holds other planned files "
                        f"({inside[0]}): not a directory of its own"
                    )
        if reason is None:
            kept.append(entry)
        else:
            warnings.append(
                f"{entry.path}: not copied, {reason}; the image gets no {entry.kind.value} "
                "directory"
            )
    return replace(plan, files=tuple(kept), warnings=tuple(dict.fromkeys(warnings)))
