"""Slimming real images: a Debian bookworm root made by mmdebstrap from the package mirror
during the test run (once per session), turned into images by podman (import, and
`podman build --isolation=chroot` for what a Containerfile adds), saved in both archive
formats. Each is slimmed with `scratchprobe image --from-image`, loaded by podman, exported
(podman create + export) and run under bubblewrap; its real job is compared with the
original image's. Skips with the reason when mmdebstrap, podman, bwrap or the mirror is
missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CliResult, run_cli
from tests.from_image_helpers import exported_root, run_tool
from tests.helpers_sandbox import needs_bwrap, needs_podman
from tests.sandbox_probe import run_in_root
from tests.tls_fixture import BODY, https_server

pytestmark = [needs_podman, needs_bwrap, pytest.mark.podman]

PARIS = "2023-11-14 23:13 CET\n"
GO_TZ = """package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	loc, err := time.LoadLocation(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(time.Unix(1700000000, 0).In(loc).Format("2006-01-02 15:04 MST"))
}
"""


@dataclass
class Images:
    work: Path
    tag: str
    names: dict[str, str]
    """image kind -> podman name"""


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    work = tmp_path_factory.mktemp("debian-images")
    base_tar = work / "base.tar"
    build = subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=essential",
            "--include=curl,ca-certificates,tzdata",
            "bookworm",
            str(base_tar),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if build.returncode != 0:
        last = (build.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"mmdebstrap could not build a bookworm root (mirror unreachable?): {last}")
    tag = uuid.uuid4().hex[:12]
    names = {"base": f"localhost/sp-slim-base:{tag}"}
    run_tool("podman", "import", "-q", str(base_tar), names["base"])
    base_tar.unlink()
    context = work / "context"
    context.mkdir()
    containerfiles = {
        "curl": f"FROM {names['base']}\nENV LANG=C.UTF-8\nWORKDIR /srv\nEXPOSE 8080/tcp\n"
        "LABEL org.opencontainers.image.title=curl\nSTOPSIGNAL SIGQUIT\n"
        'ENTRYPOINT ["curl"]\nCMD ["--version"]\n',
    }
    if shutil.which("go") is not None:
        (context / "main.go").write_text(GO_TZ)
        env = {
            **os.environ,
            "CGO_ENABLED": "0",
            "GOCACHE": str(work / "gocache"),
            "GOPATH": str(work / "gopath"),
            "GOFLAGS": "-trimpath",
            "GO111MODULE": "off",
        }
        run_tool("go", "build", "-o", "hello-tz", "main.go", cwd=context, env=env)
        containerfiles["go"] = (
            f"FROM {names['base']}\nCOPY hello-tz /usr/local/bin/hello-tz\n"
            'ENTRYPOINT ["hello-tz"]\nCMD ["Europe/Paris"]\n'
        )
    try:
        for kind, text in containerfiles.items():
            (context / f"Containerfile.{kind}").write_text(text)
            names[kind] = f"localhost/sp-slim-{kind}:{tag}"
            run_tool(
                "podman",
                "build",
                "-q",
                "--isolation=chroot",
                "-t",
                names[kind],
                "-f",
                str(context / f"Containerfile.{kind}"),
                str(context),
            )
            for fmt in ("docker-archive", "oci-archive"):
                run_tool(
                    "podman",
                    "save",
                    "-q",
                    "--format",
                    fmt,
                    "-o",
                    str(work / f"{kind}-{fmt}.tar"),
                    names[kind],
                )
        yield Images(work, tag, names)
    finally:
        for name in names.values():
            subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


@dataclass
class Slim:
    result: CliResult
    config: dict[str, object]
    root: Path
    original: Path


def _slim(images: Images, kind: str, fmt: str, tmp_path: Path) -> Slim:
    out = tmp_path / "slim.tar"
    source = images.work / f"{kind}-{fmt}.tar"
    result = run_cli(
        "image",
        "--from-image",
        str(source),
        "--format",
        "docker-archive",
        "--output",
        str(out),
        "--tag",
        f"sp-slim-out-{kind}:{images.tag}",
    )
    assert result.returncode == 0, result.stderr
    loaded = run_tool("podman", "load", "-q", "-i", str(out))
    name = loaded.strip().rsplit(" ", 1)[-1]
    try:
        config = json.loads(run_tool("podman", "image", "inspect", name))[0]["Config"]
        root = exported_root(name, tmp_path / "slim-root")
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)
    original = exported_root(images.names[kind], tmp_path / "original-root")
    return Slim(result, config, root, original)


def _env(config: dict[str, object]) -> dict[str, str]:
    values = config.get("Env") or []
    assert isinstance(values, list)
    return dict(str(item).split("=", 1) for item in values)


def _sizes(result: CliResult) -> tuple[int, int]:
    line = next(x for x in result.stdout.splitlines() if x.startswith("slim "))
    after, before = line.split(" bytes (")[0].rsplit(", ", 1)[1].split(" of ")
    return int(after), int(before)


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_slim_curl_fetches_over_tls_like_the_original(
    images: Images, fmt: str, tmp_path: Path
) -> None:
    slim = _slim(images, "curl", fmt, tmp_path)
    after, before = _sizes(slim.result)
    assert after * 5 < before, slim.result.stdout
    assert "packages dropped (" in slim.result.stdout
    assert slim.config["Entrypoint"] == ["curl"]
    assert slim.config["Cmd"] == ["--version"]
    assert slim.config["WorkingDir"] == "/srv"
    assert slim.config["StopSignal"] == "SIGQUIT"
    assert slim.config["ExposedPorts"] == {"8080/tcp": {}}
    assert _env(slim.config)["LANG"] == "C.UTF-8"
    env = _env(slim.config)
    outputs = []
    with https_server() as (port, ca_pem):
        for root in (slim.original, slim.root):
            # Both bundles stand for one that trusts the test CA: same path, its content.
            shutil.copyfile(ca_pem, root / "etc/ssl/certs/ca-certificates.crt")
            run = run_in_root(root, ["/usr/bin/curl", "-sS", f"https://127.0.0.1:{port}/"], env=env)
            outputs.append((run.returncode, run.stdout.encode()))
    assert outputs == [(0, BODY), (0, BODY)]
    # And the slim root really lacks what the original had.
    assert (slim.original / "usr/bin/apt-get").exists() or (slim.original / "bin/bash").exists()
    assert not (slim.root / "bin/bash").exists()
    assert not (slim.root / "usr/bin/bash").exists()


def test_slim_go_program_converts_zones_like_the_original(images: Images, tmp_path: Path) -> None:
    if "go" not in images.names:
        pytest.skip("go is not installed")
    slim = _slim(images, "go", "oci-archive", tmp_path)
    env = _env(slim.config)
    for root in (slim.original, slim.root):
        run = run_in_root(root, ["/usr/local/bin/hello-tz", "Europe/Paris"], env=env)
        assert (run.returncode, run.stdout) == (0, PARIS), run.stderr
    after, before = _sizes(slim.result)
    assert after * 20 < before


def test_a_local_image_by_name_and_verify_compare(images: Images, tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    name = images.names["curl"]
    inspected = run_cli("inspect", "--from-image", name, "--format", "json")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["binaries"][0]["path"] == "/usr/bin/curl"
    verified = run_cli("verify", "--from-image", name, "--compare", "--", "--version")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "comparison: exit status matches, stdout matches, stderr matches" in verified.stdout
