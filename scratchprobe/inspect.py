"""The pipeline for `inspect`: discover inputs, read ELF facts, resolve closures, plan files.

The core never prints: it returns an `Inspection` for a renderer to format.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from scratchprobe.discover import Candidate, InputProblem, describe_os_error, discover_all
from scratchprobe.elf.classify import (
    Libc,
    Linkage,
    ObjectKind,
    classify,
    libc_from_names,
    static_libc,
)
from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import SCAN_BUDGET, skipped_bytes
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError
from scratchprobe.loader.closure import Closure, ElfCache, Resolver
from scratchprobe.needs.context import Context, NeedsOptions
from scratchprobe.needs.evidence import EvidenceCache
from scratchprobe.needs.model import NeedKind, RuntimeNeed
from scratchprobe.plan import (
    Plan,
    PlannedBinary,
    binary_file_paths,
    build_plan,
    checked_directories,
    directory_refusal,
    with_included,
)
from scratchprobe.root import Root

if TYPE_CHECKING:
    # Type only: scratchprobe.annotate imports this module, and a run that does not
    # annotate never loads it.
    from scratchprobe.annotate import FileAnnotations
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
    needs: tuple[RuntimeNeed, ...] = ()
    """Every runtime need found, included in the plan or not (see `included`)."""
    included: tuple[bool, ...] = ()
    """Per need: whether its files are in the plan."""
    toolchain: str | None = None
    """The toolchain recognised, in words ("Go 1.21.13, CGO_ENABLED=0")."""

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
    binaries: tuple[BinaryReport, ...]
    problems: tuple[InputProblem, ...]
    plan: Plan
    warnings: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    """ENV lines the image should carry (TZ, SSL_CERT_FILE, ...)."""
    runtime_provided: tuple[str, ...] = ()
    """Files the container runtime mounts (not in the plan)."""
    user: str | None = None
    annotations: FileAnnotations | None = None
    """Digests, owning packages and embedded modules (scratchprobe.annotate): computed only
    for the outputs that show them (json, cyclonedx); None otherwise."""
    notes: tuple[str, ...] = ()
    """What walking directory arguments skipped or followed, one line per directory."""

    @property
    def unresolved(self) -> tuple[str, ...]:
        """`LABEL: what is missing`, one per unresolved library, version or interpreter: the
        errors behind exit status 1, which every format reports on stderr."""
        return tuple(f"{b.label}: {p}" for b in self.binaries for p in b.unresolved_problems)

    @property
    def exit_code(self) -> int:
        """2 for unusable input, 1 when some library stays unresolved, else 0 (DESIGN.md)."""
        if self.problems:
            return 2
        if any(b.unresolved for b in self.binaries):
            return 1
        return 0


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
        analysed = _analyse(unique, options, progress)
    reports = [r for r in analysed.reports if r is not None]
    problems += analysed.problems
    root_warnings = analysed.root_warnings
    planned = tuple(
        PlannedBinary(
            r.path,
            r.source,
            r.from_context,
            r.elf.size,
            r.closure,
            tuple(n for n, keep in zip(r.needs, r.included, strict=True) if keep),
        )
        for r in reports
    )
    plan = checked_directories(build_plan(planned, _need_source_sizes(root, planned)), root)
    if options.includes:
        from scratchprobe.trace.includes import resolve as resolve_includes

        included, include_problems = resolve_includes(options.includes, root)
        plan = with_included(plan, included)
        problems += [InputProblem(p.spec, p.message) for p in include_problems]
    sizes = {f.path: f.size for f in plan.files}
    final = tuple(
        replace(
            r,
            file_paths=binary_file_paths(p),
            total_size=sum(sizes.get(path, 0) for path in binary_file_paths(p)),
        )
        for r, p in zip(reports, planned, strict=True)
    )
    warnings = list(plan.warnings) + list(root_warnings)
    env: dict[str, str] = {}
    provided: list[str] = []
    for p in planned:
        for need in p.needs:
            warnings += [f"{p.path}: {problem}" for problem in need.problems]
            for key, value in need.env:
                env.setdefault(key, value)
            provided += need.runtime_provided
    return Inspection(
        root=root.directory,
        binaries=final,
        problems=tuple(problems),
        plan=plan,
        warnings=tuple(dict.fromkeys(warnings)),
        env=tuple(env.items()),
        runtime_provided=tuple(dict.fromkeys(provided)),
        user=options.needs.user,
        notes=discovery.notes,
    )


@dataclass(frozen=True)
class _Analysed:
    """What analysing some candidates gave, in candidate order."""

    reports: tuple[BinaryReport | None, ...]
    problems: tuple[InputProblem, ...]
    root_warnings: tuple[str, ...]


class _Session:
    """What analyses share: the parsed files, the loader's searches, the evidence read
    from each library. One per run, or one per worker process for all its chunks."""

    def __init__(self, options: InspectOptions) -> None:
        self.options = options
        root = Root(options.root)
        self.cache = ElfCache()
        self.resolver = Resolver(root, options.library_path, self.cache)
        self.context = Context(root, self.resolver, options.needs)
        self.evidence = EvidenceCache()


def _analyse(
    candidates: list[Candidate],
    options: InspectOptions,
    progress: Progress | None = None,
    session: _Session | None = None,
) -> _Analysed:
    """Closure and runtime needs of each candidate, sharing the parsed libraries."""
    if session is None:
        session = _Session(options)
    cache, resolver = session.cache, session.resolver
    context, evidence = session.context, session.evidence
    reports: list[BinaryReport | None] = []
    problems: list[InputProblem] = []
    warnings: list[str] = []
    for candidate in candidates:
        try:
            report = _inspect_one(candidate, cache, resolver, problems)
            if report is not None and options.runtime_needs:
                try:
                    report = _with_needs(report, options, context, evidence)
                    skipped = skipped_bytes(report.elf)
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


DEBUG_INTERNAL_ENV = "SCRATCHPROBE_DEBUG_INTERNAL"
"""Set to 1, an unexpected exception is raised with its traceback instead of reported (the
test suite sets it, so any input that reaches the last-resort handler fails a test)."""


def internal_problem(label: str, exc: Exception) -> InputProblem:
    """The last resort for one input: a bug met on it (RecursionError, MemoryError, ...)
    becomes one `internal error` line for that input, and every other input is still
    reported. Every cause found so far is fixed where it arises; this only keeps an unknown
    one from losing the whole batch's report."""
    if os.environ.get(DEBUG_INTERNAL_ENV) == "1":
        raise exc
    text = " ".join(str(exc).split())[:200] or "no message"
    return InputProblem(label, f"internal error: {type(exc).__name__}: {text}")


_WORKER_SESSION: list[_Session] = []
"""In a worker process: the session its chunks share (a worker lives for one run's pool)."""


def _analyse_chunk(args: tuple[list[Candidate], InspectOptions]) -> _Analysed:
    chunk, options = args
    if not _WORKER_SESSION or _WORKER_SESSION[0].options != options:
        _WORKER_SESSION[:] = [_Session(options)]
    return _analyse(chunk, options, session=_WORKER_SESSION[0])


# With progress shown, each worker's share is cut in this many pieces so that results
# arrive while the batch runs. The pieces of one worker share its session, so a library is
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
    report: BinaryReport, options: InspectOptions, context: Context, cache: EvidenceCache
) -> BinaryReport:
    # Imported here: a --no-runtime run never loads the detectors.
    from scratchprobe.needs.detect import detect_needs, included
    from scratchprobe.needs.evidence import gather
    from scratchprobe.toolchain import detect_toolchain

    toolchain = detect_toolchain(report.elf, report.libc)
    subject = gather(
        report.path, report.elf, report.linkage, report.libc, report.closure, cache, toolchain
    )
    needs = detect_needs(subject, context, options.with_kinds)
    keep = tuple(
        included(n, options.strict, options.with_kinds, options.without_kinds) for n in needs
    )
    return replace(report, needs=needs, included=keep, toolchain=toolchain.description)


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
    candidate: Candidate, cache: ElfCache, resolver: Resolver, problems: list[InputProblem]
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
