"""What every package-database reader returns, and the one question it answers.

A reader is built once per run for one root; `owners` is then asked once with every path the
image needs. None of the three databases has a path -> package index on disk that is cheap
to use (dpkg's is spread over one `.list` file per package, apk's and rpm's are inside each
package record), so each reader keeps a file-name index between runs, used only while the
database files keep the identity it was built from (dpkgindex.py, fileindex.py): a run then
reads only the listings of the wanted file names; without one, it walks every record once
and keeps only the paths that were asked for.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from scratchprobe.root import Root


class PackageManager(Enum):
    """The package database a file's owner was read from (the JSON `manager`)."""

    DPKG = "dpkg"
    APK = "apk"
    RPM = "rpm"


@dataclass(frozen=True)
class Package:
    """An installed OS package that owns at least one file of the image."""

    name: str
    version: str
    """As the package manager writes it: `2.36-9+deb12u14`, `1.2.4-r2`, `8.2.1-3.fc39`
    (rpm: version-release, epoch in `epoch`)."""
    arch: str | None
    manager: PackageManager
    purl: str
    """The package URL (purl-spec PURL-TYPES: deb, apk, rpm), with distro from os-release."""
    licenses: tuple[str, ...] = ()
    """As the package metadata states them (apk `L:`, rpm LICENSE, the `License:` short
    names of a machine-readable debian/copyright); empty when it states none."""
    epoch: str | None = None
    """rpm's EPOCH (dpkg keeps the epoch inside `version`)."""
    source_package: str | None = None
    """dpkg's `Source:` when it differs from the binary package name."""


@dataclass(frozen=True)
class OsRelease:
    """The fields of /etc/os-release that name a distribution in a package URL."""

    id: str | None
    """`debian`, `alpine`, `fedora`, ... (os-release ID)."""
    version_id: str | None
    """`12`, `3.19.1`, `39` (os-release VERSION_ID; absent on rolling releases)."""

    @property
    def distro(self) -> str | None:
        """The purl `distro` qualifier: `debian-12`, `alpine-3.19.1`; None when unknown."""
        if self.id is None:
            return None
        return f"{self.id}-{self.version_id}" if self.version_id else self.id


class PackageDatabase(Protocol):
    """One package database inside the root."""

    @property
    def manager(self) -> PackageManager: ...

    @property
    def location(self) -> str:
        """In-root path of the database (for reports)."""
        ...

    @property
    def warnings(self) -> list[str]:
        """Problems met while reading (unreadable lists, corrupt records)."""
        ...

    def owners(self, paths: frozenset[str], licenses: bool = True) -> dict[str, Package]:
        """The package owning each of `paths` (in-root, symlink-free) that some package owns.

        Paths no package lists are absent from the answer. Called once per run.
        """
        ...


class DirectoryResolver:
    """Maps a path as a package lists it to the path it names in the root.

    Packages list paths as they were built (`/lib/x86_64-linux-gnu/libc.so.6`), but on a
    merged-/usr system `/lib` is a symlink to `usr/lib`, so the file the image copies is
    `/usr/lib/x86_64-linux-gnu/libc.so.6`. Resolving the *directory* of a listed path inside
    the root, and keeping its last component, gives the path the plan uses; resolving the
    last component too would be wrong: a package that lists a symlink (`/usr/bin/awk` ->
    alternatives -> `/usr/bin/mawk`) does not own the file it points to. Directories are
    resolved once each: a database lists a few thousand directories but ~10^5 files.
    """

    def __init__(self, root: Root) -> None:
        self._root = root
        self._host = "" if root.is_host else root.directory
        self._dirs: dict[str, str | None] = {}

    def key(self, listed: str) -> str | None:
        """The in-root path `listed` names with its directory resolved; None when the
        directory does not exist in the root."""
        directory, _, name = listed.rpartition("/")
        if not name:
            return None
        resolved = self.directory(directory)
        if resolved is None:
            return None
        return f"/{name}" if resolved == "/" else f"{resolved}/{name}"

    def directory(self, directory: str) -> str | None:
        """The directory part of a listed path (the text before its last `/`: "" for a
        file in `/`) resolved in the root; None when it does not exist there."""
        resolved = self._dirs.get(directory, _UNKNOWN)
        return self._directory(directory) if resolved is _UNKNOWN else resolved

    def _directory(self, directory: str) -> str | None:
        """`directory` resolved in the root, from its parent's resolution and one lstat of
        its own last component when that is a real directory (a list's directories are
        nested: a full resolution of each repeats its parents' lstats); anything else (a
        symlink, `.`, `..`, a missing or odd entry) goes through Root.resolve."""
        if directory in self._dirs:
            return self._dirs[directory]
        parent, _, name = directory.rpartition("/")
        resolved: str | None = None
        # The depth bound keeps a crafted list's deep path from deep recursion.
        if name and name not in (".", "..") and "\0" not in name and parent.count("/") < 64:
            base = self._directory(parent) if parent else "/"
            if base is not None:
                # `base` is symlink-free and `name` one plain component: the joined path
                # is normal, so the host path is the root's directory and it.
                candidate = f"/{name}" if base == "/" else f"{base}/{name}"
                try:
                    if stat.S_ISDIR(os.lstat(self._host + candidate).st_mode):
                        resolved = candidate
                except OSError:
                    pass
        if resolved is None:
            try:
                resolved = self._root.resolve(directory or "/").path
            except (OSError, ValueError):  # ValueError: a NUL byte in a corrupt list
                resolved = None
        self._dirs[directory] = resolved
        return resolved


_UNKNOWN = "\0"
"""Not a resolution (no path holds a NUL): a directory not resolved yet."""


class OwnerSearch:
    """The owners of `paths`, offered the listings of a database in its order (the first
    record listing a path owns it); `package_of` builds a record's Package, once per
    record that owns something.

    What it costs follows the paths asked about: a listing whose name no unowned wanted
    path has is passed over on a dictionary lookup (`wants`: once every `__init__.py`
    asked about has its owner, the thousands of other packages' `__init__.py` are not
    resolved), a listed directory that is a wanted path's own (symlink-free) directory is
    that path without a resolution, and `offer` says when every path has an owner.
    """

    def __init__(
        self,
        paths: frozenset[str],
        resolver: DirectoryResolver,
        package_of: Callable[[int], Package],
    ) -> None:
        # name -> the directories of the wanted paths with that name that have no owner
        # yet (each split as the listings are: the text before the last `/`).
        self._unowned: dict[str, set[str]] = {}
        for path in paths:
            directory, _, name = path.rpartition("/")
            self._unowned.setdefault(name, set()).add(directory)
        self._left = len(paths)
        self._resolver = resolver
        self._package_of = package_of
        self._packages: dict[int, Package] = {}
        self.found: dict[str, Package] = {}

    def wants(self, name: str) -> bool:
        """Whether a wanted path named `name` has no owner yet."""
        return bool(self._unowned.get(name))

    def offer(self, record: int, listed: str) -> bool:
        """`record` lists `listed` (after every listing of an earlier record with the same
        last component); True once every path has an owner."""
        directory, slash, name = listed.rpartition("/")
        directories = self._unowned.get(name)
        if not directories:
            return not self._left
        if directory in directories:
            # A wanted path's directory is symlink-free: it resolves to itself.
            key = listed if slash else f"/{name}"
        else:
            resolved = self._resolver.directory(directory)
            if resolved is None:
                return False
            directory = "" if resolved == "/" else resolved  # as the wanted paths split
            if directory not in directories:
                return False
            key = f"{directory}/{name}"
        if record not in self._packages:
            self._packages[record] = self._package_of(record)
        self.found[key] = self._packages[record]
        directories.discard(directory)
        self._left -= 1
        return not self._left


def owners_of_listings(
    listings: Iterable[tuple[int, int, str]],
    paths: frozenset[str],
    resolver: DirectoryResolver,
    package_of: Callable[[int], Package],
) -> dict[str, Package]:
    """The owner of each of `paths` among `listings` (record, position, listed path), met
    in database order (OwnerSearch); no listing is read past the last owner found."""
    search = OwnerSearch(paths, resolver, package_of)
    for record, _position, listed in listings:
        if search.offer(record, listed):
            break
    return search.found


def package_url(
    kind: str,
    namespace: str | None,
    name: str,
    version: str | None,
    qualifiers: dict[str, str | None],
) -> str:
    """A canonical package URL string, as packageurl-python 0.11+ writes it
    (`str(PackageURL(...).to_string())`, which tests/unit/packages/test_package_url.py
    compares it with): purl-spec percent-encoding (Debian's `+` becomes `%2B`), the
    per-type case rules of the types written here (deb, apk, rpm, golang, cargo: apk's
    namespace and name lower-cased), qualifiers sorted; those that are None are left out.
    Written here: importing packageurl and its two normalisation passes cost 2 ms and
    33 us a purl, the largest part of the owners' cost of a small closure.

    The two passes are kept as packageurl makes them (PackageURL() normalises without
    encoding, to_string() normalises again, encoding), with its errors: ValueError for an
    empty type or name (UnicodeEncodeError for a lone surrogate), TypeError for a name
    that normalises to nothing."""
    kind_final = kind.strip().lower()
    for key, value in (("type", kind), ("name", name)):
        if not value:
            raise ValueError(f"Invalid purl: {key} is a required argument.")
    lower = kind_final == "apk"
    namespace_1 = _purl_namespace(namespace, lower, _same)
    name_1 = _purl_name(name, lower, _same)
    version_1 = (version or "").strip() or None
    kept_1 = {k: v for k, v in sorted(qualifiers.items()) if v and v.strip()}
    kind_2 = _purl_quote(kind_final).strip().lower()
    namespace_2 = _purl_namespace(namespace_1, lower, _purl_quote)
    name_2 = _purl_name(name_1, lower, _purl_quote)
    version_2 = _purl_quote(version_1.strip()) or None if version_1 else None
    kept_2 = "&".join(f"{k}={_purl_quote(v)}" for k, v in kept_1.items())
    if name_2 is None:
        # packageurl joins the parts with the name None: str.join's error.
        item = 6 if namespace_2 else 4
        raise TypeError(f"sequence item {item}: expected str instance, NoneType found")
    purl = f"pkg:{kind_2}/{namespace_2}/{name_2}" if namespace_2 else f"pkg:{kind_2}/{name_2}"
    if version_2:
        purl += f"@{version_2}"
    return f"{purl}?{kept_2}" if kept_2 else purl


def _same(text: str) -> str:
    return text


# urllib.parse.quote's unreserved bytes (RFC 3986) and its default safe "/": written out
# because importing urllib.parse (with ipaddress) cost a json run ~2 ms for this one call.
_UNQUOTED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _purl_quote(text: str) -> str:
    """packageurl.quote: percent-encoded UTF-8, `/` and `:` left as they are (byte for byte
    urllib.parse.quote(text.encode()) with ":" kept)."""
    return "".join(
        chr(byte) if byte in _UNQUOTED or byte == 0x3A else f"%{byte:02X}"
        for byte in text.encode("utf-8")
    )


def _purl_namespace(namespace: str | None, lower: bool, quote: Callable[[str], str]) -> str | None:
    """packageurl.normalize_namespace for the types written here."""
    if not namespace:
        return None
    text = namespace.strip().strip("/")
    if lower:
        text = text.lower()
    return "/".join(quote(segment) for segment in text.split("/") if segment.strip()) or None


def _purl_name(name: str | None, lower: bool, quote: Callable[[str], str]) -> str | None:
    """packageurl.normalize_name for the types written here."""
    if not name:
        return None
    text = quote(name).strip().strip("/")
    return (text.lower() if lower else text) or None
