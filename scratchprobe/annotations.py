"""The annotations of an image's files (digests, owners, embedded modules): the data
scratchprobe.annotate computes for the outputs that show it (json, cyclonedx, the image
SBOM), which read it without importing that step.

Beside model.py, not in it: only those outputs create these classes, and a run of another
format does not pay for defining them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING

from scratchprobe.plan import FileType

if TYPE_CHECKING:
    from scratchprobe.packages.interface import OsRelease, Package, PackageManager


class Ecosystem(Enum):
    """Where an embedded module comes from; the value is its package-URL type."""

    GOLANG = "golang"
    CARGO = "cargo"


class ModuleRole(Enum):
    MAIN = "main"
    """The module or crate the binary was built from."""
    DEPENDENCY = "dependency"
    STDLIB = "stdlib"
    """Go's standard library, versioned by the toolchain (purl pkg:golang/stdlib@1.21.13,
    the name vulnerability databases use for it)."""


@dataclass(frozen=True)
class EmbeddedModule:
    """A Go module or Rust crate compiled into a binary."""

    ecosystem: Ecosystem
    name: str
    """Module path (`golang.org/x/net`) or crate name (`rustls`)."""
    version: str | None
    """None for a main module built from a work tree (`(devel)`)."""
    purl: str
    role: ModuleRole
    checksum: str | None = None
    """Go: the go.sum hash (`h1:...`, base64 SHA-256 of the module tree)."""
    replaces: str | None = None
    """Go: the module path and version this one replaced (go.mod `replace`)."""
    replaced_by: str | None = None
    """Go: the directory that replaced this module (a local `replace`, which has no
    version: the code built is that directory's, not the version named)."""
    source: str | None = None
    """Rust: cargo-auditable's source (`crates.io`, `git`, `local`, `registry`)."""
    build_only: bool = False
    """Rust: a build-time dependency (build script, proc macro), not linked in."""
    dependencies: tuple[str, ...] = ()
    """Rust: purls of the crates this crate depends on (cargo-auditable's graph)."""


@dataclass(frozen=True)
class AnnotatedFile:
    """Facts about one entry of the image (a plan entry, or a member of a directory)."""

    path: str
    """Absolute path inside the image."""
    type: FileType
    source: str | None
    """Where the bytes come from: the symlink-free in-root path, the host path of a file
    from the build context, or None for generated and created entries."""
    sha256: str | None = None
    """Hex digest of the bytes the image holds; None for directories and symlinks, and
    when the source is unreadable (see `problem`)."""
    size: int | None = None
    package: Package | None = None
    """The OS package owning `source`. For a directory: the one package owning every
    member, when there is one."""
    target: str | None = None
    """For a symlink: where it points."""
    members: tuple[AnnotatedFile, ...] = ()
    """For a directory copied whole: every file and symlink under it, by path."""
    tree_sha256: str | None = None
    """For a directory copied whole: SHA-256 of its listing, one line per member in path
    order, `DIGEST  RELATIVE/PATH` for a file and `symlink:TARGET  RELATIVE/PATH` for a
    symlink (the `sha256sum` layout, so `find` + `sha256sum` in the image can check it)."""
    needs: tuple[str, ...] = ()
    """Image paths of the plan entries this one needs (closure edges, runtime files)."""
    modules: tuple[EmbeddedModule, ...] = ()
    """For an input binary: the Go modules or Rust crates built into it."""
    problem: str | None = None
    """Why a fact is missing (the source could not be read)."""

    @property
    def owners(self) -> tuple[Package, ...]:
        """The packages owning this file, or for a directory every member, by purl."""
        found = {m.package.purl: m.package for m in self.members if m.package is not None}
        if self.package is not None:
            found.setdefault(self.package.purl, self.package)
        return tuple(found[purl] for purl in sorted(found))


@dataclass(frozen=True)
class FileAnnotations:
    """The annotation of a whole plan: one `AnnotatedFile` per plan entry, in plan order."""

    files: tuple[AnnotatedFile, ...]
    os_release: OsRelease
    databases: tuple[tuple[PackageManager, str], ...]
    """Package databases read (manager, in-root location); empty when the root has none."""
    warnings: tuple[str, ...] = field(default=())

    @cached_property
    def _by_path(self) -> dict[str, AnnotatedFile]:
        return {f.path: f for f in self.files}

    def file(self, path: str) -> AnnotatedFile | None:
        """The annotation of the plan entry at image path `path`."""
        return self._by_path.get(path)
