"""A real podman build of the Dockerfile for hostile names copies exactly the planned files
(the renderers' escaping is tested in tests/unit/render/test_output_escaping.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TESTBINS
from tests.helpers_sandbox import needs_podman, tree_of
from tests.unit.render.test_output_escaping import build_image, run


@pytest.mark.podman
@needs_podman
def test_podman_build_copies_exactly_the_hostile_names(tmp_path: Path) -> None:
    """`podman build` (Buildah) of the printed Dockerfile puts each file at exactly its
    name: `${X:-b}` is not expanded, quotes are not removed, the space splits nothing."""
    names = ["/bin/a${X:-b}", "/bin/a$X", "/opt/sp ace\"q/it's"]
    builder = tmp_path / "builder"
    for name in names:
        target = builder / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TESTBINS / "c-glibc-static", target)
        target.chmod(0o755)
    printed = run("inspect", "--root", str(builder), "--format", "dockerfile", *names)
    assert printed.returncode == 0, printed.stderr
    made: list[str] = []
    try:
        image_root = build_image(builder, printed.text() + 'CMD ["/x"]\n', tmp_path, made)
    finally:
        for name in reversed(made):
            subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
            subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)
    files = {path for path, kind in tree_of(image_root).items() if kind == "file"}
    assert files == set(names)
    for name in names:
        assert (image_root / name.lstrip("/")).read_bytes() == (
            TESTBINS / "c-glibc-static"
        ).read_bytes()
