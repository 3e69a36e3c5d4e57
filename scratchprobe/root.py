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
from dataclasses import dataclass
from functools import lru_cache

from scratchprobe.errors import RootError

# Linux gives up after 40 links in one lookup (MAXSYMLINKS); so do we.
MAX_SYMLINKS = 40


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
        return self._resolve(normalize(path))

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except OSError:
            return False
        return True

    def listdir(self, path: str) -> frozenset[str]:
        """Names in an in-root directory (empty when it does not exist); cached per run."""
        return self._listdir(normalize(path))

    def _listdir_uncached(self, path: str) -> frozenset[str]:
        try:
            resolved = self.resolve(path)
            return frozenset(os.listdir(resolved.host_path))
        except OSError:
            return frozenset()

    def _resolve_uncached(self, path: str) -> Resolved:
        if self.is_host:
            # The host is its own root: the kernel's realpath is exact and fast.
            real = os.path.realpath(path, strict=True)
            return Resolved(real, real, os.lstat(real).st_mode)
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
            host = self.directory + candidate
            st = os.lstat(host)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise PathLoopError(path)
                target = os.readlink(host)
                if target.startswith("/"):
                    current = "/"
                rest = [p for p in target.split("/") if p]
                rest.reverse()
                pending.extend(rest)
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", candidate)
            current = candidate
        host = self.directory + ("" if current == "/" else current)
        return Resolved(current, host, os.lstat(host).st_mode)


def normalize(path: str) -> str:
    """Absolute, `//` and `.` collapsed; `..` kept for the resolver to apply after links."""
    if not path.startswith("/"):
        path = "/" + path
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)
