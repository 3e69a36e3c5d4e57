"""Ground truth: for every ELF file of the machine's /usr/bin and multiarch library directory,
the library set scratchprobe computes equals what `ldd` prints (compared by real path).

`ldd` runs the machine's own loader in trace mode; it is used here, on the machine's own
trusted files, as the oracle, and never inside scratchprobe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from scratchprobe.discover import walk_elf_files
from scratchprobe.elf.classify import Linkage
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect

DIRECTORIES = ("/usr/bin", "/usr/lib/x86_64-linux-gnu")
_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?$")


@dataclass(frozen=True)
class LddResult:
    paths: frozenset[str]
    missing: frozenset[str]
    excluded: str | None


def ldd(path: str) -> LddResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    try:
        proc = subprocess.run(
            ["ldd", path], capture_output=True, text=True, timeout=30, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return LddResult(frozenset(), frozenset(), "ldd timed out")
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return LddResult(frozenset(), frozenset(), "static for ldd")
    if proc.returncode != 0 and "=>" not in out:
        return LddResult(frozenset(), frozenset(), f"ldd failed: {out.strip()[:80]}")
    paths: set[str] = set()
    missing: set[str] = set()
    for line in proc.stdout.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        name, target = match.groups()
        if target == "not found":
            missing.add(name or "")
        elif target.startswith("/"):
            paths.add(os.path.realpath(target))
        # anything else is the vDSO (linux-vdso.so.1), which has no file
    return LddResult(frozenset(paths), frozenset(missing), None)


@pytest.mark.host
def test_closure_matches_ldd_on_the_machine() -> None:
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    files = [f for d in DIRECTORIES if os.path.isdir(d) for f in walk_elf_files(d)]
    assert len(files) > 100, "the machine should have a filled /usr/bin"
    result = inspect(tuple(files), InspectOptions(root="/"))
    reports = {b.source: b for b in result.binaries}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        oracle = dict(zip(files, pool.map(ldd, files), strict=True))

    compared = 0
    exclusions: Counter[str] = Counter()
    mismatches = []
    for path in files:
        truth = oracle[path]
        report = reports.get(os.path.realpath(path))
        if truth.excluded is not None:
            exclusions[truth.excluded.split(":")[0]] += 1
            if report is not None and truth.excluded == "static for ldd":
                # What ldd calls static, scratchprobe must not call dynamic with libraries
                # (shared objects without DT_NEEDED, like ld.so itself, are fine).
                closure = report.closure
                assert report.linkage is not Linkage.DYNAMIC or (
                    closure is not None and not closure.libraries
                ), path
            continue
        if report is None:
            exclusions["not analysed by scratchprobe"] += 1
            continue
        closure = report.closure
        ours: set[str] = set()
        ours_missing: set[str] = set()
        if closure is not None:
            ours = {os.path.realpath(o.real_path) for o in closure.libraries}
            if closure.interpreter is not None:
                ours.add(os.path.realpath(closure.interpreter.real_path))
            ours_missing = {m.name for m in closure.missing}
        # ldd lists the file itself when it is a library loaded as a dependency of itself;
        # never the case here, but ldd of ld.so prints ld.so: ignore the file's own path.
        theirs = truth.paths - {os.path.realpath(path)}
        if ours != theirs or ours_missing != truth.missing:
            mismatches.append((path, sorted(ours ^ theirs), sorted(ours_missing ^ truth.missing)))
        compared += 1

    summary = f"ldd ground truth: {compared} files compared, exclusions {dict(exclusions)}"
    print(summary)
    assert not mismatches, f"{summary}; mismatches: {mismatches[:10]}"
    assert compared > 100
