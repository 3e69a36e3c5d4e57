"""`scratchprobe rootfs` writes exactly what was asked, where it was asked, and nothing else:
never through a symlinked parent, no staging file left after SIGTERM (and one left by
SIGKILL removed by the next run), `--tar -` on stdout, and no runtime directory that
resolves to the builder's root or to a directory holding other planned files."""

from __future__ import annotations

import io
import os
import pty
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, TESTBINS, RootBuilder, glibc_base, run_cli

STATIC = TESTBINS / "c-glibc-static"
DYNAMIC = str(TESTBINS / "c-glibc-dynamic")


def staging_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".scratchprobe-" in p.name)


def leftovers(directory: Path) -> list[str]:
    """Names beside the outputs that are not an output or its ownership marker."""
    return [name for name in staging_files(directory) if not name.endswith(".scratchprobe-rootfs")]


# ----- destinations through symlinks ------------------------------------------------


@pytest.mark.parametrize("option", ["--output", "--tar"])
def test_refuses_a_symlinked_parent(option: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to("real")
    for target in (tmp_path / "link" / "out", tmp_path / "link" / "sub" / "out"):
        result = run_cli("rootfs", DYNAMIC, option, str(target))
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("scratchprobe: error: ")
        assert f"{tmp_path / 'link'} is a symbolic link" in lines[0]
    assert sorted(p.name for p in real.rglob("*")) == ["sub"], "nothing written through it"


def test_real_parent_still_works(tmp_path: Path) -> None:
    result = run_cli("rootfs", DYNAMIC, "--output", str(tmp_path / "a" / "out"))
    assert result.returncode == 2, "a missing parent is refused"
    (tmp_path / "a").mkdir()
    result = run_cli("rootfs", DYNAMIC, "--output", str(tmp_path / "a" / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a" / "out" / DYNAMIC.lstrip("/")).is_file()


# ----- staging files: SIGTERM, SIGKILL ----------------------------------------------


def big_root(tmp_path: Path, size: int) -> Path:
    """A root whose zoneinfo holds one sparse file of `size` bytes: writing it takes long
    enough to be interrupted, and costs no disk space in the root."""
    root = tmp_path / "root"
    (root / "usr/share/zoneinfo").mkdir(parents=True)
    (root / "app").write_bytes(STATIC.read_bytes())
    (root / "app").chmod(0o755)
    with open(root / "usr/share/zoneinfo/big", "wb") as big:
        big.truncate(size)
    return root


def start_rootfs(root: Path, option: str, destination: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "scratchprobe", "rootfs", "--root", str(root)),
            *("--with", "zoneinfo", option, str(destination), "/app"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


# Big enough that the copy is still running when the test interrupts it, small enough that
# a run the test fails to interrupt fills no disk (and its output is removed anyway).
BIG = 4 << 30


@contextmanager
def running_rootfs(tmp_path: Path, option: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `rootfs` run of a big plan into tmp_path/dest, yielded once it has created
    something there (polling: the test asserts the order of events, never their timing).
    Whatever happens, the process is killed at the end and the data it wrote removed."""
    out_dir = tmp_path / "dest"
    out_dir.mkdir()
    process = start_rootfs(big_root(tmp_path, BIG), option, out_dir / "out")
    try:
        while not any(out_dir.iterdir()):
            assert process.poll() is None, "finished before it could be interrupted"
            os.sched_yield()
        yield process
    finally:
        process.kill()
        process.communicate(timeout=120)
        shutil.rmtree(out_dir, ignore_errors=True)


@pytest.mark.parametrize("option", ["--output", "--tar"])
def test_sigterm_removes_the_staging_files(option: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "dest"
    with running_rootfs(tmp_path, option) as process:
        assert leftovers(out_dir), "its staging file is named as ours"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGTERM, stderr
        assert b"Traceback" not in stderr
        assert list(out_dir.iterdir()) == [], "nothing published, nothing left beside it"


@pytest.mark.parametrize("option", ["--output", "--tar"])
def test_next_run_removes_what_sigkill_left(option: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "dest"
    root = tmp_path / "root"
    with running_rootfs(tmp_path, option) as process:
        process.kill()
        process.communicate(timeout=120)
        stale = leftovers(out_dir)
        assert stale, "SIGKILL cannot be cleaned up by the process itself"
        # Not ours to remove: a live process's staging file and a name we never use.
        live = f".out.scratchprobe-{os.getpid()}-{'0' * 16}.partial"
        (out_dir / live).write_text("in use")
        (out_dir / ".out.other.partial").write_text("someone else's")
        with open(root / "usr/share/zoneinfo/big", "wb") as big:
            big.truncate(10)
        result = run_cli(
            *("rootfs", "--root", str(root), "--with", "zoneinfo"),
            *(option, str(out_dir / "out"), "/app"),
        )
        assert result.returncode == 0, result.stderr
        names = sorted(p.name for p in out_dir.iterdir())
        assert not set(stale) & set(names)
        assert live in names
        assert ".out.other.partial" in names


# ----- --tar - ----------------------------------------------------------------------


def test_tar_dash_streams_to_stdout(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), SOURCE_DATE_EPOCH="0")
    args = [sys.executable, "-m", "scratchprobe", "rootfs", DYNAMIC]
    streamed = subprocess.run(
        [*args, "--tar", "-"], capture_output=True, env=env, cwd=tmp_path, check=False
    )
    assert streamed.returncode == 0, streamed.stderr
    assert not (tmp_path / "-").exists(), "no file named -"
    assert b"wrote the tar archive to stdout" in streamed.stderr
    archive = tmp_path / "file.tar"
    written = subprocess.run(
        [*args, "--tar", str(archive)], capture_output=True, env=env, check=False
    )
    assert written.returncode == 0, written.stderr
    assert streamed.stdout == archive.read_bytes(), "the same reproducible bytes"
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
        assert DYNAMIC.lstrip("/") in tar.getnames()


def test_tar_dash_refuses_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = subprocess.run(
            [sys.executable, "-m", "scratchprobe", "rootfs", DYNAMIC, "--tar", "-"],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 2
    assert result.stderr.decode().startswith("scratchprobe: error: --tar -: refusing")
    assert list(tmp_path.iterdir()) == []


# ----- runtime directories ------------------------------------------------------------


def zoneinfo_root(make_root: RootBuilder, zoneinfo: str) -> Path:
    files = glibc_base()
    files["/usr/bin/app"] = DYNAMIC
    files["/etc/shadow"] = str(REPO / "README.md")
    files["/usr/share/zoneinfo"] = zoneinfo
    return make_root(files)


@pytest.mark.parametrize("target", ["->/", "->../../..", "->/lib/x86_64-linux-gnu", "->/lib"])
def test_zoneinfo_that_resolves_to_the_root_or_other_files_is_not_copied(
    target: str, make_root: RootBuilder, tmp_path: Path
) -> None:
    root = zoneinfo_root(make_root, target)
    base = ("--root", str(root), "--with", "zoneinfo")
    document = run_cli("inspect", "--format", "json", *base, "/usr/bin/app").json()
    assert not any(f["path"] == "/usr/share/zoneinfo" for f in document["files"])
    assert any("/usr/share/zoneinfo: not copied" in w for w in document["warnings"])
    copy = run_cli("inspect", "--format", "copy", *base, "/usr/bin/app").stdout
    # No COPY line names it; the warning says why (also as a comment in the copy output).
    assert not any("zoneinfo" in line for line in copy.splitlines() if line.startswith("COPY"))
    assert "# warning: /usr/share/zoneinfo: not copied" in copy
    out = tmp_path / "out"
    result = run_cli("rootfs", *base, "/usr/bin/app", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "/usr/share/zoneinfo: not copied" in result.stderr
    assert not (out / "etc/shadow").exists()
    assert not (out / "usr/share/zoneinfo").exists()


def test_real_zoneinfo_is_copied_without_following_links_out(
    make_root: RootBuilder, tmp_path: Path
) -> None:
    files = glibc_base()
    files["/usr/bin/app"] = DYNAMIC
    files["/etc/shadow"] = str(REPO / "README.md")
    files["/usr/share/zoneinfo/Europe/Paris"] = str(REPO / "pyproject.toml")
    files["/usr/share/zoneinfo/leak"] = "->/etc/shadow"
    files["/usr/share/zoneinfo/up"] = "->../../.."
    files["/usr/share/zoneinfo/UTC"] = "->Europe/Paris"
    root = make_root(files)
    base = ("--root", str(root), "--with", "zoneinfo")
    document = run_cli("inspect", "--format", "json", *base, "/usr/bin/app").json()
    entry = next(f for f in document["files"] if f["path"] == "/usr/share/zoneinfo")
    assert entry["type"] == "directory"
    out = tmp_path / "out"
    assert run_cli("rootfs", *base, "/usr/bin/app", "--output", str(out)).returncode == 0
    zoneinfo = out / "usr/share/zoneinfo"
    assert (zoneinfo / "Europe/Paris").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    # Links inside are copied as links, as COPY of a directory copies them: never read.
    assert os.readlink(zoneinfo / "leak") == "/etc/shadow"
    assert os.readlink(zoneinfo / "up") == "../../.."
    assert os.readlink(zoneinfo / "UTC") == "Europe/Paris"
    assert not (out / "etc/shadow").exists()
    every = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    assert all(p.read_bytes() != (REPO / "README.md").read_bytes() for p in every)


# ----- the way out for names no Dockerfile can express -------------------------------


def test_rootfs_writes_a_name_no_dockerfile_can_express(tmp_path: Path) -> None:
    name = b"nl\nscratchprobe: error: forged\xff"
    binary = os.path.join(os.fsencode(tmp_path), name)
    with open(binary, "wb") as out:
        out.write(STATIC.read_bytes())
    os.chmod(binary, 0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), SOURCE_DATE_EPOCH="0")
    archive = tmp_path / "out.tar"
    directory = tmp_path / "out"
    for option, target in (("--tar", archive), ("--output", directory)):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "scratchprobe",
                "rootfs",
                os.fsdecode(binary),
                option,
                str(target),
            ],
            capture_output=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
        assert len(result.stdout.decode("utf-8").splitlines()) == 1, result.stdout
    with tarfile.open(archive) as tar:
        member = tar.getmember(os.fsdecode(binary).lstrip("/"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert extracted.read() == STATIC.read_bytes()
    written = os.path.join(os.fsencode(directory), binary.lstrip(b"/"))
    with open(written, "rb") as copy:
        assert copy.read() == STATIC.read_bytes()
