"""A batch split over processes gives exactly what one process gives."""

from __future__ import annotations

import pytest

import scratchprobe.pipeline as inspect_module
from scratchprobe.discover import discover
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import _analyse, _analyse_in_parallel, inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from scratchprobe.root import Root
from tests.conftest import TESTBINS


def test_parallel_analysis_equals_sequential() -> None:
    candidates, _problems = discover((str(TESTBINS),), Root("/"))
    assert len(candidates) > 20
    options = InspectOptions()
    sequential = _analyse(candidates, options)
    parallel = _analyse_in_parallel(candidates, options, workers=2)
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
    watched = _analyse_in_parallel(
        candidates, options, workers=2, progress=lambda done, total: calls.append((done, total))
    )
    assert watched == _analyse(candidates, options)
    assert calls[-1] == (len(candidates), len(candidates))
    assert [done for done, _total in calls] == sorted(done for done, _total in calls)
    assert len(calls) > 2, "results arrive in pieces, not all at the end"
