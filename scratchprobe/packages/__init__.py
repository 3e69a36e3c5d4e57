"""The OS packages that own the image's files, read from the package databases in `--root`.

One module per package manager (dpkg, apk, rpm), each with a `find_*` function that returns
its database when the root has one; `interface` holds what they share. A root may hold more
than one database (an rpm database on a Debian builder, say): every one found is asked, in
the order dpkg, apk, rpm, and the first owner found for a path wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from scratchprobe.packages.dpkg import find_dpkg
from scratchprobe.packages.interface import OsRelease, Package, PackageDatabase, PackageManager
from scratchprobe.packages.locations import APK_INSTALLED, RPM_DATABASES
from scratchprobe.packages.osrelease import read_os_release
from scratchprobe.root import Root

__all__ = ["OsRelease", "Ownership", "Package", "PackageManager", "find_owners"]


@dataclass(frozen=True)
class Ownership:
    """Which package owns each path asked about, and what was read to say so."""

    owners: tuple[tuple[str, Package], ...]
    """(in-root path, owner) for every path some package owns, by path."""
    os_release: OsRelease
    databases: tuple[tuple[PackageManager, str], ...]
    """Each database read: manager and in-root location. Empty when the root has none."""
    warnings: tuple[str, ...]


def find_owners(root: Root, paths: frozenset[str], licenses: bool = True) -> Ownership:
    """Read the root's package databases once and find the owner of each in-root path.

    Never raises for a missing or damaged database: a root without one (a distroless or
    hand-made root, a static build) is normal and gives no owners; a damaged one gives a
    warning and the owners that could be read.
    """
    os_release = read_os_release(root)
    databases: list[PackageDatabase] = []
    warnings: list[str] = []
    dpkg = find_dpkg(root, os_release)
    if dpkg is not None:
        databases.append(dpkg)
    # apk's and rpm's readers (sqlite3, tempfile, shutil, struct) are imported only for a
    # root that may hold their database: a Debian root's run does not load them.
    if any(root.may_exist(path) for path in APK_INSTALLED):
        from scratchprobe.packages.apk import find_apk

        apk = find_apk(root, os_release)
        if apk is not None:
            databases.append(apk)
    if any(root.may_exist(path) for path in RPM_DATABASES):
        from scratchprobe.packages.rpm import find_rpm

        rpm, rpm_warnings = find_rpm(root, os_release)
        warnings += rpm_warnings
        if rpm is not None:
            databases.append(rpm)
    found: dict[str, Package] = {}
    remaining = paths
    for database in databases:
        if not remaining:
            break
        found.update(database.owners(remaining, licenses))
        remaining = frozenset(p for p in remaining if p not in found)
        warnings += database.warnings
    return Ownership(
        owners=tuple((p, found[p]) for p in sorted(found)),
        os_release=os_release,
        databases=tuple((d.manager, d.location) for d in databases),
        warnings=tuple(dict.fromkeys(warnings)),
    )
