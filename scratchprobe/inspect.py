"""The pipeline for `inspect`: discover inputs, read ELF facts, resolve closures, plan files.

The core never prints: it returns an `Inspection` for a renderer to format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from scratchprobe.discover import Candidate, InputProblem, discover
from scratchprobe.elf.classify import (
    Libc,
    Linkage,
    ObjectKind,
    classify,
    libc_from_names,
    static_libc,
)
from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError
from scratchprobe.loader.closure import Closure, ElfCache, Resolver
from scratchprobe.plan import Plan, PlannedBinary, binary_file_paths, build_plan
from scratchprobe.root import Root


@dataclass(frozen=True)
class InspectOptions:
    root: str = "/"
    library_path: tuple[str, ...] = ()


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
    file_paths: tuple[str, ...]
    """Image paths of every file this binary needs, itself first."""
    total_size: int

    @property
    def unresolved(self) -> bool:
        c = self.closure
        return c is not None and bool(c.missing or c.missing_versions or c.interpreter_missing)


@dataclass(frozen=True)
class Inspection:
    root: str
    binaries: tuple[BinaryReport, ...]
    problems: tuple[InputProblem, ...]
    plan: Plan
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """2 for unusable input, 1 when some library stays unresolved, else 0 (DESIGN.md)."""
        if self.problems:
            return 2
        if any(b.unresolved for b in self.binaries):
            return 1
        return 0


def inspect(paths: tuple[str, ...], options: InspectOptions) -> Inspection:
    root = Root(options.root)
    candidates, problems = discover(paths, root)
    cache = ElfCache()
    resolver = Resolver(root, options.library_path, cache)
    reports: list[BinaryReport] = []
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.image_path in seen:
            continue
        seen.add(candidate.image_path)
        report = _inspect_one(candidate, cache, resolver, problems)
        if report is not None:
            reports.append(report)
    planned = tuple(
        PlannedBinary(r.path, r.source, r.from_context, r.elf.size, r.closure) for r in reports
    )
    plan = build_plan(planned)
    sizes = {f.path: f.size for f in plan.files}
    final = tuple(
        replace(r, total_size=sum(sizes.get(p, 0) for p in r.file_paths)) for r in reports
    )
    return Inspection(
        root=root.directory,
        binaries=final,
        problems=tuple(problems),
        plan=plan,
        warnings=tuple(dict.fromkeys(plan.warnings + tuple(resolver.root_warnings))),
    )


def _inspect_one(
    candidate: Candidate, cache: ElfCache, resolver: Resolver, problems: list[InputProblem]
) -> BinaryReport | None:
    try:
        elf = cache.get(candidate.host_path)
    except ELFError as exc:
        problems.append(InputProblem(candidate.label, str(exc)))
        return None
    except OSError as exc:
        problems.append(InputProblem(candidate.label, exc.strerror or str(exc)))
        return None
    if elf.elf_type not in (ElfType.EXEC, ElfType.DYN):
        if not candidate.walked:
            kind = {ElfType.REL: "a relocatable object (.o)", ElfType.CORE: "a core dump"}.get(
                elf.elf_type, "not an executable or shared library"
            )
            problems.append(InputProblem(candidate.label, f"{kind}, nothing to run"))
        return None
    linkage, object_kind = classify(elf)
    closure: Closure | None = None
    if linkage is Linkage.DYNAMIC:
        closure = resolver.resolve(candidate.image_path, elf)
        libc = closure.libc or libc_from_names(elf.interpreter, elf.needed)
    else:
        libc = static_libc(elf)
    planned = PlannedBinary(
        candidate.image_path, candidate.source, candidate.from_context, elf.size, closure
    )
    return BinaryReport(
        label=candidate.label,
        path=candidate.image_path,
        source=candidate.source,
        from_context=candidate.from_context,
        elf=elf,
        linkage=linkage,
        object_kind=object_kind,
        libc=libc,
        closure=closure,
        file_paths=binary_file_paths(planned),
        total_size=0,
    )
