"""`InspectOptions.sizes`: an output that shows no size plans the same files unmeasured."""

from __future__ import annotations

from dataclasses import replace

from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect
from tests.conftest import TESTBINS, RootBuilder, glibc_base


def test_without_sizes_the_plan_is_the_same_and_the_runtime_files_weigh_nothing(
    make_root: RootBuilder,
) -> None:
    zone = TESTBINS / "runtime" / "c-localtime"  # any file: its bytes are the zone's
    root = make_root({**glibc_base(), "/app": TESTBINS / "runtime" / "c-localtime",
                      "/usr/share/zoneinfo/UTC": zone})  # fmt: skip
    options = InspectOptions(root=str(root))
    measured = inspect(("/app",), options).plan
    unmeasured = inspect(("/app",), replace(options, sizes=False)).plan
    zoneinfo = "/usr/share/zoneinfo"
    assert [replace(f, size=0) for f in measured.files] == [
        replace(f, size=0) for f in unmeasured.files
    ]
    before = {f.path: f.size for f in measured.files}
    after = {f.path: f.size for f in unmeasured.files}
    assert before[zoneinfo] == zone.stat().st_size
    assert after[zoneinfo] == 0
    # The ELF objects keep their sizes: they are known without a walk.
    assert after["/app"] == before["/app"] > 0
