"""`scratchprobe image`: the formats, the OCI schemas, reproducibility, layers, platforms,
multi-platform indexes, the SBOM referrer and the package metadata, on real binaries.

The real tools (umoci, skopeo, podman, a run of the image) are in test_image_tools.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.elf.constants import ByteOrder
from scratchprobe.errors import ELFError
from scratchprobe.image.platform import arm_cpu_arch, arm_variant
from scratchprobe.packages import PackageManager, find_owners
from scratchprobe.packages.apk import parse_installed
from scratchprobe.packages.dpkg import parse_control
from scratchprobe.root import Root
from tests.conftest import TESTBINS, run_cli
from tests.image_helpers import (
    AARCH64,
    AARCH64_ROOT,
    HELLO,
    Layout,
    image_cli,
    open_archive,
    two_platform_roots,
    validate,
)

LOCALTIME = str(TESTBINS / "runtime" / "c-localtime")
ARMHF = TESTBINS / "foreign" / "hello-armhf"
ARMHF_ROOT = Path("/usr/arm-linux-gnueabihf")


def _layout(tmp_path: Path, *args: str, name: str = "layout", epoch: str = "1700000000") -> Layout:
    out = tmp_path / name
    result = image_cli(*args, "--output", str(out), epoch=epoch)
    assert result.returncode == 0, result.stderr
    return Layout(out)


def _roles(config: dict[str, Any]) -> list[str]:
    return [h["created_by"].split(": ", 1)[1].split()[0] for h in config["history"]]


# ------------------------------------------------------------------------ schemas, blobs


def test_every_json_blob_validates_against_the_oci_schemas(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path,
        LOCALTIME,
        "--tz",
        "Europe/Paris",
        "--tag",
        "localtime:1",
        "--sbom",
        "--cmd",
        "Europe/Paris",
        "--env",
        "LANG=C.UTF-8",
        "--label",
        "org.opencontainers.image.title=localtime",
        "--annotation",
        "org.opencontainers.image.source=https://example.invalid/src",
        "--workdir",
        "/",
    )
    validate(json.loads((layout.path / "oci-layout").read_text()), "image-layout-schema.json")
    umask = os.umask(0)
    os.umask(umask)
    assert layout.path.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    validate(layout.index, "image-index-schema.json")
    (descriptor,) = layout.images()
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "localtime:1"}
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = layout.manifest(descriptor)
    validate(manifest, "image-manifest-schema.json")
    assert manifest["annotations"] == {
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        "org.opencontainers.image.source": "https://example.invalid/src",
    }
    config = layout.config(manifest)
    validate(config, "config-schema.json")
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    run = config["config"]
    assert run["Entrypoint"] == [LOCALTIME]
    assert run["Cmd"] == ["Europe/Paris"]
    assert "TZ=Europe/Paris" in run["Env"]  # from the plan (--tz)
    assert "LANG=C.UTF-8" in run["Env"]
    assert run["Labels"] == {"org.opencontainers.image.title": "localtime"}
    assert run["WorkingDir"] == "/"
    # rootfs.diff_ids are the digests of the uncompressed layers, in order.
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert "sha256:" + hashlib.sha256(layout.layer_tar(layer)).hexdigest() == diff_id
    assert _roles(config) == ["base", "runtime", "app"]

    # The SBOM: an OCI 1.1 artifact whose subject is the image manifest.
    (referrer,) = [m for m in layout.index["manifests"] if "artifactType" in m]
    assert referrer["artifactType"] == "application/vnd.cyclonedx+json"
    artifact = layout.json_blob(referrer)
    validate(artifact, "image-manifest-schema.json")
    assert artifact["subject"] == {
        "mediaType": descriptor["mediaType"],
        "digest": descriptor["digest"],
        "size": descriptor["size"],
    }
    assert artifact["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert layout.blob(artifact["config"]["digest"]) == b"{}"
    (document,) = artifact["layers"]
    sbom = json.loads(layout.blob(document["digest"]))
    assert sbom["bomFormat"] == "CycloneDX"
    assert any(c["name"] == LOCALTIME for c in sbom["components"])


def test_the_schema_check_itself_rejects_a_bad_descriptor() -> None:
    bad = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": "not a digest"},
        "layers": [],
    }  # fmt: skip
    # The digest rule sits two $refs away (content-descriptor -> defs-descriptor): its
    # error proves the references resolve.
    with pytest.raises(AssertionError, match=r"'not a digest' does not match"):
        validate(bad, "image-manifest-schema.json")


def test_the_layers_hold_exactly_what_rootfs_writes(tmp_path: Path) -> None:
    args = (LOCALTIME, "--tz", "Europe/Paris", "--user", "scratchprobe", "--generate-etc")
    layout = _layout(tmp_path, *args)
    manifest = layout.manifest()
    unpacked = layout.unpack(manifest, tmp_path / "unpacked")
    tar = tmp_path / "rootfs.tar"
    rootfs = run_cli(
        "rootfs", *args, "--tar", str(tar), env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    )
    assert rootfs.returncode == 0, rootfs.stderr
    with tarfile.open(tar) as archive:
        expected = {m.name: (m.type, m.mode, m.linkname, m.size) for m in archive.getmembers()}
    seen = {}
    for current, dirs, files in os.walk(unpacked):
        for name in dirs + files:
            path = Path(current) / name
            st = path.lstat()
            rel = str(path.relative_to(unpacked))
            kind = (
                tarfile.SYMTYPE
                if path.is_symlink()
                else tarfile.DIRTYPE
                if path.is_dir()
                else tarfile.REGTYPE
            )
            link = os.readlink(path) if path.is_symlink() else ""
            size = st.st_size if kind == tarfile.REGTYPE else 0
            seen[rel] = (kind, st.st_mode & 0o7777 if kind != tarfile.SYMTYPE else 0o777, link,
                         size)  # fmt: skip
    assert seen == expected
    config = layout.config(manifest)
    assert config["config"]["User"] == "scratchprobe"
    # Which layer holds what (docs/image.md).
    base, runtime, app = (set(layout.layer_names(d)) for d in manifest["layers"])
    assert "lib64/ld-linux-x86-64.so.2" in base
    assert any(n.endswith("/libc.so.6") for n in base)
    assert "usr/share/zoneinfo/Europe/Paris" in runtime
    assert "etc/passwd" in runtime
    assert LOCALTIME[1:] in app
    assert not any(n.startswith("usr/share/zoneinfo/") for n in base | app)


def test_two_images_from_one_builder_share_the_base_layer(tmp_path: Path) -> None:
    one = _layout(tmp_path, HELLO, name="one")
    two = _layout(tmp_path, LOCALTIME, "--tz", "Europe/Paris", name="two")
    m1, m2 = one.manifest(), two.manifest()
    assert _roles(one.config(m1)) == ["base", "app"]
    assert _roles(two.config(m2)) == ["base", "runtime", "app"]
    assert m1["layers"][0] == m2["layers"][0]
    assert m1["layers"][-1]["digest"] != m2["layers"][-1]["digest"]


# ---------------------------------------------------------------------------- reproducible


def test_same_inputs_give_the_same_bytes_and_a_change_changes_the_digest(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    shutil.copy(HELLO, root / "app" / "hello")
    for lib in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, target)

    def archive(name: str, *extra: str, epoch: str = "1700000000") -> tuple[bytes, str]:
        out = tmp_path / f"{name}.tar"
        result = image_cli(
            "--root", str(root), "/app/hello", "--sbom", "-o", str(out), *extra, epoch=epoch
        )
        assert result.returncode == 0, result.stderr
        layout = open_archive(out, tmp_path / f"{name}.d")
        return out.read_bytes(), layout.images()[0]["digest"]

    first, digest = archive("a")
    second, again = archive("b")
    assert first == second
    assert digest == again
    assert archive("c", epoch="1700000001")[1] != digest
    assert archive("d", "--env", "A=1")[1] != digest
    with open(root / "app" / "hello", "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    assert archive("e")[1] != digest


# ------------------------------------------------------------------------------ platforms


def _attributes(cpu_arch: int, order: str = "<") -> bytes:
    """An .ARM.attributes section: 'A', one "aeabi" section, one file sub-section holding
    Tag_CPU_name "X" then Tag_CPU_arch."""
    body = bytes([5]) + b"X\0" + bytes([6, cpu_arch])
    sub = bytes([1]) + struct.pack(order + "I", 5 + len(body)) + body
    section = struct.pack(order + "I", 4 + 6 + len(sub)) + b"aeabi\0" + sub
    return b"A" + section


@pytest.mark.parametrize(
    ("cpu_arch", "variant"), [(4, "v5"), (6, "v6"), (9, "v6"), (10, "v7"), (14, "v8")]
)
def test_arm_variant_from_tag_cpu_arch(cpu_arch: int, variant: str) -> None:
    assert arm_cpu_arch(_attributes(cpu_arch), ByteOrder.LITTLE) == cpu_arch
    assert arm_cpu_arch(_attributes(cpu_arch, ">"), ByteOrder.BIG) == cpu_arch
    assert arm_variant(cpu_arch) == variant


def test_truncated_arm_attributes_are_an_elf_error() -> None:
    data = _attributes(10)
    with pytest.raises(ELFError):
        arm_cpu_arch(data[:-3], ByteOrder.LITTLE)
    with pytest.raises(ELFError):
        arm_cpu_arch(b"B" + data[1:], ByteOrder.LITTLE)


@pytest.mark.parametrize(
    ("binary", "root", "platform"),
    [
        (ARMHF, ARMHF_ROOT, {"architecture": "arm", "os": "linux", "variant": "v7"}),
        (AARCH64, AARCH64_ROOT, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ],
)
def test_platform_read_from_the_binary(
    tmp_path: Path, binary: Path, root: Path, platform: dict[str, str]
) -> None:
    if not root.is_dir():
        pytest.skip(f"{root} is not installed (libc6-*-cross)")
    layout = _layout(tmp_path, "--root", str(root), str(binary))
    (descriptor,) = layout.images()
    assert descriptor["platform"] == platform
    config = layout.config(layout.manifest(descriptor))
    assert {k: config[k] for k in platform} == platform


def test_a_mix_of_architectures_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mixed.tar"
    result = image_cli(HELLO, str(AARCH64), "-o", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("scratchprobe: error: one image cannot mix architectures")
    assert "linux/amd64" in lines[-1]
    assert "linux/arm64" in lines[-1]
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no staging directory left behind


def test_two_roots_give_an_image_index(tmp_path: Path) -> None:
    amd64, arm64 = two_platform_roots(tmp_path)
    roots = ("--root", str(amd64), "--root", str(arm64))
    layout = _layout(tmp_path, *roots, "/app/hello", "--tag", "hello:multi", "--sbom")
    (top,) = layout.images()
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "hello:multi"
    index = layout.json_blob(top)
    validate(index, "image-index-schema.json")
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    subjects = set()
    for descriptor in index["manifests"]:
        manifest = layout.manifest(descriptor)
        validate(manifest, "image-manifest-schema.json")
        config = layout.config(manifest)
        validate(config, "config-schema.json")
        assert config["architecture"] == descriptor["platform"]["architecture"]
        assert config["config"]["Entrypoint"] == ["/app/hello"]
        subjects.add(descriptor["digest"])
    # One SBOM per platform, each referring to its platform's manifest.
    referrers = [m for m in layout.index["manifests"] if "artifactType" in m]
    assert {layout.json_blob(r)["subject"]["digest"] for r in referrers} == subjects

    same = image_cli("--root", str(amd64), "--root", str(amd64), "/app/hello", "-o",
                     str(tmp_path / "same.tar"))  # fmt: skip
    assert same.returncode == 2
    assert "both give linux/amd64" in same.stderr
    docker = image_cli(*roots, "/app/hello", "--format", "docker-archive", "-o",
                       str(tmp_path / "docker.tar"))  # fmt: skip
    assert docker.returncode == 2
    assert "docker-archive holds one image" in docker.stderr


def test_docker_archive_lists_config_tags_and_uncompressed_layers(tmp_path: Path) -> None:
    out = tmp_path / "docker.tar"
    result = image_cli(HELLO, "--tag", "example.com/team/hello", "--format", "docker-archive",
                       "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    layout = open_archive(out, tmp_path / "unpacked")
    (entry,) = json.loads((layout.path / "manifest.json").read_text())
    assert entry["RepoTags"] == ["example.com/team/hello:latest"]
    config = json.loads((layout.path / entry["Config"]).read_bytes())
    validate(config, "config-schema.json")
    diff_ids = [
        "sha256:" + hashlib.sha256((layout.path / p).read_bytes()).hexdigest()
        for p in entry["Layers"]
    ]
    assert diff_ids == config["rootfs"]["diff_ids"]
    # The same archive is an OCI layout (Docker 25's `docker save` form).
    manifest = layout.manifest()
    validate(manifest, "image-manifest-schema.json")
    assert {m["mediaType"] for m in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar"
    }


# --------------------------------------------------------------------------- destinations


def test_an_existing_layout_gains_tags_and_replaces_the_same_tag(tmp_path: Path) -> None:
    out = tmp_path / "layout"
    for args in ((HELLO, "--tag", "a:1"), (LOCALTIME, "--tag", "b:1"), (LOCALTIME, "--tag", "a:1")):
        result = image_cli(*args, "-o", str(out))
        assert result.returncode == 0, result.stderr
    layout = Layout(out)
    validate(layout.index, "image-index-schema.json")
    refs = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in layout.images()
    }
    assert set(refs) == {"a:1", "b:1"}
    assert refs["a:1"] == refs["b:1"]  # a:1 now names the localtime image


def test_a_foreign_directory_or_a_symlink_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine\n")
    result = image_cli(HELLO, "-o", str(other))
    assert result.returncode == 2
    assert "not an OCI image layout" in result.stderr
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
    link = tmp_path / "link.tar"
    link.symlink_to(tmp_path / "elsewhere.tar")
    result = image_cli(HELLO, "-o", str(link))
    assert result.returncode == 2
    assert "symbolic link" in result.stderr


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    not_elf = tmp_path / "script.sh"
    not_elf.write_text("#!/bin/sh\necho hi\n")
    out = tmp_path / "out.tar"
    result = image_cli(str(not_elf), HELLO, "-o", str(out))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors[0].startswith(f"scratchprobe: error: {not_elf}: ")
    assert errors[-1] == f"scratchprobe: error: {out}: nothing written"
    assert not out.exists()
    bad_env = image_cli(HELLO, "--env", "no-equals", "-o", str(out))
    assert bad_env.returncode == 2
    assert "KEY=VALUE" in bad_env.stderr
    bad_tag = image_cli(HELLO, "--tag", "Upper:1", "-o", str(out))
    assert bad_tag.returncode == 2


# ------------------------------------------------------------------------ package metadata


def _package_layer(layout: Layout, into: Path) -> tuple[Path, list[str]]:
    manifest = layout.manifest()
    assert _roles(layout.config(manifest))[-1] == "packages"
    layer = manifest["layers"][-1]
    with tarfile.open(fileobj=io.BytesIO(layout.layer_tar(layer))) as tar:
        names = tar.getnames()
    return layout.unpack(manifest, into), names


def test_dpkg_status_d_lists_the_packages_whose_files_the_image_holds(tmp_path: Path) -> None:
    if not Path("/var/lib/dpkg/status").is_file():
        pytest.skip("this machine has no dpkg database")
    layout = _layout(tmp_path, HELLO, "--package-metadata")
    image, names = _package_layer(layout, tmp_path / "image")
    assert "var/lib/dpkg/status.d/libc6" in names
    (paragraph,) = parse_control((image / "var/lib/dpkg/status.d/libc6").read_text())
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libc6"], capture_output=True, text=True, check=True
    ).stdout
    assert (paragraph["Package"], paragraph["Version"]) == ("libc6", version)
    sums = (image / "var/lib/dpkg/status.d/libc6.md5sums").read_text().splitlines()
    assert sums
    for line in sums:
        digest, path = line.split("  ", 1)
        assert hashlib.md5((image / path).read_bytes(), usedforsecurity=False).hexdigest() == digest
    # A reader of distroless databases (scratchprobe's own) finds the owner in the image.
    libc = next("/" + line.split("  ", 1)[1] for line in sums if line.endswith("/libc.so.6"))
    owners = dict(find_owners(Root(str(image)), frozenset({libc})).owners)
    assert owners[libc].name == "libc6"
    assert owners[libc].manager is PackageManager.DPKG


def test_apk_installed_database_is_cut_to_the_image(tmp_path: Path) -> None:
    musl = Path("/usr/lib/x86_64-linux-musl/libc.so")
    binary = TESTBINS / "c-musl-dynamic"
    if not musl.exists():
        pytest.skip("musl is not installed")
    root = tmp_path / "alpine"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "app").mkdir()
    shutil.copy(musl, root / "lib/ld-musl-x86_64.so.1")
    shutil.copy(binary, root / "app/hello")
    (root / "etc/os-release").write_text("ID=alpine\nVERSION_ID=3.19.1\n")
    (root / "lib/apk/db/installed").write_text(
        "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n"
        "F:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1def=\nR:libc.musl-x86_64.so.1\n\n"
        "C:Q1xyz=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\nF:bin\nR:busybox\n\n"
    )
    layout = _layout(tmp_path, "--root", str(root), "/app/hello", "--package-metadata")
    image, names = _package_layer(layout, tmp_path / "image")
    assert "lib/apk/db/installed" in names
    (record,) = parse_installed((image / "lib/apk/db/installed").read_text())
    assert (record.name, record.version, record.license) == ("musl", "1.2.4-r2", "MIT")
    assert record.files == ("/lib/ld-musl-x86_64.so.1",)
    owners = dict(find_owners(Root(str(image)), frozenset({"/lib/ld-musl-x86_64.so.1"})).owners)
    assert owners["/lib/ld-musl-x86_64.so.1"].purl.startswith("pkg:apk/alpine/musl@1.2.4-r2")


def test_gzip_headers_carry_no_time_or_name(tmp_path: Path) -> None:
    layout = _layout(tmp_path, HELLO)
    for layer in layout.manifest()["layers"]:
        data = layout.blob(layer["digest"])
        flags, mtime = data[3], struct.unpack("<I", data[4:8])[0]
        assert (flags & 0x08, mtime) == (0, 0)  # FNAME unset, MTIME 0 (RFC 1952)
        assert gzip.decompress(data)


def test_dockerfile_output_points_to_the_daemonless_path() -> None:
    for extra in ((), ("--rootfs-stage",)):
        printed = run_cli("inspect", "--format", "dockerfile", *extra, HELLO)
        assert printed.returncode == 0, printed.stderr
        assert "# Without a builder stage or a daemon, `scratchprobe image BINARY..." in (
            printed.stdout
        )


def test_a_corrupt_arm_attributes_section_is_one_error_line(tmp_path: Path) -> None:
    from scratchprobe.elf.reader import read_elf

    if not ARMHF_ROOT.is_dir():
        pytest.skip("libc6-armhf-cross is not installed")
    hostile = tmp_path / "hello-armhf"
    shutil.copy(ARMHF, hostile)
    section = read_elf(str(hostile)).section(".ARM.attributes")
    assert section is not None
    with open(hostile, "r+b") as handle:
        handle.seek(section.offset + 1)
        handle.write(struct.pack("<I", 0xFFFF))  # a section length past the end
    out = tmp_path / "out.tar"
    result = image_cli("--root", str(ARMHF_ROOT), str(hostile), "-o", str(out))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"scratchprobe: error: {hostile}: .ARM.attributes: section length out of bounds"
        )
    )
    assert not out.exists()


def test_entrypoint_option_and_differing_binary_paths(tmp_path: Path) -> None:
    layout = _layout(tmp_path, HELLO, "--entrypoint", '["/bin/x", "-v"]')
    assert layout.config(layout.manifest())["config"]["Entrypoint"] == ["/bin/x", "-v"]
    bad = image_cli(HELLO, "--entrypoint", "[not json", "-o", str(tmp_path / "bad.tar"))
    assert bad.returncode == 2
    assert "JSON array of strings" in bad.stderr
    amd64, arm64 = two_platform_roots(tmp_path)
    (arm64 / "app/hello").rename(arm64 / "app/other")
    roots = ("--root", str(amd64), "--root", str(arm64))
    # /app/hello is missing in the arm64 root: an input problem, nothing written.
    missing = image_cli(*roots, "/app/hello", "-o", str(tmp_path / "m.tar"))
    assert missing.returncode == 2
    assert not (tmp_path / "m.tar").exists()
