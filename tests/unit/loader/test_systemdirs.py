"""loader/systemdirs.py: the directory runs of a loader, found only where one may start."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

import pytest

from scratchprobe.loader.systemdirs import _DIR_RUN, dir_runs, read_loader_data
from tests.conftest import TESTBINS


def spans(matches: Iterable[re.Match[bytes]]) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in matches]


@pytest.mark.parametrize("seed", range(200))
def test_dir_runs_are_finditer_match_for_match(seed: int) -> None:
    rng = random.Random(seed)
    # Bytes a run is made of, and ones that break it, densely mixed.
    data = bytes(rng.choice(b"//\x00\x00ab~ \x7f") for _ in range(rng.randrange(0, 400)))
    assert spans(dir_runs(data)) == spans(_DIR_RUN.finditer(data))


@pytest.mark.parametrize(
    "data",
    [b"", b"/", b"/a/\x00", b"/a/\x00/b/\x00", b"x\x00/a/\x00", b"\x00/\x00//\x00", b"//\x00"],
)
def test_dir_runs_at_the_edges(data: bytes) -> None:
    assert spans(dir_runs(data)) == spans(_DIR_RUN.finditer(data))


def test_dir_runs_of_a_static_glibc_program() -> None:
    # It holds the loader code with its system_dirs array (no glibc ld.so is committed).
    data = read_loader_data(str(TESTBINS / "c-glibc-static"))
    assert spans(dir_runs(data)) == spans(_DIR_RUN.finditer(data))
