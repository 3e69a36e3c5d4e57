"""Hostile input: thousands of byte-mutated real binaries never raise out of the core.

Every mutation must end as a report or an InputProblem (one line), whatever it breaks:
headers, program headers, dynamic tables, version tables, notes, Go or Rust metadata.
Deterministic (fixed seed), bounded, no timing.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from scratchprobe.check.engine import run_check
from scratchprobe.check.policy import Policy
from scratchprobe.inspect import InspectOptions, inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from tests.conftest import TESTBINS

SOURCES = [
    "c-glibc-dynamic",
    "c-glibc-static",
    "c-musl-dynamic",
    "go-static",
    "rust-hello",
    "foreign/hello-s390x",
    "foreign/hello-mips",
    "foreign/hello-armhf",
    "runtime/c-openssl-client",
    "runtime/go-tz",
]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_mutated_binaries_never_crash(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    originals = {name: (TESTBINS / name).read_bytes() for name in SOURCES}
    for index in range(150):
        data = bytearray(originals[rng.choice(SOURCES)])
        for _ in range(rng.choice([1, 2, 4, 8, 32, 128])):
            window = min(len(data), 8192) if rng.random() < 0.7 else len(data)
            data[rng.randrange(window)] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        target = tmp_path / f"mutant-{index}"
        target.write_bytes(bytes(data))
        result = inspect((str(target),), InspectOptions(strict=True))
        assert len(result.binaries) + len(result.problems) >= 1
        for problem in result.problems:
            assert "\n" not in problem.message
        for fmt in OutputFormat:
            renderer(fmt)(result, RenderOptions())
        run_check(result, Policy())
