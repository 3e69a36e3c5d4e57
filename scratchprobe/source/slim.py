"""What the slim image keeps of the source image and what it drops, package by package.

Before: the regular files the source's layers unpack to (a hard link counted once) and the
layer blobs as stored. After: the plan's files and the written layer blobs. Packages: every
package the source's database lists as installed (dpkg `Status: install ok installed`,
dpkg(1) /var/lib/dpkg/status; apk's /lib/apk/db/installed `P:` records, apk-installed(5))
against the packages that own a file the plan copies (scratchprobe.packages).
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass

from scratchprobe.model import Inspection
from scratchprobe.packages import find_owners
from scratchprobe.packages.dpkg import parse_control
from scratchprobe.plan import FileType
from scratchprobe.root import Root
from scratchprobe.source.reference import SourceImage


@dataclass(frozen=True)
class KeptKind:
    kind: str
    files: int
    bytes: int


@dataclass(frozen=True)
class SlimReport:
    reference: str
    platform: str
    before_files: int
    before_bytes: int
    before_stored: int
    after_files: int
    after_bytes: int
    after_stored: int
    kept: tuple[KeptKind, ...]
    installed: tuple[str, ...]
    """Every package the source's database lists (empty when it has none)."""
    kept_packages: tuple[str, ...]
    dropped_packages: tuple[str, ...]
    specials: int
    """Device nodes and FIFOs of the layers (recorded, never created)."""


def _read(root: Root, path: str) -> str | None:
    try:
        return root.read_text(path)
    except OSError:
        return None


def installed_packages(root: Root) -> tuple[str, ...]:
    names: set[str] = set()
    status = _read(root, "/var/lib/dpkg/status")
    if status is not None:
        for fields in parse_control(status):
            if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                names.add(fields["Package"])
    apk = _read(root, "/lib/apk/db/installed")
    if apk is not None:
        names.update(line[2:].strip() for line in apk.splitlines() if line.startswith("P:"))
    return tuple(sorted(names))


def _tree(root: Root, directory: str) -> list[tuple[str, int]]:
    """(in-root path, size) of the regular files below a directory the plan copies whole."""
    try:
        top = root.resolve(directory)
    except OSError:
        return []
    out = []
    for current, _dirs, names in os.walk(top.host_path):
        for name in names:
            host = os.path.join(current, name)
            st = os.lstat(host)
            if stat.S_ISREG(st.st_mode):
                inner = posixpath.join(top.path, os.path.relpath(host, top.host_path))
                out.append((inner, st.st_size))
    return out


def _real_parent(root: Root, path: str) -> str:
    """The path with its directory's symlinks resolved. A package database lists a file
    under the directory its package installed it to: on a merged-/usr root (/lib ->
    usr/lib) libc6 lists /lib/x86_64-linux-gnu/libc.so.6 but libssl3
    /usr/lib/x86_64-linux-gnu/libcrypto.so.3, and a plan may name either one by the other."""
    directory, name = posixpath.split(path)
    try:
        return posixpath.join(root.resolve(directory).path, name)
    except OSError:
        return path


def slim_report(source: SourceImage, inspection: Inspection, stored_after: int) -> SlimReport:
    root = Root(source.root)
    kinds: dict[str, list[int]] = {}
    sources = set()
    for entry in inspection.plan.files:
        files: list[tuple[str | None, int]]
        if entry.source is None or entry.from_context:
            files = [(None, entry.size)] if entry.type is FileType.FILE else []
        elif entry.type is FileType.FILE:
            files = [(entry.source, entry.size)]
        elif entry.type is FileType.DIRECTORY:
            files = list(_tree(root, entry.source))
        else:
            files = []
        if not files:
            continue
        counts = kinds.setdefault(entry.kind.value, [0, 0])
        for path, size in files:
            counts[0] += 1
            counts[1] += size
            if path is not None:
                sources.add(path)
                sources.add(_real_parent(root, path))
    installed = installed_packages(root)
    owners = find_owners(root, frozenset(sources), licenses=False)
    kept = tuple(sorted({package.name for _path, package in owners.owners}))
    return SlimReport(
        reference=source.reference,
        platform=source.config.platform,
        before_files=source.unpacked.files,
        before_bytes=source.unpacked.bytes,
        before_stored=source.stored_bytes,
        after_files=sum(c[0] for c in kinds.values()),
        after_bytes=sum(c[1] for c in kinds.values()),
        after_stored=stored_after,
        kept=tuple(KeptKind(k, c[0], c[1]) for k, c in kinds.items()),
        installed=installed,
        kept_packages=kept,
        dropped_packages=tuple(p for p in installed if p not in kept),
        specials=len(source.unpacked.specials),
    )


def render_slim(report: SlimReport) -> str:
    ratio = report.after_bytes / report.before_bytes if report.before_bytes else 0.0
    lines = [
        f"slim {report.reference} ({report.platform}): {report.after_files} of "
        f"{report.before_files} files, {report.after_bytes} of {report.before_bytes} bytes "
        f"({ratio:.1%}); layers {report.after_stored} bytes stored, "
        f"was {report.before_stored}",
        "  keeps: " + ", ".join(f"{k.kind} {k.files} files {k.bytes} bytes" for k in report.kept),
    ]
    if report.installed:
        lines.append(
            f"  packages kept ({len(report.kept_packages)}): "
            + (", ".join(report.kept_packages) or "none")
        )
        lines.append(
            f"  packages dropped ({len(report.dropped_packages)} of {len(report.installed)}): "
            + (", ".join(report.dropped_packages) or "none")
        )
    else:
        lines.append("  packages: the image has no package database")
    if report.specials:
        lines.append(f"  device nodes and FIFOs of the layers (not created): {report.specials}")
    return "\n".join(lines) + "\n"
