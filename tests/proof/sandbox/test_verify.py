"""`scratchprobe verify`: binaries run in exactly their root filesystem, and the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect_for_image
from scratchprobe.root import Root
from scratchprobe.rootfs import Destination, OutputKind, write_rootfs
from scratchprobe.sandbox import (
    CannotEmulate,
    Descriptors,
    Mount,
    MountKind,
    SandboxKind,
    SandboxSpec,
    SandboxUnavailable,
    bwrap_command,
    bwrap_options,
    emulator_for,
    find_sandbox,
    qemu_name,
    run_sandboxed,
)
from scratchprobe.verify import VerifyOptions, verify
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli, skip_unless_host_loads
from tests.helpers_sandbox import needs_bwrap

pytestmark = pytest.mark.sandbox

DYNAMIC = [
    "c-glibc-dynamic",
    "c-musl-dynamic",
    "cpp-dynamic",
    "go-cgo",
    "rust-hello",
    "c-runpath-origin/bin/app",
    "rpath-inherit/app",
]
STATIC = ["c-glibc-static", "c-glibc-static-pie", "c-musl-static", "go-static"]


@needs_bwrap
@pytest.mark.parametrize("name", DYNAMIC + STATIC)
def test_testbin_runs_in_its_rootfs_like_on_the_host(name: str) -> None:
    skip_unless_host_loads(name)
    result = run_cli("verify", "--compare", str(TESTBINS / name), "--", "an-argument")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comparison: exit status matches, stdout matches, stderr matches" in result.stdout
    assert "hello from" in result.stdout


FOREIGN = {
    "aarch64": "/usr/aarch64-linux-gnu",
    "armhf": "/usr/arm-linux-gnueabihf",
    "i386": "/usr/i686-linux-gnu",
    "mips": "/usr/mips-linux-gnu",
    "ppc64le": "/usr/powerpc64le-linux-gnu",
    "riscv64": "/usr/riscv64-linux-gnu",
    "s390x": "/usr/s390x-linux-gnu",
}


def _foreign_or_skip(arch: str) -> tuple[str, str]:
    root = FOREIGN[arch]
    if not os.path.isdir(f"{root}/lib"):
        pytest.skip(f"needs the {arch} cross libc in {root} (libc6-*-cross)")
    try:
        emulator_for(arch)
    except CannotEmulate as exc:
        pytest.skip(str(exc))
    return str(TESTBINS / f"foreign/hello-{arch}"), root


@needs_bwrap
@pytest.mark.parametrize("arch", sorted(FOREIGN))
def test_foreign_binary_runs_in_its_rootfs(arch: str) -> None:
    binary, root = _foreign_or_skip(arch)
    result = verify(binary, VerifyOptions(root=root, compare=True))
    assert result.image_run.stdout == f"hello from hello-{arch}\n".encode()
    assert result.comparison is not None
    assert result.comparison.matches, (result.image_run, result.builder_run)
    assert result.exit_code == 0
    if arch != "i386":
        assert result.emulator is not None
        assert result.image_run.argv[0] == f"/.scratchprobe/qemu-{qemu_name(arch)}-static"


@needs_bwrap
def test_foreign_run_fails_without_its_libc(tmp_path: Path) -> None:
    binary, root = _foreign_or_skip("aarch64")
    emulator = emulator_for("aarch64")
    assert emulator is not None
    rootfs = _write(binary, tmp_path, root)
    argv = (emulator.image_path, "/hello-aarch64")
    spec = SandboxSpec(
        argv=argv,
        root=str(rootfs),
        mounts=(Mount(MountKind.RO_BIND, emulator.image_path, emulator.host_path),),
    )
    assert run_sandboxed(spec, SandboxKind.BWRAP, 60).succeeded
    (rootfs / "lib/libc.so.6").unlink()
    failed = run_sandboxed(spec, SandboxKind.BWRAP, 60)
    assert not failed.succeeded
    assert b"libc.so.6" in failed.stderr


def test_qemu_names_cover_every_architecture_name() -> None:
    for arch in ("aarch64", "armhf", "arm", "i386", "riscv64", "ppc64le", "ppc64", "s390x"):
        assert qemu_name(arch) is not None
    assert qemu_name("armhf") == "arm"
    assert qemu_name("mipsel") == "mipsel"
    assert emulator_for("i386", host="x86_64") is None
    assert emulator_for("x86_64", host="x86_64") is None
    with pytest.raises(CannotEmulate):
        emulator_for("em-9999", host="x86_64")


def test_missing_emulator_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CannotEmulate, match="qemu-aarch64-static"):
        emulator_for("aarch64", host="x86_64")


def test_missing_sandbox_tool_exits_2_with_the_install_hint(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = run_cli("verify", str(TESTBINS / "c-glibc-dynamic"), env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: ")
    assert "apt-get install bubblewrap" in result.stderr


def test_find_sandbox_is_bwrap_or_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"bwrap": "/usr/bin/bwrap", "unshare": "/usr/bin/unshare", "mount": "/bin/mount"}
    monkeypatch.setattr(shutil, "which", found.get)
    assert find_sandbox() is SandboxKind.BWRAP
    # unshare + chroot is never used, not even when it is the only tool left.
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap\)$"):
        find_sandbox(SandboxKind.UNSHARE)
    del found["bwrap"]
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        find_sandbox()
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        find_sandbox(SandboxKind.BWRAP)


def test_bwrap_command_shows_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "app").write_bytes(b"#")
    spec = SandboxSpec(argv=("/app", "x"), root=str(tmp_path), env=(("A", "b"),))
    with Descriptors() as fds:
        options = bwrap_options(spec, fds, None)
        command = bwrap_command(99, spec.argv)
    # The tree is copied in, not bound: no host path among the options.
    assert str(tmp_path) not in " ".join(options)
    assert options[options.index("--file") + 2] == "/app"
    for flag in ("--clearenv", "--unshare-net", "--unshare-pid", "--die-with-parent"):
        assert flag in options
    assert options[options.index("--setenv") : options.index("--setenv") + 3] == [
        "--setenv",
        "A",
        "b",
    ]
    assert options.index("--remount-ro") > options.index("--file")
    assert command == ["bwrap", "--args", "99", "--", "/app", "x"]


def _write(binary: str, into: Path, root: str = "/") -> Path:
    inspection = inspect_for_image((binary,), InspectOptions(root=root))
    out = into / "rootfs"
    write_rootfs(
        inspection.plan, Root(inspection.root), Destination(str(out), OutputKind.DIRECTORY)
    )
    return out


@needs_bwrap
def test_the_check_can_fail_without_a_library(tmp_path: Path) -> None:
    binary = str(TESTBINS / "cpp-dynamic")
    rootfs = _write(binary, tmp_path)
    spec = SandboxSpec(argv=(binary,), root=str(rootfs))
    assert run_sandboxed(spec, SandboxKind.BWRAP, 30).succeeded
    (rootfs / "lib/x86_64-linux-gnu/libstdc++.so.6").unlink()
    failed = run_sandboxed(spec, SandboxKind.BWRAP, 30)
    assert not failed.succeeded
    assert b"libstdc++.so.6" in failed.stderr
    # Without its interpreter, the program cannot even start.
    (rootfs / "lib64/ld-linux-x86-64.so.2").unlink()
    not_started = run_sandboxed(spec, SandboxKind.BWRAP, 30)
    assert not_started.exec_error is not None
    assert not not_started.succeeded


@needs_bwrap
def test_verify_fails_when_the_builder_lacks_a_library(make_root: RootBuilder) -> None:
    base = glibc_base()
    del base["/lib/x86_64-linux-gnu/libc.so.6"]
    root = make_root({**base, "/app": TESTBINS / "c-glibc-dynamic"})
    result = run_cli("verify", "--root", str(root), "/app")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "libc.so.6" in result.stdout + result.stderr
    assert "FAIL" in result.stdout


@needs_bwrap
def test_library_outside_default_dirs_through_ld_so_cache(make_root: RootBuilder) -> None:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(ldconfig):
        pytest.skip("needs the host's ldconfig")
    root = make_root(
        {
            **glibc_base(),
            # $ORIGIN/../lib from /app/app is /lib, which does not hold the library:
            # only the builder's ld.so.cache finds it, in /opt/lib.
            "/app/app": TESTBINS / "c-runpath-origin/bin/app",
            "/opt/lib/libgreet.so.1": TESTBINS / "c-runpath-origin/lib/libgreet.so.1",
        }
    )
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/ld.so.conf").write_text("/opt/lib\n")
    subprocess.run([ldconfig, "-r", str(root)], check=True, capture_output=True)
    result = verify("/app/app", VerifyOptions(root=str(root), compare=True))
    assert result.comparison is not None
    assert result.comparison.matches, (result.image_run, result.builder_run)
    assert result.exit_code == 0
    placed = {e.path for e in result.rootfs.layout.entries}
    assert "/lib/x86_64-linux-gnu/libgreet.so.1" in placed
    assert "/opt/lib/libgreet.so.1" not in placed


@needs_bwrap
def test_library_outside_default_dirs_through_library_path(make_root: RootBuilder) -> None:
    root = make_root(
        {
            **glibc_base(),
            "/app/app": TESTBINS / "c-runpath-origin/bin/app",
            "/srv/libs/libgreet.so.1": TESTBINS / "c-runpath-origin/lib/libgreet.so.1",
        }
    )
    # The builder run finds the library through LD_LIBRARY_PATH; the image, which has no
    # /srv/libs, through the default directory the planner put it in.
    result = run_cli(
        "verify",
        "--root",
        str(root),
        "--library-path",
        "/srv/libs",
        "--env",
        "LD_LIBRARY_PATH=/srv/libs",
        "--compare",
        "/app/app",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "via libgreet" in result.stdout


@needs_bwrap
def test_environment_is_only_what_is_given() -> None:
    # env calls setlocale: the plan's locale need sets LANG, as the image's ENV would; a
    # --env value wins over the plan's, and nothing of this process's environment leaks.
    result = verify(
        "/usr/bin/env",
        VerifyOptions(env=(("GREETING", "hi there"), ("LANG", "C")), compare=True),
    )
    assert sorted(result.image_run.stdout.splitlines()) == [
        b"GREETING=hi there",
        b"LANG=C",
        b"PWD=/",
    ]
    assert result.comparison is not None
    assert result.comparison.matches


@needs_bwrap
def test_image_env_reaches_the_program() -> None:
    result = verify("/usr/bin/env", VerifyOptions())
    assert b"LANG=C.UTF-8" in result.image_run.stdout.splitlines()


@needs_bwrap
def test_no_network_leaves_only_loopback() -> None:
    result = verify("/usr/bin/cat", VerifyOptions(args=("/proc/net/dev",), network=False))
    assert result.image_run.succeeded
    interfaces = [
        line.split(":")[0].strip() for line in result.image_run.stdout.decode().splitlines()[2:]
    ]
    assert interfaces == ["lo"]


@needs_bwrap
def test_timeout_stops_the_run() -> None:
    result = run_cli("verify", "--timeout", "1", "/usr/bin/sleep", "--", "30")
    assert result.returncode == 1
    assert "timed out" in result.stdout


@needs_bwrap
def test_compare_reports_a_difference() -> None:
    # The image holds only ls and its libraries, the builder a whole system.
    result = run_cli("verify", "--compare", "/usr/bin/ls", "--", "/")
    assert result.returncode == 1
    assert "stdout differs" in result.stdout


@pytest.mark.parametrize("name", ["c-glibc-dynamic", "go-static"])
def test_unshare_fallback_is_refused_with_the_install_hint(name: str) -> None:
    result = run_cli("verify", "--sandbox", "unshare", "--compare", str(TESTBINS / name))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("scratchprobe: error: ")
    assert lines[0].endswith("install bubblewrap (apt-get install bubblewrap)")


def test_unshare_runner_is_refused(tmp_path: Path) -> None:
    spec = SandboxSpec(argv=("/bin/true",), root=str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        run_sandboxed(spec, SandboxKind.UNSHARE, 30)


def test_verify_usage_errors(tmp_path: Path) -> None:
    missing = run_cli("verify", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("scratchprobe: error: ")
    several = run_cli("verify", str(TESTBINS / "rpath-inherit"))
    assert several.returncode == 2
    bad_env = run_cli("verify", "--env", "NOEQUALS", str(TESTBINS / "c-glibc-dynamic"))
    assert bad_env.returncode == 2
