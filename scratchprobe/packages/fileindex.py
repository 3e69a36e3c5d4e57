"""A file-name index of a one-file package database (apk's `installed`, rpm's sqlite rpmdb),
kept between runs and never used stale.

Both databases keep each package's file list inside its record, so finding the owner of a
file means reading and parsing every record (apk: the whole `installed` file; rpm: every
header blob of the Packages table). This index maps each listed file *name* (the last path
component) to the (record, position, listed path) entries naming it, and holds each
record's package fields, so a run reads the few index lines of the wanted names and not
the database.

Why it is never stale: it is used only when the signature it was built from matches the
one taken again on every run, the (device, inode, size, mtime, ctime) of the database file
and, for rpm, of its write-ahead log (whose pages sqlite reads as part of the database).
apk writes `installed` to a new file renamed over the old one (apk-tools src/database.c
`apk_db_write_config`), sqlite writes in place (a new mtime and ctime); ctime cannot be
set from user space. A database that is not a regular file makes the index unavailable.

Layout: a magic line, a JSON header line (signature, records, warnings), then the by-name
table of stored.py (a lookup reads one bucket, not the whole body), each name's payload the
JSON list of [record, position, listed path]; a name holding a newline cannot be written
so, and then no index is kept. The index
lives beside dpkg's (dpkgindex.cache_directory), is written atomically and read bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from scratchprobe.packages.stored import (
    Table,
    cache_directory,
    pack_table,
    read_stored,
    store,
    stored_bytes,
)

_MAGIC = b"scratchprobe file-index 2\n"
_KEEP = 16
"""Indexes kept of each kind (apk, rpm): one per root inspected, the oldest removed first."""

Listing = tuple[int, int, str]
"""(record position, position in the record's file list, path as listed)."""


def signature(host_paths: Sequence[str]) -> str | None:
    """The identity of the database files; None when one is there but not a regular file.
    A file that does not exist (an rpm database without a -wal) is part of the identity."""
    digest = hashlib.sha256()
    for path in host_paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            digest.update(f"{path}\0absent\n".encode("utf-8", "surrogateescape"))
            continue
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        digest.update(
            f"{path}\0{info.st_dev}:{info.st_ino}:{info.st_size}:"
            f"{info.st_mtime_ns}:{info.st_ctime_ns}\n".encode("utf-8", "surrogateescape")
        )
    return digest.hexdigest()


def index_path(kind: str, host_path: str) -> str | None:
    """Where the index of the database at `host_path` is kept; None when caching is off."""
    directory = cache_directory()
    if directory is None:
        return None
    identity = os.path.realpath(host_path)
    name = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(directory, f"{kind}-{name}.idx")


class FileIndex:
    """A loaded index: each record's fields, and the listings of a given file name."""

    def __init__(self, records: list[list[Any]], warnings: list[str], table: Table) -> None:
        self.records = records
        self.warnings = warnings
        self._table = table

    def listings(self, names: Iterable[str]) -> list[Listing] | None:
        """Every listing whose last component is one of `names`, in database order (record,
        then position in its list): the order a full scan meets them in. None when the
        index is damaged (the caller reads the database)."""
        found: list[Listing] = []
        try:
            for name in names:
                payload = self._table.get(name.encode("utf-8", "surrogateescape"))
                if payload is not None:
                    for record, position, listed in json.loads(payload):
                        if not 0 <= record < len(self.records) or not isinstance(listed, str):
                            return None
                        found.append((int(record), int(position), listed))
        except (ValueError, TypeError):
            return None
        return sorted(found)


def load(path: str, expected: str) -> FileIndex | None:
    """The index at `path` when it was built from exactly the database of `expected`."""
    stored = read_stored(path, _MAGIC)
    if stored is None:
        return None
    header, body = stored
    try:
        if header.get("signature") != expected:
            return None
        records = [list(r) for r in header["records"]]
        warnings = [str(w) for w in header["warnings"]]
    except (ValueError, KeyError, TypeError):
        return None
    try:
        table = Table(body)
    except ValueError:
        return None
    return FileIndex(records, warnings, table)


def listings_or_scan(
    index: FileIndex | None,
    names: frozenset[str],
    files: Callable[[], Sequence[Sequence[str]]],
    reread: Callable[[], None],
) -> list[Listing]:
    """The listings of `names`: from the index when there is one, else (or when the index
    is damaged, after `reread` has read the database) from every record's `files`."""
    listings = index.listings(names) if index is not None else None
    if listings is None and index is not None:
        reread()
    if listings is None:
        listings = [
            (position, at, listed)
            for position, listed_files in enumerate(files())
            for at, listed in enumerate(listed_files)
            if listed.rpartition("/")[2] in names
        ]
    return listings


def write(
    path: str | None,
    signature_value: str | None,
    records: Sequence[Sequence[Any]],
    files: Sequence[Sequence[str]],
    warnings: Sequence[str],
) -> None:
    """Build the index from every record's file list (in record order) and store it; any
    failure leaves no index, never a partial one. Nothing when either is None (caching is
    off, or the database's identity cannot be taken)."""
    if path is None or signature_value is None:
        return
    by_name: dict[str, list[Listing]] = {}
    for position, listed_files in enumerate(files):
        for at, listed in enumerate(listed_files):
            name = listed.rpartition("/")[2]
            if "\n" in name:
                return  # the table cannot hold it: no index, full reads
            by_name.setdefault(name, []).append((position, at, listed))
    try:
        header = {
            "signature": signature_value,
            "records": list(records),
            "warnings": list(warnings),
        }
        # ensure_ascii: no payload holds a tab or a newline.
        table = {
            name.encode("utf-8", "surrogateescape"): json.dumps(entries, ensure_ascii=True).encode(
                "ascii"
            )
            for name, entries in by_name.items()
        }
        data = stored_bytes(_MAGIC, header, pack_table(table))
    except (UnicodeEncodeError, ValueError):
        return
    store(path, data, _KEEP)
