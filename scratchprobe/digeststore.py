"""SHA-256 digests kept between runs, never given to a file whose bytes may have changed.

A JSON manifest carries the digest of every file of the image, and a batch's libraries are
the same files run after run: hashing them again on every run is most of `annotate`'s time.
This store maps a file's identity to the digest taken of it, and is asked only with the
identity read again (fstat of the descriptor about to be read) on every run.

The identity is the host path with (device, inode, size, mtime, ctime) of the file: any
write to a file changes its ctime, which user space cannot set back (utimensat(2) sets
mtime and atime only; the kernel stamps ctime with the current time), and a file replaced
by a rename is another inode. The one way a write keeps the identity is a write within
the same tick of the filesystem's clock as the change the stored ctime records; so a
digest is stored only for a file whose ctime is older than the read by more than
_SETTLED_NS (the same rule as git's "racily clean" index entries, Documentation/technical/
racy-git.txt): a later change then stamps a later ctime.

The store is one file under $XDG_CACHE_HOME/scratchprobe (dpkgindex.cache_directory, also
turned off by SCRATCHPROBE_NO_CACHE=1), of at most _KEEP lines `KEY DIGEST SIZE`, KEY being
the SHA-256 of the identity; it is read bounded, a line that does not parse is skipped, and
it is written atomically (a temporary file renamed over it) only when a run added digests.
A cache directory that cannot be read or written only means digests are taken again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time

from scratchprobe.packages.dpkgindex import cache_directory

_NAME = "digests-1"
_KEEP = 50_000
"""Digests kept: the files of a few large roots (a Debian root's /usr/lib: ~3,000)."""
_MAX_BYTES = _KEEP * 140
_SETTLED_NS = 2_000_000_000
"""Two seconds: over the coarsest timestamp a Linux filesystem keeps (FAT's 2 s)."""
_LINE = re.compile(rb"([0-9a-f]{64}) ([0-9a-f]{64}) ([0-9]{1,20})")


def identity_key(host_path: str, info: os.stat_result) -> str:
    """The store's key for the file `info` describes (fstat of an open descriptor)."""
    identity = (
        f"{host_path}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
        f"{info.st_mtime_ns}:{info.st_ctime_ns}"
    )
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


class DigestStore:
    """The stored digests of one run: looked up by identity, new ones saved at the end."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._known: dict[str, tuple[str, int]] = {}
        self._added: dict[str, tuple[str, int]] = {}
        self._used: dict[str, tuple[str, int]] = {}
        if path is None:
            return
        try:
            with open(path, "rb") as handle:
                data = handle.read(_MAX_BYTES)
        except OSError:
            return
        for line in data.split(b"\n"):
            match = _LINE.fullmatch(line)
            if match is not None:
                self._known[match.group(1).decode()] = (match.group(2).decode(), int(match[3]))

    def get(self, key: str, size: int) -> str | None:
        found = self._added.get(key) or self._known.get(key)
        if found is None or found[1] != size:
            return None
        self._used[key] = found
        return found[0]

    def add(self, key: str, info: os.stat_result, digest: str) -> None:
        """Remember `digest`, unless the file changed too recently to be told apart from a
        change in the same clock tick (see the module docstring)."""
        if self._path is not None and info.st_ctime_ns < time.time_ns() - _SETTLED_NS:
            self._added[key] = (digest, info.st_size)

    def save(self) -> None:
        """Store this run's new digests and the most recent others, up to _KEEP."""
        if self._path is None or not self._added:
            return
        kept = {**self._used, **self._added}
        for key, value in reversed(self._known.items()):
            if len(kept) >= _KEEP:
                break
            kept.setdefault(key, value)
        # Oldest first, so that the newest are the ones read last and kept on the next save.
        lines = b"".join(
            f"{key} {digest} {size}\n".encode("ascii")
            for key, (digest, size) in reversed(kept.items())
        )
        directory = os.path.dirname(self._path)
        with contextlib.suppress(OSError):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".digests-", dir=directory)
            try:
                with open(fd, "wb") as handle:
                    handle.write(lines)
                os.replace(temporary, self._path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        self._added.clear()


def open_store() -> DigestStore:
    """The store of this user, or an empty one that keeps nothing when caching is off."""
    directory = cache_directory()
    return DigestStore(None if directory is None else os.path.join(directory, _NAME))
