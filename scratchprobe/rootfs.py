"""Write the plan as a root filesystem: a directory, or a reproducible tar for `ADD rootfs.tar /`.

The writer reads only `Plan.files`, the list the JSON manifest and the COPY lines come from, so
the three cannot describe different trees. Each plan entry becomes entries of a `Layout`
(copied files, directories, symlinks, generated files); both outputs are written from that
one layout.

Safety rules:
- every plan path is checked (absolute, no empty, `.` or `..` component) and no entry may sit
  below a symlink or a file of the layout, so nothing is ever written through a symlink;
- the destination's parent is opened component by component from `/` with O_NOFOLLOW (a
  symlink anywhere in the path is refused, naming the real path to give instead), and every
  later step is an `*at()` call relative to that descriptor, so nothing is written through a
  symlink, not even one swapped in during the run;
- a directory is built in a fresh temporary sibling of the destination with `*at()` calls
  relative to directory descriptors opened with O_NOFOLLOW, and published by rename only when
  complete: a failed run leaves the previous output exactly as it was;
- staging files (`.<name>.scratchprobe-<pid>-<token>.partial`) are removed on any failure and
  on SIGTERM (the process then dies of SIGTERM); one left by SIGKILL is removed by the next
  run for the same destination, once its PID is not running and its flock(2) can be taken;
- `/`, a destination containing the root, and a symlink are always refused; a non-empty
  directory is replaced only when scratchprobe wrote it or with `force`;
- a copied directory's symlinks are copied as symlinks, never followed (as COPY of a
  directory does); plan.checked_directories already refused a directory that resolves to
  the root or to one holding other planned files.

"Scratchprobe wrote it" is recorded outside the tree, in a sibling file
`.<name>.scratchprobe-rootfs` holding the device and inode of the published directory: a
marker inside the tree would end up in the image (`COPY --from=... /rootfs /`) and make the
written tree differ from the plan. A directory replaced or recreated by someone else has
another inode, so the marker no longer vouches for it.

`--tar -` streams the same tar to stdout (tarfile's non-seeking `w|` mode writes the same
blocks), refused when stdout is a terminal.

Reproducible tar: entries sorted by path components (a directory right before its
contents), uid/gid 0 with empty owner names, mtime from SOURCE_DATE_EPOCH (else 0), modes
normalised, GNU format (a GNU long-name record only for names over 100 bytes, never a pax
header). The directory output gets the same modes and mtimes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import os
import posixpath
import re
import secrets
import shutil
import signal
import stat
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from enum import Enum
from typing import IO, Literal

from scratchprobe.errors import ScratchprobeError, UsageError
from scratchprobe.loader.closure import Resolver
from scratchprobe.model import Inspection, InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.plan import (
    FileKind,
    FileType,
    ImageFile,
    Plan,
    PlannedBinary,
    binary_file_paths,
    build_plan,
)
from scratchprobe.root import Root

# Programs and everything the loader maps must be executable; data files need not be.
_EXECUTABLE_KINDS = frozenset({FileKind.BINARY, FileKind.INTERPRETER, FileKind.LIBRARY})
_DIR_MODE = 0o755
_EXEC_MODE = 0o755
_DATA_MODE = 0o644
_COPY_CHUNK = 1 << 20


class RootfsError(ScratchprobeError):
    """The plan cannot be written safely, or a source file is unreadable."""


class DestinationRefused(ScratchprobeError):
    """The destination is `/`, a symlink, a non-empty directory not written by us, ..."""


class OutputKind(Enum):
    DIRECTORY = "directory"
    TAR = "tar"


@dataclass(frozen=True)
class Destination:
    path: str
    kind: OutputKind


@dataclass(frozen=True)
class Entry:
    """One filesystem entry of the written root filesystem."""

    path: str
    """Absolute, normalised path inside the image."""
    type: FileType
    mode: int
    """Permission bits (with sticky/setuid bits where the plan asks for them)."""
    host_source: str | None = None
    """The file this process copies the bytes from (regular files only)."""
    content: bytes | None = None
    """Bytes of a generated file."""
    target: str | None = None
    """Target of a symlink, written as it is."""
    size: int = 0


@dataclass(frozen=True)
class Layout:
    """Every entry to write, sorted so that a directory comes right before its contents."""

    entries: tuple[Entry, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class RootfsResult:
    destination: Destination
    layout: Layout

    @property
    def file_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.FILE)

    @property
    def directory_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.DIRECTORY)

    @property
    def symlink_count(self) -> int:
        return sum(1 for e in self.layout.entries if e.type is FileType.SYMLINK)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.layout.entries)


# ----- the plan for an image, optionally with the binary installed elsewhere ----------------


def inspect_for_image(
    paths: tuple[str, ...], options: InspectOptions, install: str | None = None
) -> Inspection:
    """`inspect`, and with `install` the one binary moved to that image path.

    Moving a binary is not a rename of one plan entry: `$ORIGIN` in its RPATH/RUNPATH (and in
    those of libraries it loads through them) expands to the binary's directory *in the
    image*, so the closure is resolved again for the new location. What the loader would
    find there is exactly what the root holds at those paths, since every library is copied
    to its in-root path. Entries that do not come from the closure (runtime files) are kept.
    """
    inspection = inspect(paths, options)
    if install is None:
        return inspection
    try:
        target = _checked_image_path(install, "--install")
    except RootfsError as exc:
        raise UsageError(str(exc)) from None
    if inspection.problems:
        # The caller reports them; nothing is moved.
        return inspection
    if len(inspection.binaries) != 1:
        raise UsageError(
            f"--install places one binary, but the arguments name {len(inspection.binaries)}"
        )
    report = inspection.binaries[0]
    if report.path == target:
        return inspection
    closure = None
    warnings = []
    if report.closure is not None:
        closure = Resolver(Root(inspection.root), options.library_path).resolve(target, report.elf)
        for tag, value in (("RPATH", report.elf.rpath), ("RUNPATH", report.elf.runpath)):
            if value and "ORIGIN" in value:
                warnings.append(
                    f"{report.label}: its {tag} {value} uses $ORIGIN, which at {target} "
                    f"means {posixpath.dirname(target)}: libraries are searched there, "
                    "not beside the builder's copy"
                )
    moved = PlannedBinary(target, report.source, report.from_context, report.elf.size, closure)
    before = PlannedBinary(
        report.path, report.source, report.from_context, report.elf.size, report.closure
    )
    # The loader closure is re-planned; every other entry (runtime files) is kept as it is.
    old_closure = set(binary_file_paths(before))
    core = build_plan((moved,))
    core_paths = {f.path for f in core.files}
    rest = tuple(f for f in inspection.plan.files if f.path not in old_closure | core_paths)
    plan = Plan(core.files + rest, tuple(dict.fromkeys(core.warnings + inspection.plan.warnings)))
    file_paths = tuple(
        dict.fromkeys(
            binary_file_paths(moved) + tuple(p for p in report.file_paths if p not in old_closure)
        )
    )
    sizes = {f.path: f.size for f in plan.files}
    moved_report = replace(
        report,
        path=target,
        closure=closure,
        file_paths=file_paths,
        total_size=sum(sizes.get(p, 0) for p in file_paths),
    )
    return replace(
        inspection,
        binaries=(moved_report,),
        plan=plan,
        warnings=tuple(dict.fromkeys(inspection.warnings + tuple(warnings) + plan.warnings)),
    )


# ----- from plan to layout -------------------------------------------------------------


def _checked_image_path(path: str, what: str) -> str:
    """A plan path, or RootfsError: absolute, no empty/`.`/`..` component, not `/` itself."""
    if not path.startswith("/") or path == "/":
        raise RootfsError(f"{what} {path!r}: not an absolute path below /")
    if "\0" in path:
        raise RootfsError(f"{what} {path!r}: contains a NUL byte")
    if any(part in ("", ".", "..") for part in path[1:].split("/")):
        raise RootfsError(f"{what} {path!r}: has an empty, '.' or '..' component")
    return path


def _mode(entry: ImageFile, default: int) -> int:
    if entry.mode is None:
        return default
    try:
        value = int(entry.mode, 8)
    except ValueError:
        raise RootfsError(f"{entry.path}: mode {entry.mode!r} is not octal") from None
    if not 0 <= value <= 0o7777:
        raise RootfsError(f"{entry.path}: mode {entry.mode!r} out of range")
    return value


def _source_host_path(entry: ImageFile, root: Root) -> str:
    assert entry.source is not None
    try:
        if entry.from_context:
            # A build-context file (outside --root) is read where it is, as COPY would.
            return os.path.realpath(entry.source, strict=True)
        return root.resolve(entry.source).host_path
    except OSError as exc:
        raise RootfsError(
            f"{entry.path}: cannot read its source {entry.source}: {exc.strerror or exc}"
        ) from None


def _file_entry(entry: ImageFile, root: Root) -> Entry:
    default = _EXEC_MODE if entry.kind in _EXECUTABLE_KINDS else _DATA_MODE
    mode = _mode(entry, default)
    if entry.content is not None:
        data = entry.content.encode()
        return Entry(entry.path, FileType.FILE, mode, content=data, size=len(data))
    if entry.source is None:
        raise RootfsError(f"{entry.path}: a file entry with neither source nor content")
    host = _source_host_path(entry, root)
    st = os.stat(host)
    if not stat.S_ISREG(st.st_mode):
        raise RootfsError(f"{entry.path}: its source {entry.source} is not a regular file")
    return Entry(entry.path, FileType.FILE, mode, host_source=host, size=st.st_size)


def _tree_entries(image_dir: str, host_dir: str, warnings: list[str]) -> Iterator[Entry]:
    """The contents of a copied directory. Symlinks are kept as symlinks (as COPY of a
    directory keeps them) and never followed, so nothing outside the tree is read."""
    try:
        children = sorted(os.scandir(host_dir), key=lambda d: d.name)
    except OSError as exc:
        raise RootfsError(f"{image_dir}: cannot list {host_dir}: {exc.strerror}") from None
    for child in children:
        image_path = f"{image_dir}/{child.name}"
        st = child.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            yield Entry(image_path, FileType.SYMLINK, 0o777, target=os.readlink(child.path))
        elif stat.S_ISDIR(st.st_mode):
            yield Entry(image_path, FileType.DIRECTORY, _DIR_MODE)
            yield from _tree_entries(image_path, child.path, warnings)
        elif stat.S_ISREG(st.st_mode):
            mode = _EXEC_MODE if st.st_mode & 0o111 else _DATA_MODE
            yield Entry(image_path, FileType.FILE, mode, host_source=child.path, size=st.st_size)
        else:
            warnings.append(f"{image_path}: skipped, not a file, directory or symlink")


def _sort_key(path: str) -> tuple[str, ...]:
    # By components, so that a directory's whole subtree follows it directly
    # ("/a", "/a/b", "/a-b"), which both writers rely on.
    return tuple(path.split("/"))


def layout(plan: Plan, root: Root) -> Layout:
    """Expand the plan into filesystem entries, refusing anything unsafe."""
    entries: dict[str, Entry] = {}
    warnings: list[str] = []

    def put(entry: Entry) -> None:
        if entry.path not in entries:
            entries[entry.path] = entry

    trees: list[tuple[ImageFile, str]] = []
    # Entries named by the plan first, so that they win over a copied tree's contents.
    for item in plan.files:
        path = _checked_image_path(item.path, "image path")
        if item.type is FileType.SYMLINK:
            if not item.target:
                raise RootfsError(f"{path}: a symlink entry without target")
            put(Entry(path, FileType.SYMLINK, 0o777, target=item.target))
        elif item.type is FileType.DIRECTORY:
            put(Entry(path, FileType.DIRECTORY, _mode(item, _DIR_MODE)))
            if item.source is not None:
                resolved_dir = _source_host_path(item, root)
                if not os.path.isdir(resolved_dir):
                    raise RootfsError(f"{path}: its source {item.source} is not a directory")
                if os.path.realpath(resolved_dir) == root.directory:
                    # plan.checked_directories already leaves such an entry out.
                    raise RootfsError(
                        f"{path}: its source {item.source} resolves to the root itself; "
                        "refusing to copy the whole builder"
                    )
                trees.append((item, resolved_dir))
        else:
            put(_file_entry(item, root))
    in_tree: dict[str, ImageFile] = {}
    """Image path of each entry a copied directory brought -> that directory's plan entry."""
    for item, host_dir in trees:
        for entry in _tree_entries(item.path, host_dir, warnings):
            put(entry)
            in_tree.setdefault(entry.path, item)
    # Parents the plan does not name are plain 0755 directories.
    for path in list(entries):
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in entries:
            entries[parent] = Entry(parent, FileType.DIRECTORY, _DIR_MODE)
            parent = posixpath.dirname(parent)
    for path in entries:
        parent = posixpath.dirname(path)
        if parent != "/" and entries[parent].type is not FileType.DIRECTORY:
            raise RootfsError(
                f"{path}: the plan puts it below {parent}, which is a {entries[parent].type.value}"
                " (writing it would go through that entry)"
            )
    for entry in entries.values():
        if entry.type is FileType.SYMLINK and _returns_to_its_tree(entry, in_tree, root):
            # A link of a copied directory that goes out through a system setting and, in
            # the builder, back into the same directory (tzdata's zoneinfo/localtime ->
            # /etc/localtime -> zoneinfo/Etc/UTC): every file it can reach is in the image,
            # and the setting is the image's own (--tz sets it). Copied as COPY of the
            # directory copies it, and not worth a warning the user did nothing to cause.
            continue
        if entry.type is FileType.SYMLINK and not _resolves(entry.path, entries):
            warnings.append(
                f"{entry.path} -> {entry.target}: the target is not in the image (a dangling "
                "symlink there)"
            )
    ordered = tuple(entries[p] for p in sorted(entries, key=_sort_key))
    return Layout(ordered, tuple(dict.fromkeys(warnings)))


def _returns_to_its_tree(entry: Entry, in_tree: Mapping[str, ImageFile], root: Root) -> bool:
    """Whether a symlink a copied directory brought leads, in the builder's root, to a file
    of that same directory."""
    tree = in_tree.get(entry.path)
    if tree is None or tree.source is None:
        return False
    source = tree.source + entry.path[len(tree.path) :]
    try:
        directory = root.resolve(tree.source).path
        reached = root.resolve(source).path
    except OSError:
        return False
    return reached.startswith(directory.rstrip("/") + "/")


def _resolves(path: str, entries: Mapping[str, Entry]) -> bool:
    """Whether `path` leads to an entry of the layout, following its symlinks as the kernel
    would inside the image (at most 40 of them, Linux's MAXSYMLINKS)."""
    pending = [p for p in reversed(path.split("/")) if p]
    current = "/"
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            current = posixpath.dirname(current)
            continue
        candidate = posixpath.join(current, part)
        entry = entries.get(candidate)
        if entry is None:
            return False
        if entry.type is FileType.SYMLINK:
            links += 1
            if links > 40 or entry.target is None:
                return False
            if entry.target.startswith("/"):
                current = "/"
            pending += [p for p in reversed(entry.target.split("/")) if p]
            continue
        current = candidate
    return True


# ----- destinations --------------------------------------------------------------------


def source_date_epoch(environ: Mapping[str, str]) -> int:
    """The mtime of every entry (reproducible-builds.org's SOURCE_DATE_EPOCH, else 0)."""
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return 0
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r}: not a non-negative integer")
    return int(value)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class _Parent:
    """The destination's parent directory, opened component by component with O_NOFOLLOW:
    every later step works relative to `fd`, so no symlink in the path (or swapped into
    it meanwhile) can redirect a write."""

    fd: int
    path: str
    """Its absolute path (symlink-free, as checked when it was opened)."""
    name: str
    """The destination's last component."""


def _open_parent(destination: str) -> _Parent:
    absolute = os.path.abspath(destination)
    parent, name = os.path.split(absolute)
    if not name:
        raise DestinationRefused(f"{destination}: refusing to write to /")
    # O_PATH for the directories on the way: only search permission is needed there, as
    # for any path lookup; the parent itself is opened for reading (it is listed).
    fd = os.open("/", _PATH_FLAGS)
    walked = ""
    try:
        for part in [p for p in parent.split("/") if p]:
            walked += "/" + part
            try:
                next_fd = os.open(part, _PATH_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise DestinationRefused(
                        f"{destination}: the parent directory {parent} does not exist"
                    ) from None
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise DestinationRefused(
                        f"{destination}: {walked} is a symbolic link; give the real path "
                        f"({os.path.realpath(absolute)}), nothing is written through a link"
                    ) from None
                raise DestinationRefused(
                    f"{destination}: {walked} is not a usable directory: {exc.strerror}"
                ) from None
            os.close(fd)
            fd = next_fd
        readable = os.open(".", _DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    return _Parent(readable, parent, name)


# Files scratchprobe creates beside a destination while writing it are named
# `.<name>.scratchprobe-<pid>-<token>.<partial|old>`, and a writer holds an flock(2) on each
# for as long as it lives (the kernel releases it when the process dies, SIGKILL included).
# A later run removes one only when its name says it is ours, no live process of this PID
# namespace has that PID, and the lock can be taken: then nothing is writing it any more.
_STAGING = re.compile(r"\.(?P<name>.+)\.scratchprobe-(?P<pid>[0-9]+)-[0-9a-f]{16}\.(partial|old)")


def _staging_name(name: str, suffix: str) -> str:
    return f".{name}.scratchprobe-{os.getpid()}-{secrets.token_hex(8)}.{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock(fd: int, blocking: bool = True) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _remove(parent: _Parent, name: str) -> None:
    """Remove a file or a whole directory below the parent, never following a link."""
    st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent.fd)
    else:
        os.unlink(name, dir_fd=parent.fd)


def remove_stale_staging(parent: _Parent) -> list[str]:
    """Remove what an earlier run for this destination left when it was killed; returns
    the names removed."""
    removed: list[str] = []
    for entry in os.scandir(parent.fd):
        match = _STAGING.fullmatch(entry.name)
        if match is None or match["name"] != parent.name:
            continue
        if _pid_alive(int(match["pid"])):
            continue
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd)
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False):
                with suppress(OSError):
                    _remove(parent, entry.name)
                    removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


class _Terminated(BaseException):
    """SIGTERM arrived while writing: unwinds through the clean-up of the staging files."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While writing, SIGTERM raises _Terminated so that the staging files are removed,
    then the process dies of SIGTERM as it was asked to. Only where SIGTERM has its
    default action and only in the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    fired = False

    def handler(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:
            # Once: a second SIGTERM must not interrupt the clean-up itself.
            fired = True
            raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


MARKER_SUFFIX = ".scratchprobe-rootfs"


def _marker_name(name: str) -> str:
    return f".{name}{MARKER_SUFFIX}"


def _written_by_us(parent: _Parent, st: os.stat_result) -> bool:
    try:
        fd = os.open(
            _marker_name(parent.name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd
        )
        with os.fdopen(fd, encoding="ascii") as handle:
            return handle.read().strip() == f"{st.st_dev}:{st.st_ino}"
    except (OSError, UnicodeDecodeError):
        return False


def _listdir(parent: _Parent) -> list[str]:
    fd = os.open(parent.name, _DIR_FLAGS, dir_fd=parent.fd)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def _check_destination(
    destination: Destination, parent: _Parent, root: Root, force: bool
) -> os.stat_result | None:
    """lstat of the existing destination (None when absent), or DestinationRefused."""
    path = destination.path
    # The parent is symlink-free, so this is the destination's real path.
    real = os.path.join(parent.path, parent.name)
    if root.directory == real or root.directory.startswith(real.rstrip("/") + "/"):
        raise DestinationRefused(f"{path}: it contains the --root directory {root.directory}")
    try:
        st = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise DestinationRefused(f"{path}: is a symbolic link; give the real path")
    if destination.kind is OutputKind.TAR:
        if not stat.S_ISREG(st.st_mode):
            raise DestinationRefused(f"{path}: exists and is not a regular file")
        return st
    if not stat.S_ISDIR(st.st_mode):
        raise DestinationRefused(f"{path}: exists and is not a directory")
    if _listdir(parent) and not force and not _written_by_us(parent, st):
        raise DestinationRefused(
            f"{path}: a non-empty directory scratchprobe did not write; use --force to replace it"
        )
    return st


def write_rootfs(
    plan: Plan,
    root: Root,
    destination: Destination,
    *,
    force: bool = False,
    mtime: int = 0,
) -> RootfsResult:
    """Write `plan` to `destination`; the previous output survives any failure, and no
    staging file survives a failure or SIGTERM (one left by SIGKILL is removed next time)."""
    parent = _open_parent(destination.path)
    try:
        existing = _check_destination(destination, parent, root, force)
        tree = layout(plan, root)
        with _sigterm_unwinds():
            remove_stale_staging(parent)
            if destination.kind is OutputKind.TAR:
                _publish_tar(tree, parent, mtime)
            else:
                _publish_directory(tree, parent, existing, mtime)
    finally:
        os.close(parent.fd)
    return RootfsResult(destination, tree)


def stream_rootfs(plan: Plan, root: Root, out: IO[bytes], *, mtime: int = 0) -> Layout:
    """Write `plan` as a tar stream to `out` (`--tar -`): the same bytes as the tar file."""
    tree = layout(plan, root)
    write_tar(tree, out, mtime, stream=True)
    return tree


# ----- directory output ----------------------------------------------------------------


def _open_source(entry: Entry) -> IO[bytes]:
    assert entry.host_source is not None
    try:
        # O_NOFOLLOW: a source path is already resolved; a symlink swapped in since is refused.
        fd = os.open(entry.host_source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(
            f"{entry.path}: cannot read {entry.host_source}: {exc.strerror or exc}"
        ) from None
    return os.fdopen(fd, "rb")


def _write_tree(tree: Layout, staging_fd: int, mtime: int) -> None:
    """Create every entry below the empty directory `staging_fd`, never following a link.

    Directory descriptors are kept for the current path only (entries come in depth-first
    order), and a directory's mode and mtime are set when it is left, after its contents,
    so a read-only mode never blocks writing into it and creating children does not bump
    the mtime again.
    """
    stack: list[tuple[str, int, int]] = [("/", os.dup(staging_fd), _DIR_MODE)]

    def leave() -> None:
        _, fd, mode = stack.pop()
        try:
            os.fchmod(fd, mode)
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    try:
        for entry in tree.entries:
            parent, name = posixpath.split(entry.path)
            while stack[-1][0] != parent:
                leave()
            parent_fd = stack[-1][1]
            if entry.type is FileType.DIRECTORY:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
                stack.append((entry.path, os.open(name, _DIR_FLAGS, dir_fd=parent_fd), entry.mode))
            elif entry.type is FileType.SYMLINK:
                assert entry.target is not None
                os.symlink(entry.target, name, dir_fd=parent_fd)
                os.utime(name, (mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
            else:
                fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd)
                with os.fdopen(fd, "wb") as out:
                    if entry.content is not None:
                        out.write(entry.content)
                    else:
                        with _open_source(entry) as src:
                            shutil.copyfileobj(src, out, _COPY_CHUNK)
                    out.flush()
                    os.fchmod(fd, entry.mode)
                    os.utime(fd, (mtime, mtime))
        while stack:
            leave()
    finally:
        for _, fd, _ in stack:
            os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(parent_fd: int, a: str, b: str) -> bool:
    """Swap two names of one directory atomically (renameat2 RENAME_EXCHANGE); False where
    unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(parent_fd, os.fsencode(a), parent_fd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), b)


def _publish_directory(
    tree: Layout, parent: _Parent, existing: os.stat_result | None, mtime: int
) -> None:
    # Every step from the mkdir on is inside the try: a SIGTERM arriving right after it
    # (the handler runs at the next bytecode) still removes the staging directory.
    staging = _staging_name(parent.name, "partial")
    destination = parent.name
    pfd = parent.fd
    staging_fd = -1
    try:
        os.mkdir(staging, 0o700, dir_fd=pfd)
        staging_fd = os.open(staging, _DIR_FLAGS, dir_fd=pfd)
        _lock(staging_fd)
        _write_tree(tree, staging_fd, mtime)
        if existing is None or not _listdir(parent):
            # rename(2) replaces a missing or empty directory in one step.
            os.rename(staging, destination, src_dir_fd=pfd, dst_dir_fd=pfd)
        elif not _exchange(pfd, staging, destination):
            # No atomic swap here: move the old tree aside first; the window in which the
            # destination is absent is two renames long.
            aside = _staging_name(parent.name, "old")
            os.rename(destination, aside, src_dir_fd=pfd, dst_dir_fd=pfd)
            os.rename(staging, destination, src_dir_fd=pfd, dst_dir_fd=pfd)
            staging = aside
        # Here `staging` names the previous output (or nothing): remove it.
        with suppress(OSError):
            shutil.rmtree(staging, dir_fd=pfd)
    except BaseException:
        with suppress(OSError):
            shutil.rmtree(staging, dir_fd=pfd)
        raise
    finally:
        if staging_fd >= 0:
            os.close(staging_fd)
    st = os.stat(destination, dir_fd=pfd, follow_symlinks=False)
    tmp = _staging_name(parent.name, "partial")
    try:
        fd = os.open(tmp, _NEW_FILE_FLAGS, 0o644, dir_fd=pfd)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{st.st_dev}:{st.st_ino}\n")
        os.replace(tmp, _marker_name(parent.name), src_dir_fd=pfd, dst_dir_fd=pfd)
    except OSError:
        # Without the marker the output is merely not recognised as ours next time.
        with suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
        raise


# ----- tar output ----------------------------------------------------------------------


def _tar_info(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path[1:])
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    if entry.type is FileType.DIRECTORY:
        info.type = tarfile.DIRTYPE
    elif entry.type is FileType.SYMLINK:
        assert entry.target is not None
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.type = tarfile.REGTYPE
    return info


def write_tar(tree: Layout, out: IO[bytes], mtime: int, stream: bool = False) -> None:
    """The layout as a tar stream: the same bytes for the same layout and mtime. `stream`:
    `out` cannot seek (a pipe); tarfile's `w|` mode writes the same blocks and padding."""
    mode: Literal["w", "w|"] = "w|" if stream else "w"
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.GNU_FORMAT) as tar:
        for entry in tree.entries:
            info = _tar_info(entry, mtime)
            if entry.type is not FileType.FILE:
                tar.addfile(info)
            elif entry.content is not None:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
            else:
                with _open_source(entry) as src:
                    info.size = os.fstat(src.fileno()).st_size
                    tar.addfile(info, src)


def _publish_tar(tree: Layout, parent: _Parent, mtime: int) -> None:
    tmp = _staging_name(parent.name, "partial")
    try:
        # Inside the try from the creation on, as for a directory (SIGTERM right after it).
        fd = os.open(tmp, _NEW_FILE_FLAGS, 0o600, dir_fd=parent.fd)
        with os.fdopen(fd, "wb") as out:
            _lock(fd)
            write_tar(tree, out, mtime)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(out.fileno(), 0o666 & ~umask)
            os.replace(tmp, parent.name, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=parent.fd)
        raise
