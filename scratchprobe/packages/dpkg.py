"""dpkg's database inside the root: who owns which file, at which version, under which licence.

Layout (dpkg(1) FILES, deb-control(5), Debian Policy §5):
- /var/lib/dpkg/status: one deb822 paragraph per package (`Package`, `Status`, `Version`,
  `Architecture`, `Source`, ...), separated by blank lines; continuation lines start with
  a space or tab;
- /var/lib/dpkg/info/NAME.list, or NAME:ARCH.list for a `Multi-Arch: same` package: every
  path the package installed, one per line, as it was built (`/lib/...` even where /lib is
  now a symlink to usr/lib: Debian's merged-/usr moved the files, not the lists);
- distroless images have no status file but /var/lib/dpkg/status.d/NAME (one paragraph)
  and NAME.md5sums (`MD5  relative/path` lines) per package.

Licences come from /usr/share/doc/NAME/copyright only when it is machine-readable (DEP-5,
https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/): the first line of each
`License:` field of the header and of the `Files:` paragraphs. Paragraphs about `debian/*`
only describe the packaging, not the code in the package, and are skipped. A free-form
copyright file states no licence we can read reliably, so none is reported.

Measured on a Debian 12 root with 807 packages (143,000 listed paths): indexing every
listed path with its directory resolved takes 0.5 s; keeping only the lines whose last
component is the name of a wanted file, and resolving only their directories, takes 0.07 s
for the /usr/bin/curl closure with a whole zoneinfo tree. That is what `owners` does on a
first run; it then stores a file-name index of the lists (`dpkgindex.py`: each name's
(list, directory) lines), and later runs read no list and not the status file at all, only
the index lines of the wanted names, for as long as nothing in the database changed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from scratchprobe.packages import dpkgindex
from scratchprobe.packages.interface import (
    DirectoryResolver,
    OsRelease,
    OwnerSearch,
    Package,
    PackageManager,
    owners_of_listings,
    package_url,
)
from scratchprobe.packages.stored import cache_directory, read_at_most
from scratchprobe.root import Root

STATUS = "/var/lib/dpkg/status"
STATUS_DIR = "/var/lib/dpkg/status.d"
INFO_DIR = "/var/lib/dpkg/info"
DOC_DIR = "/usr/share/doc"

# Status words (the third word of `Status:`) for which the package's files are on disk;
# `config-files` and `not-installed` packages keep at most their conffiles.
_FILES_PRESENT = frozenset(
    {
        "installed",
        "unpacked",
        "half-configured",
        "half-installed",
        "triggers-awaited",
        "triggers-pending",
    }
)
_DEP5_FORMATS = ("copyright-format/1.0", "dep.debian.net/deps/dep5")
_MAX_STATUS_BYTES = 256 << 20
_MAX_COPYRIGHT_BYTES = 4 << 20
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Record:
    """A status paragraph, reduced to what a package URL and a licence need."""

    name: str
    version: str
    arch: str | None
    source: str | None
    multi_arch_same: bool


def parse_control(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a deb822 file, each as {field: value}; field names are matched
    case-insensitively by dpkg, so they are normalised to their usual capitalisation."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line[1:]
            continue
        if line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        last = name.strip().title()
        fields[last] = value.strip()
    if fields:
        yield fields


def _record(fields: dict[str, str]) -> _Record | None:
    name = fields.get("Package")
    version = fields.get("Version")
    if not name or not version:
        return None
    status = fields.get("Status", "install ok installed").split()
    if len(status) == 3 and status[2] not in _FILES_PRESENT:
        return None
    source = fields.get("Source")
    # `Source: glibc (2.36-9)` names the source package and, when it differs, its version.
    source_name = source.split()[0] if source else None
    return _Record(
        name=name,
        version=version,
        arch=fields.get("Architecture") or None,
        source=source_name if source_name and source_name != name else None,
        multi_arch_same=fields.get("Multi-Arch", "").strip() == "same",
    )


def _read_text(root: Root, path: str, limit: int) -> str | None:
    """A regular file's text, None when absent or not a regular file (a FIFO planted in
    a root would block the read forever)."""
    try:
        resolved = root.resolve(path)
        if not resolved.is_file:
            return None
        with open(resolved.host_path, "rb") as handle:
            return read_at_most(handle, limit).decode("utf-8", "surrogateescape")
    except (OSError, ValueError):
        return None


def dep5_licenses(text: str) -> tuple[str, ...]:
    """The licence short names a machine-readable debian/copyright states, in file order;
    empty for a free-form file."""
    paragraphs = list(parse_control(text))
    if not paragraphs or not any(f in paragraphs[0].get("Format", "") for f in _DEP5_FORMATS):
        return ()
    names: list[str] = []
    for index, paragraph in enumerate(paragraphs):
        files = paragraph.get("Files")
        if index > 0 and files is None:
            continue  # a stand-alone License paragraph: the text of a name used above
        if files is not None and all(p.startswith("debian/") for p in files.split()):
            continue
        license_field = paragraph.get("License")
        if license_field:
            first = license_field.split("\n", 1)[0].strip()
            if first:
                names.append(first)
    return tuple(dict.fromkeys(names))


class DpkgDatabase:
    """dpkg's status and file lists in one root."""

    manager = PackageManager.DPKG

    def __init__(self, root: Root, os_release: OsRelease, location: str) -> None:
        self.root = root
        self._os = os_release
        self.location = location
        self.warnings: list[str] = []
        self._records: dict[str, list[_Record]] = {}
        """Installed records by package name (several for a Multi-Arch: same package)."""
        self.lists: list[tuple[str, str]] = []
        """(in-root path of the file list, list name without suffix), in name order."""
        self._index: dpkgindex.DpkgIndex | None = None
        """The file-name index of the lists, when a valid one is stored (dpkgindex.py)."""
        self._index_to_write: tuple[str, str] | None = None
        """(index path, signature) when none is stored but one can be built this run."""
        self._index_source: tuple[str, str] | None = None
        """(index path, signature) of the index loaded, to rebuild it should it be damaged."""
        self._listing: str | None = None
        """The list directory's identity, taken before its names (dpkgindex.listing_identity)."""
        if location == STATUS:
            if not self._load_index():
                self._read_status()
        else:
            self._read_status_dir()

    def _list_files(self) -> list[tuple[str, str]]:
        names = self.root.listdir(INFO_DIR)
        # Filtered first: the directory holds five files per package, one of them a list.
        return [
            (f"{INFO_DIR}/{name}", name[: -len(".list")])
            for name in sorted(n for n in names if n.endswith(".list"))
        ]

    def _load_index(self) -> bool:
        """Use the stored index when it matches the database exactly (then the status file
        is not even parsed: the index holds each list's record, and while the directory's
        entries are unchanged, their names: the directory is not listed either)."""
        cache = cache_directory()
        stored: dpkgindex.StoredIndex | None = None
        try:
            status_host = self.root.resolve(STATUS).host_path
            info_host = self.root.resolve(INFO_DIR).host_path
        except (OSError, ValueError):
            cache = None
        if cache is not None:
            self._listing = dpkgindex.listing_identity(info_host)
            path = dpkgindex.index_path(cache, info_host)
            stored = dpkgindex.read(path)
        names = stored.list_names(self._listing) if stored is not None else None
        if names is None:
            self.lists = self._list_files()
        else:
            self.lists = [(f"{INFO_DIR}/{name}", name[: -len(".list")]) for name in names]
        if cache is None:
            return False
        names = [p.rpartition("/")[2] for p, _ in self.lists]
        signature = dpkgindex.signature(status_host, info_host, names)
        if signature is None:
            return False
        self._index = stored.index(signature, len(self.lists)) if stored is not None else None
        if self._index is None:
            self._index_to_write = (path, signature)
        else:
            self._index_source = (path, signature)
        return self._index is not None

    def _add(self, record: _Record | None) -> None:
        if record is not None:
            self._records.setdefault(record.name, []).append(record)

    def _read_status(self) -> None:
        text = _read_text(self.root, STATUS, _MAX_STATUS_BYTES) or ""
        for fields in parse_control(text):
            self._add(_record(fields))

    def _read_status_dir(self) -> None:
        names = self.root.listdir(STATUS_DIR)
        for name in sorted(names):
            if "." in name:
                continue  # NAME.md5sums and the like; the paragraph file has no suffix
            text = _read_text(self.root, f"{STATUS_DIR}/{name}", _MAX_STATUS_BYTES) or ""
            for fields in parse_control(text):
                self._add(_record(fields))
        self.lists = [
            (f"{STATUS_DIR}/{name}", name[: -len(".md5sums")])
            for name in sorted(names)
            if name.endswith(".md5sums")
        ]

    def _record_for(self, list_name: str) -> _Record | None:
        name, _, arch = list_name.partition(":")
        candidates = self._records.get(name, [])
        if arch:
            return next((r for r in candidates if r.arch == arch), None)
        # A plain NAME.list belongs to the one record of that name that is not
        # Multi-Arch: same (those always carry :ARCH in the list name).
        plain = [r for r in candidates if not r.multi_arch_same] or candidates
        return plain[0] if plain else None

    def read_list(self, directory: str | None, list_path: str) -> list[str] | None:
        """The paths one file list names. `directory` is the host path of the (resolved)
        list directory: opening NAME there with O_NOFOLLOW skips one in-root resolution per
        list (800 of them), and a list that is a symlink, which could point out of the
        root, is refused by the kernel and read through the root instead. O_NONBLOCK and
        the S_ISREG test keep a FIFO from blocking the read."""
        text: str | None = None
        if directory is not None:
            name = list_path.rpartition("/")[2]
            try:
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                fd = os.open(os.path.join(directory, name), flags)
                with open(fd, "rb") as handle:
                    if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                        data = read_at_most(handle, _MAX_STATUS_BYTES)
                        text = data.decode("utf-8", "surrogateescape")
            except OSError:
                text = None
        if text is None:
            text = _read_text(self.root, list_path, _MAX_STATUS_BYTES)
        if text is None:
            return None
        if list_path.endswith(".md5sums"):
            listed = []
            for line in text.splitlines():
                _digest, _, relative = line.partition(" ")
                relative = relative.lstrip(" *")
                if relative:
                    listed.append("/" + relative)
            return listed
        return text.splitlines()

    def owners(self, paths: frozenset[str], licenses: bool = True) -> dict[str, Package]:
        names = frozenset(p.rpartition("/")[2] for p in paths)
        if self._index is not None:
            try:
                return self._indexed_owners(self._index, paths, names, licenses)
            except ValueError:
                # A damaged index: read the database as without one, and store a new one.
                self._index, self._index_to_write = None, self._index_source
                self._read_status()
        records = [self._record_for(name) for _path, name in self.lists]
        scan = _Scan(self, records, names, building=self._index_to_write is not None)
        found = owners_of_listings(
            scan.listings(),
            paths,
            DirectoryResolver(self.root),
            lambda at: self._package(_known(records[at]), licenses),
        )
        if self._index_to_write is not None:
            lists = scan.every_list()
            if lists is not None:
                path, signature = self._index_to_write
                dpkgindex.write(
                    path,
                    signature,
                    [None if r is None else _fields(r) for r in records],
                    lists,
                    self._listing,
                    [p.rpartition("/")[2] for p, _ in self.lists],
                )
            self._index_to_write = None
        return found

    def _indexed_owners(
        self,
        index: dpkgindex.DpkgIndex,
        paths: frozenset[str],
        names: frozenset[str],
        licenses: bool,
    ) -> dict[str, Package]:
        """The owners from the index's lines of the wanted names, name by name, each name's
        lines in list order: what a scan of the lists meets for that name. Raises
        ValueError when the index is damaged."""
        search = OwnerSearch(
            paths,
            DirectoryResolver(self.root),
            lambda at: self._package(_Record(*_known(index.record(at))), licenses),
        )
        for name in names:
            if not search.wants(name):
                continue
            for at, number in index.entries(name):
                if index.record(at) is None:
                    continue  # a list without an installed record owns nothing
                if search.offer(at, index.listed(number, name)):
                    return search.found
                if not search.wants(name):
                    break
        return search.found

    def _package(self, record: _Record, licenses: bool = True) -> Package:
        namespace = self._os.id or "debian"
        purl = package_url(
            "deb",
            namespace,
            record.name,
            record.version,
            {"arch": record.arch, "distro": self._os.distro},
        )
        return Package(
            name=record.name,
            version=record.version,
            arch=record.arch,
            manager=PackageManager.DPKG,
            purl=purl,
            # Reading copyright files is the slow part; only the SBOM shows licences.
            licenses=self._licenses(record.name) if licenses else (),
            source_package=record.source,
        )

    def _licenses(self, name: str) -> tuple[str, ...]:
        text = _read_text(self.root, f"{DOC_DIR}/{name}/copyright", _MAX_COPYRIGHT_BYTES)
        return dep5_licenses(text) if text else ()


class _Scan:
    """A read of the lists one after the other (no index, or one is being built), giving
    the lines whose last component is a wanted name. The lists are read as the listings
    are asked for: once every wanted path has an owner the rest are not read, and an
    unreadable one among them is no warning, unless the index is being built, for which
    `every_list` reads them all."""

    def __init__(
        self,
        database: DpkgDatabase,
        records: list[_Record | None],
        names: frozenset[str],
        building: bool,
    ) -> None:
        self._database = database
        self._records = records
        self._names = names
        self._building = building
        self._read: list[list[str]] = []
        """Each list's lines, for the index, in list order (empty for a list without a
        record)."""
        self._directory: str | None = None
        lists = database.lists
        if lists:
            try:
                host = database.root.resolve(lists[0][0].rpartition("/")[0]).host_path
                self._directory = host
            except (OSError, ValueError):
                self._directory = None

    def _next(self, warn: bool) -> list[str]:
        position = len(self._read)
        list_path = self._database.lists[position][0]
        lines: list[str] = []
        if self._records[position] is not None:
            listed = self._database.read_list(self._directory, list_path)
            if listed is None:
                self._building = False  # no index from an incomplete read
                if warn:
                    self._database.warnings.append(f"dpkg: {list_path} is unreadable")
            else:
                lines = listed
        self._read.append(lines if self._building else [])
        return lines

    def listings(self) -> Iterator[tuple[int, int, str]]:
        names = self._names
        while len(self._read) < len(self._records):
            position = len(self._read)
            for line in self._next(warn=True):
                # The cheap test first: most of ~10^5 lines name no wanted file.
                if line.rpartition("/")[2] in names:
                    yield position, 0, line

    def every_list(self) -> list[list[str]] | None:
        """The lines of every list, read to the end without warnings; None when one could
        not be read (no index then)."""
        while self._building and len(self._read) < len(self._records):
            self._next(warn=False)
        return self._read if self._building else None


def _known(record: _T | None) -> _T:
    assert record is not None  # owners_of_listings is given only lists with a record
    return record


def _fields(record: _Record) -> dpkgindex.RecordFields:
    return (record.name, record.version, record.arch, record.source, record.multi_arch_same)


def find_dpkg(root: Root, os_release: OsRelease) -> DpkgDatabase | None:
    """The dpkg database of the root, None when it has none."""
    for location in (STATUS, STATUS_DIR):
        try:
            resolved = root.resolve(location)
        except (OSError, ValueError):
            continue
        if location == STATUS and resolved.is_file:
            return DpkgDatabase(root, os_release, location)
        if location == STATUS_DIR and resolved.is_dir:
            return DpkgDatabase(root, os_release, location)
    return None
