"""Rust binaries: the compiler version and the crates linked in, read without running anything.

Evidence, strongest first (docs/runtime-facts.md, "Rust"):

* `.dep-v0`: cargo-auditable's dependency list, a zlib stream of JSON
  (rust-secure-code/cargo-auditable PARSING.md, cargo-auditable.schema.json). Distribution
  builds (Alpine, NixOS, Wolfi, ...) carry it.
* `.comment`: `rustc version 1.95.0 (59807616e 2026-04-14)` (rustc >= 1.63, rust-lang/rust
  PR #97550). GNU strip keeps it; llvm-strip --strip-all removes it.
* Panic locations in read-only data: `/rustc/<40-hex commit>/library/...` names the
  toolchain of an official build; distributions build the standard library from a source
  tree of their own and remap it to a versioned path instead: Debian and Ubuntu
  `/usr/src/rustc-1.63.0/library/...`, Fedora `/builddir/build/BUILD/rustc-1.75.0-src/
  library/...`, Alpine, Arch and Nix `.../rustc-X.Y.Z-src/library/...` (each package's
  `--remap-path-prefix` or build directory). `.../<crate>-<version>/src/...` names a crate
  that has panic or #[track_caller] sites. They survive every strip, but only crates with
  such sites show, so this list is a lower-confidence fallback.

Rust string literals are not NUL-terminated and are packed back to back, so paths are found
by searching a literal anchor (`/rustc/`, `/src/`) and reading around it, never by
splitting on NUL.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from enum import Enum

from scratchprobe import boundedjson
from scratchprobe.elf.image import ElfImage, FileImage, opened
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError

# The signs every program that is not Go is checked for without this reader
# (toolchain/signs.py: the literals are declared in the one pass there).
from scratchprobe.toolchain.signs import DEP_V0_SECTION, comment_section
from scratchprobe.toolchain.signs import RUSTC_COMMIT_PATH as _RUSTC_COMMIT_PATH
from scratchprobe.toolchain.signs import RUSTC_SOURCE_PATH as _RUSTC_SOURCE_PATH
from scratchprobe.toolchain.signs import rodata_ranges as _rodata_ranges

_DEP_V0_MAX_COMPRESSED = 8 << 20
_DEP_V0_MAX_JSON = 8 << 20
"""PARSING.md: 8 MiB holds any legitimate audit data; more is a zip bomb."""

_RUSTC_COMMENT = re.compile(rb"rustc version (\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)(?: \(([^)]*)\))?")
_RUSTC_PATH = re.compile(rb"/rustc/([0-9a-f]{40})/")
_RUSTC_SOURCE = re.compile(
    rb"/rustc-(\d+\.\d+\.\d+(?:-beta\.\d+|-nightly)?)(?:-src)?/library/"
    rb"(?:core|alloc|std|panic_unwind|panic_abort|proc_macro|backtrace|portable-simd)/"
)
"""A distribution's standard-library source path: `/rustc-<version>[-src]/library/<crate>/`."""
_CRATE_DIR = re.compile(
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9_-]*?)-"
    r"(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)"
)
_PATH_CHARS = re.compile(rb"[A-Za-z0-9_.+/-]*\Z")
_MAX_LOOKBEHIND = 256
_MAX_PATH_HITS = 200_000


class CrateKind(Enum):
    """cargo-auditable `kind`: a build-time-only dependency, or one linked into the program."""

    RUNTIME = "runtime"
    BUILD = "build"


class CrateEvidence(Enum):
    """Where a crate was seen, which says how far to trust it."""

    AUDIT_DATA = "audit-data"
    """cargo-auditable's .dep-v0: the full resolved list."""
    REGISTRY_PATH = "registry-path"
    """A panic location under a cargo registry (`.../registry/...<crate>-<ver>/src/`)."""
    SOURCE_PATH = "source-path"
    """A panic location under another, e.g. --remap-path-prefix'ed, directory."""
    STD_DEPENDENCY = "std-dependency"
    """Under `/rust/deps/`: a dependency of the standard library itself (gimli, addr2line,
    ...), as official rustc builds remap them; it says nothing about the program."""


@dataclass(frozen=True)
class RustCrate:
    """One crate linked into (or used to build) the binary."""

    name: str
    version: str
    evidence: CrateEvidence
    source: str | None = None
    """cargo-auditable's source: `crates.io`, `registry`, `git`, `local`; None from paths."""
    kind: CrateKind = CrateKind.RUNTIME
    root: bool = False
    """True for the package the binary was built from (exactly one in valid audit data)."""
    dependencies: tuple[int, ...] = ()
    """Indices into `RustFacts.crates` (audit data only)."""


@dataclass(frozen=True)
class RustFacts:
    """What a Rust binary says about its compiler and crates."""

    rustc_version: str | None
    """`1.95.0`, from `.comment`; None when the section was stripped."""
    rustc_version_line: str | None
    """The whole `.comment` entry, e.g. `rustc version 1.95.0 (59807616e 2026-04-14)`."""
    rustc_commits: tuple[str, ...]
    """The 40-hex commits of `/rustc/<commit>/` paths, most frequent first (one normally;
    more when crates built by different compilers were linked together)."""
    crates: tuple[RustCrate, ...]
    """From cargo-auditable audit data, in its order (indices match `dependencies`)."""
    audit_format: int | None
    """The audit data's `format` revision (0 when absent from the JSON), None without it."""
    path_crates: tuple[RustCrate, ...]
    """Crates seen in panic-location paths, sorted by name: the lower-confidence fallback."""
    warnings: tuple[str, ...] = field(default=())
    rustc_source_versions: tuple[str, ...] = ()
    """Versions of `/rustc-<version>[-src]/library/` paths (distribution builds of the
    standard library), most frequent first."""
    audit_error: str | None = None
    """Why the audit data could not be read (None when it was, or is absent)."""

    @property
    def rustc_commit(self) -> str | None:
        return self.rustc_commits[0] if self.rustc_commits else None

    @property
    def auditable(self) -> bool:
        """Whether cargo-auditable audit data was found and read."""
        return self.audit_format is not None

    def crate(self, name: str) -> RustCrate | None:
        """The crate called `name`: from audit data when present, else from paths.

        Crate names compare with `-` and `_` as equal, as Cargo treats them.
        """
        wanted = _normalise(name)
        for crate in self.crates:
            if _normalise(crate.name) == wanted:
                return crate
        for crate in self.path_crates:
            if (
                _normalise(crate.name) == wanted
                and crate.evidence is not CrateEvidence.STD_DEPENDENCY
            ):
                return crate
        return None

    @property
    def runtime_crate_names(self) -> frozenset[str]:
        """Names of crates linked into the program (audit data, else the path fallback)."""
        if self.crates:
            return frozenset(c.name for c in self.crates if c.kind is CrateKind.RUNTIME)
        return frozenset(
            c.name for c in self.path_crates if c.evidence is not CrateEvidence.STD_DEPENDENCY
        )


def _normalise(name: str) -> str:
    return name.replace("-", "_").lower()


def read_rustc_comment(source: ElfImage | ElfFile) -> tuple[str, str] | None:
    """(version, whole entry) from `.comment`, or None."""
    with opened(source) as image:
        return _rustc_comment(comment_section(image))


def _rustc_comment(data: bytes | None) -> tuple[str, str] | None:
    if not data:
        return None
    match = _RUSTC_COMMENT.search(data)
    if match is None:
        return None
    end = data.find(b"\x00", match.start())
    line = data[match.start() : end if end >= 0 else len(data)]
    return match.group(1).decode(), line.decode("utf-8", "replace")


def _rustc_commits(view: FileImage, ranges: list[tuple[int, int]]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for start, end in ranges:
        position = start
        while True:
            hit = view.find(_RUSTC_COMMIT_PATH, position, end)
            if hit < 0:
                break
            match = _RUSTC_PATH.match(view[hit : hit + 49])
            if match is not None:
                commit = match.group(1).decode()
                counts[commit] = counts.get(commit, 0) + 1
            position = hit + 7
    return tuple(sorted(counts, key=lambda c: (-counts[c], c)))


def _rustc_source_versions(view: FileImage, ranges: list[tuple[int, int]]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for start, end in ranges:
        position = start
        while True:
            hit = view.find(_RUSTC_SOURCE_PATH, position, end)
            if hit < 0:
                break
            match = _RUSTC_SOURCE.match(view[hit : min(hit + 96, end)])
            if match is not None:
                version = match.group(1).decode()
                counts[version] = counts.get(version, 0) + 1
            position = hit + 7
    return tuple(sorted(counts, key=lambda v: (-counts[v], v)))


def _path_crates(view: FileImage, ranges: list[tuple[int, int]]) -> tuple[RustCrate, ...]:
    """Crates named by `/<crate>-<version>/src/` in panic-location paths."""
    found: dict[tuple[str, str], CrateEvidence] = {}
    hits = 0
    for start, end in ranges:
        position = start
        while hits < _MAX_PATH_HITS:
            hit = view.find(b"/src/", position, end)
            if hit < 0:
                break
            hits += 1
            position = hit + 5
            back = view[max(start, hit - _MAX_LOOKBEHIND) : hit]
            # The path runs back over path characters; the crate directory is its last part.
            tail = _PATH_CHARS.search(back)
            if tail is None:
                continue
            path = back[tail.start() :].decode("ascii")
            directory, slash, crate_dir = path.rpartition("/")
            if not slash:
                continue  # no '/' before it: a packed neighbour string may be glued on
            match = _CRATE_DIR.fullmatch(crate_dir)
            if match is None:
                continue
            if directory.endswith("/rust/deps") or directory == "/rust/deps":
                evidence = CrateEvidence.STD_DEPENDENCY
            elif "/registry/" in directory + "/":
                evidence = CrateEvidence.REGISTRY_PATH
            else:
                evidence = CrateEvidence.SOURCE_PATH
            key = (match["name"], match["version"])
            previous = found.get(key)
            if previous is None or _rank(evidence) > _rank(previous):
                found[key] = evidence
    return tuple(
        RustCrate(name, version, evidence) for (name, version), evidence in sorted(found.items())
    )


def _rank(evidence: CrateEvidence) -> int:
    order = (
        CrateEvidence.SOURCE_PATH,
        CrateEvidence.STD_DEPENDENCY,
        CrateEvidence.REGISTRY_PATH,
        CrateEvidence.AUDIT_DATA,
    )
    return order.index(evidence)


def read_audit_data(source: ElfImage | ElfFile) -> tuple[int, tuple[RustCrate, ...]] | None:
    """(format, crates) from cargo-auditable's `.dep-v0`, None when the section is absent.

    Raises ELFError for a section that is not a zlib stream of the documented JSON.
    """
    elf = source.elf if isinstance(source, ElfImage) else source
    section = elf.section(DEP_V0_SECTION)
    if section is None:
        return None
    with opened(source) as image:
        compressed = image.section(DEP_V0_SECTION, limit=_DEP_V0_MAX_COMPRESSED)
    if not compressed:
        raise ELFError(f"{DEP_V0_SECTION} is empty")
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(compressed, _DEP_V0_MAX_JSON)
        if inflater.unconsumed_tail:
            raise ELFError(f"{DEP_V0_SECTION} inflates past {_DEP_V0_MAX_JSON} bytes")
        document = boundedjson.loads(text)
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ELFError):
            raise
        raise ELFError(f"{DEP_V0_SECTION} is not zlib-compressed JSON: {exc}") from None
    return _parse_audit_document(document)


def _parse_audit_document(document: object) -> tuple[int, tuple[RustCrate, ...]]:
    """Validate the cargo-auditable.schema.json shape we rely on."""
    if not isinstance(document, dict) or not isinstance(document.get("packages"), list):
        raise ELFError(f"{DEP_V0_SECTION}: no `packages` list")
    audit_format = document.get("format", 0)
    if not isinstance(audit_format, int) or isinstance(audit_format, bool) or audit_format < 0:
        raise ELFError(f"{DEP_V0_SECTION}: invalid `format` {audit_format!r}")
    packages: list[object] = document["packages"]
    crates = []
    for index, package in enumerate(packages):
        if not isinstance(package, dict):
            raise ELFError(f"{DEP_V0_SECTION}: package {index} is not an object")
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise ELFError(f"{DEP_V0_SECTION}: package {index} lacks a name or version")
        source = package.get("source")
        if isinstance(source, dict):  # the schema's {"Other": "..."} form
            source = source.get("Other")
        if source is not None and not isinstance(source, str):
            raise ELFError(f"{DEP_V0_SECTION}: package {name} has an invalid source")
        try:
            kind = CrateKind(package.get("kind", "runtime"))
        except ValueError:
            raise ELFError(f"{DEP_V0_SECTION}: package {name} has an invalid kind") from None
        deps = package.get("dependencies", [])
        if not isinstance(deps, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < len(packages) for d in deps
        ):
            raise ELFError(f"{DEP_V0_SECTION}: package {name} has invalid dependencies")
        root = package.get("root", False)
        if not isinstance(root, bool):
            raise ELFError(f"{DEP_V0_SECTION}: package {name} has an invalid root flag")
        crates.append(
            RustCrate(
                name=name,
                version=version,
                evidence=CrateEvidence.AUDIT_DATA,
                source=source,
                kind=kind,
                root=root,
                dependencies=tuple(deps),
            )
        )
    return audit_format, tuple(crates)


def rust_facts(source: ElfImage | ElfFile) -> RustFacts | None:
    """Facts of a Rust binary; None when nothing says Rust. `source` is the run's image of
    the file (or an ElfFile, read on its own).

    Rust is recognised by the `.comment` entry, `/rustc/<commit>/` paths, a distribution's
    `/rustc-<version>[-src]/library/` paths, or audit data.
    Malformed audit data does not fail the file; it is reported in `warnings`.
    """
    with opened(source) as view:
        return rust_facts_of(view, comment_section(view))


def rust_facts_of(view: ElfImage, comment_data: bytes | None) -> RustFacts | None:
    """`rust_facts` of the run's image, given its `.comment` (`comment_section`), which the
    toolchain step has read for `may_be_rust`: read once."""
    warnings: list[str] = []
    comment = _rustc_comment(comment_data)
    audit: tuple[int, tuple[RustCrate, ...]] | None = None
    audit_error: str | None = None
    try:
        audit = read_audit_data(view)
    except ELFError as exc:
        audit_error = str(exc)
        warnings.append(f"cargo-auditable data unreadable: {exc}")
    ranges = _rodata_ranges(view)
    commits = _rustc_commits(view, ranges)
    sources = () if commits else _rustc_source_versions(view, ranges)
    if comment is None and not commits and not sources and audit is None and not warnings:
        return None
    path_crates = _path_crates(view, ranges)
    return RustFacts(
        rustc_version=comment[0] if comment else None,
        rustc_version_line=comment[1] if comment else None,
        rustc_commits=commits,
        crates=audit[1] if audit else (),
        audit_format=audit[0] if audit else None,
        path_crates=path_crates,
        warnings=tuple(warnings),
        rustc_source_versions=sources,
        audit_error=audit_error,
    )
