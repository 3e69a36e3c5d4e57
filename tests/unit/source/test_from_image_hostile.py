"""--from-image never trusts the archive: each hostile case is a crafted archive (tarfile, in
the test) that ends in one error line, or is applied harmlessly inside the private root, and
nothing is written outside the work directory (TMPDIR here, emptied again afterwards)."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from scratchprobe.source.reference import open_image
from scratchprobe.source.unpack import ImageSourceError, Limits
from tests.conftest import CliResult, run_cli
from tests.from_image_helpers import (
    Image,
    Member,
    binary_members,
    docker_archive,
    layer_tar,
    oci_archive,
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the work directory that an escape would write into or delete."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "keep").write_text("precious\n")
    return directory


def _run(tmp_path: Path, *args: str, **env: str) -> CliResult:
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    result = run_cli(*args, env={**os.environ, "TMPDIR": str(work), **env})
    # The private root is gone again, whatever happened.
    assert list(work.iterdir()) == []
    return result


def _one_error(result: CliResult, *words: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("scratchprobe: error: "), lines
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert (outside / "keep").read_text() == "precious\n"


def test_absolute_member_is_refused(tmp_path: Path, outside: Path) -> None:
    layer = layer_tar([*binary_members(), Member(str(outside / "pwned"), data=b"x")])
    archive = oci_archive(tmp_path / "evil.tar", Image([layer]))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "absolute path")
    _untouched(outside)


def test_climbing_member_is_refused(tmp_path: Path, outside: Path) -> None:
    climb = "../" * 40 + str(outside)[1:] + "/pwned"
    layer = layer_tar([*binary_members(), Member(climb, data=b"x")])
    archive = oci_archive(tmp_path / "evil.tar", Image([layer]))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "'..'")
    _untouched(outside)


def test_symlink_parent_is_resolved_inside_the_root(tmp_path: Path, outside: Path) -> None:
    # A layer plants `escape -> /host/path/outside`, a later member writes through it and a
    # later layer deletes through it: both land inside the private root, as the runtime's
    # securejoin would have them.
    first = layer_tar([*binary_members(), Member("escape", tarfile.SYMTYPE, linkname=str(outside))])
    second = layer_tar(
        [Member("escape/pwned", data=b"x"), Member("escape/.wh.keep"), Member("up/.wh.keep")]
    )
    archive = oci_archive(tmp_path / "evil.tar", Image([first, second]))
    result = _run(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["binaries"][0]["path"] == "/app/hello"
    _untouched(outside)
    image = open_image(str(archive))
    try:
        inside = Path(image.root + str(outside))
        assert (inside / "pwned").read_bytes() == b"x"
        assert os.readlink(Path(image.root) / "escape") == str(outside)
    finally:
        shutil.rmtree(image.root)


def test_symlink_then_climbing_link_target_stays_inside(tmp_path: Path, outside: Path) -> None:
    # A relative symlink that climbs far above the root, then a file through it.
    layer = layer_tar(
        [
            *binary_members(),
            Member("a/b", tarfile.SYMTYPE, linkname="../../../../.." + str(outside)),
            Member("a/b/pwned", data=b"x"),
        ]
    )
    archive = oci_archive(tmp_path / "evil.tar", Image([layer]))
    assert _run(tmp_path, "inspect", "--from-image", str(archive)).returncode == 0
    _untouched(outside)


@pytest.mark.parametrize(
    ("linkname", "words"),
    [
        ("/etc/passwd", ("absolute path",)),
        ("../../../../etc/passwd", ("'..'",)),
        ("not/unpacked", ("no earlier member",)),
    ],
)
def test_hard_link_must_name_an_unpacked_member(
    tmp_path: Path, outside: Path, linkname: str, words: tuple[str, ...]
) -> None:
    layer = layer_tar([*binary_members(), Member("etc/copy", tarfile.LNKTYPE, linkname=linkname)])
    archive = oci_archive(tmp_path / "evil.tar", Image([layer]))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), *words)
    _untouched(outside)


def test_hard_link_to_an_unpacked_member_is_a_hard_link(tmp_path: Path) -> None:
    layer = layer_tar(
        [*binary_members(), Member("app/again", tarfile.LNKTYPE, linkname="app/hello")]
    )
    image = open_image(str(oci_archive(tmp_path / "ok.tar", Image([layer]))))
    try:
        assert os.path.samefile(f"{image.root}/app/hello", f"{image.root}/app/again")
        assert image.unpacked.files == 2
        assert image.unpacked.bytes == os.path.getsize(f"{image.root}/app/hello")
    finally:
        shutil.rmtree(image.root)


def test_devices_and_fifos_are_recorded_never_created(tmp_path: Path) -> None:
    layer = layer_tar(
        [
            *binary_members(),
            Member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
            Member("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
            Member("run/fifo", tarfile.FIFOTYPE),
        ]
    )
    # A later layer hides one by a whiteout and the others' directory by an opaque marker,
    # except what it writes itself: the record follows the layers like the files do.
    hiding = layer_tar(
        [Member("dev/.wh.sda"), Member("run/.wh..wh..opq"), Member("run/pipe", tarfile.FIFOTYPE)]
    )
    hidden = open_image(str(oci_archive(tmp_path / "hidden.tar", Image([layer, hiding]))))
    shutil.rmtree(hidden.root)
    assert [s.path for s in hidden.unpacked.specials] == ["/dev/mem", "/run/pipe"]
    image = open_image(str(oci_archive(tmp_path / "dev.tar", Image([layer]))))
    try:
        assert [(s.path, s.kind, s.major, s.minor) for s in image.unpacked.specials] == [
            ("/dev/mem", "character device", 1, 1),
            ("/dev/sda", "block device", 8, 0),
            ("/run/fifo", "fifo", 0, 0),
        ]
        for path in ("dev/sda", "dev/mem", "run/fifo"):
            assert not os.path.lexists(f"{image.root}/{path}")
    finally:
        shutil.rmtree(image.root)


def test_whiteouts_and_opaque_directories_apply_in_layer_order(tmp_path: Path) -> None:
    first = layer_tar(
        [
            *binary_members(),
            Member("d", tarfile.DIRTYPE, mode=0o755),
            Member("d/old", data=b"1"),
            Member("d/sub/deep", data=b"2"),
            Member("gone", data=b"3"),
            Member("twice", data=b"first"),
        ]
    )
    second = layer_tar(
        [
            Member("d/.wh..wh..opq"),
            Member("d/new", data=b"4"),
            Member(".wh.gone"),
            Member("twice", data=b"second"),
            Member("twice", data=b"third: the last member wins"),
        ]
    )
    third = layer_tar([Member("e/.wh..wh..opq"), Member(".wh.never-there")])
    image = open_image(str(oci_archive(tmp_path / "wh.tar", Image([first, second, third]))))
    try:
        root = Path(image.root)
        assert sorted(p.name for p in (root / "d").iterdir()) == ["new"]
        assert not (root / "gone").exists()
        assert (root / "twice").read_text() == "third: the last member wins"
        assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))
    finally:
        shutil.rmtree(image.root)


def test_a_whiteout_naming_the_parent_is_refused(tmp_path: Path, outside: Path) -> None:
    layer = layer_tar([*binary_members(), Member("app/.wh..")])
    archive = oci_archive(tmp_path / "evil.tar", Image([layer]))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "names no entry")


def test_decompression_bomb_is_bounded(tmp_path: Path) -> None:
    # 64 MiB of zeros is 64 KiB of gzip: the bound is on what it unpacks to.
    bomb = layer_tar([*binary_members(), Member("zeros", data=bytes(64 << 20))])
    archive = oci_archive(tmp_path / "bomb.tar", Image([bomb]))
    assert archive.stat().st_size < 2 << 20
    result = _run(
        tmp_path,
        "inspect",
        "--from-image",
        str(archive),
        SCRATCHPROBE_IMAGE_MAX_BYTES=str(16 << 20),
    )
    _one_error(result, "more than 16777216 bytes", "decompression bomb")
    with pytest.raises(ImageSourceError, match="decompression bomb"):
        open_image(str(archive), limits=Limits(max_bytes=1 << 20))


def test_member_count_is_bounded(tmp_path: Path) -> None:
    many = layer_tar([*binary_members(), *(Member(f"f/{i}") for i in range(300))])
    archive = oci_archive(tmp_path / "many.tar", Image([many]))
    result = _run(
        tmp_path, "inspect", "--from-image", str(archive), SCRATCHPROBE_IMAGE_MAX_MEMBERS="100"
    )
    _one_error(result, "more than 100 members")


def test_a_header_that_lies_about_its_size_is_one_error(tmp_path: Path) -> None:
    truncated = layer_tar([*binary_members(), Member("short", data=b"abc", size=1 << 20)])
    archive = oci_archive(tmp_path / "short.tar", Image([truncated]))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "layer 1")


def test_a_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    archive = oci_archive(tmp_path / "ok.tar", Image([layer_tar(binary_members())]))
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    layer_name = next(
        n for n, d in members.items() if n.startswith("blobs/") and d[:2] == b"\x1f\x8b"
    )
    members[layer_name] = gzip.compress(layer_tar(binary_members("app/other")), mtime=0)
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(tampered, "w") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(tampered)), "digest")


def test_a_digest_that_names_a_path_is_refused(tmp_path: Path, outside: Path) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:../../../" + str(outside)[1:] + "/keep",
                "size": 9,
            }
        ],
    }
    archive = oci_archive(tmp_path / "evil.tar", index=index)
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "not a sha256 digest")
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index))
    _one_error(_run(tmp_path, "inspect", "--from-image", str(layout)), "not a sha256 digest")


def test_zstd_layers_are_refused_with_a_reason(tmp_path: Path) -> None:
    image = Image([b"\x28\xb5\x2f\xfd" + bytes(100)], gzip_layers=False)
    archive = oci_archive(tmp_path / "zstd.tar", image)
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "zstd", "not supported")


def test_docker_archive_layer_names_cannot_climb(tmp_path: Path, outside: Path) -> None:
    image = Image([layer_tar(binary_members())])
    archive = docker_archive(tmp_path / "evil.tar", image, [f"../{outside.name}/keep"])
    _one_error(_run(tmp_path, "inspect", "--from-image", str(archive)), "'..'")
    _untouched(outside)


def test_not_an_image(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(__file__, "x.py")
    _one_error(_run(tmp_path, "inspect", "--from-image", str(plain)), "not an image archive")
    (tmp_path / "text").write_text("hello")
    _one_error(_run(tmp_path, "inspect", "--from-image", str(tmp_path / "text")), "text")
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    _one_error(_run(tmp_path, "inspect", "--from-image", str(empty)), "no oci-layout")
