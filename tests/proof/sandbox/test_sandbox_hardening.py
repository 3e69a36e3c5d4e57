"""The verify sandbox gives the program nothing of the host (docs/security-verify.md).

Every promise is checked on what testbins/built/c-musl-sandbox-probe reports from inside:
it tries what a hostile program would (mount, mknod of the host's disk, the mkdir + chroot +
`cd ..` escape, a new user namespace, reading host marker files, writing the root) and prints
one JSON object. The probe runs through `scratchprobe verify` as a user would, and through
the core API, for the image run and the `--compare` builder run. CI runs this as root.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scratchprobe import sandbox
from scratchprobe.model import InspectOptions
from scratchprobe.needs.model import NeedKind
from scratchprobe.sandbox import (
    OUTPUT_LIMIT,
    SandboxKind,
    SandboxSpec,
    run_sandboxed,
    runner_user,
)
from scratchprobe.verify import VerifyOptions, verify
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli
from tests.helpers_sandbox import needs_bwrap

pytestmark = [pytest.mark.sandbox, needs_bwrap]

PROBE = str(TESTBINS / "c-musl-sandbox-probe")
ZERO_CAPS = "0000000000000000"
EPERM, ENOENT, EACCES, EROFS = "errno 1", "errno 2", "errno 13", "errno 30"
# bwrap's minimal /dev: the six device nodes, and the usual links and directories.
DEVICES = {"null", "zero", "full", "random", "urandom", "tty"}
DEV_OTHERS = {"pts:d", "shm:d", "ptmx:l", "fd:l", "stdin:l", "stdout:l", "stderr:l", "core:l"}


class Markers:
    """Host files the program must not reach: in the test's tmp_path (under the host's
    /tmp), in /root and in /var/tmp (mode 0600, owned by root)."""

    def __init__(self, tmp_path: Path) -> None:
        tag = secrets.token_hex(6)
        self.paths = [
            tmp_path / f"marker-{tag}",
            Path("/root") / f"scratchprobe-marker-{tag}",
            Path("/var/tmp") / f"scratchprobe-marker-{tag}",
        ]
        for path in self.paths:
            path.write_text(f"host secret {tag}\n")
            path.chmod(0o600)
        self.tag = tag
        self.written: list[Path] = []
        """Host paths the program tries to create: removed afterwards, should it succeed."""

    def args(self) -> list[str]:
        return [arg for path in self.paths for arg in ("--read", str(path))]

    def remove(self) -> None:
        for path in self.paths + self.written:
            path.unlink(missing_ok=True)


@pytest.fixture
def markers(tmp_path: Path) -> Iterator[Markers]:
    if os.geteuid() != 0:
        pytest.skip("host markers in /root need root (CI runs as root)")
    made = Markers(tmp_path)
    yield made
    made.remove()


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A TMPDIR of its own, to see what verify leaves behind."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    return tmpdir, {**os.environ, "TMPDIR": str(tmpdir)}


def _host_disk() -> str:
    dev = os.stat("/").st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def _stdout_of(report: str, name: str = "stdout") -> str:
    """The probe's JSON from verify's text report (`--- stdout:` up to `--- stderr`)."""
    start = report.index(f"--- {name}:\n") + len(f"--- {name}:\n")
    end = report.index("\n--- ", start)
    return report[start:end]


def _cli_probe(*args: str, options: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Any:
    result = run_cli("verify", *options, PROBE, "--", *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sandbox: bwrap" in result.stdout
    return json.loads(_stdout_of(result.stdout))


def _api_options(root: str = "/", **kwargs: Any) -> VerifyOptions:
    plan = InspectOptions(root=root, with_kinds=frozenset({NeedKind.TMP}))
    return VerifyOptions(root=root, plan=plan, **kwargs)


def _assert_no_privilege(report: dict[str, Any]) -> None:
    assert (report["uid"], report["euid"], report["gid"]) == (65534, 65534, 65534)
    for name in ("cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"):
        assert report[name] == ZERO_CAPS, name
    assert report["no_new_privs"] == "1"
    assert report["prctl_no_new_privs"] == 1


def _assert_cannot_act(report: dict[str, Any]) -> None:
    assert report["mount_tmpfs"] == EPERM
    assert report["mount_proc"] == EPERM
    assert report["mknod_block"] == EPERM
    assert "open_block" not in report
    assert report["mknod_char"] == EPERM
    # A nested user namespace would give it every capability over its own mounts.
    assert report["unshare_user"] != "ok"
    assert report["chroot_escape"] == f"chroot: {EPERM}"
    assert "chroot_escape_root" not in report


def _assert_minimal_dev(report: dict[str, Any]) -> None:
    entries = set(report["dev"])
    assert {e for e in entries if e.endswith(":c")} == {f"{d}:c" for d in DEVICES}
    assert not [e for e in entries if e.endswith(":b")]
    assert entries - {f"{d}:c" for d in DEVICES} <= DEV_OTHERS


def _assert_nothing_of_the_host(report: dict[str, Any], hidden: list[str]) -> None:
    """No host name, cgroup, temporary path or marker in what the program can see."""
    assert report["hostname"] == "localhost"
    assert report["hostname"] != socket.gethostname()
    assert report["pid"] == 2  # bwrap's reaper is PID 1 of the new PID namespace
    cgroups = report["cgroup"].splitlines()
    assert cgroups
    assert all(line.endswith(":/") for line in cgroups), cgroups
    # PID 1's command line is bwrap's, with its options behind a descriptor; then comes the
    # program's own argv (which it knows anyway).
    assert re.fullmatch(r"bwrap --args \d+", report["proc1_cmdline"].split(" -- ")[0])
    for text in (report["mountinfo"], report["environ"]):
        for secret in ["scratchprobe-verify-", "--ro-bind", "--file ", *hidden]:
            assert secret not in text, (secret, text)
    assert report["environ"] == "PWD=/ "


def _mounts(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """mount point -> (root within its filesystem, filesystem type), from mountinfo."""
    return {point: (root, fstype) for point, (root, fstype, _) in _mount_table(report).items()}


def _mount_table(report: dict[str, Any]) -> dict[str, tuple[str, str, set[str]]]:
    """mount point -> (root within its filesystem, type, mount options) (proc(5))."""
    out = {}
    for line in report["mountinfo"].splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        out[fields[4]] = (fields[3], fstype, set(fields[5].split(",")))
    return out


def test_image_run_has_no_capabilities_and_sees_nothing_of_the_host(
    markers: Markers, tmp_path: Path, tmpdir_env: tuple[Path, dict[str, str]]
) -> None:
    tmpdir, env = tmpdir_env
    report = _cli_probe(*markers.args(), "--blockdev", _host_disk(), env=env)
    _assert_no_privilege(report)
    _assert_cannot_act(report)
    _assert_minimal_dev(report)
    # The markers do not exist in its world, whatever their permissions.
    assert report["read"] == {str(path): ENOENT for path in markers.paths}
    _assert_nothing_of_the_host(report, [str(tmp_path), str(tmpdir), markers.tag])
    # Its root is bwrap's own tmpfs, read-only, holding a copy of the image: no bind of a
    # host directory, so mountinfo names none.
    mounts = _mounts(report)
    assert mounts["/"][1] == "tmpfs"
    assert {"ro", "nosuid", "nodev"} <= _mount_table(report)["/"][2]
    assert mounts["/tmp"] == ("/", "tmpfs")
    assert {point for point in mounts if not point.startswith(("/dev/", "/proc/"))} == {
        "/",
        "/tmp",
        "/dev",
        "/proc",
    }
    assert report["write_root"] == EROFS
    assert report["write_tmp"] == "ok"
    # The image: the probe at its path, the runtime's /etc/hosts and resolv.conf, /tmp.
    top = PROBE.split("/")[1]
    # (a set: the probe's own top directory is /tmp when the checkout is under /tmp)
    assert sorted(report["root_entries"]) == sorted(
        {"dev:d", "etc:d", "proc:d", "tmp:d", f"{top}:d"}
    )
    assert report["interfaces"] == ["lo"]
    assert list(tmpdir.iterdir()) == []


def test_core_api_gives_the_same_sandbox(markers: Markers) -> None:
    result = verify(PROBE, _api_options(args=(*markers.args(), "--blockdev", _host_disk())))
    assert result.sandbox is SandboxKind.BWRAP
    assert result.image_run.succeeded, result.image_run
    report = json.loads(result.image_run.stdout)
    _assert_no_privilege(report)
    _assert_cannot_act(report)
    _assert_minimal_dev(report)
    assert set(report["read"].values()) == {ENOENT}
    assert report["interfaces"] == ["lo"]


def test_the_root_is_read_only_but_tmp_and_writable_paths() -> None:
    report = _cli_probe(
        "--write",
        "/etc/new-file",
        "--write",
        "/data/new-file",
        "--write",
        "/var/cache/x",
        "--read",
        "/etc/hosts",
        options=("--writable", "/data", "--writable", "/var/cache"),
    )
    assert report["write_root"] == EROFS
    assert report["write_tmp"] == "ok"
    assert report["write"] == {
        "/etc/new-file": EROFS,
        "/data/new-file": "ok",
        "/var/cache/x": "ok",
    }
    assert report["read"] == {"/etc/hosts": "ok"}
    # A writable path that holds image files keeps them, and takes new ones.
    with_etc = _cli_probe(
        "--read", "/etc/hosts", "--write", "/etc/new-file", options=("--writable", "/etc")
    )
    assert with_etc["read"] == {"/etc/hosts": "ok"}
    assert with_etc["write"] == {"/etc/new-file": "ok"}
    assert _mounts(with_etc)["/etc"][1] == "tmpfs"


def test_writable_must_be_an_image_path() -> None:
    result = run_cli("verify", "--writable", "relative/dir", PROBE)
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: --writable relative/dir")
    assert len(result.stderr.splitlines()) == 1


def _host_interfaces() -> list[str]:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines]


def test_network_is_loopback_only_unless_asked() -> None:
    assert _cli_probe()["interfaces"] == ["lo"]
    assert _cli_probe(options=("--no-network",))["interfaces"] == ["lo"]
    shared = _cli_probe(options=("--network", "host"))
    assert shared["interfaces"] == _host_interfaces()
    # Sharing the network shares nothing else.
    _assert_no_privilege(shared)
    assert shared["hostname"] == "localhost"
    both = run_cli("verify", "--no-network", "--network", "host", PROBE)
    assert both.returncode == 2
    assert len(both.stderr.splitlines()) == 1


def test_loopback_reaches_only_the_sandbox_own_servers() -> None:
    # A server on the host's 127.0.0.1 is out of reach by default, reachable with
    # --network host: bash's /dev/tcp needs no tool in the image but bash itself.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        script = f"echo hi > /dev/tcp/127.0.0.1/{port}"
        isolated = run_cli("verify", "/bin/bash", "--", "-c", script)
        assert isolated.returncode == 1, isolated.stdout
        assert "Connection refused" in isolated.stdout
        shared = run_cli("verify", "--network", "host", "/bin/bash", "--", "-c", script)
        assert shared.returncode == 0, shared.stdout + shared.stderr
        connection, _ = server.accept()
        with connection:
            assert connection.recv(16) == b"hi\n"


def test_compare_runs_the_builder_side_in_the_same_sandbox_over_a_read_only_root(
    markers: Markers, tmp_path: Path
) -> None:
    written = f"/var/tmp/scratchprobe-written-{markers.tag}"
    etc_written = f"/etc/scratchprobe-written-{markers.tag}"
    markers.written += [Path(written), Path(etc_written)]
    args = (*markers.args(), "--write", written, "--write", etc_written)
    result = verify(PROBE, _api_options(args=(*args, "--blockdev", _host_disk()), compare=True))
    assert result.builder_run is not None
    report = json.loads(result.builder_run.stdout)
    _assert_no_privilege(report)
    _assert_cannot_act(report)
    _assert_minimal_dev(report)
    # The builder is the host's `/` here: its files are seen, read-only, by an unprivileged
    # user, so a root-only marker stays unreadable and nothing can be written.
    tmp_marker, root_marker, var_marker = (str(p) for p in markers.paths)
    assert report["read"] == {tmp_marker: ENOENT, root_marker: EACCES, var_marker: EACCES}
    assert report["write"] == {written: EROFS, etc_written: EROFS}
    assert not os.path.exists(written)
    assert not os.path.exists(etc_written)
    assert report["write_root"] == EROFS
    assert report["write_tmp"] == "ok"
    # The host's /tmp and /run are not the builder's files: empty there.
    assert _mounts(report)["/tmp"] == ("/", "tmpfs")
    assert report["interfaces"] == ["lo"]
    assert report["hostname"] == "localhost"
    assert all(line.endswith(":/") for line in report["cgroup"].splitlines())
    assert str(tmp_path) not in report["mountinfo"]
    assert "scratchprobe-verify-" not in report["mountinfo"] + report["proc1_cmdline"]


def test_compare_over_a_builder_only_root_can_reach(make_root: RootBuilder) -> None:
    # A builder tree under pytest's 0700 directory: bwrap must run as root to bind it, the
    # program stays uid 65534 without capabilities in its own user namespace.
    root = make_root({**glibc_base(), "/app/probe": TESTBINS / "c-musl-sandbox-probe"})
    (root / "tmp").mkdir(exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/builder-only").write_text("x\n")
    result = verify(
        "/app/probe",
        _api_options(
            root=str(root),
            args=("--read", "/etc/builder-only", "--write", "/etc/builder-only"),
            compare=True,
        ),
    )
    assert result.builder_run is not None
    report = json.loads(result.builder_run.stdout)
    _assert_no_privilege(report)
    _assert_cannot_act(report)
    assert report["read"] == {"/etc/builder-only": "ok"}
    assert report["write"] == {"/etc/builder-only": EROFS}
    assert (root / "etc/builder-only").read_text() == "x\n"
    image = json.loads(result.image_run.stdout)
    assert image["read"] == {"/etc/builder-only": ENOENT}


def test_the_runner_is_unprivileged_on_the_host_when_it_can_be() -> None:
    spec = SandboxSpec(argv=("/x",), root=None)
    expected = 65534 if os.geteuid() == 0 else None
    assert runner_user(spec) == expected


def _leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("scratchprobe-"))


def test_output_is_cut_at_the_bound_and_memory_stays_bounded(
    tmpdir_env: tuple[Path, dict[str, str]],
) -> None:
    tmpdir, env = tmpdir_env
    # Measure the CLI's own peak memory: it is the only child of this small wrapper.
    wrapper = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "sys.stderr.buffer.write(proc.stderr)\n"
        "print(proc.returncode, len(proc.stdout), "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.flush()\n"
        "sys.stdout.buffer.write(proc.stdout[:4096] + proc.stdout[-4096:])\n"
    )
    cli = [sys.executable, "-m", "scratchprobe", "verify"]
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cli, "/usr/bin/yes"],
        capture_output=True,
        env=env,
        check=False,
    )
    first, _, sample = proc.stdout.partition(b"\n")
    returncode, length, max_rss_kib = (int(word) for word in first.split())
    assert returncode == 1, proc.stderr
    assert b"image run: stopped: output over 16 MiB" in sample
    assert b"--- stdout (output cut at 16 MiB):" in sample
    # 16 MiB of "y\n" and the report around it, not gigabytes.
    assert OUTPUT_LIMIT <= length < OUTPUT_LIMIT + 4096
    assert max_rss_kib < 400 * 1024
    assert _leftovers(tmpdir) == []


def test_each_stream_is_bounded_in_the_api(
    monkeypatch: pytest.MonkeyPatch, tmpdir_env: tuple[Path, dict[str, str]]
) -> None:
    tmpdir, _env = tmpdir_env
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    for stream in ("stdout", "stderr"):
        result = verify(PROBE, _api_options(args=("--flood", stream)))
        run = result.image_run
        assert getattr(run, f"{stream}_cut")
        assert len(getattr(run, stream)) == OUTPUT_LIMIT
        assert set(getattr(run, stream)) == {ord("y")}
        assert run.exit_status is None
        assert not run.succeeded
        assert result.exit_code == 1
    assert _leftovers(tmpdir) == []


def test_timeout_removes_the_rootfs(tmpdir_env: tuple[Path, dict[str, str]]) -> None:
    tmpdir, env = tmpdir_env
    result = run_cli("verify", "--timeout", "1", "/usr/bin/sleep", "--", "30", env=env)
    assert result.returncode == 1
    assert "timed out" in result.stdout
    assert _leftovers(tmpdir) == []


def _sleepers(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == f"/usr/bin/sleep\0{tag}\0".encode():
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_removes_the_rootfs_and_the_program(
    signum: int, tmpdir_env: tuple[Path, dict[str, str]]
) -> None:
    tmpdir, env = tmpdir_env
    # A duration no other process uses, to find the sandboxed sleep among the host's.
    tag = f"{1000 + secrets.randbelow(9000)}.{secrets.randbelow(1000)}"
    with subprocess.Popen(
        [sys.executable, "-m", "scratchprobe", "verify", "/usr/bin/sleep", "--", tag],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        for _ in range(600):  # the program is running once it shows in the process table
            if _sleepers(tag):
                break
            time.sleep(0.05)
        assert _sleepers(tag), "the sandboxed program never started"
        assert _leftovers(tmpdir)  # the rootfs exists while the program runs
        proc.send_signal(signum)
        proc.communicate(timeout=60)
    assert proc.returncode != 0
    for _ in range(200):  # --die-with-parent: the kernel kills it as bwrap dies
        if not _sleepers(tag):
            break
        time.sleep(0.05)
    assert _sleepers(tag) == []
    assert _leftovers(tmpdir) == []


def test_runner_takes_a_prefix_for_a_tracer(tmp_path: Path) -> None:
    strace = subprocess.run(["strace", "-V"], capture_output=True, check=False)
    if strace.returncode != 0:
        pytest.skip("strace is not installed")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/hello").write_bytes((TESTBINS / "c-musl-static").read_bytes())
    (tmp_path / "bin/hello").chmod(0o755)
    spec = SandboxSpec(argv=("/bin/hello",), root=str(tmp_path))
    prefix = ("strace", "-f", "-qq", "-e", "trace=execve")
    run = run_sandboxed(spec, SandboxKind.BWRAP, 60, prefix=prefix)
    assert run.succeeded, run
    assert run.stdout == b"hello from c-musl-static\n"
    assert b'execve("/bin/hello", ["/bin/hello"]' in run.stderr


def _probe_root(root: Path, files: int = 0) -> None:
    """An image: the probe at /probe, an empty /tmp, and `files` small data files."""
    (root / "tmp").mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    (root / "probe").write_bytes(Path(PROBE).read_bytes())
    (root / "probe").chmod(0o755)
    for index in range(files):
        directory = root / "data" / f"{index // 500}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"file-{index}").write_text(f"{index}\n")


@pytest.mark.parametrize("staged", [True, False], ids=["staged-on-tmpfs", "copied-by-bwrap"])
def test_both_ways_of_filling_the_root_keep_the_promises(
    staged: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root the image is staged on a tmpfs of its own; otherwise bwrap copies it file by
    # file. Both must hide the host the same way.
    if staged and sandbox._stager() is None:
        pytest.skip("staging the root needs root, unshare and mount")
    if not staged:
        monkeypatch.setattr(sandbox, "_stager", lambda: None)
    root = tmp_path / "image"
    _probe_root(root)
    spec = SandboxSpec(argv=("/probe", "--read", "/data/0/file-0"), root=str(root))
    run = run_sandboxed(spec, SandboxKind.BWRAP, 60)
    assert run.succeeded, run
    report = json.loads(run.stdout)
    _assert_no_privilege(report)
    _assert_cannot_act(report)
    _assert_minimal_dev(report)
    _assert_nothing_of_the_host(report, [str(tmp_path), "scratchprobe-stage-"])
    # The root of a tmpfs: the staged one's own, or bwrap's (its directory "/newroot").
    assert _mounts(report)["/"] == (("/" if staged else "/newroot"), "tmpfs")
    assert report["write_root"] == EROFS
    assert report["write_tmp"] == "ok"
    assert sorted(report["root_entries"]) == ["dev:d", "probe:f", "proc:d", "tmp:d"]


def test_a_large_image_runs_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More files than bwrap takes arguments for (9000) when copying one by one: gdb's image
    # with its Python library is such a case.
    if sandbox._stager() is None:
        pytest.skip("staging the root needs root, unshare and mount")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    root = tmp_path / "image"
    _probe_root(root, files=2500)
    spec = SandboxSpec(argv=("/probe", "--read", "/data/4/file-2499"), root=str(root))
    run = run_sandboxed(spec, SandboxKind.BWRAP, 120)
    assert run.succeeded, run
    report = json.loads(run.stdout)
    assert report["read"] == {"/data/4/file-2499": "ok"}
    _assert_no_privilege(report)
    assert _mounts(report)["/"] == ("/", "tmpfs")
    assert _leftovers(tmpdir) == []
    # Without staging the same image is refused in one clear sentence, not a bwrap usage dump.
    monkeypatch.setattr(sandbox, "_stager", lambda: None)
    with pytest.raises(sandbox.SandboxFailed, match="too many files"):
        run_sandboxed(spec, SandboxKind.BWRAP, 120)
