"""apk's database inside the root (Alpine, Wolfi, postmarketOS).

/lib/apk/db/installed (apk-tools src/database.c `apk_db_index_read`, documented in
apk-tools doc/apk-v2.5 "installed database"): one record per package, records separated by
a blank line, each line a one-letter key, `:` and a value. The keys used here:
`P` name, `V` version, `A` architecture, `L` licence (an SPDX expression on current
Alpine), `o` origin (source package), `F` a directory relative to `/`, and `R` a file in the
most recent `F` directory. Other keys (checksums `Z:`, modes `a:`/`M:`, ...) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from scratchprobe.packages import fileindex
from scratchprobe.packages.interface import (
    DirectoryResolver,
    OsRelease,
    Package,
    PackageManager,
    owners_of_listings,
    package_url,
)
from scratchprobe.packages.locations import APK_INSTALLED
from scratchprobe.packages.stored import read_at_most
from scratchprobe.root import Root, open_regular

INSTALLED_PATHS = APK_INSTALLED
_MAX_BYTES = 256 << 20


@dataclass(frozen=True)
class ApkRecord:
    """One package of the installed database, with the paths it installed."""

    name: str
    version: str
    arch: str | None
    license: str | None
    origin: str | None
    files: tuple[str, ...]
    """Absolute paths as listed (`/` + F + `/` + R)."""


def parse_installed(text: str) -> Iterator[ApkRecord]:
    """The records of an `installed` file; a record without P: or V: is skipped."""
    fields: dict[str, str] = {}
    files: list[str] = []
    directory = ""

    def flush() -> ApkRecord | None:
        name, version = fields.get("P"), fields.get("V")
        if not name or not version:
            return None
        return ApkRecord(
            name=name,
            version=version,
            arch=fields.get("A") or None,
            license=fields.get("L") or None,
            origin=fields.get("o") or None,
            files=tuple(files),
        )

    for line in text.splitlines():
        if not line.strip():
            record = flush()
            if record is not None:
                yield record
            fields, files, directory = {}, [], ""
            continue
        key, colon, value = line.partition(":")
        if not colon or len(key) != 1:
            continue
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            files.append(f"/{directory}/{value}" if directory else f"/{value}")
        else:
            fields.setdefault(key, value)
    record = flush()
    if record is not None:
        yield record


class ApkDatabase:
    """apk's installed database in one root."""

    manager = PackageManager.APK

    def __init__(self, root: Root, os_release: OsRelease, location: str) -> None:
        self._root = root
        self._os = os_release
        self.location = location
        self.warnings: list[str] = []
        self._records: tuple[ApkRecord, ...] = ()
        self._index: fileindex.FileIndex | None = None
        """The file-name index of the database, when a valid one is stored (fileindex.py)."""
        self._source: tuple[str, str | None, str | None] = ("", None, None)
        """(host path, signature, index path): what a read of the database needs."""
        try:
            host = root.resolve(location).host_path
        except (OSError, ValueError) as exc:
            self.warnings.append(f"apk: {location} is unreadable: {exc}")
            return
        signature = fileindex.signature((host,))
        stored = fileindex.index_path("apk", host)
        self._source = (host, signature, stored)
        if signature is not None and stored is not None:
            self._index = fileindex.load(stored, signature)
            if self._index is not None and self._index_records():
                return
            self._index = None
        self._read(host, signature, stored)

    def _read(self, host: str, signature: str | None, stored: str | None) -> None:
        """Every record from the database itself; then the index is (re)built from them."""
        self._index = None
        self.warnings.clear()  # all of them come from this read
        try:
            fd = open_regular(host)
            with os.fdopen(fd, "rb") as handle:
                text = read_at_most(handle, _MAX_BYTES).decode("utf-8", "surrogateescape")
        except (OSError, ValueError) as exc:
            self.warnings.append(f"apk: {self.location} is unreadable: {exc}")
            return
        self._records = tuple(parse_installed(text))
        fileindex.write(
            stored,
            signature,
            [_fields(r) for r in self._records],
            [r.files for r in self._records],
            self.warnings,
        )

    def _index_records(self) -> bool:
        """The records held by the index (their file lists stay in the index)."""
        assert self._index is not None
        records = []
        for fields in self._index.records:
            if len(fields) != 5 or not all(f is None or isinstance(f, str) for f in fields):
                return False
            name, version, arch, license_, origin = fields
            if not isinstance(name, str) or not isinstance(version, str):
                return False
            records.append(ApkRecord(name, version, arch, license_, origin, ()))
        self._records = tuple(records)
        self.warnings += self._index.warnings
        return True

    def owners(self, paths: frozenset[str], licenses: bool = True) -> dict[str, Package]:
        listings = fileindex.listings_or_scan(
            self._index,
            frozenset(p.rpartition("/")[2] for p in paths),
            lambda: [r.files for r in self._records],
            lambda: self._read(*self._source),
        )
        return owners_of_listings(
            listings,
            paths,
            DirectoryResolver(self._root),
            lambda i: self._package(self._records[i]),
        )

    def _package(self, record: ApkRecord) -> Package:
        purl = package_url(
            "apk",
            self._os.id or "alpine",
            record.name,
            record.version,
            {"arch": record.arch, "distro": self._os.distro},
        )
        return Package(
            name=record.name,
            version=record.version,
            arch=record.arch,
            manager=PackageManager.APK,
            purl=purl,
            licenses=(record.license,) if record.license else (),
            source_package=record.origin if record.origin != record.name else None,
        )


def find_apk(root: Root, os_release: OsRelease) -> ApkDatabase | None:
    """The apk database of the root, None when it has none."""
    for location in INSTALLED_PATHS:
        try:
            if root.resolve(location).is_file:
                return ApkDatabase(root, os_release, location)
        except (OSError, ValueError):
            continue
    return None


def _fields(record: ApkRecord) -> list[str | None]:
    return [record.name, record.version, record.arch, record.license, record.origin]
