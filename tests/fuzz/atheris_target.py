"""Coverage-guided fuzzing of the whole pipeline with atheris (libFuzzer for Python).

    pip install -e '.[fuzz]'
    python3 tests/fuzz/atheris_target.py -max_total_time=600 -rss_limit_mb=4096 CORPUS_DIR

Each input is one file: analysed as /bin/input inside a small root (tests/fuzz/pipeline.py)
through inspect, annotate, every inspect format and every check format. An input whose
first byte is 0xFE is instead written as that root's /etc/ld.so.cache (the rest of it), for
the loader's cache parser, beside a real dynamic program. Seed CORPUS_DIR with the testbins
and tests/data/crashers; libFuzzer writes any crasher as crash-<sha1> in the working
directory: add it to tests/data/crashers/ and fix the cause.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))  # this checkout's scratchprobe and tests, not an installed one

with atheris.instrument_imports():
    from scratchprobe.errors import ScratchprobeError
    from tests.fuzz.pipeline import base_root, run_pipeline

os.environ["SCRATCHPROBE_DEBUG_INTERNAL"] = "1"  # the last resort must never be reached
ROOT = Path(tempfile.mkdtemp(prefix="scratchprobe-atheris-")) / "root"
base_root(ROOT)
(ROOT / "bin").mkdir()
PROGRAM = REPO / "testbins" / "built" / "c-glibc-dynamic"


def one_input(data: bytes) -> None:
    cache = ROOT / "etc" / "ld.so.cache"
    target = ROOT / "bin" / "input"
    if data[:1] == b"\xfe":
        cache.write_bytes(data[1:])
        target.write_bytes(PROGRAM.read_bytes())
    else:
        cache.unlink(missing_ok=True)
        target.write_bytes(data)
    # A one-line usage or root error (ScratchprobeError) is a correct answer.
    with contextlib.suppress(ScratchprobeError):
        run_pipeline(("/bin/input",), root=str(ROOT))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
