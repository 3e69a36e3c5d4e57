"""`scratchprobe image` read by the real tools, and the image run.

- umoci unpacks the OCI layout, skopeo inspects all three formats, skopeo copies the OCI
  archive into containers-storage with the same manifest digest, podman loads the
  docker-archive;
- the loaded image is exported (`podman create` + `podman export`: `podman run` needs more
  than this test may assume) and its programs do their real job under bubblewrap, with the
  image's ENV: curl's TLS handshake with a local server, a zone conversion, a user lookup;
- a two-platform index (amd64 + arm64 from Debian's cross sysroot): skopeo picks each
  platform, and the arm64 image runs under qemu-aarch64-static;
- `skopeo copy` pushes the archive to a local registry (Debian's docker-registry on
  127.0.0.1) and the registry serves the same digest.

Podman is slow on a shared machine: one image is built and loaded per module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.sandbox import Mount, MountKind, SandboxKind, SandboxSpec, emulator_for
from scratchprobe.sandbox import run_sandboxed as sandboxed
from scratchprobe.verify import provide_runtime_files
from tests.conftest import TESTBINS
from tests.helpers_sandbox import extract, needs_bwrap, needs_podman, tree_of
from tests.image_helpers import Layout, image_cli, open_archive, two_platform_roots
from tests.sandbox_probe import run_in_root
from tests.tls_fixture import BODY, https_server

pytestmark = [pytest.mark.sandbox]

CURL = "/usr/bin/curl"
LOCALTIME = str(TESTBINS / "runtime" / "c-localtime")
GETPWNAM = str(TESTBINS / "runtime" / "c-getpwnam")
PARIS = "2023-11-14 23:13 CET\n"


def tool(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(name) is None, reason=f"{name} is not installed")


def run(*argv: str, timeout: float = 300) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


def run_bytes(*argv: str, timeout: float = 300) -> bytes:
    proc = subprocess.run(argv, capture_output=True, check=False, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr!r}"
    return proc.stdout


@dataclass(frozen=True)
class Built:
    tag: str
    layout: Path
    archive: Path
    docker: Path
    digest: str
    """The image manifest's digest (the same in the layout and the OCI archive)."""
    config: dict[str, Any]
    tree: dict[str, str]
    """What the layers give, unpacked in order (tree_of)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """curl, a zone conversion and a user lookup in one image, in all three formats, each
    with its SBOM referrer beside the image (every tool below must pick the image by tag)."""
    if not Path(CURL).exists():
        pytest.skip("curl is not installed")
    work = tmp_path_factory.mktemp("image")
    tag = f"localhost/scratchprobe-image-test:{uuid.uuid4().hex[:12]}"
    args = (CURL, LOCALTIME, GETPWNAM, "--tz", "Europe/Paris", "--user", "scratchprobe",
            "--generate-etc", "--tag", tag, "--sbom")  # fmt: skip
    outputs = {
        "layout": work / "layout",
        "archive": work / "image.tar",
        "docker": work / "docker.tar",
    }
    for name, path in outputs.items():
        extra = ("--format", "docker-archive") if name == "docker" else ()
        result = image_cli(*args, *extra, "-o", str(path))
        assert result.returncode == 0, result.stderr
    layout = Layout(outputs["layout"])
    (descriptor,) = layout.images()
    manifest = layout.manifest(descriptor)
    in_archive = open_archive(outputs["archive"], work / "archive.d").images()[0]["digest"]
    assert in_archive == descriptor["digest"]
    tree = tree_of(layout.unpack(manifest, work / "unpacked"))
    return Built(
        tag,
        outputs["layout"],
        outputs["archive"],
        outputs["docker"],
        descriptor["digest"],
        layout.config(manifest),
        tree,
    )


@tool("umoci")
def test_umoci_unpacks_the_layout_to_the_same_tree(built: Built, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{built.layout}:{built.tag}", str(bundle))
    assert tree_of(bundle / "rootfs") == built.tree
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["args"] == [CURL]
    # umoci resolved USER scratchprobe through the image's own /etc/passwd.
    assert spec["process"]["user"]["uid"] == 10001
    assert "TZ=Europe/Paris" in spec["process"]["env"]


@tool("skopeo")
def test_skopeo_inspects_every_format(built: Built) -> None:
    for reference in (
        f"oci:{built.layout}:{built.tag}",
        f"oci-archive:{built.archive}:{built.tag}",
    ):
        info = json.loads(run("skopeo", "inspect", reference))
        assert info["Digest"] == built.digest
        assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
        assert len(info["Layers"]) == 3
    docker = json.loads(run("skopeo", "inspect", f"docker-archive:{built.docker}"))
    assert docker["Architecture"] == "amd64"
    assert docker["Layers"] == built.config["rootfs"]["diff_ids"]
    assert docker["Env"] == built.config["config"]["Env"]


@pytest.fixture(scope="module")
def loaded_root(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`podman load` of the docker-archive, then create + export, unpacked."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    work = tmp_path_factory.mktemp("loaded")
    loaded = run("podman", "load", "-i", str(built.docker))
    name = loaded.strip().rsplit("Loaded image: ", 1)[-1].strip()
    container = f"scratchprobe-image-test-{uuid.uuid4().hex[:12]}"
    try:
        run("podman", "create", "--name", container, name)
        exported = work / "exported.tar"
        run("podman", "export", "-o", str(exported), container)
        yield extract(exported, work / "root")
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


def _env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["config"].get("Env", []))


@needs_podman
@needs_bwrap
@pytest.mark.podman
def test_podman_loaded_image_does_the_real_jobs(built: Built, loaded_root: Path) -> None:
    # podman added nothing and lost nothing, except what a runtime mounts at create time.
    mounted = ("/dev", "/proc", "/sys", "/run", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
    exported = {p: k for p, k in tree_of(loaded_root).items() if not p.startswith(mounted)}
    assert exported == built.tree
    provide_runtime_files(str(loaded_root), ())
    env = _env(built.config)
    zone = run_in_root(loaded_root, [LOCALTIME, "Europe/Paris"], env=env)
    assert (zone.returncode, zone.stdout) == (0, PARIS), zone.stderr
    user = run_in_root(loaded_root, [GETPWNAM, "scratchprobe"], env=env)
    assert (user.returncode, user.stdout) == (0, "10001:10001:/home/scratchprobe\n"), user.stderr
    bundle = next(
        p for p in ("/etc/ssl/certs/ca-certificates.crt",) if (loaded_root / p[1:]).is_file()
    )
    with https_server() as (port, ca_pem):
        # The builder's bundle stands for one that trusts the test CA: same path, its content.
        shutil.copyfile(ca_pem, loaded_root / bundle[1:])
        fetched = run_in_root(loaded_root, [CURL, "-sS", f"https://127.0.0.1:{port}/"], env=env)
    assert (fetched.returncode, fetched.stdout.encode()) == (0, BODY), fetched.stderr


@needs_podman
@pytest.mark.podman
@tool("skopeo")
def test_skopeo_copies_the_archive_into_containers_storage(built: Built) -> None:
    name = f"localhost/scratchprobe-image-copy:{uuid.uuid4().hex[:12]}"
    try:
        run("skopeo", "copy", "-q", f"oci-archive:{built.archive}:{built.tag}",
            f"containers-storage:{name}")  # fmt: skip
        # The store keeps the manifest as it was: the same bytes, the same digest. (podman's
        # .Digest is not used: an image with the same config loaded before keeps its own.)
        raw = run_bytes("skopeo", "inspect", "--raw", f"containers-storage:{name}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == built.digest
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


# ------------------------------------------------------------------------- multi-platform


@tool("skopeo")
@tool("umoci")
@needs_bwrap
def test_two_platform_index_runs_each_platform(tmp_path: Path) -> None:
    amd64, arm64 = two_platform_roots(tmp_path)
    out = tmp_path / "multi"
    result = image_cli("--root", str(amd64), "--root", str(arm64), "/app/hello", "--tag",
                       "hello:multi", "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci:{out}:hello:multi"))
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    for arch, expected in (("amd64", "hello from c-glibc-dynamic\n"),
                           ("arm64", "hello from hello-aarch64\n")):  # fmt: skip
        single = tmp_path / f"single-{arch}"
        run("skopeo", "--override-arch", arch, "copy", "-q", f"oci:{out}:hello:multi",
            f"oci:{single}:{arch}")  # fmt: skip
        bundle = tmp_path / f"bundle-{arch}"
        run("umoci", "unpack", "--image", f"{single}:{arch}", str(bundle))
        rootfs = bundle / "rootfs"
        emulator = emulator_for("aarch64" if arch == "arm64" else "x86_64")
        argv: tuple[str, ...] = ("/app/hello",)
        mounts: tuple[Mount, ...] = ()
        if emulator is not None:
            argv = (emulator.image_path, *argv)
            mounts = (Mount(MountKind.RO_BIND, emulator.image_path, emulator.host_path),)
        ran = sandboxed(SandboxSpec(argv=argv, root=str(rootfs), mounts=mounts),
                        SandboxKind.BWRAP, 60)  # fmt: skip
        assert ran.succeeded, ran
        assert ran.stdout.decode() == expected


# ------------------------------------------------------------------------------ registry


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry serving on 127.0.0.1 (a free port), storage in tmp_path."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    with subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as server:
        try:
            for _ in range(100):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if server.poll() is not None:
                    pytest.fail(
                        f"docker-registry exited: {server.stderr.read() if server.stderr else ''!r}"
                    )
                time.sleep(0.1)
            else:
                pytest.fail("docker-registry did not listen within 10 s")
            yield f"127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


@tool("skopeo")
def test_skopeo_pushes_the_archive_to_a_local_registry(built: Built, registry: str) -> None:
    target = f"docker://{registry}/app:1"
    run("skopeo", "copy", "-q", "--dest-tls-verify=false",
        f"oci-archive:{built.archive}:{built.tag}", target)  # fmt: skip
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", target))
    assert info["Digest"] == built.digest


@tool("skopeo")
def test_skopeo_pushes_a_two_platform_index(tmp_path: Path, registry: str) -> None:
    amd64, arm64 = two_platform_roots(tmp_path)
    archive = tmp_path / "multi.tar"
    result = image_cli("--root", str(amd64), "--root", str(arm64), "/app/hello", "--tag",
                       "hello:multi", "-o", str(archive))  # fmt: skip
    assert result.returncode == 0, result.stderr
    layout = open_archive(archive, tmp_path / "multi.d")
    (top,) = layout.images()
    index_digest = top["digest"]
    arm_manifest = layout.manifest(layout.json_blob(top)["manifests"][1])
    target = f"docker://{registry}/hello:multi"
    run("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
        f"oci-archive:{archive}:hello:multi", target)  # fmt: skip
    raw = run_bytes("skopeo", "inspect", "--raw", "--tls-verify=false", target)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_digest
    arm = json.loads(run("skopeo", "--override-arch", "arm64", "inspect", "--tls-verify=false",
                         target))  # fmt: skip
    assert arm["Architecture"] == "arm64"
    # The registry serves the arm64 manifest of the index: its layers are ours.
    assert arm["Layers"] == [layer["digest"] for layer in arm_manifest["layers"]]
