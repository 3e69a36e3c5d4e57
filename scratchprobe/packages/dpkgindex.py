"""A file-name index of dpkg's file lists, kept between runs, that is never used stale.

dpkg has no path -> package index on disk: `dpkg -S` itself reads every
/var/lib/dpkg/info/*.list (dpkg src/main/filesdb.c `ensure_packagefiles_available`). Doing
the same on every run makes an owner lookup cost the size of the database (about 870 lists
and 140,000 lines on a Debian 12 builder) whatever the number of files asked about. This
index maps each listed file *name* (the last path component) to the lists naming it, so a
run reads only those lists, and reads them with the same code as a full scan.

Why it is never stale: it is used only when a signature of every input it was built from
matches, taken again on every run: (device, inode, size, mtime, ctime) of the status file
and of every `*.list` file, with the list names. dpkg replaces a list by writing
NAME.list-new and renaming it over the old one (a new inode), the status file likewise
(status-new, then rename), and any other write changes mtime and ctime; ctime cannot be set
from user space. A list that is not a regular file (a symlink planted in a root), or one
that could not be read, makes the index unavailable and the lookup falls back to reading
every list. Taking the signature costs one lstat per list (a few ms).

The index lives in $XDG_CACHE_HOME/scratchprobe (~/.cache/scratchprobe), one file per
database directory; it is written atomically (a temporary file renamed over the old one), and
a cache directory that cannot be written only means no index. SCRATCHPROBE_NO_CACHE=1 turns
it off.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

_MAGIC = b"scratchprobe dpkg-index 1\n"
_MAX_INDEX_BYTES = 256 << 20
_KEEP = 16
"""Indexes kept: one per root inspected, the least recently written removed first (a CI
machine inspecting a fresh unpacked root per build must not fill its cache)."""

RecordFields = tuple[str, str, str | None, str | None, bool]
"""name, version, arch, source, multi_arch_same (the fields of dpkg's `_Record`)."""


def cache_directory() -> str | None:
    """Where indexes are kept; None when caching is turned off."""
    if os.environ.get("SCRATCHPROBE_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None  # XDG Base Directory spec: a relative path is invalid and ignored
    return os.path.join(base, "scratchprobe")


def signature(status_host: str, info_host: str, list_names: Sequence[str]) -> str | None:
    """The identity of everything the index is built from, or None when an index must not
    be used (a list that is not a regular file, a file that vanished)."""
    digest = hashlib.sha256()
    try:
        for path in (status_host, *(os.path.join(info_host, n) for n in list_names)):
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                return None
            digest.update(
                f"{path}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
                f"{info.st_mtime_ns}:{info.st_ctime_ns}\n".encode("utf-8", "surrogateescape")
            )
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def index_path(directory: str, info_host: str) -> str:
    try:
        info = os.stat(info_host)
        identity = f"{os.path.realpath(info_host)}\0{info.st_dev}:{info.st_ino}"
    except OSError:
        identity = info_host
    name = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(directory, f"dpkg-{name}.idx")


class DpkgIndex:
    """A loaded index: the record of each list, and which lists name a given file name."""

    def __init__(self, records: list[RecordFields | None], lines: list[bytes]) -> None:
        self.records = records
        """By list position (the lists in name order), what `_record_for` gave at build."""
        self._lines = lines
        """Sorted `name\\tI,J,...` lines (bytes, UTF-8 with surrogateescape)."""

    def lists_naming(self, names: Iterable[str]) -> list[int]:
        """Positions, ascending, of the lists with a line whose last component is one of
        `names`."""
        found: set[int] = set()
        for name in names:
            key = name.encode("utf-8", "surrogateescape") + b"\t"
            at = bisect.bisect_left(self._lines, key)
            # No indexed name holds a tab (`write` refuses them), so the line that starts
            # with NAME-tab is NAME's own, and it is unique.
            if at < len(self._lines) and self._lines[at].startswith(key):
                positions = self._lines[at][len(key) :]
                found.update(int(p) for p in positions.split(b","))
        return sorted(found)


def read_stored(path: str, magic: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The JSON header (an object) and the body of the stored index at `path`, read
    bounded; None when it is absent or does not start with `magic` and a header."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_INDEX_BYTES)
    except OSError:
        return None
    if not data.startswith(magic):
        return None
    header_end = data.find(b"\n", len(magic))
    if header_end < 0:
        return None
    try:
        header = json.loads(data[len(magic) : header_end])
    except ValueError:
        return None
    return (header, data[header_end + 1 :]) if isinstance(header, dict) else None


def load(path: str, expected: str, list_count: int) -> DpkgIndex | None:
    """The index at `path` when it was built from exactly the files of `expected`."""
    stored = read_stored(path, _MAGIC)
    if stored is None:
        return None
    header, body = stored
    try:
        if header.get("signature") != expected or len(header["records"]) != list_count:
            return None
        records: list[RecordFields | None] = [
            None if r is None else (r[0], r[1], r[2], r[3], bool(r[4])) for r in header["records"]
        ]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    lines = body.split(b"\n") if body else []
    return DpkgIndex(records, lines)


def write(
    path: str,
    signature_value: str,
    records: Sequence[RecordFields | None],
    lists: Sequence[Sequence[str]],
) -> None:
    """Build the index from the lines of every list (in list order) and store it; any
    failure leaves no index, never a partial one."""
    by_name: dict[bytes, list[int]] = {}
    for position, lines in enumerate(lists):
        seen: set[bytes] = set()
        for line in lines:
            name = line.rpartition("/")[2].encode("utf-8", "surrogateescape")
            if b"\t" in name:
                return  # the index's line format cannot hold it: no index, full scans
            if name in seen:
                continue
            seen.add(name)
            by_name.setdefault(name, []).append(position)
    header = json.dumps({"signature": signature_value, "records": list(records)})
    body = b"\n".join(
        name + b"\t" + b",".join(b"%d" % p for p in positions)
        for name, positions in sorted(by_name.items(), key=lambda item: item[0] + b"\t")
    )
    store(path, _MAGIC + header.encode("ascii") + b"\n" + body)


def store(path: str, data: bytes) -> None:
    """Write an index atomically (a temporary file renamed over the old one), then remove
    the oldest indexes of its kind (the name up to its first `-`) past _KEEP; a cache
    directory that cannot be written only means no index."""
    directory = os.path.dirname(path)
    with contextlib.suppress(OSError, ValueError):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".index-", dir=directory)
        try:
            with open(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _prune(directory, os.path.basename(path).partition("-")[0] + "-")


def _prune(directory: str, prefix: str) -> None:
    with os.scandir(directory) as entries:
        indexes = [
            (entry.stat().st_mtime_ns, entry.path)
            for entry in entries
            if entry.name.startswith(prefix) and entry.name.endswith(".idx")
        ]
    for _mtime, path in sorted(indexes, reverse=True)[_KEEP:]:
        with contextlib.suppress(OSError):
            os.unlink(path)
