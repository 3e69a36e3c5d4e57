"""The pipeline for `inspect`: discover inputs, read ELF facts, resolve closures, plan files.

The core never prints: it returns an `Inspection` for a renderer to format.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from scratchprobe.discover import Candidate, InputProblem, describe_os_error, discover_all
from scratchprobe.elf.classify import Linkage, classify, libc_from_names, static_libc
from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import SCAN_BUDGET
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError, UsageError
from scratchprobe.internal import internal_problem
from scratchprobe.loader.closure import Closure, ElfCache, LoadedObject, Resolver
from scratchprobe.model import BinaryReport, Inspection, InspectOptions
from scratchprobe.needs.context import Context
from scratchprobe.plan import (
    Plan,
    PlannedBinary,
    build_plan,
    checked_directories,
    directory_refusal,
    image_path_problem,
    with_included,
)
from scratchprobe.root import Root

# Below this many binaries a second process costs more (fork, pickling) than it saves.
PARALLEL_THRESHOLD = 64


_T = TypeVar("_T")

Progress = Callable[[int, int], None]
"""Called with (files analysed, files in the batch) as results arrive."""


def inspect(
    paths: tuple[str, ...],
    options: InspectOptions,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Inspection:
    """Analyse `paths` inside `options.root`. A large batch is split over `jobs` processes
    (default: the usable CPUs); each reads the libraries it meets once. `progress`, when
    given, hears of every result as it arrives; it changes nothing in the result."""
    root = Root(options.root)
    discovery = discover_all(paths, root)
    candidates, problems = list(discovery.candidates), list(discovery.problems)
    unique: list[Candidate] = []
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.image_path not in seen:
            seen.add(candidate.image_path)
            unique.append(candidate)
    workers = jobs if jobs is not None else len(os.sched_getaffinity(0))
    if workers > 1 and len(unique) >= PARALLEL_THRESHOLD:
        # The parallel machinery (pickle, process pools) loads only for such a batch.
        from scratchprobe.parallel import analyse_in_parallel

        analysed = analyse_in_parallel(unique, options, workers, progress)
    else:
        analysed = _analyse(unique, options, progress, root)
    reports = tuple(r for r in analysed.reports if r is not None)
    problems += analysed.problems
    plan, include_problems = _plan(reports, root, options)
    problems += include_problems
    warnings = list(plan.warnings) + list(analysed.root_warnings)
    env: dict[str, str] = {}
    provided: list[str] = []
    for report in reports:
        for need in report.planned_needs:
            warnings += [f"{report.path}: {problem}" for problem in need.problems]
            for key, value in need.env:
                env.setdefault(key, value)
            provided += need.runtime_provided
    return Inspection(
        root=root.directory,
        binaries=reports,
        problems=tuple(problems),
        plan=plan,
        warnings=tuple(dict.fromkeys(warnings)),
        env=tuple(env.items()),
        runtime_provided=tuple(dict.fromkeys(provided)),
        user=options.needs.user,
        notes=discovery.notes,
        filesystem=root,
    )


def _plan(
    reports: tuple[BinaryReport, ...], root: Root, options: InspectOptions
) -> tuple[Plan, list[InputProblem]]:
    """The plan of `reports`, with the --include entries, and the includes' problems."""
    planned = tuple(
        PlannedBinary(r.path, r.source, r.from_context, r.elf.size, r.closure, r.planned_needs)
        for r in reports
    )
    sizes = _need_source_sizes(root, planned) if options.sizes else {}
    plan = checked_directories(build_plan(planned, sizes), root)
    if not options.includes:
        return plan, []
    from scratchprobe.trace.includes import resolve as resolve_includes

    included, include_problems = resolve_includes(options.includes, root)
    return with_included(plan, included), [
        InputProblem(p.spec, p.message) for p in include_problems
    ]


def inspect_for_image(
    paths: tuple[str, ...], options: InspectOptions, install: str | None = None
) -> Inspection:
    """`inspect`, and with `install` the one binary moved to that image path.

    Moving a binary is not a rename of one plan entry: `$ORIGIN` in its RPATH/RUNPATH (and in
    those of libraries it loads through them) expands to the binary's directory *in the
    image*, so the closure is resolved again for the new location and the plan is made
    again from it. What the loader would find there is exactly what the root holds at those
    paths, since every library is copied to its in-root path. The runtime needs found for
    the binary are kept as they are.
    """
    inspection = inspect(paths, options)
    if install is None:
        return inspection
    refusal = image_path_problem(install)
    if refusal is not None:
        raise UsageError(f"--install {install!r}: {refusal}")
    if inspection.problems:
        # The caller reports them; nothing is moved.
        return inspection
    if len(inspection.binaries) != 1:
        raise UsageError(
            f"--install places one binary, but the arguments name {len(inspection.binaries)}"
        )
    report = inspection.binaries[0]
    if report.path == install:
        return inspection
    root = inspection.fs
    closure = None
    warnings = []
    if report.closure is not None:
        closure = Resolver(root, options.library_path).resolve(install, report.elf)
        for tag, value in (("RPATH", report.elf.rpath), ("RUNPATH", report.elf.runpath)):
            if value and "ORIGIN" in value:
                warnings.append(
                    f"{report.label}: its {tag} {value} uses $ORIGIN, which at {install} "
                    f"means {posixpath.dirname(install)}: libraries are searched there, "
                    "not beside the builder's copy"
                )
    moved = replace(report, path=install, closure=closure)
    plan, _ = _plan((moved,), root, options)
    return replace(
        inspection,
        binaries=(moved,),
        plan=plan,
        warnings=tuple(dict.fromkeys(inspection.warnings + tuple(warnings) + plan.warnings)),
    )


@dataclass(frozen=True)
class _Analysed:
    """What analysing some candidates gave, in candidate order."""

    reports: tuple[BinaryReport | None, ...]
    problems: tuple[InputProblem, ...]
    root_warnings: tuple[str, ...]


class _Interner:
    """One object for each distinct fact of a run's reports, so that what a batch holds
    grows with its distinct libraries, not with its binaries: 1,000 binaries linking libc
    hold one libc `ElfFile`, one `LoadedObject` for each way it was loaded (who needed it,
    found how), one `Dependency` per DT_NEEDED edge.

    A library is one file: its parsed facts are kept by host path, and an `ElfFile` read
    again (by another worker of a parallel batch, which parsed it on its own) is the kept
    one when every fact is equal (frozen data: equal facts say the same thing to every
    reader). The facts that name the binary itself (its direct needs' `needed_by`, its
    own `ElfFile`, its runtime needs) stay per binary; equal values are still shared."""

    def __init__(self) -> None:
        self._elves: dict[str, list[ElfFile]] = {}
        self._objects: dict[tuple[object, ...], LoadedObject] = {}
        self._values: dict[object, object] = {}

    def report(self, report: BinaryReport) -> BinaryReport:
        closure = report.closure
        return replace(
            report,
            elf=self.elf(report.elf),
            closure=None if closure is None else self._closure(closure),
            needs=tuple(self.value(need) for need in report.needs),
        )

    def _closure(self, closure: Closure) -> Closure:
        interpreter = closure.interpreter
        return replace(
            closure,
            interpreter=None if interpreter is None else self.loaded(interpreter),
            libraries=tuple(self.loaded(obj) for obj in closure.libraries),
            dependencies=tuple(self.value(edge) for edge in closure.dependencies),
            missing=tuple(self.value(miss) for miss in closure.missing),
            missing_versions=tuple(self.value(miss) for miss in closure.missing_versions),
            system_dirs=self.value(closure.system_dirs),
            warnings=self.value(closure.warnings),
        )

    def elf(self, elf: ElfFile) -> ElfFile:
        kept = self._elves.setdefault(elf.path, [])
        for known in kept:
            if known is elf or known == elf:
                return known
        kept.append(elf)
        return elf

    def loaded(self, obj: LoadedObject) -> LoadedObject:
        elf = self.elf(obj.elf)
        # The interned ElfFile stands for its facts: its identity is the key, not a hash
        # of every section.
        key = (obj.name, obj.soname, obj.path, obj.real_path, obj.via, obj.needed_by,
               id(elf), obj.hwcaps_variants)  # fmt: skip
        known = self._objects.get(key)
        if known is None:
            known = self._objects[key] = obj if obj.elf is elf else replace(obj, elf=elf)
        return known

    def value(self, value: _T) -> _T:
        """The kept object equal to `value`; a value that cannot be hashed (a detector's
        fact holding a list) is kept as it is: sharing saves memory, it never fails a run."""
        try:
            return self._values.setdefault(value, value)  # type: ignore[return-value]
        except TypeError:
            return value


def _analyse(
    candidates: list[Candidate],
    options: InspectOptions,
    progress: Progress | None = None,
    root: Root | None = None,
    context: Context | None = None,
    interner: _Interner | None = None,
) -> _Analysed:
    """Closure and runtime needs of each candidate, sharing the parsed libraries and the
    run's context (one per process: a worker of a parallel batch keeps its own for all its
    chunks, see _analyse_chunk), each report's library facts shared through `interner` (the
    run's, or the worker's)."""
    interner = interner if interner is not None else _Interner()
    if context is not None:
        return _analyse_all(candidates, options, progress, context, interner)
    with _run_context(options, root) as run:
        return _analyse_all(candidates, options, progress, run, interner)


def _run_context(options: InspectOptions, root: Root | None = None) -> Context:
    """A new run's context: the root, a resolver with an empty parse cache, no images."""
    root = root if root is not None else Root(options.root)
    return Context(root, Resolver(root, options.library_path, ElfCache()), options.needs)


def _analyse_all(
    candidates: list[Candidate],
    options: InspectOptions,
    progress: Progress | None,
    context: Context,
    interner: _Interner,
) -> _Analysed:
    cache, resolver = context.resolver.elf_cache, context.resolver
    reports: list[BinaryReport | None] = []
    problems: list[InputProblem] = []
    warnings: list[str] = []
    for candidate in candidates:
        try:
            report = _inspect_one(candidate, cache, resolver, problems, context)
            if report is not None and options.runtime_needs:
                try:
                    report, skipped = _with_needs(report, options, context)
                    facts = report.toolchain_facts
                    # Corrupt Go or Rust metadata: the rest was analysed, never silently.
                    if facts is not None:
                        warnings += [f"{candidate.label}: {w}" for w in facts.warnings]
                    if skipped:
                        warnings.append(
                            f"{candidate.label}: {skipped} bytes of its mapped data not searched "
                            f"for runtime markers (a scan stops after {SCAN_BUDGET >> 20} MiB)"
                        )
                except (ELFError, ValueError, OverflowError, IndexError, struct.error) as exc:
                    # The loader's tables were fine but the rest (Go tables, notes, string
                    # sections) is corrupt: keep the closure, and say what was not analysed.
                    problems.append(
                        InputProblem(
                            candidate.label, f"malformed data: {exc} (runtime files not analysed)"
                        )
                    )
        except Exception as exc:  # the last resort: see internal_problem
            problems.append(internal_problem(candidate.label, exc))
            report = None
        reports.append(None if report is None else interner.report(report))
        if progress is not None:
            progress(len(reports), len(candidates))
    return _Analysed(tuple(reports), tuple(problems), tuple(resolver.root_warnings + warnings))


def _with_needs(
    report: BinaryReport, options: InspectOptions, context: Context
) -> tuple[BinaryReport, int]:
    """The report with its toolchain facts and runtime needs, and the bytes of its mapped
    data the scans left out (0 when all were read). Every reader gets the run's image."""
    # Imported here: a --no-runtime run never loads the detectors.
    from scratchprobe.needs.detect import detect_needs, included
    from scratchprobe.needs.evidence import gather
    from scratchprobe.toolchain import detect_toolchain

    with context.images.use(report.elf) as image:
        toolchain = detect_toolchain(image, report.libc)
        subject = gather(
            report.path,
            image,
            report.linkage,
            report.libc,
            report.closure,
            context.evidence,
            toolchain,
        )
        needs = detect_needs(subject, context, options.with_kinds)
        skipped = image.skipped
    keep = tuple(
        included(n, options.strict, options.with_kinds, options.without_kinds) for n in needs
    )
    return replace(report, needs=needs, included=keep, toolchain_facts=toolchain), skipped


def _need_source_sizes(root: Root, planned: tuple[PlannedBinary, ...]) -> dict[str, int]:
    """Bytes each runtime file or directory adds (directories walked inside the root)."""
    sizes: dict[str, int] = {}
    for binary in planned:
        for need in binary.needs:
            for needed in need.files:
                if needed.source is None or needed.source in sizes:
                    continue
                try:
                    resolved = root.resolve(needed.source)
                except OSError:
                    continue
                if resolved.is_dir and directory_refusal(resolved.path) is not None:
                    # Never walked: checked_directories leaves it out of the plan.
                    continue
                if resolved.is_dir:
                    total = 0
                    for current, _dirs, files in os.walk(resolved.host_path):
                        for name in files:
                            with contextlib.suppress(OSError):
                                total += os.lstat(os.path.join(current, name)).st_size
                    sizes[needed.source] = total
                else:
                    sizes[needed.source] = os.stat(resolved.host_path).st_size
    return sizes


def _inspect_one(
    candidate: Candidate,
    cache: ElfCache,
    resolver: Resolver,
    problems: list[InputProblem],
    context: Context,
) -> BinaryReport | None:
    try:
        elf = cache.get(candidate.host_path)
    except ELFError as exc:
        problems.append(InputProblem(candidate.label, str(exc)))
        return None
    except OSError as exc:
        problems.append(InputProblem(candidate.label, describe_os_error(exc)))
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
        try:
            with context.images.use(elf) as image:
                libc = static_libc(image)
        except ELFError:
            libc = None  # unreadable now: no evidence of a libc
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
    )
