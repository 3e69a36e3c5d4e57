"""--from-image on small crafted images (real ELF files in tarfile-written layers) and on an
image scratchprobe itself wrote: the entry point resolved with PATH and WORKDIR, a script
followed to its interpreter, --binary, --platform over an index, the config carried into the
slim image, and verify --compare running the original root against the slim one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import TESTBINS, CliResult, run_cli
from tests.from_image_helpers import (
    STATIC,
    Image,
    Member,
    binary_members,
    docker_archive,
    layer_tar,
    oci_archive,
)
from tests.image_helpers import AARCH64, AARCH64_ROOT, open_archive


def _cli(tmp_path: Path, *args: str) -> CliResult:
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    result = run_cli(*args, env={**os.environ, "TMPDIR": str(work), "SOURCE_DATE_EPOCH": "0"})
    assert list(work.iterdir()) == []
    return result


def _paths(result: CliResult) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [b["path"] for b in json.loads(result.stdout)["binaries"]]


def test_entry_point_is_looked_up_in_the_image_path(tmp_path: Path) -> None:
    layer = layer_tar(binary_members("opt/bin/hello"))
    image = Image([layer], config={"Cmd": ["hello", "--flag"], "Env": ["PATH=/usr/bin:/opt/bin"]})
    archive = oci_archive(tmp_path / "img.tar", image)
    assert _paths(_cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")) == [
        "/opt/bin/hello"
    ]


def test_relative_entry_point_is_taken_from_workdir(tmp_path: Path) -> None:
    layer = layer_tar(binary_members("srv/app/run"))
    config = {"Entrypoint": ["./run"], "WorkingDir": "/srv/app"}
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
    result = _cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")
    assert _paths(result) == ["/srv/app/run"]


def test_a_script_entry_point_is_followed_to_its_interpreter(tmp_path: Path) -> None:
    layer = layer_tar(
        [
            *binary_members("bin/sh"),
            Member("usr/bin/env", data=STATIC.read_bytes(), mode=0o755),
            Member("entry.sh", data=b"#!/bin/sh -e\nexec hello\n", mode=0o755),
            Member("usr/local/bin/wrapper", data=b"#!/usr/bin/env sh\n", mode=0o755),
        ]
    )
    # `#!/usr/bin/env sh`: the kernel execs env, env execs sh, so both are analysed.
    for entry, binaries in (("/entry.sh", ["/bin/sh"]), ("wrapper", ["/bin/sh", "/usr/bin/env"])):
        config = {"Entrypoint": [entry], "Env": ["PATH=/usr/local/bin:/bin"]}
        archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
        result = _cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")
        assert _paths(result) == binaries
        assert "is a script run by /bin/sh" in result.stderr
        assert "verify --trace" in result.stderr


def test_a_script_whose_interpreter_is_missing_is_one_error(tmp_path: Path) -> None:
    # /usr/bin/env is absent: the kernel could not exec the script, even though sh is there.
    layer = layer_tar(
        [
            *binary_members("bin/sh"),
            Member("entry.sh", data=b"#!/usr/bin/env sh\n", mode=0o755),
        ]
    )
    config = {"Entrypoint": ["/entry.sh"], "Env": ["PATH=/bin"]}
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
    result = _cli(tmp_path, "inspect", "--from-image", str(archive))
    assert result.returncode == 2
    assert result.stderr == (
        f"scratchprobe: error: {archive}: the entry point /entry.sh is a script whose "
        "interpreter '/usr/bin/env sh' is not in the image\n"
    )


def test_binary_picks_other_files_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    layer = layer_tar([*binary_members("app/one"), *binary_members("app/two")])
    config = {"Entrypoint": ["/app/one"], "Env": ["PATH=/app"]}
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
    result = _cli(
        tmp_path, "inspect", "--from-image", str(archive), "--binary", "two", "--format", "json"
    )
    assert _paths(result) == ["/app/two"]
    missing = _cli(tmp_path, "inspect", "--from-image", str(archive), "--binary", "three")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"scratchprobe: error: {archive}: --binary three: not an executable file in the image"
    ]


def test_no_entry_point_asks_for_binary(tmp_path: Path) -> None:
    archive = oci_archive(tmp_path / "img.tar", Image([layer_tar(binary_members())], config={}))
    result = _cli(tmp_path, "inspect", "--from-image", str(archive))
    assert result.returncode == 2
    assert result.stderr.endswith("neither ENTRYPOINT nor CMD: give --binary\n")


def test_options_that_need_from_image_and_conflicts(tmp_path: Path) -> None:
    alone = _cli(tmp_path, "inspect", "--platform", "linux/arm64", str(STATIC))
    assert alone.returncode == 2
    assert alone.stderr == "scratchprobe: error: --platform and --binary go with --from-image\n"
    archive = oci_archive(tmp_path / "img.tar", Image([layer_tar(binary_members())]))
    both = _cli(tmp_path, "inspect", "--from-image", str(archive), "--root", str(tmp_path))
    assert both.returncode == 2
    assert "give it or --root, not both" in both.stderr
    # Without --from-image the binary argument is still required, with click's message.
    bare = _cli(tmp_path, "inspect")
    assert bare.returncode == 2
    assert "Missing argument 'BINARY...'" in bare.stderr


def _arm64_layer() -> bytes:
    sysroot = AARCH64_ROOT / "lib"
    return layer_tar(
        [
            Member("app/hello", data=AARCH64.read_bytes(), mode=0o755),
            Member(
                "lib/ld-linux-aarch64.so.1",
                data=(sysroot / "ld-linux-aarch64.so.1").read_bytes(),
                mode=0o755,
            ),
            Member("lib/libc.so.6", data=(sysroot / "libc.so.6").read_bytes(), mode=0o755),
        ]
    )


@pytest.mark.skipif(not (AARCH64_ROOT / "lib" / "libc.so.6").exists(), reason="no arm64 sysroot")
def test_platform_picks_the_image_of_an_index(tmp_path: Path) -> None:
    amd64 = Image([layer_tar(binary_members())])
    arm64 = Image([_arm64_layer()], architecture="arm64")
    archive = oci_archive(tmp_path / "index.tar", amd64, arm64)
    unchosen = _cli(tmp_path, "inspect", "--from-image", str(archive))
    assert unchosen.returncode == 2
    assert unchosen.stderr.endswith(
        "the index holds 2 images (linux/amd64, linux/arm64): choose one with --platform\n"
    )
    for platform, arch in (("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")):
        result = _cli(
            tmp_path,
            "inspect",
            "--from-image",
            str(archive),
            "--platform",
            platform,
            "--format",
            "json",
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["binaries"][0]["arch"] == arch
    absent = _cli(tmp_path, "inspect", "--from-image", str(archive), "--platform", "linux/s390x")
    assert absent.stderr.endswith("no image for linux/s390x (it has linux/amd64, linux/arm64)\n")


def test_config_carries_over_into_the_slim_image(tmp_path: Path) -> None:
    passwd = b"root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"
    layer = layer_tar(
        [
            *binary_members(),
            Member("etc/passwd", data=passwd),
            Member("etc/group", data=b"root:x:0:\nnonroot:x:65532:\n"),
        ]
    )
    config = {
        "Entrypoint": ["/app/hello"],
        "Cmd": ["--serve"],
        "Env": ["PATH=/app:/bin", "MODE=prod"],
        "User": "nonroot",
        "WorkingDir": "/srv",
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Labels": {"org.opencontainers.image.title": "hello", "team": "a"},
        "StopSignal": "SIGQUIT",
    }
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
    out = tmp_path / "slim.tar"
    result = _cli(
        tmp_path, "image", "--from-image", str(archive), "--output", str(out), "--label", "team=b"
    )
    assert result.returncode == 0, result.stderr
    layout = open_archive(out, tmp_path / "unpacked")
    written = layout.config(layout.manifest())["config"]
    assert written["Entrypoint"] == ["/app/hello"]
    assert written["Cmd"] == ["--serve"]
    assert written["Env"][:2] == ["PATH=/app:/bin", "MODE=prod"]
    assert written["User"] == "nonroot"
    assert written["WorkingDir"] == "/srv"
    assert written["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert written["Labels"] == {"org.opencontainers.image.title": "hello", "team": "b"}
    assert written["StopSignal"] == "SIGQUIT"
    # The slim report: what it keeps, the sizes, and no package database to compare.
    report = result.stdout.splitlines()
    slim = next(line for line in report if line.startswith("slim "))
    assert " of 3 files, " in slim
    assert any(line.startswith("  keeps: binary 1 files ") for line in report)
    assert "  packages: the image has no package database" in report


def test_an_image_scratchprobe_wrote_reads_back_the_same(tmp_path: Path) -> None:
    hello = TESTBINS / "c-glibc-dynamic"
    layout = tmp_path / "layout"
    first = _cli(tmp_path, "image", str(hello), "--output", str(layout), "--tag", "hello:1")
    assert first.returncode == 0, first.stderr
    plain = run_cli("inspect", "--format", "copy", str(hello))
    slim = _cli(tmp_path, "inspect", "--from-image", str(layout), "--format", "copy")
    assert slim.returncode == 0, slim.stderr

    # The same files at the same image paths (the sources are now the image's own).
    def targets(text: str) -> list[str]:
        return sorted(line.rsplit(" ", 1)[1] for line in text.splitlines())

    assert targets(slim.stdout) == targets(plain.stdout)
    docker = tmp_path / "hello-docker.tar"
    assert (
        _cli(
            tmp_path, "image", str(hello), "--format", "docker-archive", "--output", str(docker)
        ).returncode
        == 0
    )
    again = _cli(tmp_path, "inspect", "--from-image", str(docker), "--format", "copy")
    assert targets(again.stdout) == targets(plain.stdout)


def test_a_crafted_docker_archive_reads(tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "d.tar", Image([layer_tar(binary_members())]))
    ok = _cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")
    assert _paths(ok) == ["/app/hello"]


def test_rootfs_and_check_take_the_image_too(tmp_path: Path) -> None:
    layer = layer_tar(binary_members("usr/local/bin/hello"))
    config = {"Entrypoint": ["hello"], "Env": ["PATH=/usr/local/bin"]}
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config=config))
    out = tmp_path / "rootfs"
    written = _cli(tmp_path, "rootfs", "--from-image", str(archive), "--output", str(out))
    assert written.returncode == 0, written.stderr
    assert (out / "usr/local/bin/hello").read_bytes() == STATIC.read_bytes()
    checked = _cli(tmp_path, "check", "--from-image", str(archive), "--require-static")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_name_without_skopeo_or_podman_says_what_to_install(tmp_path: Path) -> None:
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "PATH": str(tmp_path / "empty"), "TMPDIR": str(work)}
    result = run_cli("inspect", "--from-image", "myapp:latest", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "scratchprobe: error: myapp:latest: no such file, and reading a local image by name "
        "needs skopeo or podman (apt-get install skopeo)\n"
    )


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_an_unknown_local_image_is_one_error(tmp_path: Path) -> None:
    result = _cli(tmp_path, "inspect", "--from-image", "localhost/no-such-image-sp:0")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("scratchprobe: error: localhost/no-such-image-sp:0: not a local image (")
