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
turned off by SCRATCHPROBE_NO_CACHE=1), of at most _KEEP sorted lines `KEY DIGEST SIZE`,
KEY being the SHA-256 of the identity; it is read bounded, a line that does not parse is
never an answer, and it is written atomically (a temporary file renamed over it) only when
a run added digests. A cache directory that cannot be read or written only means digests
are taken again.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
import tempfile
import time

from scratchprobe.packages.stored import cache_directory, read_at_most

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
    """The stored digests of one run: looked up by identity, new ones saved at the end.

    The file's lines are kept sorted and searched by bisection, never all parsed: a cold
    run over one binary pays for reading the file, not for decoding 50,000 entries."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._lines: list[bytes] = []
        self._added: dict[str, tuple[str, int]] = {}
        if path is None:
            return
        try:
            with open(path, "rb") as handle:
                data = read_at_most(handle, _MAX_BYTES)
        except OSError:
            return
        self._lines = data.split(b"\n")
        if any(a > b for a, b in zip(self._lines[:64], self._lines[1:65], strict=False)):
            self._lines.sort()  # not written by `save` (which sorts): sorted once here

    def get(self, key: str, size: int) -> str | None:
        if key in self._added:
            digest, stored_size = self._added[key]
            return digest if stored_size == size else None
        prefix = key.encode("ascii") + b" "
        at = bisect.bisect_left(self._lines, prefix)
        if at >= len(self._lines) or not self._lines[at].startswith(prefix):
            return None
        match = _LINE.fullmatch(self._lines[at])
        if match is None or int(match.group(3)) != size:
            return None
        return match.group(2).decode("ascii")

    def add(self, key: str, info: os.stat_result, digest: str) -> None:
        """Remember `digest`, unless the file changed too recently to be told apart from a
        change in the same clock tick (see the module docstring)."""
        if self._path is not None and info.st_ctime_ns < time.time_ns() - _SETTLED_NS:
            self._added[key] = (digest, info.st_size)

    def save(self) -> None:
        """Store this run's new digests with the others, up to _KEEP (the others dropped
        first past it)."""
        if self._path is None or not self._added:
            return
        fresh = [f"{k} {d} {n}".encode("ascii") for k, (d, n) in self._added.items()]
        replaced = {k.encode("ascii") for k in self._added}
        old = [line for line in self._lines if line and line[:64] not in replaced]
        kept = sorted(fresh + old[: max(0, _KEEP - len(fresh))])
        directory = os.path.dirname(self._path)
        with contextlib.suppress(OSError):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".digests-", dir=directory)
            try:
                with open(fd, "wb") as handle:
                    handle.write(b"\n".join(kept) + b"\n")
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
