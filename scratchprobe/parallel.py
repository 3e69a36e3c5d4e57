"""A large batch of `inspect` split over forked worker processes, with exactly the result of
one process (pipeline.py calls it from PARALLEL_THRESHOLD binaries on).

A module of its own: pickle and the process pool cost a run of one binary ~3 ms to import
and never serve it.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
from collections.abc import Callable
from typing import Any, cast

from scratchprobe.discover import Candidate
from scratchprobe.elf.reader import ElfFile
from scratchprobe.loader.closure import Dependency, LoadedObject
from scratchprobe.model import BinaryReport, InspectOptions
from scratchprobe.needs.context import Context
from scratchprobe.pipeline import Progress, _analyse, _Analysed, _Interner, _run_context


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


def analyse_in_parallel(
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
