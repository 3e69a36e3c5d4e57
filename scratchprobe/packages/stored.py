"""What the indexes kept between runs share: where they live, how one is written and read,
and the by-name table a run looks a few names up in without decoding the rest.

Every stored file (dpkgindex.py, fileindex.py, digeststore.py) lives in
$XDG_CACHE_HOME/scratchprobe (~/.cache/scratchprobe); SCRATCHPROBE_NO_CACHE=1 turns them
off. A file is a magic line, a JSON header line (an object), then a body; it is written
atomically (a temporary file renamed over the old one) and read bounded, and a cache
directory that cannot be written only means nothing is kept.

The table (`pack_table`, `Table`): a lookup costs the names asked about, not the size of
the table. A run asks for a few hundred names of the ~77,000 a Debian root's dpkg lists
hold; splitting the whole body into lines to bisect it cost 5 ms a run, and decoding it all
more. The names are spread over buckets by CRC-32 (zlib.crc32: stable across runs and
machines, unlike `hash`), the bucket offsets are fixed-width decimal numbers, and a lookup
reads two offsets and splits one bucket of about eight lines. A name never holds a
newline and a payload never holds a tab or a newline (the writers check), so a line's last
tab ends its name.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterator, Mapping
from typing import IO, Any

MAX_STORED_BYTES = 256 << 20
SETTLED_NS = 2_000_000_000
"""How much older than a read a timestamp must be to tell a later change from one in the
same clock tick: two seconds, over the coarsest timestamp a Linux filesystem keeps (FAT's
2 s); git's "racily clean" rule (Documentation/technical/racy-git.txt)."""
_OFFSET_WIDTH = 10
_NAMES_PER_BUCKET = 8


def cache_directory() -> str | None:
    """Where indexes are kept; None when caching is turned off."""
    if os.environ.get("SCRATCHPROBE_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None  # XDG Base Directory spec: a relative path is invalid and ignored
    return os.path.join(base, "scratchprobe")


def read_at_most(handle: IO[bytes], limit: int) -> bytes:
    """At most `limit` bytes of an open file, read in one call sized by the file: a read
    of `limit` bytes allocates that much first (256 MiB: 2 ms for a 4 MB index, 17 us
    more for each of dpkg's 850 small lists). A file that grew since fstat, or one whose
    size the kernel does not know (procfs says 0), is read on to `limit`."""
    size = os.fstat(handle.fileno()).st_size
    data = handle.read(min(limit, size + 1))
    if len(data) > size and len(data) < limit:
        data += handle.read(limit - len(data))
    return data


def read_stored(path: str, magic: bytes) -> tuple[dict[str, Any], memoryview] | None:
    """The JSON header (an object) and the body of the stored file at `path`, read
    bounded; None when it is absent or does not start with `magic` and a header. The body
    is a view of the bytes read, not a copy: an index of a few MB is copied once (its
    pages faulted in once), not once per block cut from it."""
    try:
        with open(path, "rb") as handle:
            data = read_at_most(handle, MAX_STORED_BYTES)
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
    return (header, memoryview(data)[header_end + 1 :]) if isinstance(header, dict) else None


def stored_bytes(magic: bytes, header: Mapping[str, Any], body: bytes) -> bytes:
    """A stored file's bytes: `magic`, the header as one line of ASCII JSON, the body."""
    return magic + json.dumps(header, ensure_ascii=True).encode("ascii") + b"\n" + body


def store(path: str, data: bytes, keep: int) -> None:
    """Write a stored file atomically (a temporary file renamed over the old one), then
    remove the oldest files of its kind (the name up to its first `-`) past `keep`; a
    cache directory that cannot be written only means nothing is kept."""
    import tempfile  # only a run that writes pays for it

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
        _prune(directory, os.path.basename(path).partition("-")[0] + "-", keep)


def _prune(directory: str, prefix: str, keep: int) -> None:
    with os.scandir(directory) as entries:
        kept = [
            (entry.stat().st_mtime_ns, entry.path)
            for entry in entries
            if entry.name.startswith(prefix) and entry.name.endswith(".idx")
        ]
    for _mtime, path in sorted(kept, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def storable(name: bytes, payload: bytes) -> bool:
    """Whether a table line can hold this name and payload (see the module docstring)."""
    return b"\n" not in name and b"\t" not in payload and b"\n" not in payload


def pack_table(entries: Mapping[bytes, bytes]) -> bytes:
    """The table of `entries` (name -> payload, each `storable`)."""
    count = max(1, len(entries) // _NAMES_PER_BUCKET)
    buckets: list[list[bytes]] = [[] for _ in range(count)]
    for name, payload in entries.items():
        buckets[zlib.crc32(name) % count].append(name + b"\t" + payload + b"\n")
    offsets = [0]
    chunks = [b"".join(lines) for lines in buckets]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    table = b"".join(b"%0*d" % (_OFFSET_WIDTH, offset) for offset in offsets)
    return b"%d\n" % count + table + b"".join(chunks)


class Table:
    """A packed table, looked up in place (a view: only the bucket read is copied). Raises
    ValueError when it is not one."""

    def __init__(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        head_end = bytes(view[:32]).find(b"\n")
        if head_end < 0:
            raise ValueError("no bucket count")
        self._count = int(bytes(view[:head_end]))
        self._table = head_end + 1
        self._body = self._table + (self._count + 1) * _OFFSET_WIDTH
        if self._count < 1 or self._body > len(view):
            raise ValueError("bucket table out of the data")
        self._view = view

    def _offset(self, bucket: int) -> int:
        at = self._table + bucket * _OFFSET_WIDTH
        offset = int(bytes(self._view[at : at + _OFFSET_WIDTH]))
        if not 0 <= offset <= len(self._view) - self._body:
            raise ValueError("bucket offset out of the data")
        return self._body + offset

    def get(self, name: bytes) -> bytes | None:
        """The payload stored for `name`, None when there is none."""
        bucket = zlib.crc32(name) % self._count
        chunk = bytes(self._view[self._offset(bucket) : self._offset(bucket + 1)])
        for line in chunk.split(b"\n"):
            stored, tab, payload = line.rpartition(b"\t")
            if tab and stored == name:
                return payload
        return None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (name, payload), bucket by bucket."""
        for line in bytes(self._view[self._body : self._offset(self._count)]).split(b"\n"):
            name, tab, payload = line.rpartition(b"\t")
            if tab:
                yield name, payload
