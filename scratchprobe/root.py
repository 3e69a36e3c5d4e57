"""The builder's filesystem (`--root`), and path resolution that never leaves it.

Every path scratchprobe reads goes through `Root`: an absolute symlink target is re-rooted and
`..` stops at the root, exactly as if the process were chrooted there, so a library search in
`--root /builder` can never pick up a host file by accident.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from scratchprobe.errors import RootError

MAX_SYMLINKS = 40
"""Symlinks one path lookup may follow: Linux's MAXSYMLINKS (include/linux/namei.h), past
which fs/namei.c fails the lookup with ELOOP. Every chroot-style walk (follow_links) stops
there too."""

# What a configuration file inside a root may weigh: ld.so.cache on a full distribution is
# ~100 KiB, /etc/passwd a few KiB. A bigger file is refused, not read into memory.
MAX_CONFIG_FILE = 64 << 20


class NotRegularFileError(OSError):
    """A FIFO, socket, device or directory where a regular file was expected. Opening a
    FIFO for reading blocks until a writer appears (fifo(7)), so it is never read."""

    def __init__(self, path: str, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({file_kind(mode)})", path)


def file_kind(mode: int) -> str:
    """A word for the type of `mode` (stat(2) S_IFMT)."""
    for test, word in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return word
    return "a regular file" if stat.S_ISREG(mode) else "an unknown file type"


def open_regular(host_path: str, devices: bool = False) -> int:
    """A read-only descriptor of `host_path`, which must be a regular file (or, with
    `devices`, a character device such as /dev/null, read without blocking).

    O_NONBLOCK makes open(2) of a FIFO return at once instead of waiting for a writer, and
    O_NOCTTY keeps a terminal device from becoming our controlling terminal; the type is then
    checked with fstat on the descriptor itself, so nothing can swap the file in between.
    Raises OSError (NotRegularFileError for a FIFO, device, socket or directory).
    """
    if "\0" in host_path:
        raise FileNotFoundError(errno.ENOENT, "no such file (a NUL in the path)", host_path)
    fd = os.open(host_path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if devices and stat.S_ISCHR(mode):
            # Left non-blocking: a terminal with nothing typed is EAGAIN, not a wait.
            return fd
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(host_path, mode)
        # Regular files ignore O_NONBLOCK for reads (open(2)); clear it anyway so later
        # reads behave the same on every filesystem.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(host_path: str, limit: int = MAX_CONFIG_FILE, devices: bool = False) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; OSError otherwise. With
    `devices`, a character device is read too, up to the same limit (/dev/zero never ends)."""
    fd = open_regular(host_path, devices)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB, not read", host_path)
        chunks = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB, not read", host_path)
        return b"".join(chunks)
    finally:
        os.close(fd)


# Symlink-free host paths whose lstat a host root keeps (Root._resolve_host).
_MAX_STEPS = 1 << 16


class PathLoopError(OSError):
    """Too many levels of symbolic links inside the root."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, "too many levels of symbolic links", path)


@dataclass(frozen=True)
class Resolved:
    """A path inside the root after following every symlink."""

    path: str
    """Absolute path inside the root, symlink-free."""
    host_path: str
    """The same file as seen from this process."""
    mode: int
    """st_mode of the final file (lstat after resolution)."""

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class Root:
    """A directory standing in for `/`."""

    def __init__(self, directory: str) -> None:
        real = os.path.realpath(directory)
        if not os.path.isdir(real):
            raise RootError(f"{directory}: --root is not a directory")
        self.directory = real
        self.is_host = real == "/"
        self._resolve = lru_cache(maxsize=65536)(self._resolve_uncached)
        self._listdir = lru_cache(maxsize=4096)(self._listdir_uncached)
        self._entries = lru_cache(maxsize=65536)(self._entries_uncached)
        self._steps: dict[str, str | int] = {}
        """On the host: a symlink-free path -> its link target, or its st_mode."""

    def host_path(self, path: str) -> str:
        """Host path of an in-root absolute path, without following anything."""
        path = normalize(path)
        return path if self.is_host else self.directory + ("" if path == "/" else path)

    def to_root_path(self, host_path: str) -> str | None:
        """The in-root path of a host path that lies inside the root, else None."""
        absolute = os.path.abspath(host_path)
        if self.is_host:
            return absolute
        if absolute == self.directory:
            return "/"
        if absolute.startswith(self.directory + "/"):
            return absolute[len(self.directory) :]
        return None

    def resolve(self, path: str) -> Resolved:
        """Follow symlinks inside the root. Raises FileNotFoundError or PathLoopError."""
        if "\0" in path:
            # A path the kernel takes as a C string: no file is named with a NUL in it
            # (path_resolution(7)); a crafted ld.so.conf or search path may hold one.
            raise FileNotFoundError(errno.ENOENT, "no such file (a NUL in the path)", path)
        return self._resolve(normalize(path))

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except OSError:
            return False
        return True

    def read_file(self, path: str, limit: int = MAX_CONFIG_FILE) -> bytes:
        """The bytes of the regular file at in-root `path` (symlinks followed inside the
        root). Raises OSError when it is absent, not a regular file, or over `limit`."""
        return read_regular(self.resolve(path).host_path, limit)

    def read_text(self, path: str, limit: int = MAX_CONFIG_FILE) -> str:
        """`read_file` decoded as UTF-8, undecodable bytes replaced (config files)."""
        return self.read_file(path, limit).decode("utf-8", "replace")

    def listdir(self, path: str) -> frozenset[str]:
        """Names in an in-root directory (empty when it does not exist); cached per run."""
        return self._listdir(normalize(path))

    def may_exist(self, path: str) -> bool:
        """False only when `path` certainly does not exist: its directory is missing, or
        its listing lacks the name. One cached listing per directory answers every name
        a search tries there (a crafted RUNPATH of 20,000 directories times 50 names)."""
        if "\0" in path:
            return False
        directory, name = posixpath.split(normalize(path))
        if name in ("", ".", ".."):
            return True
        entries = self._entries(directory)
        return entries is None or name in entries

    def _entries_uncached(self, directory: str) -> frozenset[str] | None:
        """Names in `directory`; empty when it does not exist; None when unknown (a
        directory that cannot be listed may still let a known name be opened)."""
        try:
            resolved = self.resolve(directory)
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()
        except OSError:
            return None
        if not resolved.is_dir:
            return frozenset()
        try:
            return frozenset(os.listdir(resolved.host_path))
        except OSError:
            return None

    def _listdir_uncached(self, path: str) -> frozenset[str]:
        try:
            resolved = self.resolve(path)
            return frozenset(os.listdir(resolved.host_path))
        except OSError:
            return frozenset()

    def _resolve_host(self, path: str) -> Resolved:
        """The host is its own root: realpath(path, strict=True), by the same walk as any
        root (`follow_links`), with what each symlink-free path is kept for the run: a
        search tries thousands of names in a few directories, and realpath lstats every
        component of each again. Past MAX_SYMLINKS links the lookup fails with ELOOP, as
        the kernel's does (fs/namei.c)."""
        steps = self._steps
        if len(steps) > _MAX_STEPS:
            steps.clear()  # bounded like the other caches of a run; refilled as asked

        def step(candidate: str, _more: bool) -> str | None:
            known = steps.get(candidate)
            if known is None:
                mode = os.lstat(candidate).st_mode
                known = os.readlink(candidate) if stat.S_ISLNK(mode) else mode
                steps[candidate] = known
            # A name below a file fails in lstat (ENOTDIR), as in realpath; `..` after a
            # file is its directory, as in realpath.
            return known if isinstance(known, str) else None

        current = follow_links(path, step)
        known = steps.get(current)
        mode = known if isinstance(known, int) else os.lstat(current).st_mode
        return Resolved(current, current, mode)

    def _resolve_uncached(self, path: str) -> Resolved:
        if self.is_host:
            return self._resolve_host(path)

        def step(candidate: str, more: bool) -> str | None:
            host = self.directory + candidate
            st = os.lstat(host)
            if stat.S_ISLNK(st.st_mode):
                return os.readlink(host)
            if more and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", candidate)
            return None

        current = follow_links(path, step)
        host = self.directory + ("" if current == "/" else current)
        return Resolved(current, host, os.lstat(host).st_mode)


Step = Callable[[str, bool], str | None]
"""One component of a walk: called with the absolute path reached and whether components
follow it; returns the target when it is a symlink, None otherwise, and raises OSError when
it does not exist (or, with components following it, is not a directory)."""


def follow_links(path: str, step: Step) -> str:
    """The symlink-free absolute path `path` leads to, looked up as the kernel would with
    this tree as `/` (chroot semantics): an absolute target restarts at the root, `..`
    stops there, and past MAX_SYMLINKS links the lookup fails with PathLoopError (ELOOP).
    `step` tells what each component is: the files of a root (Root.resolve) or the entries
    of a layout about to be written (rootfs.entries)."""
    pending = [p for p in path.split("/") if p]
    pending.reverse()
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
        target = step(candidate, bool(pending))
        if target is not None:
            links += 1
            if links > MAX_SYMLINKS:
                raise PathLoopError(path)
            if target.startswith("/"):
                current = "/"
            rest = [p for p in target.split("/") if p]
            rest.reverse()
            pending.extend(rest)
            continue
        current = candidate
    return current


def normalize(path: str) -> str:
    """Absolute, `//` and `.` collapsed; `..` kept for the resolver to apply after links."""
    # Already normal (the loader's searches build most paths so): no '.' or '..' component,
    # no empty one, no trailing '/' except the root itself.
    normal = "//" not in path and "/." not in path and (path == "/" or not path.endswith("/"))
    if normal and path.startswith("/"):
        return path
    if not path.startswith("/"):
        path = "/" + path
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)
