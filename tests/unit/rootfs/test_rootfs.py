"""`scratchprobe rootfs`: the written tree is the plan, the tar is reproducible, writes are safe."""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from pathlib import Path

import pytest

from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect_for_image
from scratchprobe.plan import FileKind, FileType, ImageFile, Plan
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from scratchprobe.root import Root
from scratchprobe.rootfs import (
    MARKER_SUFFIX,
    Destination,
    DestinationRefused,
    OutputKind,
    RootfsError,
    layout,
    source_date_epoch,
    write_rootfs,
)
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli, skip_unless_host_loads
from tests.helpers_sandbox import extract, tree_of

DYNAMIC = str(TESTBINS / "c-glibc-dynamic")


def _ancestors(path: str) -> set[str]:
    out = set()
    parent = posixpath.dirname(path)
    while parent != "/":
        out.add(parent)
        parent = posixpath.dirname(parent)
    return out


@pytest.mark.parametrize(
    "name", ["c-glibc-dynamic", "c-musl-dynamic", "cpp-dynamic", "c-runpath-origin/bin/app"]
)
def test_rootfs_json_and_copy_lines_describe_one_tree(name: str, tmp_path: Path) -> None:
    skip_unless_host_loads(name)
    binary = str(TESTBINS / name)
    out = tmp_path / "rootfs"
    written = run_cli("rootfs", binary, "--output", str(out))
    assert written.returncode == 0, written.stderr
    files = run_cli("inspect", "--format", "json", binary).json()["files"]
    copy = run_cli("inspect", "--format", "copy", binary).stdout.splitlines()

    tree = tree_of(out)
    json_paths = {f["path"] for f in files}
    copy_dests = {line.split()[-1] for line in copy}
    assert {p for p, kind in tree.items() if kind != "dir"} == json_paths == copy_dests
    # Directories are exactly the parents the files need: nothing else is in the tree.
    assert {p for p, kind in tree.items() if kind == "dir"} == set().union(
        *(_ancestors(p) for p in json_paths)
    )
    for entry in files:
        written_bytes = (out / entry["path"].lstrip("/")).read_bytes()
        assert written_bytes == Path(entry["source"]).read_bytes(), entry["path"]
        mode = stat.S_IMODE((out / entry["path"].lstrip("/")).stat().st_mode)
        assert mode == 0o755, entry["path"]


def _synthetic_root(tmp_path: Path) -> Path:
    """A root with a data tree holding a nested directory, an executable, a relative symlink
    inside the tree and an absolute one pointing out of it."""
    root = tmp_path / "root"
    data = root / "usr/share/data"
    (data / "sub").mkdir(parents=True)
    (data / "sub/a.txt").write_text("a\n")
    (data / "run.sh").write_text("#!/bin/sh\n")
    (data / "run.sh").chmod(0o700)
    (data / "alias").symlink_to("sub/a.txt")
    (data / "passwd").symlink_to("/etc/passwd")
    (root / "etc").mkdir()
    (root / "etc/secret").write_text("not for the image\n")
    return root


_EXECUTABLE = {FileKind.BINARY, FileKind.INTERPRETER, FileKind.LIBRARY}
# A kind of data file (certificates, zoneinfo, ...), once the planner has one.
DATA_KIND = next((k for k in FileKind if k not in _EXECUTABLE), None)


def _synthetic_plan() -> Plan:
    kind = DATA_KIND or FileKind.BINARY
    return Plan(
        (
            ImageFile(
                "/usr/share/data", FileType.DIRECTORY, kind, "a tree", source="/usr/share/data"
            ),
            ImageFile("/tmp", FileType.DIRECTORY, kind, "scratch space", mode="1777"),
            ImageFile("/etc/localtime", FileType.SYMLINK, kind, "a link", target="/x/UTC"),
            ImageFile("/etc/nsswitch.conf", FileType.FILE, kind, "made", content="hosts: files\n"),
            ImageFile("/etc/generated.conf", FileType.FILE, kind, "made", content="x", mode="600"),
        ),
        (),
    )


def test_every_entry_type_in_directory_and_tar(tmp_path: Path) -> None:
    root = Root(str(_synthetic_root(tmp_path)))
    plan = _synthetic_plan()
    out = tmp_path / "out"
    write_rootfs(plan, root, Destination(str(out), OutputKind.DIRECTORY))
    archive = tmp_path / "out.tar"
    write_rootfs(plan, root, Destination(str(archive), OutputKind.TAR))
    expected = {
        "/usr": "dir",
        "/usr/share": "dir",
        "/usr/share/data": "dir",
        "/usr/share/data/sub": "dir",
        "/usr/share/data/sub/a.txt": "file",
        "/usr/share/data/run.sh": "file",
        "/usr/share/data/alias": "->sub/a.txt",
        # Kept as the link it is: never followed out of the tree or the root.
        "/usr/share/data/passwd": "->/etc/passwd",
        "/tmp": "dir",
        "/etc": "dir",
        "/etc/localtime": "->/x/UTC",
        "/etc/nsswitch.conf": "file",
        "/etc/generated.conf": "file",
    }
    assert tree_of(out) == expected
    assert tree_of(extract(archive, tmp_path / "x")) == expected
    # Links whose target the image lacks are reported; a link inside the tree is fine.
    dangling = [w.split(" -> ")[0] for w in layout(plan, root).warnings if "dangling" in w]
    assert sorted(dangling) == ["/etc/localtime", "/usr/share/data/passwd"]

    def mode(path: str) -> int:
        return stat.S_IMODE(os.lstat(out / path.lstrip("/")).st_mode)

    assert mode("/tmp") == 0o1777
    assert mode("/usr/share/data/run.sh") == 0o755
    assert mode("/usr/share/data/sub/a.txt") == 0o644
    assert mode("/etc/nsswitch.conf") == (0o755 if DATA_KIND is None else 0o644)
    assert mode("/etc/generated.conf") == 0o600
    assert (out / "etc/nsswitch.conf").read_text() == "hosts: files\n"
    with tarfile.open(archive) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes["tmp"] == 0o1777
    assert modes["etc/generated.conf"] == 0o600


def _tar_bytes(tmp_path: Path, name: str, epoch: str | None) -> bytes:
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    archive = tmp_path / name
    skip_unless_host_loads("c-musl-dynamic")
    result = run_cli(
        "rootfs", DYNAMIC, str(TESTBINS / "c-musl-dynamic"), "--tar", str(archive), env=env
    )
    assert result.returncode == 0, result.stderr
    return archive.read_bytes()


def test_tar_is_reproducible(tmp_path: Path) -> None:
    first = _tar_bytes(tmp_path, "a.tar", None)
    again = _tar_bytes(tmp_path, "b.tar", None)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()
    later = _tar_bytes(tmp_path, "c.tar", "1700000000")
    assert later != first
    with tarfile.open(tmp_path / "a.tar") as a, tarfile.open(tmp_path / "c.tar") as c:
        members_a, members_c = a.getmembers(), c.getmembers()
        assert [m.name for m in members_a] == [m.name for m in members_c]
        for ma, mc in zip(members_a, members_c, strict=True):
            assert ma.mtime == 0
            assert mc.mtime == 1700000000
            assert (ma.mode, ma.type, ma.size, ma.linkname) == (
                mc.mode,
                mc.type,
                mc.size,
                mc.linkname,
            )
            assert (ma.uid, ma.gid, ma.uname, ma.gname) == (0, 0, "", "")
            assert ma.pax_headers == {}
        names = [m.name for m in members_a]
        assert names == sorted(names, key=lambda n: n.split("/"))
    # GNU format, no pax extended header records (typeflag 'x' / 'g').
    assert b"PaxHeader" not in first
    assert b"ustar  \x00" in first[:512]


def test_tar_long_path_uses_a_gnu_long_name(tmp_path: Path) -> None:
    deep = "/" + "/".join(["d" * 40] * 4) + "/file"
    plan = Plan((ImageFile(deep, FileType.FILE, FileKind.BINARY, "x", content="long\n"),), ())
    archive = tmp_path / "long.tar"
    write_rootfs(plan, Root(str(tmp_path)), Destination(str(archive), OutputKind.TAR))
    data = archive.read_bytes()
    assert b"././@LongLink" in data
    assert b"PaxHeader" not in data
    with tarfile.open(archive) as tar:
        member = tar.getmember(deep[1:])
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert extracted.read() == b"long\n"


def test_refuses_a_non_empty_directory_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious").write_text("keep me\n")
    refused = run_cli("rootfs", DYNAMIC, "--output", str(out))
    assert refused.returncode == 2
    assert refused.stderr.startswith("scratchprobe: error: ")
    assert len(refused.stderr.splitlines()) == 1
    assert (out / "precious").read_text() == "keep me\n"
    forced = run_cli("rootfs", DYNAMIC, "--output", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (out / "precious").exists()


def test_rewrites_its_own_output_and_keeps_the_marker_outside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("rootfs", DYNAMIC, "--output", str(out)).returncode == 0
    marker = tmp_path / f".out{MARKER_SUFFIX}"
    assert marker.exists()
    assert not any(MARKER_SUFFIX in p for p in tree_of(out))
    again = run_cli("rootfs", str(TESTBINS / "c-musl-dynamic"), "--output", str(out))
    assert again.returncode == 0, again.stderr
    assert "/lib/ld-musl-x86_64.so.1" in tree_of(out)
    assert not (out / DYNAMIC.lstrip("/")).exists()
    # Only the output and its marker are left beside it: no staging directories.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", marker.name])
    # A directory recreated by someone else is not ours any more.
    os.rename(out, tmp_path / "moved")
    out.mkdir()
    (out / "theirs").write_text("x")
    assert run_cli("rootfs", DYNAMIC, "--output", str(out)).returncode == 2


@pytest.mark.parametrize("where", ["/", "link", "file", "missing-parent/out"])
def test_refused_destinations(where: str, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "file").write_text("x")
    target = where if where == "/" else str(tmp_path / where)
    result = run_cli("rootfs", DYNAMIC, "--output", target, "--force")
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: ")
    assert "Traceback" not in result.stderr


def test_refuses_a_destination_containing_the_root(tmp_path: Path) -> None:
    root = _synthetic_root(tmp_path)
    with pytest.raises(DestinationRefused):
        write_rootfs(
            _synthetic_plan(),
            Root(str(root)),
            Destination(str(tmp_path), OutputKind.DIRECTORY),
            force=True,
        )


def test_failed_run_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _synthetic_root(tmp_path)
    out = tmp_path / "out"
    archive = tmp_path / "out.tar"
    for destination in (
        Destination(str(out), OutputKind.DIRECTORY),
        Destination(str(archive), OutputKind.TAR),
    ):
        write_rootfs(_synthetic_plan(), Root(str(root)), destination)
    before_tree = tree_of(out)
    before_tar = archive.read_bytes()
    before_listing = sorted(p.name for p in tmp_path.iterdir())

    import scratchprobe.rootfs.entries as rootfs_module

    real_open = rootfs_module.open_source
    opened: list[str] = []

    def failing_open(entry: rootfs_module.Entry) -> object:
        opened.append(entry.path)
        if len(opened) == 2:
            raise OSError(5, "Input/output error (injected)")
        return real_open(entry)

    monkeypatch.setattr(rootfs_module, "open_source", failing_open)
    bigger = Plan(
        (
            *_synthetic_plan().files,
            ImageFile(
                "/bin/app", FileType.FILE, FileKind.BINARY, "x", source=DYNAMIC, from_context=True
            ),
        ),
        (),
    )
    for destination in (
        Destination(str(out), OutputKind.DIRECTORY),
        Destination(str(archive), OutputKind.TAR),
    ):
        opened.clear()
        with pytest.raises(OSError, match="injected"):
            write_rootfs(bigger, Root(str(root)), destination)
    assert tree_of(out) == before_tree
    assert archive.read_bytes() == before_tar
    assert sorted(p.name for p in tmp_path.iterdir()) == before_listing


@pytest.mark.parametrize(
    "bad",
    [
        ImageFile("relative/path", FileType.FILE, FileKind.BINARY, "x", content=""),
        ImageFile("/usr/../etc/x", FileType.FILE, FileKind.BINARY, "x", content=""),
        ImageFile("/usr//x", FileType.FILE, FileKind.BINARY, "x", content=""),
        ImageFile("/", FileType.DIRECTORY, FileKind.BINARY, "x"),
        ImageFile("/x", FileType.FILE, FileKind.BINARY, "x", content="", mode="99"),
    ],
)
def test_unsafe_plan_entries_are_refused(bad: ImageFile, tmp_path: Path) -> None:
    with pytest.raises(RootfsError):
        layout(Plan((bad,), ()), Root(str(tmp_path)))


def test_never_writes_through_a_planned_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = Plan(
        (
            ImageFile("/lib", FileType.SYMLINK, FileKind.BINARY, "x", target=str(outside)),
            ImageFile("/lib/evil", FileType.FILE, FileKind.BINARY, "x", content="x"),
        ),
        (),
    )
    with pytest.raises(RootfsError, match="below /lib"):
        write_rootfs(
            plan, Root(str(tmp_path)), Destination(str(tmp_path / "out"), OutputKind.DIRECTORY)
        )
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_exit_codes(tmp_path: Path) -> None:
    unresolved = run_cli(
        "rootfs", str(TESTBINS / "runpath-not-inherited/app"), "-o", str(tmp_path / "a")
    )
    assert unresolved.returncode == 1
    assert "libB.so.1" in unresolved.stderr
    assert (tmp_path / "a").is_dir()
    missing = run_cli("rootfs", str(tmp_path / "nope"), "-o", str(tmp_path / "b"))
    assert missing.returncode == 2
    assert not (tmp_path / "b").exists()
    both = run_cli("rootfs", DYNAMIC, "-o", str(tmp_path / "c"), "--tar", str(tmp_path / "c.tar"))
    assert both.returncode == 2
    neither = run_cli("rootfs", DYNAMIC)
    assert neither.returncode == 2
    bad_epoch = run_cli(
        "rootfs",
        DYNAMIC,
        "--tar",
        str(tmp_path / "d.tar"),
        env={**os.environ, "SOURCE_DATE_EPOCH": "soon"},
    )
    assert bad_epoch.returncode == 2
    assert "SOURCE_DATE_EPOCH" in bad_epoch.stderr


def test_source_date_epoch() -> None:
    assert source_date_epoch({}) == 0
    assert source_date_epoch({"SOURCE_DATE_EPOCH": "42"}) == 42


def test_install_moves_the_binary(tmp_path: Path) -> None:
    result = run_cli(
        "rootfs", DYNAMIC, "--install", "/usr/local/bin/hello", "-o", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    tree = tree_of(tmp_path / "o")
    assert tree["/usr/local/bin/hello"] == "file"
    assert "/lib/x86_64-linux-gnu/libc.so.6" in tree
    assert not any(p.startswith("/work") for p in tree)


def test_install_resolves_origin_again(tmp_path: Path, make_root: RootBuilder) -> None:
    app = TESTBINS / "c-runpath-origin/bin/app"
    lib = TESTBINS / "c-runpath-origin/lib/libgreet.so.1"
    # In this builder the library is only where $ORIGIN/../lib points from /opt/app/bin.
    root = make_root({**glibc_base(), "/build/app": app, "/opt/app/lib/libgreet.so.1": lib})
    options = InspectOptions(root=str(root))
    staying = inspect_for_image(("/build/app",), options)
    assert staying.exit_code == 1
    moved = inspect_for_image(("/build/app",), options, install="/opt/app/bin/app")
    assert moved.exit_code == 0
    assert any("$ORIGIN" in w for w in moved.warnings)
    paths = {f.path for f in moved.plan.files}
    assert {"/opt/app/bin/app", "/opt/app/lib/libgreet.so.1"} <= paths
    assert "/build/app" not in paths
    assert moved.binaries[0].path == "/opt/app/bin/app"
    # The CLI warns about $ORIGIN, and fails (1) where the move breaks the closure.
    broken = run_cli(
        "rootfs", "--root", str(root), "/build/app", "--install", "/app", "-o", str(tmp_path / "o")
    )
    assert broken.returncode == 1
    assert "$ORIGIN" in broken.stderr
    assert "libgreet.so.1" in broken.stderr


def test_install_needs_exactly_one_binary(tmp_path: Path) -> None:
    result = run_cli(
        "rootfs",
        DYNAMIC,
        str(TESTBINS / "c-musl-dynamic"),
        "--install",
        "/app",
        "-o",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2
    assert "one binary" in result.stderr


def test_dockerfile_rootfs_stage() -> None:
    result = run_cli(
        "inspect",
        "--format",
        "dockerfile",
        "--rootfs-stage",
        "--from",
        "build",
        "--library-path",
        "/opt/lib",
        DYNAMIC,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "FROM build AS scratchprobe-rootfs",
        'RUN ["scratchprobe", "rootfs", "--output", "/rootfs", "--library-path", "/opt/lib", '
        f'"--", "{DYNAMIC}"]',
        "FROM scratch",
        "COPY --from=scratchprobe-rootfs /rootfs /",
        f'ENTRYPOINT ["{DYNAMIC}"]',
    ]


def test_dockerfile_rootfs_stage_copies_context_binaries_into_the_builder() -> None:
    if not os.path.isdir("/usr/aarch64-linux-gnu"):
        pytest.skip("needs /usr/aarch64-linux-gnu: apt-get install libc6-arm64-cross")
    inspection = inspect_for_image((DYNAMIC,), InspectOptions(root="/usr/aarch64-linux-gnu"))
    if inspection.problems or not inspection.binaries[0].from_context:
        pytest.skip("needs /usr/aarch64-linux-gnu (libc6-arm64-cross) as a foreign root")
    text = renderer(OutputFormat.DOCKERFILE)(inspection, RenderOptions(rootfs_stage=()))
    assert f"COPY {DYNAMIC} /c-glibc-dynamic" in text
    assert '"--", "/c-glibc-dynamic"]' in text
