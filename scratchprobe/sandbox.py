"""Run a program inside a root filesystem with nothing of the host visible, and QEMU for
foreign ELF.

The runner is bubblewrap, configured so that the program gets nothing of the host
(docs/security-verify.md lists each promise and the test that proves it):
- bwrap itself runs as the unprivileged host user 65534 (when scratchprobe runs as root) and
  maps the program to uid/gid 65534 in a new user namespace: no capability in any namespace
  (`--cap-drop ALL`), no_new_privs, and no further user namespace (`--disable-userns`);
- new PID, IPC, UTS, cgroup and network namespaces (the network shows only loopback unless
  the host's is asked for), a new session, killed with its parent;
- the root is the root of a tmpfs of its own, read-only, holding a copy of the image: as root
  a private mount namespace stages it (`_STAGER`) and bwrap binds it; otherwise bwrap copies
  it from descriptors (`--file FD`). A bind of the written rootfs would show its host path in
  /proc/self/mountinfo. /tmp (and paths asked for) are tmpfs; /dev is bwrap's minimal one;
- bwrap's options come from a descriptor (`--args FD`), so /proc/1/cmdline shows only
  `bwrap --args N -- PROGRAM ARGS`;
- stdout and stderr are read incrementally and cut at OUTPUT_LIMIT, which stops the run.

The unshare + chroot runner of earlier versions is refused: a chroot can be escaped by a
process that may call chroot(2) again, it exposed the host's /dev and the program kept
root's capabilities. Nothing weaker than the above is ever used.

The environment is always cleared: a scratch image has no PATH, HOME or LANG unless the image
config sets them, so only `--env` values are passed, plus PWD=/: bwrap always sets PWD to the
working directory after clearing, so every run does the same to keep runs comparable.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from scratchprobe.errors import ScratchprobeError

BWRAP_HINT = "install bubblewrap (apt-get install bubblewrap)"
UNSHARE_REFUSED = (
    "the unshare + chroot sandbox is refused: a chroot can be escaped, it showed the host's "
    f"/dev and left the program root's capabilities; {BWRAP_HINT}"
)
EMULATOR_DIR = "/.scratchprobe"
"""Where a QEMU user-mode emulator is placed inside the root filesystem for a foreign binary."""

SANDBOX_UID = 65534
"""The program's uid and gid inside the sandbox, and the host user bwrap runs as when
scratchprobe runs as root: the traditional `nobody`, which owns nothing on the host."""
SANDBOX_HOSTNAME = "localhost"
"""The hostname the program sees (its own UTS namespace): the host's name stays hidden, and
this one resolves through the runtime-provided /etc/hosts."""
OUTPUT_LIMIT = 16 * 1024 * 1024
"""Bytes kept per stream; a program that writes more is stopped (`yes` would fill memory)."""
OUTPUT_LIMIT_TEXT = "16 MiB"
# scratchprobe architecture names (elf.arch.arch_name) -> QEMU user-mode target names.
_QEMU_NAMES: dict[str, str] = {
    "x86_64": "x86_64",
    "i386": "i386",
    "aarch64": "aarch64",
    "aarch64_be": "aarch64_be",
    "armhf": "arm",
    "arm": "arm",
    "armeb": "armeb",
    "riscv64": "riscv64",
    "riscv32": "riscv32",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "ppc": "ppc",
    "s390x": "s390x",
    "mips": "mips",
    "mipsel": "mipsel",
    "mips64": "mips64",
    "mips64el": "mips64el",
    "m68k": "m68k",
    "sh4": "sh4",
    "sparc64": "sparc64",
    "sparc": "sparc",
    "hppa": "hppa",
    "loongarch64": "loongarch64",
}

# platform.machine() -> the architectures its kernel runs without emulation. x86_64 kernels
# run i386 programs natively (IA32 emulation, enabled in Debian's kernels).
_NATIVE: dict[str, frozenset[str]] = {
    "x86_64": frozenset({"x86_64", "i386"}),
    "i686": frozenset({"i386"}),
    "i386": frozenset({"i386"}),
    "aarch64": frozenset({"aarch64"}),
    "armv7l": frozenset({"armhf", "arm"}),
    "ppc64le": frozenset({"ppc64le"}),
    "s390x": frozenset({"s390x"}),
    "riscv64": frozenset({"riscv64"}),
}


class SandboxUnavailable(ScratchprobeError):
    """No sandbox tool can run here (bwrap missing and unshare unusable)."""


class SandboxFailed(ScratchprobeError):
    """The sandbox tool itself failed before the program ran."""


class CannotEmulate(ScratchprobeError):
    """A foreign binary and no QEMU user-mode emulator for it."""


class SandboxKind(Enum):
    BWRAP = "bwrap"
    UNSHARE = "unshare"


@dataclass(frozen=True)
class Emulator:
    """A QEMU user-mode emulator that runs a foreign binary."""

    arch: str
    qemu_name: str
    host_path: str
    """The static emulator on this machine."""

    @property
    def image_path(self) -> str:
        """Where it is placed inside a root filesystem."""
        return f"{EMULATOR_DIR}/qemu-{self.qemu_name}-static"


def qemu_name(arch: str) -> str | None:
    return _QEMU_NAMES.get(arch)


def host_arch() -> str:
    return platform.machine()


def emulator_for(arch: str, host: str | None = None) -> Emulator | None:
    """None when this machine runs `arch` natively; else the emulator, or CannotEmulate.

    Only `qemu-ARCH-static` is usable: the emulator runs inside the root filesystem, which
    holds none of the libraries a dynamically linked QEMU would need.
    """
    machine = host or host_arch()
    if arch in _NATIVE.get(machine, frozenset({machine})):
        return None
    name = qemu_name(arch)
    if name is None:
        raise CannotEmulate(f"no QEMU user-mode emulator is known for {arch}; it cannot run here")
    found = shutil.which(f"qemu-{name}-static")
    if found is None:
        raise CannotEmulate(
            f"{arch} binaries cannot run on this {machine} machine without qemu-{name}-static "
            "(apt-get install qemu-user-static)"
        )
    return Emulator(arch, name, os.path.realpath(found))


class MountKind(Enum):
    RO_BIND = "ro-bind"
    BIND = "bind"
    TMPFS = "tmpfs"
    SYMLINK = "symlink"
    DIR = "dir"
    """An empty directory (read-only once the root is remounted)."""


@dataclass(frozen=True)
class Mount:
    kind: MountKind
    destination: str
    """Absolute path inside the sandbox."""
    source: str | None = None
    """Host path to bind, or the symlink's target."""


@dataclass(frozen=True)
class SandboxSpec:
    """What the program sees: a root, extra mounts, /dev and /proc, and nothing else."""

    argv: tuple[str, ...]
    """Program (a path inside the sandbox) and its arguments."""
    root: str | None
    """Host directory whose tree is copied into the sandbox's own read-only root; None: an
    empty root holding only `mounts`. A `/tmp` directory in the tree becomes a tmpfs."""
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    network: bool = False
    """Share the host's network; False: a new network namespace with only loopback."""
    writable: tuple[str, ...] = ()
    """Paths inside the sandbox that are a writable tmpfs (with the tree's content there, if
    any) instead of read-only; /tmp always is."""


@dataclass(frozen=True)
class RunResult:
    """How one run ended."""

    argv: tuple[str, ...]
    exit_status: int | None
    """Exit code, 128+N when killed by signal N (the shell's convention); None when the
    program did not start or was stopped (timeout, output over the limit)."""
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    exec_error: str | None = None
    """Why the program could not be started (e.g. its ELF interpreter is missing)."""
    stdout_cut: bool = False
    """stdout reached OUTPUT_LIMIT: the run was stopped there and `stdout` holds the limit."""
    stderr_cut: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    @property
    def output_cut(self) -> bool:
        return self.stdout_cut or self.stderr_cut


def find_sandbox(preferred: SandboxKind | None = None) -> SandboxKind:
    """The sandbox to use: bwrap, or SandboxUnavailable with the install hint."""
    if preferred is SandboxKind.UNSHARE:
        raise SandboxUnavailable(UNSHARE_REFUSED)
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(f"bwrap not found: {BWRAP_HINT}")
    return SandboxKind.BWRAP


# Top-level entries of a builder's tree that are not its files: the kernel's and the
# runtime's. /tmp gets a fresh tmpfs; /run (sockets of the host's daemons, which a read-only
# bind would still let the program connect to) an empty directory.
_NOT_BUILDER_FILES = frozenset({"dev", "proc", "sys", "tmp"})
_EMPTY_IN_BUILDER = {"run": MountKind.DIR}
BUILDER_HIDDEN = _NOT_BUILDER_FILES | set(_EMPTY_IN_BUILDER)
"""Top-level directories of the builder that builder_mounts does not show."""


def builder_mounts(root: str) -> tuple[Mount, ...]:
    """The builder's filesystem `root` seen as `/`, read-only, without modifying it.

    Binding `root` itself as `/` would make bwrap create /dev, /proc and every mount point
    inside the builder's tree; instead each top-level entry is bound read-only (or
    re-created, for a symlink) on the sandbox's own root, with its own /dev, /proc, an empty
    /tmp and an empty /run.
    """
    mounts = []
    for name in sorted(os.listdir(root)):
        if name in _NOT_BUILDER_FILES:
            continue
        path = os.path.join(root, name)
        if os.path.islink(path):
            mounts.append(Mount(MountKind.SYMLINK, "/" + name, os.readlink(path)))
        elif name in _EMPTY_IN_BUILDER and os.path.isdir(path):
            mounts.append(Mount(_EMPTY_IN_BUILDER[name], "/" + name))
        elif os.path.isdir(path) or os.path.isfile(path):
            mounts.append(Mount(MountKind.RO_BIND, "/" + name, path))
    mounts.append(Mount(MountKind.TMPFS, "/tmp"))
    return tuple(mounts)


def run_sandboxed(
    spec: SandboxSpec,
    kind: SandboxKind,
    timeout: float | None,
    prefix: Sequence[str] = (),
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> RunResult:
    """Run `spec` in the sandbox. `prefix` goes before the bwrap command (a tracer such as
    `strace -f -o FILE`); it runs as the same host user as bwrap (`runner_user(spec)`), so a
    file it writes must be in a directory that user may write. `started` is told the
    runner's process as soon as it exists (`verify --probe` stops it when its probe ends)."""
    if kind is not SandboxKind.BWRAP:
        raise SandboxUnavailable(UNSHARE_REFUSED)
    return _run_bwrap(spec, timeout, tuple(prefix), started)


def run_host(
    argv: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    timeout: float | None,
    executable: str | None = None,
    network: bool = True,
) -> RunResult:
    """Run on this machine as it is, with the same cleared environment. Only for programs
    the caller trusts (tests comparing a testbin's run); `verify` never uses it.

    Without network, the run goes into a new network namespace (`unshare --net`).
    """
    command = list(argv)
    exe = executable
    if not network:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise SandboxUnavailable("unshare not found: cannot run without network")
        command = [unshare, "--net", "--", executable or argv[0], *argv[1:]]
        exe = None
    try:
        proc = subprocess.Popen(
            command,
            executable=exe,
            env=program_env(env),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return RunResult(argv, None, b"", b"", exec_error=exc.strerror or str(exc))
    return _collect(proc, argv, timeout)[0]


def program_env(env: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The whole environment of the program: `env`, and PWD as bwrap sets it."""
    return {**dict(env), "PWD": "/"}


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class Descriptors(contextlib.AbstractContextManager["Descriptors"]):
    """The host files and directories handed to bwrap by descriptor, closed on exit.

    Passing descriptors instead of paths keeps host paths out of bwrap's command line, and
    lets the unprivileged bwrap read what root opened for it (a rootfs under a 0700
    temporary directory)."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def file(self, path: str) -> int:
        return self._keep(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))

    def path(self, path: str) -> int:
        """An O_PATH descriptor of a file or directory, for --ro-bind-fd."""
        return self._keep(os.open(path, os.O_PATH | os.O_CLOEXEC))

    def data(self, content: bytes) -> int:
        fd = self._keep(os.memfd_create("scratchprobe-bwrap-args", os.MFD_CLOEXEC))
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    @property
    def all(self) -> tuple[int, ...]:
        return tuple(self._fds)

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


def _tree_options(host_dir: str, dest: str, writable: set[str], fds: Descriptors) -> list[str]:
    """bwrap options that re-create the tree at `host_dir` at `dest` in the sandbox's root:
    directories with their modes, files copied from descriptors, symlinks; a directory named
    in `writable` becomes a tmpfs first, so what is copied into it stays writable."""
    options: list[str] = []
    mode = f"{stat.S_IMODE(os.lstat(host_dir).st_mode):04o}"
    if dest != "/":
        options += ["--perms", mode, "--dir", dest]
    if dest in writable:
        options += ["--perms", mode, "--tmpfs", dest]
    return options + _children_options(host_dir, dest, writable, fds)


def _children_options(host_dir: str, dest: str, writable: set[str], fds: Descriptors) -> list[str]:
    options: list[str] = []
    with os.scandir(host_dir) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        inner = dest.rstrip("/") + "/" + entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            options += ["--symlink", os.readlink(entry.path), inner]
        elif stat.S_ISDIR(st.st_mode):
            options += _tree_options(entry.path, inner, writable, fds)
        elif stat.S_ISREG(st.st_mode):
            perms = f"{stat.S_IMODE(st.st_mode):04o}"
            options += ["--perms", perms, "--file", str(fds.file(entry.path)), inner]
        else:
            raise SandboxFailed(f"{entry.path}: not a file, directory or symlink")
    return options


def bwrap_options(
    spec: SandboxSpec, fds: Descriptors, status_fd: int | None, stage: str | None = None
) -> list[str]:
    """Every bwrap option for `spec` (what `--args FD` passes), opening the descriptors the
    options name in `fds`. The program's argv is not included.

    `stage`: a tmpfs already holding a copy of `spec.root` and every mount point
    (stage_entries), bound read-only as `/`; None: the tree is copied file by file into
    bwrap's own root. Either way the root is the root of a filesystem of its own, so
    /proc/self/mountinfo names no host directory.
    """
    options = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    # No capability in the sandbox's user namespace, and none gained through a nested one.
    options += ["--disable-userns", "--cap-drop", "ALL"]
    options += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup"]
    if not spec.network:
        # A new network namespace: bwrap brings its loopback up and adds nothing else.
        options.append("--unshare-net")
    options += ["--hostname", SANDBOX_HOSTNAME, "--new-session", "--die-with-parent"]
    writable = {"/tmp", *spec.writable}
    present: set[str] = set()
    if spec.root is not None:
        present = {w for w in writable if os.path.isdir(spec.root + w)}
        if stage is None:
            options += _tree_options(spec.root, "/", writable, fds)
        else:
            options += ["--ro-bind", stage, "/"]
            for path in sorted(present):
                mode = f"{stat.S_IMODE(os.stat(spec.root + path).st_mode):04o}"
                options += ["--perms", mode, "--tmpfs", path]
                options += _children_options(spec.root + path, path, writable, fds)
    for mount in spec.mounts:
        dest = mount.destination
        if mount.kind is MountKind.TMPFS:
            options += ["--perms", "1777" if dest == "/tmp" else "0755", "--tmpfs", dest]
            present.add(dest)
        elif mount.kind is MountKind.DIR:
            if stage is None:
                options += ["--perms", "0755", "--dir", dest]
        elif mount.kind is MountKind.SYMLINK:
            assert mount.source is not None
            if stage is None:
                options += ["--symlink", mount.source, dest]
        else:
            assert mount.source is not None
            bind = "--bind-fd" if mount.kind is MountKind.BIND else "--ro-bind-fd"
            if os.path.isfile(mount.source) and stage is None:
                # A bind onto a file needs the file to exist in the root first.
                options += ["--perms", "0644", "--file", str(fds.data(b"")), dest]
            options += [bind, str(fds.path(mount.source)), dest]
    for path in spec.writable:
        if path not in present:
            # Asked for but not in the tree (or under a read-only bind): an empty tmpfs.
            if stage is None:
                options += ["--perms", "0755", "--dir", path]
            options += ["--perms", "0755", "--tmpfs", path]
    options += ["--dev", "/dev", "--proc", "/proc", "--remount-ro", "/", "--chdir", "/"]
    options.append("--clearenv")
    for key, value in program_env(spec.env).items():
        options += ["--setenv", key, value]
    if status_fd is not None:
        options += ["--json-status-fd", str(status_fd)]
    return options


def stage_entries(spec: SandboxSpec) -> list[tuple[str, str, str | None]]:
    """What a staged root needs besides the tree, since bwrap cannot create anything in a
    read-only root: every mount point, as (kind, path, symlink target)."""
    entries: list[tuple[str, str, str | None]] = [("dir", "/dev", None), ("dir", "/proc", None)]
    for mount in spec.mounts:
        if mount.kind is MountKind.SYMLINK:
            entries.append(("symlink", mount.destination, mount.source))
        elif mount.kind in (MountKind.TMPFS, MountKind.DIR):
            entries.append(("dir", mount.destination, None))
        elif mount.source is not None:
            kind = "file" if os.path.isfile(mount.source) else "dir"
            entries.append((kind, mount.destination, None))
    entries += [("dir", path, None) for path in spec.writable]
    return entries


def bwrap_command(options_fd: int, argv: Sequence[str]) -> list[str]:
    """The command line itself: bwrap reads its options from `options_fd` (as written by
    bwrap_options), so neither they nor any host path show in /proc/1/cmdline."""
    return ["bwrap", "--args", str(options_fd), "--", *argv]


def runner_user(spec: SandboxSpec, stage: str | None = None) -> int | None:
    """The host user bwrap runs as: SANDBOX_UID when we are root and that user can reach
    every bound directory, else ourselves (None).

    bwrap resolves a bind's source path again (even one given as a descriptor), so a
    builder tree under a 0700 directory can only be bound by root; then the program is still
    uid 65534 without capabilities inside its own user namespace, which maps it to root's uid.
    """
    if os.geteuid() != 0:
        return None
    sources = [
        m.source for m in spec.mounts if m.kind in (MountKind.RO_BIND, MountKind.BIND) and m.source
    ]
    if stage is not None:
        sources.append(stage)
    if all(_reachable_by_others(os.path.realpath(source)) for source in sources):
        return SANDBOX_UID
    return None


def _reachable_by_others(path: str) -> bool:
    parent = os.path.dirname(path)
    while True:
        info = os.stat(parent)
        if not (info.st_mode & stat.S_IXOTH or info.st_uid == SANDBOX_UID):
            return False
        if parent == "/":
            return True
        parent = os.path.dirname(parent)


def _ensure_descriptors(needed: int) -> None:
    """Raise the soft descriptor limit to the hard one when an image has many files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed + 64 <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed + 64 > hard:
        raise SandboxFailed(
            f"the image has about {needed} files, more descriptors than this process may "
            f"open (ulimit -n {hard})"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _count_files(spec: SandboxSpec) -> int:
    if spec.root is None:
        return len(spec.mounts)
    return sum(len(files) for _dir, _dirs, files in os.walk(spec.root)) + len(spec.mounts)


# Runs as root in a private mount namespace (`unshare --mount --propagation private`):
# mounts a tmpfs on the stage directory, copies the image's tree and the mount points into
# it, becomes the runner user and execs bwrap, which binds the stage read-only as `/`. The
# tmpfs exists only in that namespace and goes away with it. Argument: the JSON spec.
_STAGER = r"""
import json, os, shutil, subprocess, sys
spec = json.loads(sys.argv[1])
stage = spec["stage"]
try:
    mounted = subprocess.run(
        [spec["mount"], "-t", "tmpfs", "-o", "mode=0755", "tmpfs", stage], capture_output=True
    )
    if mounted.returncode != 0:
        raise OSError(mounted.stderr.decode(errors="replace").strip() or "mount failed")
    shutil.copytree(spec["root"], stage, symlinks=True, dirs_exist_ok=True)
    os.chmod(stage, 0o755)  # an image's / is 0755, whatever the directory it came from
    for kind, path, target in spec["prepare"]:
        inner = stage + path
        if os.path.lexists(inner):
            continue
        os.makedirs(os.path.dirname(inner), exist_ok=True)
        if kind == "dir":
            os.mkdir(inner, 0o755)
        elif kind == "file":
            open(inner, "x").close()
        else:
            os.symlink(target, inner)
    user = spec["user"]
    if user is not None:
        os.setgroups([])
        os.setresgid(user, user, user)
        os.setresuid(user, user, user)
except Exception as exc:
    sys.stderr.write(f"scratchprobe: sandbox setup: {exc}\n")
    sys.exit(125)
os.execv(spec["exec"], spec["argv"])
"""

# bwrap's own limit on its arguments (MAX_ARGS in bubblewrap.c), --args included.
_BWRAP_MAX_ARGS = 9000


def _stager() -> tuple[str, str] | None:
    """unshare and mount, when staging a root on a tmpfs is possible (as root)."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if os.geteuid() != 0 or unshare is None or mount is None:
        return None
    return unshare, mount


def _run_bwrap(
    spec: SandboxSpec,
    timeout: float | None,
    prefix: tuple[str, ...],
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> RunResult:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bwrap not found: {BWRAP_HINT}")
    tools = _stager() if spec.root is not None else None
    stage = None
    if tools is None:
        _ensure_descriptors(_count_files(spec))
    else:
        stage = tempfile.mkdtemp(prefix="scratchprobe-stage-")
        os.chmod(stage, 0o755)  # an empty mount point; bwrap may run as another user
    read_fd, write_fd = os.pipe()
    try:
        with Descriptors() as fds:
            try:
                options = bwrap_options(spec, fds, write_fd, stage)
            except OSError as exc:
                os.close(write_fd)
                raise SandboxFailed(f"{exc.filename}: {exc.strerror or exc}") from None
            except BaseException:
                os.close(write_fd)
                raise
            if len(options) + len(spec.argv) > _BWRAP_MAX_ARGS - 8:
                os.close(write_fd)
                raise SandboxFailed(
                    "the image has too many files to copy into bwrap's root one by one "
                    f"({_BWRAP_MAX_ARGS} arguments at most); as root they are staged on a tmpfs"
                )
            options_fd = fds.data(b"".join(o.encode() + b"\0" for o in options))
            command = bwrap_command(options_fd, spec.argv)
            executable = bwrap
            if prefix:
                command = [*prefix, bwrap, *command[1:]]
                executable = shutil.which(prefix[0]) or prefix[0]
            user = runner_user(spec, stage)
            if tools is not None and stage is not None and spec.root is not None:
                unshare, mount = tools
                payload = {
                    "stage": stage,
                    "mount": mount,
                    "root": spec.root,
                    "prepare": stage_entries(spec),
                    "user": user,
                    "exec": executable,
                    "argv": command,
                }
                command = [unshare, "--mount", "--propagation", "private", "--"]
                command += [sys.executable, "-I", "-c", _STAGER, json.dumps(payload)]
                executable, user = unshare, None
            status, proc_result = _run_with_status(
                command, executable, spec.argv, timeout, read_fd, write_fd, fds.all, user, started
            )
    finally:
        os.close(read_fd)
        if stage is not None:
            # Empty: the tmpfs on it lived only in the stager's mount namespace.
            shutil.rmtree(stage, ignore_errors=True)
    if proc_result.timed_out or proc_result.output_cut or status.get("exit-code") is not None:
        return proc_result
    stderr = proc_result.stderr.decode(errors="replace").strip()
    # bwrap reports a failed execvp of the program itself like this; that is the program's
    # failure to start in this root (a missing interpreter, say), not the sandbox's.
    exec_prefix = f"bwrap: execvp {spec.argv[0]}: "
    if stderr.startswith(exec_prefix):
        return RunResult(
            spec.argv, None, proc_result.stdout, b"", exec_error=stderr[len(exec_prefix) :]
        )
    last = stderr.splitlines()[-1] if stderr else "no message"
    setup = "scratchprobe: sandbox setup: "
    if last.startswith(setup):
        raise SandboxFailed(last[len("scratchprobe: ") :])
    raise SandboxFailed(f"bwrap failed: {last}")


def _run_with_status(
    command: list[str],
    executable: str,
    argv: tuple[str, ...],
    timeout: float | None,
    read_fd: int,
    write_fd: int,
    pass_fds: tuple[int, ...],
    user: int | None,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> tuple[dict[str, object], RunResult]:
    """Run `command` (as host user `user`, None: ourselves), collecting the JSON status
    lines it writes to `write_fd` (which this function closes)."""
    try:
        proc = subprocess.Popen(
            command,
            executable=executable,
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd, *pass_fds),
            # Its own session: a terminal's ^C reaches scratchprobe, which stops the run.
            start_new_session=True,
            # The program, even if it left every namespace, would be an unprivileged user.
            user=user,
            group=user,
            extra_groups=None if user is None else [],
        )
    except OSError as exc:
        raise SandboxFailed(f"{command[0]}: {exc.strerror or exc}") from None
    finally:
        # Only the runner holds the write end now, so reading stops when it exits.
        os.close(write_fd)
    if started is not None:
        started(proc)
    result, returncode = _collect(proc, argv, timeout)
    if result.timed_out or result.output_cut:
        return {}, result
    status: dict[str, object] = {}
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    for line in data.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            status.update(record)
    code = status.get("exit-code")
    exit_status = code if isinstance(code, int) else _status(returncode)
    return status, RunResult(argv, exit_status, result.stdout, result.stderr)


@dataclass
class _Stream:
    data: bytearray = field(default_factory=bytearray)
    cut: bool = False


def _collect(
    proc: subprocess.Popen[bytes], argv: tuple[str, ...], timeout: float | None
) -> tuple[RunResult, int]:
    """Read stdout and stderr as they come, each up to OUTPUT_LIMIT; stop the process at the
    timeout or when a stream passes the limit. The process is gone when this returns, even
    on KeyboardInterrupt (--die-with-parent takes the program down with bwrap)."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Stream(), _Stream()
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    try:
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    timed_out = True
                    break
                for key, _events in selector.select(wait):
                    fd = int(key.fd)
                    stream = streams[fd]
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        selector.unregister(fd)
                        continue
                    room = OUTPUT_LIMIT - len(stream.data)
                    stream.data += chunk[:room]
                    if len(chunk) > room:
                        stream.cut = True
                if out.cut or err.cut:
                    break
        if not (timed_out or out.cut or err.cut):
            # Both streams are closed, but the process may still be exiting (or keep
            # running with its outputs closed): wait for it within what is left of the
            # timeout instead of killing a run that finished properly.
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        if proc.poll() is None:
            proc.kill()
        returncode = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    result = RunResult(
        argv,
        None if timed_out or out.cut or err.cut else _status(returncode),
        bytes(out.data),
        bytes(err.data),
        timed_out=timed_out,
        stdout_cut=out.cut,
        stderr_cut=err.cut,
    )
    return result, returncode
