"""The default Dockerfile builds for every program: per-file COPY lines while the image stays
well below the 127-layer limit, one layer past MAX_COPY_LAYERS.

The proof is a plain `podman build` (layers on, as a user runs it) of ffmpeg, whose closure
is over 200 files: one COPY per file stops at step ~130 with "max depth exceeded".
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scratchprobe.render.copy import MAX_COPY_LAYERS
from scratchprobe.render.dockerfile import FILES_DIR, FILES_STAGE
from scratchprobe.sandbox import SandboxKind, SandboxSpec, run_host, run_sandboxed
from tests.conftest import REPO, TESTBINS, run_cli
from tests.helpers_sandbox import extract, needs_bwrap, needs_podman, tree_of

FFMPEG = "/usr/bin/ffmpeg"
needs_ffmpeg = pytest.mark.skipif(
    not Path(FFMPEG).exists(),
    reason="a 200+ library program is needed: apt-get install --no-install-recommends ffmpeg",
)
BUSYBOX = "/bin/busybox"


def _final_stage(dockerfile: str) -> list[str]:
    lines = dockerfile.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[start:]


def _layer_instructions(stage: list[str]) -> list[str]:
    return [line for line in stage if line.split(" ", 1)[0] in ("COPY", "ADD", "RUN")]


def _gathered(dockerfile: str) -> tuple[set[str], set[str]]:
    """Image paths the single-layer stage's scripts write below FILES_DIR: (files, links
    and copied directories; directories made)."""
    written: set[str] = set()
    made: set[str] = set()
    for line in dockerfile.splitlines():
        if not line.startswith("RUN "):
            continue
        for command in json.loads(line[4:])[2].split(" && "):
            words = shlex.split(command)
            target = words[-1].rstrip("/")
            if not target.startswith(FILES_DIR + "/"):
                continue
            image_path = target[len(FILES_DIR) :]
            if words[0] in ("cp", "ln", "printf"):
                written.add(image_path)
            elif words[0] == "mkdir":
                made.add(image_path)
    return written, made


def _assert_gathers(dockerfile: str, files: list[dict[str, str]]) -> None:
    written, made = _gathered(dockerfile)
    # Every entry with content (a copied file or directory, a link, a generated file) is
    # written exactly once, and every planned directory exists.
    assert written == {f["path"] for f in files if f["type"] != "directory" or "source" in f}
    assert {f["path"] for f in files if f["type"] == "directory"} <= made


def test_small_program_keeps_one_copy_per_file() -> None:
    binary = str(TESTBINS / "c-glibc-dynamic")
    dockerfile = run_cli("inspect", "--format", "dockerfile", binary).stdout
    copy = run_cli("inspect", "--format", "copy", binary).stdout.splitlines()
    assert FILES_STAGE not in dockerfile
    assert _layer_instructions(_final_stage(dockerfile)) == copy


def _many_host_programs(count: int) -> list[str]:
    programs = sorted(
        str(p) for p in Path("/usr/bin").iterdir() if p.is_file() and not p.is_symlink()
    )
    # Names COPY reads as patterns (/usr/bin/[) are left out: the copy format refuses them.
    elf = [
        p
        for p in programs
        if Path(p).read_bytes()[:4] == b"\x7fELF" and not any(c in p for c in "[*?\\")
    ]
    if len(elf) < count:
        pytest.skip(f"fewer than {count} ELF programs in /usr/bin")
    return elf[:count]


def test_many_files_give_one_layer() -> None:
    programs = _many_host_programs(MAX_COPY_LAYERS + 20)
    result = run_cli("inspect", "--format", "dockerfile", "--no-runtime", *programs)
    assert result.returncode in (0, 1), result.stderr
    dockerfile = result.stdout
    assert f"FROM builder AS {FILES_STAGE}" in dockerfile
    assert "(it needs /bin/sh, mkdir and cp)" in dockerfile
    assert _layer_instructions(_final_stage(dockerfile)) == [
        f"COPY --from={FILES_STAGE} {FILES_DIR}/ /"
    ]
    files = run_cli("inspect", "--format", "json", "--no-runtime", *programs).json()["files"]
    _assert_gathers(dockerfile, files)
    # The bare COPY lines would not build: the copy format says so.
    copy = run_cli("inspect", "--format", "copy", "--no-runtime", *programs).stdout.splitlines()
    count = sum(1 for line in copy if line.startswith("COPY "))
    assert count > MAX_COPY_LAYERS
    note = f"# {count} COPY lines, one layer each: an image may have at most 127 layers"
    assert copy[-1].startswith(note)
    text = run_cli("inspect", "--full", "--no-runtime", *programs).stdout.splitlines()
    assert any(line.startswith(note) for line in text)


@needs_ffmpeg
def test_ffmpeg_dockerfile_is_one_layer_with_every_file() -> None:
    result = run_cli("inspect", "--format", "dockerfile", FFMPEG)
    assert result.returncode == 0, result.stderr
    files = run_cli("inspect", "--format", "json", FFMPEG).json()["files"]
    assert len(files) > 200
    stage = _final_stage(result.stdout)
    assert _layer_instructions(stage) == [f"COPY --from={FILES_STAGE} {FILES_DIR}/ /"]
    # Generated entries (none for ffmpeg today) and copied ones alike are gathered.
    _assert_gathers(result.stdout, files)
    assert f"would give the image {len(files)} layers" in result.stdout


def _podman(*args: str) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def images() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in reversed(made):
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


@pytest.mark.podman
@pytest.mark.sandbox
@needs_podman
@needs_bwrap
@needs_ffmpeg
def test_ffmpeg_image_builds_with_layers_on(tmp_path: Path, images: list[str]) -> None:
    if not Path(BUSYBOX).exists():
        pytest.skip("the builder's shell is a static busybox: apt-get install busybox-static")
    if not Path("/usr/share/zoneinfo/Europe/Paris").is_file():
        pytest.skip("the host has no tzdata: apt-get install tzdata")
    # The default form, with entries COPY cannot express as well: /tmp 1777 and the
    # /etc/localtime symlink come from the same gathering stage.
    planning = ("--with", "tmp", "--tz", "Europe/Paris", FFMPEG)
    printed = run_cli("inspect", "--format", "dockerfile", *planning)
    assert printed.returncode == 0, printed.stderr
    files = run_cli("inspect", "--format", "json", *planning).json()["files"]
    # A builder holding the plan's sources at their paths (directories with their links),
    # and the shell and tools the gathering stage says it needs: one static busybox.
    archive = tmp_path / "builder.tar"
    with tarfile.open(archive, "w") as tar:
        sources = sorted({entry["source"] for entry in files if "source" in entry})
        for source in sources:
            # Once each, and not again inside a directory already added whole.
            if not any(source.startswith(other + "/") for other in sources):
                tar.add(source, arcname=source.lstrip("/"))
        tar.add(BUSYBOX, arcname="bin/busybox")
        for tool in ("sh", "mkdir", "cp", "chmod", "ln", "printf"):
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    builder = f"localhost/scratchprobe-test-builder-{uuid.uuid4().hex[:12]}"
    images.append(builder)
    _podman("import", "--change", "ENV PATH=/bin", str(archive), builder)
    archive.unlink()
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {builder} AS builder\n{printed.stdout}")
    tag = f"localhost/scratchprobe-test-image-{uuid.uuid4().hex[:12]}"
    images.append(tag)
    # Layers on: exactly what a user's `podman build` does.
    _podman("build", "--isolation=chroot", "-t", tag, str(context))
    layers = _podman("image", "inspect", "--format", "{{len .RootFS.Layers}}", tag).strip()
    assert layers == "1"
    container = f"scratchprobe-test-{uuid.uuid4().hex[:12]}"
    images.append(container)
    _podman("create", "--name", container, tag)
    exported = tmp_path / "image.tar"
    _podman("export", "-o", str(exported), container)
    with tarfile.open(exported) as layer:
        members = {m.name.strip("./"): m for m in layer.getmembers()}
    assert members["tmp"].mode & 0o7777 == 0o1777
    assert members["etc/localtime"].linkname == "/usr/share/zoneinfo/Europe/Paris"
    image_root = extract(exported, tmp_path / "image")
    exported.unlink()
    for entry in files:
        assert (image_root / entry["path"].lstrip("/")).exists(), entry["path"]
    argv = (FFMPEG, "-hide_banner", "-version")
    image = run_sandboxed(SandboxSpec(argv=argv, root=str(image_root)), SandboxKind.BWRAP, 120)
    host = run_host(argv, (), 120)
    assert image.succeeded, image
    assert (image.exit_status, image.stdout) == (host.exit_status, host.stdout)
    assert image.stdout.startswith(b"ffmpeg version ")


# The builder-stage recipe: the single-file zipapp built from this checkout.
BUILDER_PYTHON = "/usr/bin/python3"


def _build_zipapp(output: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools/build_zipapp.py"), "-o", str(output)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    return output


def _system_python_ok() -> bool:
    if not Path(BUILDER_PYTHON).exists():
        return False
    proc = subprocess.run(
        [BUILDER_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() == "True"


needs_system_python = pytest.mark.skipif(
    not _system_python_ok(), reason=f"no {BUILDER_PYTHON} >= 3.11 (apt-get install python3)"
)


@needs_system_python
def test_zipapp_runs_on_a_bare_python(tmp_path: Path) -> None:
    first = _build_zipapp(tmp_path / "a.pyz")
    second = _build_zipapp(tmp_path / "b.pyz")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(first, os.X_OK)
    # Isolated mode, empty environment, outside the checkout: nothing but the archive and
    # the standard library is importable.
    bare = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [BUILDER_PYTHON, "-I", str(first), "inspect", "--format", "copy", "/usr/bin/ls"],
        capture_output=True,
        text=True,
        check=False,
        env=bare,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run_cli("inspect", "--format", "copy", "/usr/bin/ls").stdout


def _merged_usr() -> bool:
    return all(os.path.islink(f"/{d}") for d in ("bin", "lib", "lib64"))


@pytest.mark.podman
@pytest.mark.sandbox
@needs_podman
@needs_bwrap
@needs_system_python
def test_rootfs_stage_with_the_zipapp(tmp_path: Path, images: list[str]) -> None:
    """The README's recipe: COPY the zipapp into the builder, append the `--rootfs-stage`
    Dockerfile, build. The builder is the host's /usr (its Debian python3, without any of
    scratchprobe's dependencies) and nothing of this checkout."""
    if not _merged_usr():
        pytest.skip("the builder borrows the host's /usr, which needs a merged-/usr host")
    program = "/usr/bin/ls"
    printed = run_cli("inspect", "--format", "dockerfile", "--rootfs-stage", program)
    assert printed.returncode == 0, printed.stderr
    context = tmp_path / "context"
    context.mkdir()
    _build_zipapp(context / "scratchprobe.pyz")
    layout = tmp_path / "builder"
    for directory in ("etc", "tmp", "usr", "opt/bin"):
        (layout / directory).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (layout / link).symlink_to(f"usr/{link}")
    # ls looks users up: the builder's passwd and group are what the plan copies.
    for name in ("passwd", "group"):
        (layout / "etc" / name).write_bytes(Path("/etc", name).read_bytes())
    archive = tmp_path / "builder.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    builder = f"localhost/scratchprobe-test-builder-{uuid.uuid4().hex[:12]}"
    images.append(builder)
    _podman("import", "--change", "ENV PATH=/opt/bin:/usr/bin:/bin", str(archive), builder)
    # /usr is mounted read-only into the build, so the zipapp goes to /opt/bin (the README
    # puts it in /usr/local/bin of a real builder image).
    (context / "Dockerfile").write_text(
        f"FROM {builder} AS builder\nCOPY scratchprobe.pyz /opt/bin/scratchprobe\n" + printed.stdout
    )
    tag = f"localhost/scratchprobe-test-image-{uuid.uuid4().hex[:12]}"
    images.append(tag)
    _podman("build", "--isolation=chroot", "--volume=/usr:/usr:ro", "-t", tag, str(context))
    container = f"scratchprobe-test-{uuid.uuid4().hex[:12]}"
    images.append(container)
    _podman("create", "--name", container, tag)
    exported = tmp_path / "image.tar"
    _podman("export", "-o", str(exported), container)
    image_root = extract(exported, tmp_path / "image")
    written = tmp_path / "written"
    assert run_cli("rootfs", program, "--output", str(written)).returncode == 0
    assert tree_of(image_root) == tree_of(written)
    argv = (program, "--version")
    image = run_sandboxed(SandboxSpec(argv=argv, root=str(image_root)), SandboxKind.BWRAP, 60)
    host = run_host(argv, (), 60)
    assert image.succeeded, image
    assert (image.exit_status, image.stdout) == (host.exit_status, host.stdout)
