"""A file-name index of dpkg's file lists, kept between runs, that is never used stale.

dpkg has no path -> package index on disk: `dpkg -S` itself reads every
/var/lib/dpkg/info/*.list (dpkg src/main/filesdb.c `ensure_packagefiles_available`). Doing
the same on every run makes an owner lookup cost the size of the database (about 870 lists
and 140,000 lines on a Debian 12 builder) whatever the number of files asked about. This
index maps each listed file *name* (the last path component) to the (list, directory) pairs
listing it, so a run reads the index lines of the wanted names and no list at all: the
listed paths it gives are the lines a full scan would meet, list by list.

Why it is never stale: it is used only when the identity of every input it was built from
matches, taken again on every run: (device, inode, size, mtime, ctime) of the status file
and of every `*.list` file, with the list names. dpkg replaces a list by writing
NAME.list-new and renaming it over the old one (a new inode), the status file likewise
(status-new, then rename), and any other write changes mtime and ctime; ctime cannot be set
from user space. A list that is not a regular file (a symlink planted in a root), or one
that could not be read, makes the index unavailable and the lookup falls back to reading
every list. Taking the identity costs one lstat per list (a few ms); it is kept whole in
the header and compared exactly.

Layout (stored.py): the magic line, a JSON header (the lengths of the blocks), then the
identity (compared as bytes), each list's record (one JSON line each, decoded when a wanted
name's line is in that list), every listed directory (one per line, numbered from 0), and
the table of names, each name's payload `LIST.DIRECTORY,...` in list order. At most _KEEP
indexes are kept, one per database directory.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import time
import zlib
from collections.abc import Sequence

from scratchprobe.packages.stored import (
    SETTLED_NS,
    Table,
    pack_table,
    read_stored,
    store,
    stored_bytes,
)

_MAGIC = b"scratchprobe dpkg-index 4\n"
_KEEP = 16
"""Indexes kept: one per root inspected, the least recently written removed first (a CI
machine inspecting a fresh unpacked root per build must not fill its cache)."""

RecordFields = tuple[str, str, str | None, str | None, bool]
"""name, version, arch, source, multi_arch_same (the fields of dpkg's `_Record`)."""


def signature(status_host: str, info_host: str, list_names: Sequence[str]) -> str | None:
    """The identity of everything the index is built from, or None when an index must not
    be used (a list that is not a regular file, a file that vanished). The lists are
    lstat'ed by name in their opened directory (fstatat(2)): one lookup, not a path walk,
    each."""
    try:
        info = os.lstat(status_host)
        if not stat.S_ISREG(info.st_mode):
            return None
        parts = [
            f"{status_host}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
            f"{info.st_mtime_ns}:{info.st_ctime_ns}",
            info_host,
        ]
        directory = os.open(info_host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in list_names:
                info = os.lstat(name, dir_fd=directory)
                if not stat.S_ISREG(info.st_mode):
                    return None
                parts.append(
                    f"{name}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
                    f"{info.st_mtime_ns}:{info.st_ctime_ns}"
                )
        finally:
            os.close(directory)
    except (OSError, ValueError):
        return None
    return "\n".join(parts)


def index_path(directory: str, info_host: str) -> str:
    try:
        info = os.stat(info_host)
        identity = f"{os.path.realpath(info_host)}\0{info.st_dev}:{info.st_ino}"
    except OSError:
        identity = info_host
    # Two directories with one name only rebuild each other's index (the identity differs).
    name = zlib.crc32(identity.encode("utf-8", "surrogateescape"))
    return os.path.join(directory, f"dpkg-{name:08x}.idx")


class DpkgIndex:
    """A loaded index: the record of each list, and which lists name a given file name."""

    def __init__(self, records: list[bytes], directories: memoryview, table: Table):
        self._records = records
        """By list position (the lists in name order), what `_record_for` gave at build,
        as one JSON line each, decoded when asked for (a run needs a few dozen)."""
        self._decoded_records: dict[int, RecordFields | None] = {}
        self._directory_block = directories
        self._directories: list[bytes] | None = None
        self._decoded: dict[int, str] = {}
        self._table = table

    def record(self, at: int) -> RecordFields | None:
        """The record of the list at position `at` (None: no installed package). Raises
        ValueError when the index is damaged."""
        if at in self._decoded_records:
            return self._decoded_records[at]
        fields = json.loads(self._records[at])
        record: RecordFields | None = None
        if fields is not None:
            if not isinstance(fields, list) or len(fields) != 5:
                raise ValueError(f"damaged record {at}")
            name, version, arch, source, multi_arch_same = fields
            if not isinstance(name, str) or not isinstance(version, str):
                raise ValueError(f"damaged record {at}")
            if not all(f is None or isinstance(f, str) for f in (arch, source)):
                raise ValueError(f"damaged record {at}")
            record = (name, version, arch, source, bool(multi_arch_same))
        self._decoded_records[at] = record
        return record

    def entries(self, name: str) -> list[tuple[int, int]]:
        """(list position, directory number) of every line of a list whose last component
        is `name`, in list order. Raises ValueError when the index is damaged (then the
        lists are read)."""
        payload = self._table.get(name.encode("utf-8", "surrogateescape"))
        if payload is None:
            return []
        found = []
        for item in payload.split(b","):
            position, dot, directory = item.partition(b".")
            at, number = int(position), int(directory)
            if not dot or not 0 <= at < len(self._records) or number < 0:
                raise ValueError(f"damaged entry {item!r}")
            found.append((at, number))
        return found

    def listed(self, number: int, name: str) -> str:
        """The line of a list that `entries` gave as `number`, for `name`. Raises ValueError
        for a number past the directories."""
        directory = self._decoded.get(number)
        if directory is None:
            if self._directories is None:
                self._directories = bytes(self._directory_block).split(b"\n")
            if number >= len(self._directories):
                raise ValueError(f"damaged directory number {number}")
            directory = self._directories[number].decode("utf-8", "surrogateescape") + "/"
            self._decoded[number] = directory
        return directory + name


def listing_identity(info_host: str) -> str | None:
    """The identity of the list directory's entries: (device, inode, mtime, ctime) of the
    directory, which any entry created, removed or renamed in it changes; None when it
    changed too recently to be told apart from a change in the same clock tick (the racy
    rule of digeststore.py), or cannot be read."""
    try:
        info = os.stat(info_host)
    except (OSError, ValueError):
        return None
    settled = time.time_ns() - SETTLED_NS
    if info.st_mtime_ns >= settled or info.st_ctime_ns >= settled:
        return None
    return f"{info.st_dev}:{info.st_ino}:{info.st_mtime_ns}:{info.st_ctime_ns}"


class StoredIndex:
    """An index file as read, before it is known to match the database."""

    _BLOCKS = ("signature", "records", "names", "directories")

    def __init__(self, header: dict[str, object], body: memoryview) -> None:
        self._header = header
        self._body = body
        self._ends: list[int] | None = None
        try:
            sizes = [int(str(header[key])) for key in self._BLOCKS]
            ends = list(itertools.accumulate(sizes))
            if min(sizes) >= 0 and ends[-1] <= len(body):
                self._ends = ends
        except (ValueError, KeyError):
            self._ends = None

    def _block(self, number: int) -> memoryview:
        assert self._ends is not None
        return self._body[self._ends[number - 1] if number else 0 : self._ends[number]]

    def list_names(self, listing: str | None) -> list[str] | None:
        """The list file names, in order, when the directory's entries are those the index
        was built from (`listing` as stored: then no listing of its 4,000 files is taken)."""
        if listing is None or self._ends is None or self._header.get("listing") != listing:
            return None
        block = bytes(self._block(2))
        return block.decode("utf-8", "surrogateescape").split("\n") if block else []

    def index(self, expected: str, list_count: int) -> DpkgIndex | None:
        """The index, when it was built from exactly the files of `expected`."""
        if self._ends is None:
            return None
        try:
            # The identity is compared as it was stored, bytes for bytes (no JSON decoding).
            if self._block(0) != expected.encode("utf-8", "surrogateescape"):
                return None
            block = bytes(self._block(1))
            records = block.split(b"\n") if block else []
            if len(records) != list_count:
                return None
            return DpkgIndex(records, self._block(3), Table(self._body[self._ends[3] :]))
        except ValueError:
            return None


def read(path: str) -> StoredIndex | None:
    """The index file at `path`, None when there is none of this format."""
    stored = read_stored(path, _MAGIC)
    return None if stored is None else StoredIndex(*stored)


def write(
    path: str,
    signature_value: str,
    records: Sequence[RecordFields | None],
    lists: Sequence[Sequence[str]],
    listing: str | None = None,
    names: Sequence[str] = (),
) -> None:
    """Build the index from the lines of every list (in list order) and store it, with the
    list file `names` under the directory's `listing` identity (taken before they were
    listed); any failure leaves no index, never a partial one."""
    directories: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for position, lines in enumerate(lists):
        prefix = f"{position}."
        for line in lines:
            directory, _, name = line.rpartition("/")
            number = directories.get(directory)
            if number is None:
                number = directories[directory] = str(len(directories))
            entry = prefix + number
            entries = by_name.get(name)
            if entries is None:
                by_name[name] = [entry]
            elif entries[-1] != entry:
                entries.append(entry)
    try:
        table = {
            name.encode("utf-8", "surrogateescape"): ",".join(entries).encode("ascii")
            for name, entries in by_name.items()
        }
        block = "\n".join(directories).encode("utf-8", "surrogateescape")
        identity = signature_value.encode("utf-8", "surrogateescape")
        if any("\n" in name for name in names):
            listing, names = None, ()  # a name the block cannot hold: the lists are listed
        name_block = "\n".join(names).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return
    # A payload holds no tab; a name no newline when it comes from `read_list`'s lines
    # (splitlines), which one test over the names keeps true of any caller.
    if any("\n" in name for name in by_name):
        return  # a name the table cannot hold: no index, full scans
    # ensure_ascii: no record line holds a newline.
    record_lines = b"\n".join(json.dumps(r, ensure_ascii=True).encode("ascii") for r in records)
    header = {
        "listing": listing,
        "signature": len(identity),
        "records": len(record_lines),
        "names": len(name_block),
        "directories": len(block),
    }
    body = identity + record_lines + name_block + block + pack_table(table)
    store(path, stored_bytes(_MAGIC, header, body), _KEEP)
