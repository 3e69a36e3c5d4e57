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

from scratchprobe.discover import Candidate, InputProblem, describe_os_error, discover_all
from scratchprobe.elf.classify import Linkage, classify, libc_from_names, static_libc
from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import SCAN_BUDGET
from scratchprobe.errors import ELFError, UsageError
from scratchprobe.internal import internal_problem
from scratchprobe.loader.closure import Closure, ElfCache, Resolver
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
        analysed = _analyse_in_parallel(unique, options, workers, progress)
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
    plan = checked_directories(build_plan(planned, _need_source_sizes(root, planned)), root)
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


def _analyse(
    candidates: list[Candidate],
    options: InspectOptions,
    progress: Progress | None = None,
    root: Root | None = None,
    context: Context | None = None,
) -> _Analysed:
    """Closure and runtime needs of each candidate, sharing the parsed libraries and the
    run's context (one per process: a worker of a parallel batch keeps its own for all its
    chunks, see _analyse_chunk)."""
    if context is not None:
        return _analyse_all(candidates, options, progress, context)
    with _run_context(options, root) as run:
        return _analyse_all(candidates, options, progress, run)


def _run_context(options: InspectOptions, root: Root | None = None) -> Context:
    """A new run's context: the root, a resolver with an empty parse cache, no images."""
    root = root if root is not None else Root(options.root)
    return Context(root, Resolver(root, options.library_path, ElfCache()), options.needs)


def _analyse_all(
    candidates: list[Candidate],
    options: InspectOptions,
    progress: Progress | None,
    context: Context,
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
        reports.append(report)
        if progress is not None:
            progress(len(reports), len(candidates))
    return _Analysed(tuple(reports), tuple(problems), tuple(resolver.root_warnings + warnings))


_WORKER_CONTEXT: list[tuple[InspectOptions, Context]] = []
"""In a worker process of a parallel batch, and only there: the run context its chunks
share (parsed files, loader searches, file images, library evidence). The process lives
for one run's pool, so this is the worker's run state, not a cache across runs."""


def _analyse_chunk(args: tuple[list[Candidate], InspectOptions]) -> _Analysed:
    chunk, options = args
    if not _WORKER_CONTEXT or _WORKER_CONTEXT[0][0] != options:
        for _options, stale in _WORKER_CONTEXT:
            stale.close()  # another run's context: its images are not this run's
        _WORKER_CONTEXT[:] = [(options, _run_context(options))]
    return _analyse(chunk, options, context=_WORKER_CONTEXT[0][1])


# With progress shown, each worker's share is cut in this many pieces so that results
# arrive while the batch runs. The pieces of one worker share its context, so a library is
# parsed and scanned once per worker, not once per piece; but each piece's result pickles
# the libraries its reports point to again, and the parent unpickles every copy: without
# progress a worker gets its whole share at once.
_PROGRESS_PIECES = 8


def _analyse_in_parallel(
    candidates: list[Candidate],
    options: InspectOptions,
    workers: int,
    progress: Progress | None = None,
) -> _Analysed:
    """Interleaved chunks (big and small files mix in a directory listing) over forked
    workers; results are put back in candidate order, so output does not depend on it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    stride = workers * (_PROGRESS_PIECES if progress is not None else 1)
    chunks = [candidates[i::stride] for i in range(stride)]
    context = multiprocessing.get_context("fork")
    results: list[_Analysed | None] = [None] * stride
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_analyse_chunk, (chunk, options)): offset
            for offset, chunk in enumerate(chunks)
        }
        done = 0
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            done += len(result.reports)
            if progress is not None:
                progress(done, len(candidates))
    finished = [r for r in results if r is not None]
    reports: list[BinaryReport | None] = [None] * len(candidates)
    for offset, result in enumerate(finished):
        for index, report in enumerate(result.reports):
            reports[offset + index * stride] = report
    order = {c.label: i for i, c in enumerate(candidates)}
    problems = sorted(
        (p for r in finished for p in r.problems), key=lambda p: order.get(p.path, -1)
    )
    warnings = tuple(dict.fromkeys(w for r in finished for w in r.root_warnings))
    return _Analysed(tuple(reports), tuple(problems), warnings)


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
