"""A run opens each file once: the run's image of it, which the ELF parse reads through
and every later reader shares (docs/architecture.md, "One reader per file").

Count-based, never timed: every open(2) and every Python `open` of a run is recorded by path.
"""

from __future__ import annotations

import builtins
import os
from collections import Counter
from typing import Any

import pytest

from scratchprobe.model import BinaryReport, InspectOptions
from scratchprobe.pipeline import inspect
from tests.conftest import TESTBINS


def _counting(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], Counter[str]]:
    """(paths given to os.open, paths given to the built-in open), counted during the test."""
    descriptors: Counter[str] = Counter()
    files: Counter[str] = Counter()
    real_os_open = os.open
    real_open = builtins.open

    def os_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        descriptors[os.fsdecode(path)] += 1
        return real_os_open(path, flags, mode, **kwargs)

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)):
            files[os.fsdecode(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    return descriptors, files


def _elf_paths(report: BinaryReport) -> set[str]:
    """Host paths of the binary and every object its loader maps."""
    assert report.closure is not None
    objects = list(report.closure.libraries)
    if report.closure.interpreter is not None:
        objects.append(report.closure.interpreter)
    return {report.elf.path} | {o.elf.path for o in objects}


@pytest.mark.parametrize("runtime_needs", [True, False], ids=["needs", "no-runtime"])
def test_each_elf_file_is_opened_once_by_its_image(
    monkeypatch: pytest.MonkeyPatch, runtime_needs: bool
) -> None:
    binary = str(TESTBINS / "cpp-dynamic")
    descriptors, files = _counting(monkeypatch)
    result = inspect((binary,), InspectOptions(runtime_needs=runtime_needs))
    assert result.problems == ()
    (report,) = result.binaries
    paths = _elf_paths(report)
    assert len(paths) >= 4  # the loader, libc, libstdc++, libm, libgcc_s: a real closure
    assert {p: descriptors[p] for p in paths} == dict.fromkeys(paths, 1)
    # Nothing else opens them; the one exception is discover's look at the input's first
    # bytes (is it a script?), before the run has images.
    assert {p: files[p] for p in paths if files[p]} == {binary: 1}


def test_a_file_read_again_after_its_image_was_closed_is_reopened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the images a run keeps open (elf/image.py `_KEEP_IMAGES`), an evicted file is
    opened again by its next reader: the bound on open descriptors holds, nothing fails."""
    from scratchprobe.elf import image as image_module

    keep_bytes = image_module.Images.__init__.__defaults__[1]  # type: ignore[index]
    monkeypatch.setattr(image_module.Images.__init__, "__defaults__", (2, keep_bytes))
    binary = str(TESTBINS / "cpp-dynamic")
    descriptors, _files = _counting(monkeypatch)
    result = inspect((binary,), InspectOptions())
    assert result.problems == ()
    (report,) = result.binaries
    assert descriptors[binary] == 2  # parsed, evicted by its libraries, read by detectors
    assert report.needs == inspect((binary,), InspectOptions()).binaries[0].needs
