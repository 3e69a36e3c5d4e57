"""Package-database entries for the packages whose files the image holds (`--package-metadata`).

A scratch image has no package database, so a vulnerability scanner sees files but no
packages. Distroless images solve it with one dpkg status paragraph per package under
/var/lib/dpkg/status.d/NAME and the package's files with their MD5 sums in
/var/lib/dpkg/status.d/NAME.md5sums (`MD5  relative/path`, the layout of dpkg's own
info/NAME.md5sums, dpkg(1) FILES); scanners read that directory as a dpkg database
(scratchprobe's own dpkg reader does too). For an Alpine root, apk's installed database
(/lib/apk/db/installed, apk-tools doc/apk-v2.5) is written with the records of those
packages only, each listing only the files the image holds.

Which packages: the owners scratchprobe.annotate finds for the plan's files (and the members
of copied directories) in the root's package database. The paragraphs are the root's own
records, unchanged; only the file lists are cut down to what the image holds.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass

from scratchprobe.annotate import annotate
from scratchprobe.model import Inspection
from scratchprobe.packages.apk import INSTALLED_PATHS
from scratchprobe.packages.dpkg import STATUS, STATUS_DIR, parse_control
from scratchprobe.packages.interface import Package, PackageManager
from scratchprobe.plan import FileType
from scratchprobe.root import Root, open_regular
from scratchprobe.rootfs import Entry, Layout

_MAX_BYTES = 256 << 20
APK_INSTALLED = INSTALLED_PATHS[0]


@dataclass(frozen=True)
class PackageMetadata:
    entries: tuple[Entry, ...]
    """Files and their parent directories, in tree order."""
    packages: tuple[Package, ...]
    warnings: tuple[str, ...]


def _read(root: Root, path: str) -> str | None:
    try:
        resolved = root.resolve(path)
        if not resolved.is_file:
            return None
        with os.fdopen(open_regular(resolved.host_path), "rb") as handle:
            return handle.read(_MAX_BYTES).decode("utf-8", "surrogateescape")
    except (OSError, ValueError):
        return None


def _paragraph(fields: dict[str, str]) -> str:
    """A deb822 paragraph again (continuation lines get back their leading space)."""
    lines = []
    for name, value in fields.items():
        first, *rest = value.split("\n")
        lines.append(f"{name}: {first}".rstrip())
        lines += [f" {line}" for line in rest]
    return "\n".join(lines) + "\n"


def _dpkg_paragraphs(root: Root) -> dict[str, dict[str, str]]:
    """Status paragraphs by package name, from /var/lib/dpkg/status or status.d."""
    found: dict[str, dict[str, str]] = {}
    texts = [_read(root, STATUS)]
    if texts[0] is None:
        texts = [
            _read(root, f"{STATUS_DIR}/{name}")
            for name in sorted(root.listdir(STATUS_DIR))
            if "." not in name
        ]
    for text in texts:
        for fields in parse_control(text or ""):
            name = fields.get("Package")
            if name:
                found.setdefault(name, fields)
    return found


def _md5(entry: Entry) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    if entry.content is not None:
        digest.update(entry.content)
    elif entry.host_source is not None:
        with os.fdopen(open_regular(entry.host_source), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _apk_records(text: str, wanted: set[str], image_paths: set[str]) -> str:
    """The records of `wanted` packages, each with only the `F:`/`R:` lines (and the
    per-file lines after an R:) of files the image holds."""
    out: list[str] = []
    for record in text.split("\n\n"):
        lines = record.strip("\n").split("\n")
        name = next((line[2:] for line in lines if line.startswith("P:")), None)
        if name not in wanted:
            continue
        kept: list[str] = []
        directory: str | None = None
        pending_dir: str | None = None
        keep_file = False
        for line in lines:
            key = line[:2]
            if key == "F:":
                directory, pending_dir, keep_file = line[2:], line, False
            elif key == "R:" and directory is not None:
                keep_file = "/" + posixpath.join(directory, line[2:]) in image_paths
                if keep_file:
                    if pending_dir is not None:
                        kept.append(pending_dir)
                        pending_dir = None
                    kept.append(line)
            elif directory is None:
                kept.append(line)  # the package's own fields, before its first directory
            elif keep_file and key in ("a:", "Z:"):
                kept.append(line)  # the mode and checksum of the file just kept
        out.append("\n".join(kept))
    return "\n\n".join(out) + "\n\n" if out else ""


def package_metadata(inspection: Inspection, tree: Layout) -> PackageMetadata:
    """The database entries for the packages owning files of `tree`."""
    annotated = annotate(inspection, sbom=False, members=True)
    by_path = {e.path: e for e in tree.entries}
    owned: dict[str, list[str]] = {}
    packages: dict[str, Package] = {}
    for item in annotated.files:
        for fact in (item, *item.members):
            if fact.package is None or fact.type is not FileType.FILE:
                continue
            packages.setdefault(fact.package.purl, fact.package)
            owned.setdefault(fact.package.purl, []).append(fact.path)
    root = inspection.fs
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    dpkg = [p for p in packages.values() if p.manager is PackageManager.DPKG]
    if dpkg:
        paragraphs = _dpkg_paragraphs(root)
        for package in sorted(dpkg, key=lambda p: p.name):
            fields = paragraphs.get(package.name)
            if fields is None:
                warnings.append(f"dpkg package {package.name}: no status paragraph to copy")
                continue
            files[f"{STATUS_DIR}/{package.name}"] = _paragraph(fields).encode(
                "utf-8", "surrogateescape"
            )
            sums = [
                f"{_md5(by_path[path])}  {path[1:]}\n"
                for path in sorted(set(owned[package.purl]))
                if path in by_path
            ]
            files[f"{STATUS_DIR}/{package.name}.md5sums"] = "".join(sums).encode(
                "utf-8", "surrogateescape"
            )
    apk = {p.name for p in packages.values() if p.manager is PackageManager.APK}
    if apk:
        text = next((t for t in (_read(root, p) for p in INSTALLED_PATHS) if t), "")
        files[APK_INSTALLED] = _apk_records(text, apk, set(by_path)).encode(
            "utf-8", "surrogateescape"
        )
    rpm = sorted(p.name for p in packages.values() if p.manager is PackageManager.RPM)
    if rpm:
        warnings.append(
            "--package-metadata writes dpkg and apk databases only; rpm packages not "
            f"recorded in the image: {', '.join(rpm)}"
        )
    entries: dict[str, Entry] = {}
    for path, data in files.items():
        entries[path] = Entry(path, FileType.FILE, 0o644, content=data, size=len(data))
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in entries:
            entries[parent] = Entry(parent, FileType.DIRECTORY, 0o755)
            parent = posixpath.dirname(parent)
    ordered = tuple(entries[p] for p in sorted(entries, key=lambda p: tuple(p.split("/"))))
    chosen = tuple(packages[purl] for purl in sorted(packages))
    return PackageMetadata(ordered, chosen, tuple(warnings))
