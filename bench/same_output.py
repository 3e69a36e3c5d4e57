#!/usr/bin/env python3
"""Check that two checkouts of scratchprobe print the same bytes for the same inputs.

A speed change must not change any answer. This runs `inspect` with every format that reads
the analysis (text, json, copy, dockerfile, cyclonedx) from two source trees, `--before`
and `--after` (each put first on PYTHONPATH), over the same inputs, and compares stdout,
stderr and the exit status byte for byte. `SOURCE_DATE_EPOCH` is fixed so that the SBOM's
timestamp is the same in both. Standard library only.

    python3 bench/same_output.py --before /tmp/old-checkout            # /usr/bin + testbins
    python3 bench/same_output.py --before OLD --after NEW /usr/bin/curl

Two kinds of run: one batch process per format over all the inputs (the way a whole image
root is inspected), and one process per input and format for each single binary named with
`--single` (default: a few from the inputs). Exit status 0 when every output is identical,
1 when some differ (each listed with the first differing line).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("text", "json", "copy", "dockerfile", "cyclonedx")
DEFAULT_INPUTS = ("/usr/bin", str(REPO / "testbins" / "built"))


def run(tree: str, args: list[str]) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "PYTHONPATH": tree, "SOURCE_DATE_EPOCH": "1700000000"}
    env.pop("COLUMNS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "scratchprobe", "inspect", *args],
        env=env,
        cwd=tree,
        capture_output=True,
        timeout=3600,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def first_difference(a: bytes, b: bytes) -> str:
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if x != y:
            return f"line {number}: {x[:160]!r} != {y[:160]!r}"
    return f"lengths {len(a)} != {len(b)}"


def compare(before: str, after: str, args: list[str], label: str) -> bool:
    old, new = run(before, args), run(after, args)
    same = old == new
    status = "same" if same else "DIFFERENT"
    print(f"{status:9} {label}  (exit {old[0]}, {len(old[1])} bytes)", flush=True)
    if not same:
        if old[0] != new[0]:
            print(f"          exit status {old[0]} != {new[0]}")
        for what, x, y in (("stdout", old[1], new[1]), ("stderr", old[2], new[2])):
            if x != y:
                print(f"          {what}: {first_difference(x, y)}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="source tree of the old code")
    parser.add_argument("--after", default=str(REPO), help="source tree of the new code")
    parser.add_argument("--format", action="append", choices=FORMATS, dest="formats")
    parser.add_argument("--single", action="append", default=None, help="also alone")
    parser.add_argument("inputs", nargs="*", default=list(DEFAULT_INPUTS))
    options = parser.parse_args()
    formats = options.formats or list(FORMATS)
    # Both trees run with their own directory as the working directory: absolute inputs.
    inputs = [os.path.abspath(i) for i in options.inputs]
    singles = options.single
    if singles is None:
        candidates = ("/usr/bin/curl", "/usr/bin/python3", "/usr/bin/gdb", "/usr/bin/podman")
        singles = [c for c in candidates if os.path.exists(c)]
    ok = True
    for fmt in formats:
        ok &= compare(options.before, options.after, ["--format", fmt, *inputs], fmt)
    for single in map(os.path.abspath, singles):
        for fmt in formats:
            ok &= compare(
                options.before, options.after, ["--format", fmt, single], f"{fmt} {single}"
            )
    print("all outputs identical" if ok else "OUTPUTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
