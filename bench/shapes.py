#!/usr/bin/env python3
"""Cost against input size on the shapes that were quadratic (issue 9 §3).

For each shape, a crafted input of size n, 2n and 4n (tests/hostile_elf.py), one fresh
`scratchprobe inspect --format json` process each (json: the text tree of a chain n deep is
itself n^2/2 characters of indentation, so text output measures its own size), best of
--repeat runs; the report is the ratio of the times t(2n)/t(n) and t(4n)/t(2n) after
subtracting the start-up floor (`--version`). About 2 is linear; about 4 is quadratic.
Ratios, not absolute times (CONTRIBUTING.md).

    python3 bench/shapes.py              # every shape
    python3 bench/shapes.py --repeat 1   # a smoke run
    SCRATCHPROBE_TREE=/other/checkout python3 bench/shapes.py   # compare another tree
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hostile_elf import (  # noqa: E402 - the path above makes the tests importable
    BASE,
    DT_NEEDED,
    DT_STRSZ,
    DT_STRTAB,
    ET_EXEC,
    ElfBuilder,
    dynamic_library,
)

TREE = os.environ.get("SCRATCHPROBE_TREE", str(REPO))
HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"


def runpath_entries(root: Path, n: int) -> list[str]:
    """RUNPATH of n directories, 50 NEEDED that are nowhere."""
    runpath = b":".join(b"/r%d" % i for i in range(n))
    needed = [b"libmissing%d.so" % i for i in range(50)]
    _write(root / "bin" / "app", dynamic_library(needed, runpath=runpath, e_type=ET_EXEC))
    return ["--root", str(root), "/bin/app"]


def rpath_chain(root: Path, n: int) -> list[str]:
    """lib0 -> lib1 -> ... -> lib(n-1), each found through the RPATH of the one above."""
    for level in range(n):
        needed = [b"lib%d.so" % (level + 1)] if level + 1 < n else []
        data = dynamic_library(needed, soname=b"lib%d.so" % level, rpath=b"/d%d" % (level + 1))
        _write(root / f"d{level}" / f"lib{level}.so", data)
    _write(root / "bin" / "app", dynamic_library([b"lib0.so"], rpath=b"/d0", e_type=ET_EXEC))
    return ["--root", str(root), "/bin/app"]


def loader_size(root: Path, n: int) -> list[str]:
    """An ld.so of n KiB of directory strings whose lengths are nowhere."""
    builder = ElfBuilder()
    builder.add(b"/a/\0" * (n * 256))
    _write(root / "lib64" / "ld-linux-x86-64.so.2", builder.build())
    program = dynamic_library([b"libc.so.6"], interp=HOST_LOADER.encode(), e_type=ET_EXEC)
    _write(root / "bin" / "app", program)
    return ["--root", str(root), "/bin/app"]


def ld_cache_entries(root: Path, n: int) -> list[str]:
    """An ld.so.cache of n entries that all name one 4 KiB string."""
    string = b"x" * 4000
    table = 48 + n * 24
    raw = bytearray(b"glibc-ld.so.cache1.1")
    raw += (n).to_bytes(4, "little") + (len(string) + 1).to_bytes(4, "little")
    raw += bytes(48 - len(raw))
    entry = (0x0303).to_bytes(4, "little") + table.to_bytes(4, "little") * 2 + bytes(12)
    _write(root / "etc" / "ld.so.cache", bytes(raw) + entry * n + string + b"\0")
    _write(root / "bin" / "app", dynamic_library([b"libfoo.so"], e_type=ET_EXEC))
    return ["--root", str(root), "/bin/app"]


def needed_count(root: Path, n: int) -> list[str]:
    """n DT_NEEDED naming one 4000-byte soname (under PATH_MAX, so it is searched)."""
    names = b"\0" + b"l" * 4000 + b"\0"
    builder = ElfBuilder(e_type=ET_EXEC)
    at = builder.add(names)
    builder.dynamic([(DT_STRTAB, BASE + at), (DT_STRSZ, len(names))] + [(DT_NEEDED, 1)] * n)
    _write(root / "bin" / "app", builder.build())
    return ["--root", str(root), "/bin/app"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


SHAPES: dict[str, tuple[Callable[[Path, int], list[str]], int]] = {
    "RUNPATH entries (50 missing NEEDED)": (runpath_entries, 5_000),
    "RPATH chain depth": (rpath_chain, 300),
    "crafted ld.so size (KiB)": (loader_size, 2048),
    "ld.so.cache entries sharing one string": (ld_cache_entries, 50_000),
    "DT_NEEDED entries": (needed_count, 4_000),
}


def timed(argv: list[str], timeout: float) -> float:
    """Wall time of one run; a crash (a traceback, a signal) is an error, not a time."""
    env = {**os.environ, "PYTHONPATH": TREE}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scratchprobe", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd="/",
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2) or b"Traceback" in proc.stderr:
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(last)}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    floor = min(timed(["--version"], args.timeout) for _ in range(args.repeat))
    print(f"tree {TREE}; start-up floor {floor:.2f} s")
    for title, (make, base) in SHAPES.items():
        times: list[float] = []
        failure = None
        for n in (base, 2 * base, 4 * base):
            work = Path(tempfile.mkdtemp(prefix="scratchprobe-shape-"))
            try:
                argv = make(work / "root", n)
                times.append(
                    min(timed(["inspect", "--format", "json", *argv], args.timeout)
                        for _ in range(args.repeat))
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                failure = f"n={n}: no result in {args.timeout:.0f} s"
            except RuntimeError as exc:
                failure = f"n={n}: crashed ({exc})"
            finally:
                shutil.rmtree(work)
            if failure:
                break
        raw = ", ".join(f"{t:.2f}" for t in times)
        if failure:
            print(f"{title:42s} n={base:>6}  times {raw} s; {failure}")
            continue
        work_times = [max(t - floor, 0.01) for t in times]
        ratios = (
            f"x2 {work_times[1] / work_times[0]:.1f}, x4/x2 {work_times[2] / work_times[1]:.1f}"
        )
        print(f"{title:42s} n={base:>6}  {ratios}  (times {raw} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
