"""The data `inspect` produces and its outputs read: what was found about each binary, the
whole run's result, and the annotations (digests, owners, modules) of the image's files.

Only data lives here (frozen dataclasses and enums); scratchprobe.pipeline computes an
`Inspection`, scratchprobe.annotate its `FileAnnotations` (scratchprobe/annotations.py,
loaded only by the outputs that show them), and the renderers, writers and checks read both
without importing either step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scratchprobe.discover import InputProblem
from scratchprobe.elf.classify import Libc, Linkage, ObjectKind
from scratchprobe.elf.reader import ElfFile
from scratchprobe.loader.closure import Closure
from scratchprobe.needs.context import NeedsOptions
from scratchprobe.needs.model import NeedKind, RuntimeNeed
from scratchprobe.plan import Plan
from scratchprobe.root import Root

if TYPE_CHECKING:
    # Types only: a run whose format shows no owners never loads the annotate step's data.
    from scratchprobe.annotations import FileAnnotations
    from scratchprobe.toolchain import ToolchainFacts
    from scratchprobe.trace.includes import Include


@dataclass(frozen=True)
class InspectOptions:
    root: str = "/"
    library_path: tuple[str, ...] = ()
    runtime_needs: bool = True
    """Detect runtime files (CA bundle, zoneinfo, ...); off gives the loader closure only."""
    strict: bool = False
    """Also include needs of `possible` confidence."""
    with_kinds: frozenset[NeedKind] = frozenset()
    without_kinds: frozenset[NeedKind] = frozenset()
    needs: NeedsOptions = field(default_factory=NeedsOptions)
    includes: tuple[Include, ...] = ()
    """--include / --include-from entries, added to the plan after the analysis."""
    sizes: bool = True
    """Measure the runtime files and directories for the plan's sizes (`ImageFile.size`,
    `Plan.size_of`); off, their entries' size is 0: an output that shows no size does not
    pay for walking zoneinfo (~1,300 lstat calls)."""


@dataclass(frozen=True)
class BinaryReport:
    """Everything found about one input binary."""

    label: str
    path: str
    """Image path of the binary."""
    source: str
    from_context: bool
    elf: ElfFile
    linkage: Linkage
    object_kind: ObjectKind
    libc: Libc | None
    closure: Closure | None
    """None for static files, which the loader never sees."""
    needs: tuple[RuntimeNeed, ...] = ()
    """Every runtime need found, included in the plan or not (see `included`)."""
    included: tuple[bool, ...] = ()
    """Per need: whether its files are in the plan."""
    toolchain_facts: ToolchainFacts | None = None
    """The toolchain recognised, with its Go or Rust facts (None without runtime analysis)."""

    @property
    def toolchain(self) -> str | None:
        """The toolchain recognised, in words ("Go 1.21.13, CGO_ENABLED=0")."""
        facts = self.toolchain_facts
        return facts.description if facts is not None else None

    @property
    def planned_needs(self) -> tuple[RuntimeNeed, ...]:
        """The needs whose files are in the plan."""
        return tuple(n for n, keep in zip(self.needs, self.included, strict=True) if keep)

    @property
    def unresolved(self) -> bool:
        c = self.closure
        return c is not None and bool(c.missing or c.missing_versions or c.interpreter_missing)

    @property
    def missing_items(self) -> tuple[str, ...]:
        """What the image's loader will not find, shortest form (`libc.so.6`,
        `GLIBC_2.38 of libc.so.6`, `interpreter /lib/ld-musl-x86_64.so.1`): the verdict's."""
        c = self.closure
        if c is None:
            return ()
        items = [f"interpreter {self.elf.interpreter}"] if c.interpreter_missing else []
        items += [m.name for m in c.missing]
        items += [f"{v.version} of {v.library}" for v in c.missing_versions]
        return tuple(dict.fromkeys(items))

    @property
    def unresolved_problems(self) -> tuple[str, ...]:
        """One sentence per unresolved library, version or interpreter (exit status 1), for
        stderr and the comments of the copy and dockerfile outputs."""
        c = self.closure
        if c is None:
            return ()
        lines: list[str] = []
        if c.interpreter_missing:
            lines.append(f"interpreter {self.elf.interpreter} is not in the root")
        for miss in c.missing:
            tried = ", ".join(miss.searched) or "no directory"
            lines.append(f"{miss.name} not found (needed by {miss.needed_by}; searched {tried})")
        for version in c.missing_versions:
            lines.append(
                f"version {version.version} of {version.library} not found (needed by "
                f"{version.needed_by})"
            )
        return tuple(dict.fromkeys(lines))


@dataclass(frozen=True)
class Inspection:
    root: str
    """The root's directory, as printed (the manifest's `root`)."""
    binaries: tuple[BinaryReport, ...]
    problems: tuple[InputProblem, ...]
    plan: Plan
    warnings: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    """ENV lines the image should carry (TZ, SSL_CERT_FILE, ...)."""
    runtime_provided: tuple[str, ...] = ()
    """Files the container runtime mounts (not in the plan)."""
    user: str | None = None
    notes: tuple[str, ...] = ()
    """What walking directory arguments skipped or followed, one line per directory."""
    filesystem: Root | None = field(default=None, compare=False, repr=False)
    """The run's one `Root` (its resolution caches), for every later stage that reads the
    root (annotate, rootfs, image, verify); None only for an Inspection built by hand."""

    @property
    def fs(self) -> Root:
        """The run's Root, or one for `root` when the Inspection was built by hand."""
        return self.filesystem if self.filesystem is not None else Root(self.root)

    @property
    def unresolved(self) -> tuple[str, ...]:
        """`LABEL: what is missing`, one per unresolved library, version or interpreter: the
        errors behind exit status 1, which every format reports on stderr."""
        return tuple(f"{b.label}: {p}" for b in self.binaries for p in b.unresolved_problems)

    @property
    def exit_code(self) -> int:
        """2 for unusable input, 1 when some library stays unresolved, else 0 (README.md,
        "Exit codes")."""
        if self.problems:
            return 2
        if any(b.unresolved for b in self.binaries):
            return 1
        return 0


def all_warnings(inspection: Inspection, annotations: FileAnnotations | None) -> tuple[str, ...]:
    """Every warning of a run, each once: the inspection's, then the annotate step's (files
    that could not be read or hashed, package databases not read)."""
    extra = annotations.warnings if annotations is not None else ()
    return tuple(dict.fromkeys(inspection.warnings + extra))
