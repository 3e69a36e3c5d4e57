"""From plan to layout: every entry of the root filesystem to write, checked for safety.

Each plan entry becomes entries of a `Layout` (copied files, directories, symlinks, generated
files); both writers (scratchprobe.rootfs.directory, scratchprobe.rootfs.tar) write that one
layout. The checks:
- every plan path is an image path (plan.image_path_problem: absolute, no empty, `.` or `..`
  component) and no entry may sit below a symlink or a file of the layout, so nothing is
  ever written through a symlink;
- a copied directory's symlinks are copied as symlinks, never followed (as COPY of a
  directory does); plan.checked_directories already refused a directory that resolves to
  the root or to one holding other planned files;
- a symlink whose target is not in the layout is a warning (a dangling link in the image),
  judged by the chroot-style walk of scratchprobe.root (`follow_links`), as the kernel
  would resolve it inside the image.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from scratchprobe.errors import ScratchprobeError
from scratchprobe.plan import FileKind, FileType, ImageFile, Plan, image_path_problem
from scratchprobe.root import Root, follow_links

# Programs and everything the loader maps must be executable; data files need not be.
_EXECUTABLE_KINDS = frozenset({FileKind.BINARY, FileKind.INTERPRETER, FileKind.LIBRARY})
DIR_MODE = 0o755
_EXEC_MODE = 0o755
_DATA_MODE = 0o644


class RootfsError(ScratchprobeError):
    """The plan cannot be written safely, or a source file is unreadable."""


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


def _checked_image_path(path: str, what: str) -> str:
    """A plan path, or RootfsError."""
    refusal = image_path_problem(path)
    if refusal is not None:
        raise RootfsError(f"{what} {path!r}: {refusal}")
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
            yield Entry(image_path, FileType.DIRECTORY, DIR_MODE)
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
            put(Entry(path, FileType.DIRECTORY, _mode(item, DIR_MODE)))
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
            entries[parent] = Entry(parent, FileType.DIRECTORY, DIR_MODE)
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
    would inside the image (root.follow_links, at most MAX_SYMLINKS of them)."""

    def step(candidate: str, more: bool) -> str | None:
        entry = entries.get(candidate)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "not in the image", candidate)
        if entry.type is FileType.SYMLINK:
            if entry.target is None:
                raise FileNotFoundError(errno.ENOENT, "a symlink without target", candidate)
            return entry.target
        if more and entry.type is not FileType.DIRECTORY:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", candidate)
        return None

    try:
        follow_links(path, step)
    except OSError:
        return False
    return True


def open_source(entry: Entry) -> IO[bytes]:
    """The bytes of a copied file of the layout, for either writer."""
    assert entry.host_source is not None
    try:
        # O_NOFOLLOW: a source path is already resolved; a symlink swapped in since is refused.
        fd = os.open(entry.host_source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(
            f"{entry.path}: cannot read {entry.host_source}: {exc.strerror or exc}"
        ) from None
    return os.fdopen(fd, "rb")
