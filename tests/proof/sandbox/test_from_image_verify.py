"""verify --from-image runs the slim root beside the original one, also an arm64 image of an
index under qemu (the images are crafted as in tests/unit/source/test_from_image.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TESTBINS
from tests.from_image_helpers import (
    Image,
    binary_members,
    layer_tar,
    oci_archive,
)
from tests.helpers_sandbox import needs_bwrap
from tests.image_helpers import AARCH64_ROOT
from tests.unit.source.test_from_image import _arm64_layer, _cli


@needs_bwrap
@pytest.mark.sandbox
def test_verify_compares_the_original_root_with_the_slim_root(tmp_path: Path) -> None:
    hello = TESTBINS / "c-glibc-dynamic"
    layout = tmp_path / "layout"
    assert _cli(tmp_path, "image", str(hello), "--output", str(layout)).returncode == 0
    result = _cli(tmp_path, "verify", "--from-image", str(layout), "--compare")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comparison: exit status matches, stdout matches, stderr matches" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("PASS: ")


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.skipif(not (AARCH64_ROOT / "lib" / "libc.so.6").exists(), reason="no arm64 sysroot")
def test_verify_runs_the_arm64_image_of_an_index_under_qemu(tmp_path: Path) -> None:
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        pytest.skip("qemu-user-static is not installed")
    amd64 = Image([layer_tar(binary_members())])
    arm64 = Image([_arm64_layer()], architecture="arm64")
    archive = oci_archive(tmp_path / "index.tar", amd64, arm64)
    result = _cli(
        tmp_path, "verify", "--from-image", str(archive), "--platform", "linux/arm64", "--compare"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(aarch64)" in result.stdout.splitlines()[0]
    assert "qemu-aarch64-static" in result.stdout
    assert "comparison: exit status matches, stdout matches, stderr matches" in result.stdout
