"""Annotate the plan for dependency manifests: digests, owning packages, embedded modules.

This is a core step after `inspect()`, run only for the outputs that show its facts (the
JSON manifest and the CycloneDX SBOM): hashing every file of the image and reading the
package database cost time the `copy` and `text` outputs must not pay. The CLI decides.

For every entry of the plan it records:
- the SHA-256 and size of the bytes the image will hold: the source file, or the `content`
  of a generated file (as UTF-8, the way the rootfs writer stores it);
- for a directory copied whole (zoneinfo, ossl-modules, gconv, ...), each file and symlink
  in it as a member with its own digest and owner: a scanner needs per-file facts, and the
  directory has no single owner in general;
- the OS package owning the source inside `--root` (scratchprobe.packages), looked up by
  the symlink-free in-root path of the bytes copied, so a library found as
  /lib/x86_64-linux-gnu/libc.so.6 matches whatever path its package lists;
- the closure edges between files: a binary needs its interpreter, the libraries its own
  DT_NEEDED entries resolved to and its runtime files; a library needs what its DT_NEEDED
  entries resolved to (glibc-hwcaps copies stand beside the library they replace);
- for each input binary, the modules built into it: Go modules from the build info (main
  module, dependencies with their replacements, and the standard library, whose version is
  the toolchain's), Rust crates from cargo-auditable's `.dep-v0`.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scratchprobe.annotations import (
    AnnotatedFile,
    Ecosystem,
    EmbeddedModule,
    FileAnnotations,
    ModuleRole,
)
from scratchprobe.digeststore import DigestStore, content_identity, identity, open_store
from scratchprobe.errors import ELFError, RootError
from scratchprobe.internal import internal_problem
from scratchprobe.loader.closure import Closure
from scratchprobe.model import BinaryReport, Inspection
from scratchprobe.packages import Package, find_owners
from scratchprobe.packages.interface import OsRelease, package_url
from scratchprobe.plan import BinaryFiles, FileType, ImageFile
from scratchprobe.root import Root, open_regular

if TYPE_CHECKING:
    # The Go and Rust readers are loaded by the toolchain step, for a Go or Rust file only.
    from scratchprobe.toolchain.go import GoBuildInfo
    from scratchprobe.toolchain.rust import RustCrate

# A directory the plan copies whole is expected to hold at most a few thousand files
# (zoneinfo: ~1,300); past this bound it is reported as not fully read, without a tree
# digest, rather than walked without end.
MAX_DIRECTORY_MEMBERS = 100_000
_GO_RELEASE = re.compile(r"go(\d+(?:\.\d+){0,2}(?:(?:rc|beta)\d+)?)$")


@dataclass
class _Draft:
    """A plan entry, or a member of a directory, while it is being annotated (mutable,
    never leaves this module)."""

    path: str
    """Image path."""
    type: FileType
    source: str | None = None
    root_path: str | None = None
    """In-root symlink-free path, for the owner lookup (None outside the root)."""
    sha256: str | None = None
    size: int | None = None
    target: str | None = None
    members: list[_Draft] = field(default_factory=list)
    problem: str | None = None


def annotate(
    inspection: Inspection, sbom: bool = True, members: bool | None = None
) -> FileAnnotations:
    """Digests, owners, edges and modules of every plan entry, for the renderers that show
    them (model.all_warnings adds its warnings to the inspection's). `sbom` False skips what
    only the SBOM shows: the packages' licences and the digests of the files inside copied
    directories (the JSON manifest has neither). `members` (default: `sbom`) False leaves
    a copied directory's members out of its annotation, which keeps its one owning package
    (the JSON manifest shows no more; 3,000 members of gdb's Python tree cost 10 ms).
    Never raises for unreadable files or package databases: what cannot be read is left
    unknown, with a warning."""
    keep_members = sbom if members is None else members
    try:
        root = inspection.fs
    except RootError as exc:
        return FileAnnotations((), OsRelease(None, None), (), (str(exc),))
    warnings: list[str] = []
    digests: dict[str, tuple[str | None, int]] = {}
    store = open_store()
    drafts = [
        _draft(root, entry, digests, warnings, member_digests=sbom, store=store)
        for entry in inspection.plan.files
    ]
    store.save()
    wanted = frozenset(
        d.root_path
        for draft in drafts
        for d in (draft, *draft.members)
        if d.root_path is not None and d.type is not FileType.DIRECTORY
    )
    ownership = find_owners(root, wanted, licenses=sbom)
    owners = dict(ownership.owners)
    warnings += ownership.warnings
    needs = _needs(inspection)
    modules = {r.path: _modules(r, warnings) for r in inspection.binaries}
    files = tuple(
        _finish(
            draft,
            owners,
            needs.get(draft.path, ()),
            modules.get(draft.path, ()),
            sbom,
            keep_members,
        )
        for draft in drafts
    )
    return FileAnnotations(
        files=files,
        os_release=ownership.os_release,
        databases=ownership.databases,
        warnings=tuple(dict.fromkeys(warnings)),
    )


# ------------------------------------------------------------------------------ digests


# Hashing runs at ~1.5 GB/s; a file over this size (in practice only a sparse or crafted
# one: real binaries and runtime files are far smaller) is listed with its size and no
# digest, with a warning, instead of being read for minutes.
MAX_HASHED_SIZE = 1 << 30


def _digest(
    host_path: str,
    cache: dict[str, tuple[str | None, int]],
    store: DigestStore | None = None,
) -> tuple[str | None, int]:
    """SHA-256 and size of a file, once per host path (two image paths often share one
    source: the CA bundle at /etc/ssl/certs/ca-certificates.crt and /usr/lib/ssl/cert.pem)
    and once per file: hard links (/usr/bin/perl and perl5.36.0, the git-core commands)
    are one inode, found by (device, inode, size, mtime), so their bytes are read once.
    With a `store`, a digest taken on an earlier run of the same unchanged file is used
    (scratchprobe/digeststore.py says why it cannot be stale).
    The digest is None for a file over MAX_HASHED_SIZE. OSError for anything but a regular
    file (a FIFO would block the read)."""
    cached = cache.get(host_path)
    if cached is None:
        fd = open_regular(host_path)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            # A NUL cannot occur in a path: this key never collides with a host path.
            inode = f"\0{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
            cached = cache.get(inode)
            if cached is None:
                key = identity(host_path, info) if store is not None else b""
                stored = store.get(key, info.st_size) if store is not None else None
                if info.st_size > MAX_HASHED_SIZE:
                    cached = (None, info.st_size)
                elif stored is not None:
                    cached = (stored, info.st_size)
                else:
                    import hashlib  # a run whose digests are all stored never loads it

                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                    cached = (digest, handle.tell())
                    if store is not None and handle.tell() == info.st_size:
                        store.add(key, info, digest)
                cache[inode] = cached
        cache[host_path] = cached
    return cached


def _content_digest(data: bytes, store: DigestStore | None) -> str:
    """SHA-256 of generated bytes, kept in the store under the bytes themselves."""
    key = content_identity(data) if store is not None else None
    stored = store.get(key, len(data)) if store is not None and key is not None else None
    if stored is not None:
        return stored
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    if store is not None and key is not None:
        store.add_content(key, digest, len(data))
    return digest


def _not_hashed(source: str, size: int) -> str:
    return f"{source} is {size} bytes, over {MAX_HASHED_SIZE >> 30} GiB: not hashed"


def _draft(
    root: Root,
    entry: ImageFile,
    cache: dict[str, tuple[str | None, int]],
    warnings: list[str],
    member_digests: bool = True,
    store: DigestStore | None = None,
) -> _Draft:
    draft = _Draft(entry.path, entry.type, target=entry.target)
    if entry.type is FileType.FILE and entry.content is not None:
        data = entry.content.encode("utf-8")
        draft.sha256, draft.size = _content_digest(data, store), len(data)
        return draft
    if entry.source is None or entry.type is FileType.SYMLINK:
        return draft
    try:
        if entry.from_context:
            host = os.path.realpath(entry.source)
            draft.source = host
            mode = os.stat(host).st_mode
        else:
            resolved = root.resolve(entry.source)
            host, draft.source, draft.root_path = (
                resolved.host_path,
                resolved.path,
                resolved.path,
            )
            mode = resolved.mode
        if entry.type is FileType.DIRECTORY and stat.S_ISDIR(mode):
            draft.members, incomplete = _walk(
                entry, host, draft.root_path, cache if member_digests else None, store
            )
            if incomplete is not None:
                draft.problem = f"{entry.source} not fully read ({incomplete})"
        elif entry.type is FileType.FILE and stat.S_ISREG(mode):
            draft.sha256, draft.size = _digest(host, cache, store)
            if draft.sha256 is None:
                draft.problem = _not_hashed(entry.source, draft.size)
        else:
            draft.problem = f"{entry.source} is not a {entry.type.value}"
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        draft.problem = f"{entry.source}: {reason}"
    if draft.problem is not None:
        warnings.append(f"{entry.path}: {draft.problem}")
    return draft


def _walk(
    entry: ImageFile,
    host_dir: str,
    root_dir: str | None,
    cache: dict[str, tuple[str | None, int]] | None,
    store: DigestStore | None = None,
) -> tuple[list[_Draft], str | None]:
    """Files and symlinks under a directory the image copies whole, and what could not be
    read (None when everything was). Symlinks are members, not followed: COPY of a
    directory, and the rootfs writer, keep them as symlinks. An entry's type comes from
    the directory listing (readdir(3) d_type; os.DirEntry falls back to lstat where the
    filesystem does not give it): zoneinfo's 1,300 entries cost no stat each."""
    members: list[_Draft] = []
    pending = [""]
    image_dir = entry.path.rstrip("/")
    root_base = root_dir.rstrip("/") if root_dir is not None else None
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(os.path.join(host_dir, relative) if relative else host_dir) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            return members, f"{relative or '.'}: {exc.strerror}"
        subdirs = []
        for item in items:
            rel = f"{relative}/{item.name}" if relative else item.name
            image_path = f"{image_dir}/{rel}"
            root_path = f"{root_base}/{rel}" if root_base is not None else None
            try:
                if item.is_symlink():
                    draft = _Draft(
                        image_path,
                        FileType.SYMLINK,
                        root_path=root_path,
                        target=os.readlink(item.path),
                    )
                elif item.is_dir(follow_symlinks=False):
                    subdirs.append(rel)
                    continue
                elif item.is_file(follow_symlinks=False):
                    draft = _Draft(
                        image_path,
                        FileType.FILE,
                        source=root_path or item.path,
                        root_path=root_path,
                    )
                    if cache is not None:  # None: only the SBOM shows member digests
                        draft.sha256, draft.size = _digest(item.path, cache, store)
                        if draft.sha256 is None:
                            return members, _not_hashed(rel, draft.size)
                else:
                    continue  # sockets, fifos, devices: not copied by COPY in any useful way
            except OSError as exc:
                return members, f"{rel}: {exc.strerror}"
            members.append(draft)
            if len(members) > MAX_DIRECTORY_MEMBERS:
                return members, f"more than {MAX_DIRECTORY_MEMBERS} files"
        pending.extend(reversed(subdirs))
    return members, None


def _finish(
    draft: _Draft,
    owners: dict[str, Package],
    needs: tuple[str, ...],
    modules: tuple[EmbeddedModule, ...],
    tree: bool = True,
    keep_members: bool = True,
) -> AnnotatedFile:
    """The annotation of a drafted entry; `tree` False leaves out the tree digest of a
    directory (it lists its members' digests, which only the SBOM takes), `keep_members`
    False its members (not its package)."""
    members: tuple[AnnotatedFile, ...] = ()
    package = owners.get(draft.root_path) if draft.root_path is not None else None
    tree_sha256: str | None = None
    if draft.type is FileType.DIRECTORY:
        owning = {
            owners.get(m.root_path) if m.root_path is not None else None for m in draft.members
        }
        package = next(iter(owning)) if len(owning) == 1 else None
        if keep_members:
            members = tuple(
                AnnotatedFile(
                    path=member.path,
                    type=member.type,
                    source=member.source,
                    sha256=member.sha256,
                    size=member.size,
                    package=owners.get(member.root_path) if member.root_path is not None else None,
                    target=member.target,
                )
                for member in sorted(draft.members, key=_path_of)
            )
        if tree and keep_members and draft.source is not None and draft.problem is None:
            tree_sha256 = _tree_digest(draft.path, members)
    return AnnotatedFile(
        path=draft.path,
        type=draft.type,
        source=draft.source,
        sha256=draft.sha256,
        size=draft.size,
        package=package,
        target=draft.target,
        members=members,
        tree_sha256=tree_sha256,
        needs=needs,
        modules=modules,
        problem=draft.problem,
    )


def _path_of(draft: _Draft) -> str:
    return draft.path


def _tree_digest(directory: str, members: tuple[AnnotatedFile, ...]) -> str:
    import hashlib  # taken for the SBOM only, which hashes the members anyway

    prefix = directory.rstrip("/") + "/"
    listing = hashlib.sha256()
    for member in members:
        first = f"symlink:{member.target}" if member.type is FileType.SYMLINK else member.sha256
        relative = member.path.removeprefix(prefix)
        listing.update(f"{first}  {relative}\n".encode("utf-8", "surrogateescape"))
    return listing.hexdigest()


# ------------------------------------------------------------------------------ edges


def _needs(inspection: Inspection) -> dict[str, tuple[str, ...]]:
    """Image paths each plan entry needs, from every binary's closure and runtime needs."""
    edges: dict[str, dict[str, None]] = {}

    def add(needer: str, needed: str) -> None:
        if needer != needed:
            edges.setdefault(needer, {})[needed] = None

    for report in inspection.binaries:
        files = inspection.plan.binary(report.path)
        closure = report.closure
        if closure is not None:
            _closure_edges(report.path, closure, files, add)
        for need in report.planned_needs:
            for needed_file in need.files:
                add(report.path, needed_file.path)
    return {needer: tuple(needed) for needer, needed in edges.items()}


def _closure_edges(
    binary: str, closure: Closure, files: BinaryFiles, add: Callable[[str, str], None]
) -> None:
    # The loader's in-root paths (where it opened each object) -> where the image has it,
    # as the plan placed them.
    if closure.interpreter is not None:
        add(binary, closure.interpreter.path)
    for dependency in closure.dependencies:
        if dependency.path is None:
            continue
        for needer in files.loaded.get(dependency.needer, ()):
            for needed in files.loaded.get(dependency.path, ()):
                add(needer, needed)


# ------------------------------------------------------------------------------ modules


# What a corrupt table can raise from the readers (as inspect catches for runtime needs).
_MALFORMED = (ELFError, ValueError, OverflowError, IndexError, struct.error)


def _modules(report: BinaryReport, warnings: list[str]) -> tuple[EmbeddedModule, ...]:
    try:
        return _embedded(report, warnings)
    except _MALFORMED as exc:
        warnings.append(f"{report.path}: embedded modules not listed, malformed data: {exc}")
    except Exception as exc:  # the last resort, as in pipeline._analyse
        problem = internal_problem(report.path, exc)
        warnings.append(f"{problem.path}: embedded modules not listed, {problem.message}")
    return ()


def _embedded(report: BinaryReport, warnings: list[str]) -> tuple[EmbeddedModule, ...]:
    """The modules of the report's toolchain facts (read once, by inspect); a run without
    runtime analysis has none, and they are read here, once."""
    facts = report.toolchain_facts
    if facts is None:
        from scratchprobe.toolchain import detect_toolchain

        facts = detect_toolchain(report.elf, report.libc)
    go, rust = facts.go, facts.rust
    if go is not None and go.buildinfo_error is not None:
        warnings.append(f"{report.path}: Go modules not listed, {go.buildinfo_error}")
        return ()
    if go is not None and go.buildinfo is not None:
        return _go_modules(go.buildinfo)
    if rust is not None and rust.audit_error is not None:
        warnings.append(f"{report.path}: Rust crates not listed, {rust.audit_error}")
        return ()
    return _rust_crates(rust.crates) if rust is not None and rust.auditable else ()


def _go_purl(path: str, version: str | None) -> str:
    namespace, _, name = path.rpartition("/")
    return package_url("golang", namespace or None, name, version, {})


def _go_version(version: str) -> str | None:
    return None if not version or version == "(devel)" else version


def _go_modules(buildinfo: GoBuildInfo) -> tuple[EmbeddedModule, ...]:
    modules: list[EmbeddedModule] = []
    main = buildinfo.main
    if main is not None:
        version = _go_version(main.version)
        modules.append(
            EmbeddedModule(
                Ecosystem.GOLANG,
                main.path,
                version,
                _go_purl(main.path, version),
                ModuleRole.MAIN,
                checksum=main.sum or None,
            )
        )
    for dep in buildinfo.deps:
        new = dep.replace
        if new is not None and _go_version(new.version) is not None:
            # Replaced by another module version: that is the code built in.
            modules.append(
                EmbeddedModule(
                    Ecosystem.GOLANG,
                    new.path,
                    new.version,
                    _go_purl(new.path, new.version),
                    ModuleRole.DEPENDENCY,
                    checksum=new.sum or None,
                    replaces=f"{dep.path} {dep.version}",
                )
            )
            continue
        version = _go_version(dep.version)
        modules.append(
            EmbeddedModule(
                Ecosystem.GOLANG,
                dep.path,
                version,
                _go_purl(dep.path, version),
                ModuleRole.DEPENDENCY,
                checksum=dep.sum or None,
                replaced_by=new.path if new is not None else None,
            )
        )
    release = _GO_RELEASE.match(buildinfo.go_version.split()[0] if buildinfo.go_version else "")
    if release is not None:
        modules.append(
            EmbeddedModule(
                Ecosystem.GOLANG,
                "stdlib",
                release.group(1),
                package_url("golang", None, "stdlib", release.group(1), {}),
                ModuleRole.STDLIB,
            )
        )
    return tuple(modules)


def _rust_crates(crates: tuple[RustCrate, ...]) -> tuple[EmbeddedModule, ...]:
    from scratchprobe.toolchain.rust import CrateKind  # loaded: the crates came from it

    purls = [package_url("cargo", None, c.name, c.version, {}) for c in crates]
    return tuple(
        EmbeddedModule(
            Ecosystem.CARGO,
            crate.name,
            crate.version,
            purl,
            ModuleRole.MAIN if crate.root else ModuleRole.DEPENDENCY,
            source=crate.source,
            build_only=crate.kind is CrateKind.BUILD,
            dependencies=tuple(dict.fromkeys(purls[i] for i in crate.dependencies)),
        )
        for crate, purl in zip(crates, purls, strict=True)
    )
