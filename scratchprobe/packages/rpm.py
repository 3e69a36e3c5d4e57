"""rpm's database inside the root, read from the sqlite rpmdb without rpm itself.

rpm >= 4.16 can keep its database in sqlite (the default on Fedora >= 33, RHEL 9 and their
rebuilds): ROOT/var/lib/rpm/rpmdb.sqlite, or ROOT/usr/lib/sysimage/rpm/rpmdb.sqlite where
/var/lib/rpm was moved (Fedora >= 36, openSUSE). Table `Packages(hnum, blob)` holds one
header blob per installed package (rpm lib/backend/sqlite.c); the other tables are indexes
rpm can rebuild and are not needed.

A blob is the "header export" layout (rpm lib/header.c `headerExport`/`headerImport`, and
the format chapter of the RPM reference manual, "Header structure"), all big-endian:

    int32 il                 number of index entries
    int32 dl                 bytes of the data store
    il x { int32 tag, uint32 type, int32 offset, uint32 count }
    dl bytes of data         strings NUL-terminated, integers aligned to their size

The tags read are NAME (1000), VERSION (1001), RELEASE (1002), EPOCH (1003), LICENSE
(1014), ARCH (1022), and the file list: BASENAMES (1117), DIRNAMES (1118) and DIRINDEXES
(1116), path i being DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]; rpm < 4.0 headers carry
OLDFILENAMES (1027) instead. Unknown tags, such as the region trailer (63) every installed
header starts with, are skipped.

Berkeley DB (`Packages`, rpm < 4.16 and CentOS 7/8) and ndb (`Packages.db`, SUSE) databases
are not read: they are reported as present but not read, so that a file with no owner is
never mistaken for a file no package installed.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tempfile
from contextlib import closing
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import quote

from scratchprobe.packages import fileindex
from scratchprobe.packages.interface import (
    DirectoryResolver,
    OsRelease,
    Package,
    PackageManager,
    owners_of_listings,
    package_url,
)
from scratchprobe.packages.locations import RPM_DIRS, RPM_SQLITE, RPM_UNSUPPORTED
from scratchprobe.root import Root

DB_DIRS = RPM_DIRS
SQLITE_NAME = RPM_SQLITE
UNSUPPORTED_NAMES = RPM_UNSUPPORTED

# rpm lib/header.c: hdrchkTags / hdrchkData bounds; a blob beyond them is corrupt.
_MAX_TAGS = 0xFFFF
_MAX_DATA = 0x0FFFFFFF
_ENTRY = struct.Struct(">iIiI")


class RpmTag(IntEnum):
    """Header tags read (rpm include/rpm/rpmtag.h)."""

    NAME = 1000
    VERSION = 1001
    RELEASE = 1002
    EPOCH = 1003
    LICENSE = 1014
    ARCH = 1022
    OLDFILENAMES = 1027
    DIRINDEXES = 1116
    BASENAMES = 1117
    DIRNAMES = 1118


class RpmType(IntEnum):
    """Data types of index entries (rpm include/rpm/rpmtag.h `rpmTagType`)."""

    NULL = 0
    CHAR = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    STRING = 6
    BIN = 7
    STRING_ARRAY = 8
    I18NSTRING = 9


class RpmHeaderError(ValueError):
    """A header blob that does not follow the layout."""


@dataclass(frozen=True)
class RpmHeader:
    """The fields of one installed package's header that name it and list its files."""

    name: str
    version: str
    release: str | None
    epoch: int | None
    arch: str | None
    license: str | None
    files: tuple[str, ...]


def _strings(data: bytes, offset: int, count: int, tag: int) -> list[str]:
    if offset < 0 or (count and offset >= len(data)):
        raise RpmHeaderError(f"tag {tag}: offset {offset} outside the data store")
    parts = data[offset:].split(b"\0", count)
    if len(parts) <= count:
        raise RpmHeaderError(f"tag {tag}: {count} strings run past the data store")
    return [p.decode("utf-8", "surrogateescape") for p in parts[:count]]


def _int32s(data: bytes, offset: int, count: int, tag: int) -> tuple[int, ...]:
    if offset < 0 or offset + 4 * count > len(data):
        raise RpmHeaderError(f"tag {tag}: {count} integers run past the data store")
    return struct.unpack_from(f">{count}i", data, offset)


def parse_header(blob: bytes) -> RpmHeader:
    """Read one header blob. Raises RpmHeaderError when it is malformed."""
    if len(blob) < 8:
        raise RpmHeaderError("shorter than its 8-byte preamble")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if not 0 < il <= _MAX_TAGS or not 0 <= dl <= _MAX_DATA:
        raise RpmHeaderError(f"implausible sizes: {il} entries, {dl} data bytes")
    data_start = 8 + il * _ENTRY.size
    if data_start + dl > len(blob):
        raise RpmHeaderError(f"{il} entries and {dl} data bytes exceed the {len(blob)}-byte blob")
    data = blob[data_start : data_start + dl]
    strings: dict[int, list[str]] = {}
    integers: dict[int, tuple[int, ...]] = {}
    wanted = {int(t) for t in RpmTag}
    for index in range(il):
        tag, kind, offset, count = _ENTRY.unpack_from(blob, 8 + index * _ENTRY.size)
        if tag not in wanted or tag in strings or tag in integers:
            continue
        if kind == RpmType.STRING:
            strings[tag] = _strings(data, offset, 1, tag)
        elif kind in (RpmType.STRING_ARRAY, RpmType.I18NSTRING):
            strings[tag] = _strings(data, offset, count, tag)
        elif kind == RpmType.INT32:
            integers[tag] = _int32s(data, offset, count, tag)
        else:
            raise RpmHeaderError(f"tag {tag} has unexpected type {kind}")

    def first(tag: RpmTag) -> str | None:
        values = strings.get(tag)
        return values[0] if values else None

    name, version = first(RpmTag.NAME), first(RpmTag.VERSION)
    if not name or not version:
        raise RpmHeaderError("no NAME or VERSION")
    epoch = integers.get(RpmTag.EPOCH)
    return RpmHeader(
        name=name,
        version=version,
        release=first(RpmTag.RELEASE),
        epoch=epoch[0] if epoch else None,
        arch=first(RpmTag.ARCH),
        license=first(RpmTag.LICENSE),
        files=_file_list(strings, integers),
    )


def _file_list(
    strings: dict[int, list[str]], integers: dict[int, tuple[int, ...]]
) -> tuple[str, ...]:
    basenames = strings.get(RpmTag.BASENAMES)
    if basenames is None:
        return tuple(strings.get(RpmTag.OLDFILENAMES, ()))
    dirnames = strings.get(RpmTag.DIRNAMES, [])
    indexes = integers.get(RpmTag.DIRINDEXES, ())
    if len(indexes) != len(basenames):
        raise RpmHeaderError(f"{len(basenames)} BASENAMES but {len(indexes)} DIRINDEXES")
    files = []
    for base, index in zip(basenames, indexes, strict=True):
        if not 0 <= index < len(dirnames):
            raise RpmHeaderError(f"DIRINDEXES entry {index} outside {len(dirnames)} DIRNAMES")
        files.append(dirnames[index] + base)
    return tuple(files)


def _read_blobs(host_path: str) -> list[tuple[object, object]]:
    """Every (hnum, blob) row of the Packages table.

    The root is another system's filesystem: the database is opened read-only and
    `immutable`, so sqlite takes no lock and creates no -shm or -wal beside it. An immutable
    database ignores its write-ahead log, though, and rpm leaves one behind when it was
    interrupted; then the database and its log are copied to a temporary directory and
    opened there, where sqlite may replay the log.
    """
    # Imported here: only a root with an rpmdb pays for sqlite3 (93 ms in `-X importtime`
    # of an inspect --format json run from a cold page cache).
    import sqlite3

    query = "SELECT hnum, blob FROM Packages"
    wal = host_path + "-wal"
    try:
        # lstat: a -wal that is a symlink could point out of the root; it is not followed.
        wal_stat = os.lstat(wal)
        replay = stat.S_ISREG(wal_stat.st_mode) and wal_stat.st_size > 0
    except OSError:
        replay = False
    if replay:
        with tempfile.TemporaryDirectory(prefix="scratchprobe-rpmdb-") as scratch:
            copy = os.path.join(scratch, SQLITE_NAME)
            shutil.copyfile(host_path, copy)
            shutil.copyfile(wal, copy + "-wal")
            with closing(sqlite3.connect(copy)) as connection:
                return connection.execute(query).fetchall()
    uri = f"file:{quote(host_path)}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        return connection.execute(query).fetchall()


class RpmDatabase:
    """The sqlite rpmdb of one root."""

    manager = PackageManager.RPM

    def __init__(self, root: Root, os_release: OsRelease, location: str) -> None:
        self._root = root
        self._os = os_release
        self.location = location
        self.warnings: list[str] = []
        self._headers: tuple[RpmHeader, ...] = ()
        self._index: fileindex.FileIndex | None = None
        """The file-name index of the database, when a valid one is stored (fileindex.py)."""
        self._source: tuple[str, str | None, str | None] = ("", None, None)
        """(host path, signature, index path): what a read of the database needs."""
        try:
            resolved = root.resolve(location)
            if not resolved.is_file:
                raise ValueError("not a regular file")
        except (OSError, ValueError) as exc:
            self.warnings.append(f"rpm: {location} is unreadable: {exc}")
            return
        # sqlite reads the write-ahead log's pages as part of the database: both are the
        # identity the index was built from.
        signature = fileindex.signature((resolved.host_path, resolved.host_path + "-wal"))
        stored = fileindex.index_path("rpm", resolved.host_path)
        self._source = (resolved.host_path, signature, stored)
        if signature is not None and stored is not None:
            self._index = fileindex.load(stored, signature)
            if self._index is not None and self._index_headers():
                return
            self._index = None
        self._read(resolved.host_path, signature, stored)

    def _read(self, host: str, signature: str | None, stored: str | None) -> None:
        """Every header from the database itself; then the index is (re)built from them."""
        import sqlite3  # for sqlite3.Error below: only a root with an rpmdb pays for it

        self._index = None
        self.warnings.clear()  # all of them come from this read
        try:
            rows = _read_blobs(host)
        except (OSError, ValueError, sqlite3.Error) as exc:
            self.warnings.append(f"rpm: {self.location} is unreadable: {exc}")
            return
        headers = []
        broken = 0
        for _hnum, blob in rows:
            try:
                if not isinstance(blob, bytes):
                    raise RpmHeaderError("not a blob")
                headers.append(parse_header(blob))
            except RpmHeaderError:
                broken += 1
        if broken:
            self.warnings.append(f"rpm: {broken} unreadable package headers in {self.location}")
        self._headers = tuple(headers)
        fileindex.write(
            stored,
            signature,
            [_fields(h) for h in self._headers],
            [h.files for h in self._headers],
            self.warnings,
        )

    def _index_headers(self) -> bool:
        """The headers held by the index (their file lists stay in the index)."""
        assert self._index is not None
        headers = []
        for fields in self._index.records:
            if len(fields) != 6:
                return False
            name, version, release, epoch, arch, license_ = fields
            texts = (release, arch, license_)
            if not isinstance(name, str) or not isinstance(version, str):
                return False
            if not all(t is None or isinstance(t, str) for t in texts):
                return False
            if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
                return False
            headers.append(RpmHeader(name, version, release, epoch, arch, license_, ()))
        self._headers = tuple(headers)
        self.warnings += self._index.warnings
        return True

    def owners(self, paths: frozenset[str], licenses: bool = True) -> dict[str, Package]:
        listings = fileindex.listings_or_scan(
            self._index,
            frozenset(p.rpartition("/")[2] for p in paths),
            lambda: [r.files for r in self._headers],
            lambda: self._read(*self._source),
        )
        return owners_of_listings(
            listings,
            paths,
            DirectoryResolver(self._root),
            lambda i: self._package(self._headers[i]),
        )

    def _package(self, header: RpmHeader) -> Package:
        version = f"{header.version}-{header.release}" if header.release else header.version
        epoch = str(header.epoch) if header.epoch is not None else None
        purl = package_url(
            "rpm",
            self._os.id,
            header.name,
            version,
            {"arch": header.arch, "epoch": epoch, "distro": self._os.distro},
        )
        return Package(
            name=header.name,
            version=version,
            arch=header.arch,
            manager=PackageManager.RPM,
            purl=purl,
            licenses=(header.license,) if header.license else (),
            epoch=epoch,
        )


def find_rpm(root: Root, os_release: OsRelease) -> tuple[RpmDatabase | None, tuple[str, ...]]:
    """The sqlite rpmdb of the root (None when it has none), and a warning for each rpm
    database present in a format this reader does not read."""
    warnings: list[str] = []
    for directory in DB_DIRS:
        names = root.listdir(directory)
        if SQLITE_NAME in names:
            return RpmDatabase(root, os_release, f"{directory}/{SQLITE_NAME}"), ()
        for name, kind in UNSUPPORTED_NAMES.items():
            if name in names:
                warnings.append(
                    f"rpm database present but not read: {directory}/{name} is {kind}, only "
                    "the sqlite rpmdb (rpm >= 4.16) is supported; files it owns are reported "
                    "without a package"
                )
    return None, tuple(dict.fromkeys(warnings))


def _fields(header: RpmHeader) -> list[str | int | None]:
    return [header.name, header.version, header.release, header.epoch, header.arch, header.license]
