"""The helper-program need, proven by running: the program works with its helper in the image
and fails without it (the detection is tested in tests/unit/needs/test_helpers_need.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scratchprobe.sandbox import SandboxKind, SandboxSpec, run_sandboxed
from tests.conftest import run_cli
from tests.helpers_sandbox import needs_bwrap
from tests.unit.needs.test_helpers_need import build_demo_root


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    return build_demo_root(tmp_path)


@pytest.mark.sandbox
@needs_bwrap
def test_helper_in_the_image_is_what_makes_the_program_work(
    demo_root: Path, tmp_path: Path
) -> None:
    spec_args = ("--root", str(demo_root), "/usr/bin/sp-demo")
    without = tmp_path / "without"
    assert run_cli("rootfs", *spec_args, "--output", str(without)).returncode == 0
    run = run_sandboxed(
        SandboxSpec(argv=("/usr/bin/sp-demo",), root=str(without)), SandboxKind.BWRAP, 60
    )
    assert run.exit_status == 127
    with_helpers = tmp_path / "with"
    written = run_cli("rootfs", "--with", "helpers", *spec_args, "--output", str(with_helpers))
    assert written.returncode == 0, written.stderr
    run = run_sandboxed(
        SandboxSpec(argv=("/usr/bin/sp-demo",), root=str(with_helpers)), SandboxKind.BWRAP, 60
    )
    assert run.succeeded, run
    assert run.stdout == b"helper ran\n"
