"""Hostile input: thousands of byte-mutated real binaries never raise out of the core.

Every mutation must end as a report or an InputProblem (one line), whatever it breaks:
headers, program headers, dynamic tables, version tables, notes, Go or Rust metadata; and
the files the loader reads inside a root. Deterministic (fixed seeds); the pipeline runs
are bounded by SCRATCHPROBE_FUZZ_SECONDS (40 s in all by default; set it higher to fuzz
longer). The coverage-guided target is tests/fuzz/atheris_target.py (CONTRIBUTING.md).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from scratchprobe.check.engine import run_check
from scratchprobe.check.policy import Policy
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from tests.conftest import HOST_LIBDIR, HOST_LOADER, TESTBINS
from tests.fuzz.pipeline import PENDING_ESCAPING, base_root, run_pipeline

# Out of the fast loop (`pytest -m "not slow"`): the fuzz runs take their time budget
# (SCRATCHPROBE_FUZZ_SECONDS).
pytestmark = pytest.mark.slow

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


# --------------------------------------------------------------------------- the pipeline
#
# Time-bounded, deterministic runs: the inputs are a fixed sequence per seed, and the budget
# (SCRATCHPROBE_FUZZ_SECONDS, 20 s per test by default in CI) only says how far along it a
# run gets. A finding's inputs are kept under SCRATCHPROBE_FUZZ_FINDINGS and the test fails
# naming them: copy them into tests/data/crashers/, fix the cause, and
# tests/hostile/test_crashers.py replays them for ever after.

FUZZ_SECONDS = float(os.environ.get("SCRATCHPROBE_FUZZ_SECONDS", "20"))
SEED = int(os.environ.get("SCRATCHPROBE_FUZZ_SEED", "0"))
"""Added to every seed: a long run on demand explores other sequences than CI's."""
FOUND = Path(os.environ.get("SCRATCHPROBE_FUZZ_FINDINGS", "/tmp/scratchprobe-fuzz-findings"))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """Byte flips near the headers (most tables are there), anywhere, truncation, or a
    copied block (duplicated table entries)."""
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 8, 32, 128])):
        window = min(len(out), 8192) if rng.random() < 0.7 else len(out)
        out[rng.randrange(window)] = rng.randrange(256)
    if rng.random() < 0.1:
        out = out[: rng.randrange(len(out))]
    if rng.random() < 0.1 and len(out) > 64:
        start = rng.randrange(len(out) - 32)
        block = out[start : start + rng.randrange(8, 32)]
        at = rng.randrange(len(out))
        out[at : at + len(block)] = block
    return bytes(out)


def _finding(name: str, files: dict[str, bytes], exc: BaseException) -> str:
    """Keep the inputs of a failure where a developer can copy them into the corpus."""
    directory = FOUND / name
    directory.mkdir(parents=True, exist_ok=True)
    for inner, data in files.items():
        dest = directory / inner.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return f"{type(exc).__name__}: {exc} (inputs kept in {directory})"


@pytest.mark.parametrize("seed", range(2))
def test_pipeline_on_mutated_binaries_every_format(seed: int, tmp_path: Path) -> None:
    """Mutants of the testbins, inside a small root, through inspect, annotate, every
    inspect format and every check format, each output parsed strictly."""
    rng = random.Random(1000 + seed + SEED)
    originals = {name: (TESTBINS / name).read_bytes() for name in SOURCES}
    root = tmp_path / "root"
    base_root(root)
    (root / "bin").mkdir()
    deadline = time.monotonic() + FUZZ_SECONDS / 2
    runs = 0
    while time.monotonic() < deadline or runs < 5:
        source = rng.choice(SOURCES)
        data = _mutate(rng, originals[source])
        inner = f"/bin/mutant-{seed}-{runs}"
        (root / inner.lstrip("/")).write_bytes(data)
        try:
            run_pipeline((inner,), root=str(root))
        except Exception as exc:
            pytest.fail(_finding(f"pipeline-{seed}-{runs}", {inner: data}, exc))
        os.unlink(root / inner.lstrip("/"))
        runs += 1
    for pending in dict.fromkeys(PENDING_ESCAPING):
        print(f"pending escaping fix: {pending}")  # shown with -s; see ESCAPING_PENDING


def _loader_root_case(rng: random.Random, root: Path) -> dict[str, bytes]:
    """Mutate one of the files the loader rules read inside a root."""
    choice = rng.randrange(5)
    written: dict[str, bytes] = {}
    if choice == 0 and Path("/etc/ld.so.cache").exists():
        written["/etc/ld.so.cache"] = _mutate(rng, Path("/etc/ld.so.cache").read_bytes())
    elif choice == 1:
        text = b"include /etc/ld.so.conf.d/*.conf\n/usr/local/lib\n/opt/x=lib64,/o2\n"
        written["/etc/ld.so.conf"] = _mutate(rng, text)
        written["/etc/ld.so.conf.d/a.conf"] = _mutate(rng, b"include ../ld.so.conf\n/a\n")
    elif choice == 2:
        written["/lib/x86_64-linux-gnu/libc.so.6"] = _mutate(
            rng, Path(f"{HOST_LIBDIR}/libc.so.6").read_bytes()
        )
    elif choice == 3:
        written["/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"] = _mutate(
            rng, Path(HOST_LOADER).read_bytes()
        )
    else:
        written["/etc/ld-musl-x86_64.path"] = _mutate(rng, b"/lib\n/usr/lib:/usr/local/lib\n")
    for inner, data in written.items():
        dest = root / inner.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return written


@pytest.mark.parametrize("seed", range(2))
def test_loader_on_mutated_roots(seed: int, tmp_path: Path) -> None:
    """Mutated ld.so.cache, ld.so.conf, libc, ld.so and musl path files in a fresh root."""
    rng = random.Random(2000 + seed + SEED)
    binaries = {
        "/bin/glibc": (TESTBINS / "c-glibc-dynamic").read_bytes(),
        "/bin/musl": (TESTBINS / "c-musl-dynamic").read_bytes(),
        "/bin/cpp": (TESTBINS / "cpp-dynamic").read_bytes(),
    }
    deadline = time.monotonic() + FUZZ_SECONDS / 2
    runs = 0
    while time.monotonic() < deadline or runs < 5:
        root = tmp_path / f"root-{runs}"
        base_root(root)
        (root / "bin").mkdir()
        for inner, data in binaries.items():
            (root / inner.lstrip("/")).write_bytes(data)
        written = _loader_root_case(rng, root)
        try:
            run_pipeline(tuple(binaries), root=str(root))
        except Exception as exc:
            pytest.fail(_finding(f"root-{seed}-{runs}", {**binaries, **written}, exc))
        shutil.rmtree(root)
        runs += 1
