"""The learned includes end up in the Dockerfile, and the image podman builds from it runs.

A program that sets the locale named on its command line (static analysis cannot know which)
is traced, its misses learned, and `inspect --format dockerfile --include-from` prints COPY
lines for them; the builder image holds exactly the files those lines name (copied from the
host), and the exported image runs the program like the host does.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scratchprobe.sandbox import SandboxKind, SandboxSpec, run_host, run_sandboxed
from tests.conftest import run_cli
from tests.helpers_sandbox import extract, needs_bwrap, needs_podman
from tests.proof.podman.test_podman import COPY_FROM_BUILDER, import_builder, podman
from tests.proof.sandbox.test_trace import compile_locale_program, needs_strace

pytestmark = [pytest.mark.podman, pytest.mark.sandbox, needs_podman, needs_bwrap, needs_strace]


@pytest.fixture
def made() -> Iterator[list[str]]:
    """Images and containers the test makes; all removed afterwards."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


def test_learned_includes_build_a_working_image(tmp_path: Path, made: list[str]) -> None:
    binary = compile_locale_program(tmp_path)
    learn = tmp_path / "learn.toml"
    trace_args = ("--trace", "--compare", "--rounds", "4", "--learn", str(learn))
    traced = run_cli("verify", *trace_args, str(binary), "--", "C.UTF-8")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    plan_args = ("--format", "dockerfile", "--include-from", str(learn), str(binary))
    printed = run_cli("inspect", *plan_args)
    assert printed.returncode == 0, printed.stderr
    assert "COPY --from=builder /usr/lib/locale/C.utf8 /usr/lib/locale/C.utf8" in printed.stdout
    builder = tmp_path / "builder"
    for line in printed.stdout.splitlines():
        match = COPY_FROM_BUILDER.match(line)
        if match is None:
            continue
        source = Path(match.group(1))
        target = builder / match.group(1).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copyfile(source, target)
            target.chmod(0o755)
    assert "FROM builder AS scratchprobe-generated" not in printed.stdout
    name = import_builder(builder, made)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {name} AS builder\n{printed.stdout}")
    tag = f"localhost/scratchprobe-test-trace-{uuid.uuid4().hex[:12]}"
    made.append(tag)
    podman("build", "--isolation=chroot", "--layers=false", "-t", tag, str(context))
    container = f"scratchprobe-test-trace-{uuid.uuid4().hex[:12]}"
    made.append(container)
    podman("create", "--name", container, tag)
    exported = tmp_path / "image.tar"
    podman("export", "-o", str(exported), container)
    image = extract(exported, tmp_path / "image")
    assert (image / "usr/lib/locale/C.utf8/LC_CTYPE").is_file()
    argv = (str(binary), "C.UTF-8")
    run = run_sandboxed(SandboxSpec(argv=argv, root=str(image)), SandboxKind.BWRAP, 60)
    host = run_host(argv, (), 60)
    assert run.succeeded, run
    assert (run.exit_status, run.stdout, run.stderr) == (host.exit_status, host.stdout, host.stderr)
    assert run.stdout == b"UTF-8 3\n"
