"""A batch split over processes gives exactly what one process gives."""

from __future__ import annotations

import pickle
import posixpath
from collections.abc import Iterable

import pytest

import scratchprobe.pipeline as inspect_module
from scratchprobe.discover import discover
from scratchprobe.elf.reader import ElfFile
from scratchprobe.loader.closure import Dependency, LoadedObject
from scratchprobe.model import BinaryReport, InspectOptions
from scratchprobe.parallel import _FactUnpickler, _Inbox, _Outbox, analyse_in_parallel
from scratchprobe.pipeline import _analyse, _Interner, _run_context, inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from scratchprobe.root import Root
from tests.conftest import TESTBINS


def test_parallel_analysis_equals_sequential() -> None:
    candidates, _problems = discover((str(TESTBINS),), Root("/"))
    assert len(candidates) > 20
    options = InspectOptions()
    sequential = _analyse(candidates, options)
    parallel = analyse_in_parallel(candidates, options, workers=2)
    assert parallel == sequential


def test_batch_output_does_not_depend_on_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_module, "PARALLEL_THRESHOLD", 2)
    paths = (str(TESTBINS),)
    one = inspect(paths, InspectOptions(), jobs=1)
    two = inspect(paths, InspectOptions(), jobs=2)
    for fmt in (OutputFormat.JSON, OutputFormat.COPY):
        assert renderer(fmt)(one, RenderOptions()) == renderer(fmt)(two, RenderOptions())


def test_progress_reports_every_file_and_changes_nothing() -> None:
    candidates, _problems = discover((str(TESTBINS),), Root("/"))
    options = InspectOptions()
    calls: list[tuple[int, int]] = []
    watched = analyse_in_parallel(
        candidates, options, workers=2, progress=lambda done, total: calls.append((done, total))
    )
    assert watched == _analyse(candidates, options)
    assert calls[-1] == (len(candidates), len(candidates))
    assert [done for done, _total in calls] == sorted(done for done, _total in calls)
    assert len(calls) > 2, "results arrive in pieces, not all at the end"


def _shared_facts(
    reports: Iterable[BinaryReport | None],
) -> tuple[list[ElfFile], list[LoadedObject], list[Dependency]]:
    elves: list[ElfFile] = []
    objects: list[LoadedObject] = []
    edges: list[Dependency] = []
    for report in reports:
        if report is None or report.closure is None:
            continue
        interpreter = report.closure.interpreter
        for obj in report.closure.libraries + ((interpreter,) if interpreter else ()):
            objects.append(obj)
            elves.append(obj.elf)
        edges += report.closure.dependencies
    return elves, objects, edges


def _assert_one_object_per_fact(reports: Iterable[BinaryReport | None]) -> None:
    """Every library is one ElfFile object, every equal LoadedObject and Dependency one
    object, however many reports point to them."""
    elves, objects, edges = _shared_facts(reports)
    by_path: dict[str, set[int]] = {}
    for elf in elves:
        by_path.setdefault(elf.path, set()).add(id(elf))
    assert all(len(ids) == 1 for ids in by_path.values()), "a library held twice"
    for equal in (objects, edges):
        ids: dict[object, set[int]] = {}
        for fact in equal:
            ids.setdefault(fact, set()).add(id(fact))
        assert all(len(same) == 1 for same in ids.values()), "an equal fact held twice"
    libc = {id(e) for e in elves if posixpath.basename(e.path) == "libc.so.6"}
    users = sum(1 for o in objects if posixpath.basename(o.elf.path) == "libc.so.6")
    assert len(libc) == 1, libc
    assert users > 10, users


def test_batch_holds_one_object_per_library() -> None:
    """In the parent of a parallel batch (each worker parses libc on its own, and pieces
    arrive one by one) and in a serial run, the reports that link libc share one libc."""
    candidates, _problems = discover((str(TESTBINS),), Root("/"))
    options = InspectOptions()
    _assert_one_object_per_fact(analyse_in_parallel(candidates, options, workers=2).reports)
    _assert_one_object_per_fact(_analyse(candidates, options).reports)


def test_worker_sends_each_shared_fact_once_and_pieces_unpack_in_any_order() -> None:
    """A worker's second piece names the libraries its first piece sent (pickled once per
    worker, not once per piece); the parent unpacks pieces that complete out of order."""
    candidates, _problems = discover((str(TESTBINS),), Root("/"))
    options = InspectOptions()
    pieces = [candidates[0::2], candidates[1::2]]
    with _run_context(options) as context:
        interner, outbox = _Interner(), _Outbox()
        analysed = [
            _analyse(piece, options, context=context, interner=interner) for piece in pieces
        ]
        packed = [outbox.pack(result) for result in analysed]
    first = _FactUnpickler(packed[0][2], []).load()
    second = _FactUnpickler(packed[1][2], first).load()
    first_paths = {e.path for e in first if isinstance(e, ElfFile)}
    second_paths = [e.path for e in second if isinstance(e, ElfFile)]
    libc = [p for p in first_paths if posixpath.basename(p) == "libc.so.6"]
    assert libc, "the first piece sends libc"
    second_elves, _objects, _edges = _shared_facts(analysed[1].reports)
    assert libc[0] in {e.path for e in second_elves}, "the second piece links it too"
    assert not first_paths & set(second_paths), "a library sent twice by one worker"
    assert len(second_paths) == len(set(second_paths))
    with pytest.raises(pickle.UnpicklingError, match="without its table"):
        pickle.loads(packed[1][3])  # never silently without the worker's facts
    inbox = _Inbox()
    assert inbox.unpack(1, packed[1]) == [], "waits for the worker's first piece"
    unpacked = dict(inbox.unpack(0, packed[0]))
    assert [unpacked[0], unpacked[1]] == analysed
    _assert_one_object_per_fact(r for key in (0, 1) for r in unpacked[key].reports)


def test_interning_keeps_an_unhashable_value_as_it_is() -> None:
    interner = _Interner()
    edge = Dependency("/usr/bin/x", "libc.so.6", "/lib/libc.so.6")
    assert interner.value(Dependency(*("/usr/bin/x", "libc.so.6", "/lib/libc.so.6"))) == edge
    assert interner.value(edge) is not edge, "the first equal value is kept"
    unhashable = (["a list"],)
    assert interner.value(unhashable) is unhashable
