"""The pipeline for `inspect`: discover inputs, read ELF facts, resolve closures, plan files.

The core never prints: it returns an `Inspection` for a renderer to format.
"""

from __future__ import annotations

import contextlib
import copyreg
import io
import os
import pickle
import posixpath
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from scratchprobe.discover import Candidate, InputProblem, describe_os_error, discover_all
from scratchprobe.elf.classify import Linkage, classify, libc_from_names, static_libc
from scratchprobe.elf.constants import ElfType
from scratchprobe.elf.image import SCAN_BUDGET
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError, UsageError
from scratchprobe.internal import internal_problem
from scratchprobe.loader.closure import Closure, Dependency, ElfCache, LoadedObject, Resolver
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


def _sent_fact(serial: int) -> object:
    """Stands, in a worker's pickle, for the shared fact numbered `serial` that the worker
    sent before: the parent's _FactUnpickler resolves this name to its table of that
    worker's facts, so a pickle read any other way fails here, never silently."""
    raise pickle.UnpicklingError(f"shared fact {serial} of a batch worker read without its table")


class _FactPickler(pickle.Pickler):
    """Pickles a shared fact the worker sent before as a call of `_sent_fact(serial)`.

    A per-type reducer (Python's Lib/pickle.py, "Dispatch Tables"), not a persistent ID:
    the pickler asks `persistent_id` about every object it writes (each int and string of
    every section), the dispatch table only about these types: 0.11 s instead of 0.26 s
    for 860 reports."""

    def __init__(self, file: io.BytesIO, sent: dict[int, tuple[object, int]]) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._sent = sent
        table: dict[type, Callable[[Any], Any]] = dict(copyreg.dispatch_table)
        table.update(dict.fromkeys((ElfFile, LoadedObject, Dependency), self._reduce))
        self.dispatch_table = table

    def _reduce(self, obj: object) -> object:
        entry = self._sent.get(id(obj))
        if entry is not None and entry[0] is obj:
            return _sent_fact, (entry[1],)
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


class _FactUnpickler(pickle.Unpickler):
    """Reads a worker's pickle, `_sent_fact(serial)` meaning that worker's fact `serial`."""

    def __init__(self, data: bytes, facts: list[object]) -> None:
        super().__init__(io.BytesIO(data))
        self._facts = facts

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _sent_fact.__name__:
            return self._facts.__getitem__
        return super().find_class(module, name)


class _Outbox:
    """A worker's side of a parallel batch's results: each shared fact (a library's
    `ElfFile`, a `LoadedObject`, a `Dependency`) is pickled once per worker, however many
    pieces of the batch point to it; later pieces name it by serial. Kept for the worker's
    run (its objects stay alive, so an `id` is never reused for another)."""

    def __init__(self) -> None:
        self._sent: dict[int, tuple[object, int]] = {}
        self._pieces = 0

    def pack(self, analysed: _Analysed) -> _Packed:
        """(worker, piece, the new shared facts, the result), for `_Inbox.unpack`: the
        pieces of one worker are unpacked in the order they were packed."""
        new = self._new_facts(analysed)
        facts = self._dumps(new)
        for obj in new:
            self._sent[id(obj)] = (obj, len(self._sent))
        self._pieces += 1
        return os.getpid(), self._pieces - 1, facts, self._dumps(analysed)

    def _dumps(self, obj: object) -> bytes:
        buffer = io.BytesIO()
        _FactPickler(buffer, self._sent).dump(obj)
        return buffer.getvalue()

    def _new_facts(self, analysed: _Analysed) -> list[object]:
        """The shared facts of `analysed` not sent yet, each once, every `ElfFile` before
        the `LoadedObject`s that point to it."""
        elves: dict[int, object] = {}
        others: dict[int, object] = {}
        for report in analysed.reports:
            if report is None:
                continue
            elves.setdefault(id(report.elf), report.elf)
            closure = report.closure
            if closure is None:
                continue
            interpreter = (closure.interpreter,) if closure.interpreter is not None else ()
            for obj in interpreter + closure.libraries:
                elves.setdefault(id(obj.elf), obj.elf)
                others.setdefault(id(obj), obj)
            for edge in closure.dependencies:
                others.setdefault(id(edge), edge)
        return [obj for key, obj in (elves | others).items() if key not in self._sent]


_Packed = tuple[int, int, bytes, bytes]


class _Inbox:
    """The parent's side: the shared facts each worker sent, in the order it sent them,
    each interned as it arrives (the same library parsed by two workers is kept once)."""

    def __init__(self) -> None:
        self._interner = _Interner()
        self._facts: dict[int, list[object]] = {}
        """Per worker: its facts, by serial."""
        self._waiting: dict[tuple[int, int], tuple[int, _Packed]] = {}
        self._next: dict[int, int] = {}
        """Per worker: the piece to unpack next."""

    def unpack(self, key: int, packed: _Packed) -> list[tuple[int, _Analysed]]:
        """The results now complete, with their keys: `packed`'s, and those of the same
        worker's later pieces that arrived before it (futures may complete out of order
        for the caller: concurrent.futures.as_completed yields the finished ones in any
        order)."""
        worker, piece = packed[0], packed[1]
        self._waiting[(worker, piece)] = (key, packed)
        facts = self._facts.setdefault(worker, [])
        ready: list[tuple[int, _Analysed]] = []
        while (worker, self._next.get(worker, 0)) in self._waiting:
            key, (_worker, _piece, new, body) = self._waiting.pop(
                (worker, self._next.get(worker, 0))
            )
            self._next[worker] = self._next.get(worker, 0) + 1
            for obj in cast(list[object], _FactUnpickler(new, facts).load()):
                facts.append(self._intern(obj))
            ready.append((key, cast(_Analysed, _FactUnpickler(body, facts).load())))
        return ready

    def _intern(self, obj: object) -> object:
        if isinstance(obj, ElfFile):
            return self._interner.elf(obj)
        if isinstance(obj, LoadedObject):
            return self._interner.loaded(obj)
        return self._interner.value(obj)


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


_WORKER_CONTEXT: list[tuple[InspectOptions, Context, _Interner, _Outbox]] = []
"""In a worker process of a parallel batch, and only there: the run context its chunks
share (parsed files, loader searches, file images, library evidence), the interner of its
reports and what it has sent of them. The process lives for one run's pool, so this is the
worker's run state, not a cache across runs."""


def _analyse_chunk(args: tuple[list[Candidate], InspectOptions]) -> _Packed:
    chunk, options = args
    if not _WORKER_CONTEXT or _WORKER_CONTEXT[0][0] != options:
        for _options, stale, _interner, _outbox in _WORKER_CONTEXT:
            stale.close()  # another run's context: its images are not this run's
        _WORKER_CONTEXT[:] = [(options, _run_context(options), _Interner(), _Outbox())]
    _options, context, interner, outbox = _WORKER_CONTEXT[0]
    return outbox.pack(_analyse(chunk, options, context=context, interner=interner))


# Each worker's share is cut in this many pieces: results arrive while the batch runs (the
# progress bar moves, the parent unpickles one piece while the workers go on) and a worker
# that finishes first takes the next piece. The pieces of one worker share its context, so
# a library is parsed and scanned once per worker, and its facts are sent once per worker
# (_Outbox): more pieces cost no more pickling. Measured over the 1,717 ELF files of
# /usr/bin and /usr/lib/x86_64-linux-gnu on 2 cores: the parent's peak RSS 95 MB with one
# piece per worker, 72 MB with 8, for the same CPU.
_PIECES = 8


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

    stride = workers * _PIECES
    chunks = [candidates[i::stride] for i in range(stride)]
    context = multiprocessing.get_context("fork")
    results: list[_Analysed | None] = [None] * stride
    inbox = _Inbox()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_analyse_chunk, (chunk, options)): offset
            for offset, chunk in enumerate(chunks)
        }
        done = 0
        for future in as_completed(futures):
            for offset, result in inbox.unpack(futures[future], future.result()):
                results[offset] = result
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
