"""Proof through a real image build: the Dockerfile scratchprobe prints builds an image whose
filesystem runs the binary exactly like the host does.

The builder image is made from the host, so that the COPY sources are real:
- COPY style: a builder holding exactly the files the COPY lines name, at their paths;
- rootfs-stage style: a builder that runs `scratchprobe rootfs` itself, with /usr, Python and
  this source tree mounted into the build (podman build --volume), merged-/usr symlinks, and a
  `scratchprobe` launcher on PATH.
The image is exported (`podman create` + `podman export`), unpacked, and the binary run from it
under bubblewrap: `podman run` needs more than this test may assume.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scratchprobe.sandbox import SandboxKind, SandboxSpec, run_host, run_sandboxed
from tests.conftest import REPO, TESTBINS, run_cli, skip_unless_host_loads
from tests.helpers_sandbox import extract, needs_bwrap, needs_podman, tree_of

pytestmark = [pytest.mark.podman, pytest.mark.sandbox, needs_podman, needs_bwrap]

COPY_FROM_BUILDER = re.compile(r"^COPY --from=builder (\S+) (\S+)$")


def podman(*args: str) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def images() -> Iterator[list[str]]:
    """Names of images and containers the test makes; all removed afterwards."""
    made: list[str] = []
    yield made
    for name in reversed(made):
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


def import_builder(layout: Path, images: list[str], change: str | None = None) -> str:
    archive = layout.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    name = f"localhost/scratchprobe-test-builder-{uuid.uuid4().hex[:12]}"
    images.append(name)
    podman("import", *(["--change", change] if change else []), str(archive), name)
    return name


def build_and_export(
    dockerfile: str, work: Path, images: list[str], volumes: tuple[str, ...] = ()
) -> Path:
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    tag = f"localhost/scratchprobe-test-image-{uuid.uuid4().hex[:12]}"
    images.append(tag)
    flags = [f"--volume={v}:{v}:ro" for v in volumes]
    podman("build", "--isolation=chroot", "--layers=false", *flags, "-t", tag, str(context))
    container = f"scratchprobe-test-{uuid.uuid4().hex[:12]}"
    images.append(container)
    podman("create", "--name", container, tag)
    exported = work / "image.tar"
    podman("export", "-o", str(exported), container)
    return extract(exported, work / "image")


def assert_runs_like_the_host(image_root: Path, binary: str) -> None:
    image = run_sandboxed(
        SandboxSpec(argv=(binary, "arg"), root=str(image_root)), SandboxKind.BWRAP, 60
    )
    host = run_host((binary, "arg"), (), 60)
    assert image.succeeded, image
    assert (image.exit_status, image.stdout, image.stderr) == (
        host.exit_status,
        host.stdout,
        host.stderr,
    )


@pytest.mark.parametrize(
    "name", ["c-glibc-dynamic", "c-musl-dynamic", "cpp-dynamic", "c-glibc-static", "go-static"]
)
def test_copy_lines_build_a_working_image(name: str, tmp_path: Path, images: list[str]) -> None:
    skip_unless_host_loads(name)
    binary = str(TESTBINS / name)
    printed = run_cli("inspect", "--format", "dockerfile", binary)
    assert printed.returncode == 0, printed.stderr
    # A builder holding exactly the files the COPY lines copy, at the paths they name.
    builder = tmp_path / "builder"
    sources = []
    for line in printed.stdout.splitlines():
        match = COPY_FROM_BUILDER.match(line)
        if match:
            sources.append(match.group(1))
            target = builder / match.group(1).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(match.group(1)).read_bytes())
            target.chmod(0o755)
    assert binary in sources
    name_of_builder = import_builder(builder, images)
    dockerfile = f"FROM {name_of_builder} AS builder\n{printed.stdout}"
    image_root = build_and_export(dockerfile, tmp_path, images)
    files = run_cli("inspect", "--format", "json", binary).json()["files"]
    tree = tree_of(image_root)
    assert {f["path"] for f in files} <= {p for p, kind in tree.items() if kind == "file"}
    assert_runs_like_the_host(image_root, binary)


def _merged_usr() -> bool:
    return all(os.path.islink(f"/{d}") for d in ("bin", "lib", "lib64"))


@pytest.mark.parametrize("name", ["c-glibc-dynamic", "c-musl-dynamic"])
def test_rootfs_stage_builds_a_working_image(name: str, tmp_path: Path, images: list[str]) -> None:
    if not _merged_usr():
        pytest.skip("the builder borrows the host's /usr, which needs a merged-/usr host")
    skip_unless_host_loads(name)
    binary = str(TESTBINS / name)
    printed = run_cli("inspect", "--format", "dockerfile", "--rootfs-stage", binary)
    assert printed.returncode == 0, printed.stderr
    builder = tmp_path / "builder"
    for directory in ("etc", "tmp", "opt/scratchprobe/bin", "usr"):
        (builder / directory).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (builder / link).symlink_to(f"usr/{link}")
    launcher = builder / "opt/scratchprobe/bin/scratchprobe"
    # A venv's python is a symlink to the base interpreter (pyenv: under ~/.pyenv), and it
    # finds the venv through the pyvenv.cfg beside the link: run the link by its real
    # directory and mount the base installation too, so the link resolves in the build.
    python = os.path.join(
        os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable)
    )
    # buildah looks the RUN program up in the image itself, not in the mounted volumes.
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {python} -m scratchprobe "$@"\n')
    launcher.chmod(0o755)
    name_of_builder = import_builder(
        builder, images, change="ENV PATH=/opt/scratchprobe/bin:/usr/bin:/bin"
    )
    dockerfile = f"FROM {name_of_builder} AS builder\n{printed.stdout}"
    volumes = {
        "/usr",
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
        str(REPO),
        str(TESTBINS),
    }
    needed = tuple(
        v for v in sorted(volumes) if not any(v.startswith(o + "/") for o in volumes if o != v)
    )
    image_root = build_and_export(dockerfile, tmp_path, images, needed)
    # The image holds what `scratchprobe rootfs` writes, and nothing of the builder.
    written = tmp_path / "written"
    assert run_cli("rootfs", binary, "--output", str(written)).returncode == 0
    assert tree_of(image_root) == tree_of(written)
    assert_runs_like_the_host(image_root, binary)


def test_copy_lines_with_generated_entries(tmp_path: Path, images: list[str]) -> None:
    """Entries COPY cannot express (a generated nsswitch.conf, /tmp with mode 1777) come
    from the small stage the Dockerfile builds on the builder, and the program works."""
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("the builder's shell is a static busybox: apt-get install busybox-static")
    runtime = TESTBINS / "runtime"
    binaries = [str(runtime / "c-mkstemp"), str(runtime / "c-getaddrinfo")]
    printed = run_cli("inspect", "--format", "dockerfile", *binaries)
    assert printed.returncode == 0, printed.stderr
    assert "FROM builder AS scratchprobe-generated" in printed.stdout
    builder = tmp_path / "builder"
    for line in printed.stdout.splitlines():
        match = COPY_FROM_BUILDER.match(line)
        if match:
            target = builder / match.group(1).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(match.group(1)).read_bytes())
            target.chmod(0o755)
    # A builder's shell and the two tools the stage uses: one static busybox.
    (builder / "bin").mkdir()
    (builder / "bin/busybox").write_bytes(Path(busybox).read_bytes())
    (builder / "bin/busybox").chmod(0o755)
    for tool in ("sh", "mkdir", "chmod", "ln", "printf"):
        (builder / "bin" / tool).symlink_to("busybox")
    name_of_builder = import_builder(builder, images, change="ENV PATH=/bin")
    # Two binaries give no ENTRYPOINT; `podman create` wants a command to record.
    command = json.dumps([binaries[0]])
    dockerfile = f"FROM {name_of_builder} AS builder\n{printed.stdout}CMD {command}\n"
    image_root = build_and_export(dockerfile, tmp_path, images)
    # The exported layer itself (extraction with the "tar" filter drops the sticky bit).
    with tarfile.open(tmp_path / "image.tar") as exported:
        modes = {m.name.strip("./"): m.mode for m in exported.getmembers()}
    assert modes["tmp"] & 0o7777 == 0o1777
    nsswitch = (image_root / "etc/nsswitch.conf").read_text()
    assert "hosts:     files dns" in nsswitch
    run = run_sandboxed(
        SandboxSpec(argv=(binaries[0],), root=str(image_root)), SandboxKind.BWRAP, 60
    )
    assert run.succeeded, run
    assert run.stdout == b"ok\n"
