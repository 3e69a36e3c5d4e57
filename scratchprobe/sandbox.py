"""Run a program inside a root filesystem with nothing else visible, and QEMU for foreign ELF.

Two runners take the same `SandboxSpec`:
- bubblewrap: `bwrap` starts from an empty tmpfs root, binds what the spec names, adds /dev and
  /proc, clears the environment and runs the program in new PID (and, when asked, network)
  namespaces; `--json-status-fd` tells the program's exit code apart from bwrap's own errors;
- unshare + chroot, where bwrap is missing: `unshare` makes the namespaces and runs a small
  Python helper (this module's `_HELPER`) that mounts the same layout, chroots, and stays as
  PID 1 of the namespace while the program runs as its child (a program running as PID 1
  would be immune to its own signals: `abort()` could not kill it).

The environment is always cleared: a scratch image has no PATH, HOME or LANG unless the image
config sets them, so only `--env` values are passed, plus PWD=/: bwrap always sets PWD to the
working directory after clearing, so every runner does the same to keep runs comparable.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from enum import Enum

from scratchprobe.errors import ScratchprobeError

BWRAP_HINT = "install bubblewrap (apt-get install bubblewrap)"
EMULATOR_DIR = "/.scratchprobe"
"""Where a QEMU user-mode emulator is placed inside the root filesystem for a foreign binary."""

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
    """Host directory bound read-write as `/`; None: an empty tmpfs holding only `mounts`."""
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    network: bool = True
    """Share the host's network; False: a new, empty network namespace."""


@dataclass(frozen=True)
class RunResult:
    """How one run ended."""

    argv: tuple[str, ...]
    exit_status: int | None
    """Exit code, 128+N when killed by signal N (the shell's convention); None when the
    program did not start or was stopped at the timeout."""
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    exec_error: str | None = None
    """Why the program could not be started (e.g. its ELF interpreter is missing)."""

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0


def find_sandbox(preferred: SandboxKind | None = None) -> SandboxKind:
    """The sandbox to use: bwrap when present, else unshare + chroot."""
    if preferred is SandboxKind.BWRAP or preferred is None:
        if shutil.which("bwrap"):
            return SandboxKind.BWRAP
        if preferred is SandboxKind.BWRAP:
            raise SandboxUnavailable(f"bwrap not found: {BWRAP_HINT}")
    if shutil.which("unshare") and shutil.which("mount"):
        return SandboxKind.UNSHARE
    raise SandboxUnavailable(f"neither bwrap nor unshare found: {BWRAP_HINT}")


def builder_mounts(root: str) -> tuple[Mount, ...]:
    """The builder's filesystem `root` seen as `/`, read-only, without modifying it.

    Binding `root` itself as `/` would make bwrap create /dev, /proc and every mount point
    inside the builder's tree; instead each top-level entry is bound (or re-created, for a
    symlink) on a tmpfs root, with its own /dev, /proc and an empty /tmp.
    """
    mounts = []
    for name in sorted(os.listdir(root)):
        if name in ("dev", "proc", "sys", "tmp"):
            continue
        path = os.path.join(root, name)
        if os.path.islink(path):
            mounts.append(Mount(MountKind.SYMLINK, "/" + name, os.readlink(path)))
        elif os.path.isdir(path) or os.path.isfile(path):
            mounts.append(Mount(MountKind.RO_BIND, "/" + name, path))
    mounts.append(Mount(MountKind.TMPFS, "/tmp"))
    return tuple(mounts)


def run_sandboxed(
    spec: SandboxSpec, kind: SandboxKind, timeout: float | None, tracer: tuple[str, ...] = ()
) -> RunResult:
    """`tracer`: words run before the sandbox runner's command (a tracer, `verify --trace`),
    which then sees the runner and everything it starts."""
    if kind is SandboxKind.BWRAP:
        return _run_bwrap(spec, timeout, tracer)
    return _run_unshare(spec, timeout, tracer)


def run_host(
    argv: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    timeout: float | None,
    executable: str | None = None,
    network: bool = True,
) -> RunResult:
    """Run on this machine as it is (the builder is `/`), with the same cleared environment.

    Without network, the run goes into a new network namespace (`unshare --net`) so that both
    sides see the same empty network.
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
        proc = subprocess.run(
            command,
            executable=exe,
            env=program_env(env),
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return RunResult(argv, None, _bytes(exc.stdout), _bytes(exc.stderr), timed_out=True)
    except OSError as exc:
        return RunResult(argv, None, b"", b"", exec_error=exc.strerror or str(exc))
    return RunResult(argv, _status(proc.returncode), proc.stdout, proc.stderr)


def program_env(env: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The whole environment of the program: `env`, and PWD as bwrap sets it."""
    return {**dict(env), "PWD": "/"}


def _bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else data


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def bwrap_command(spec: SandboxSpec, status_fd: int | None = None) -> list[str]:
    command = ["bwrap"]
    if spec.root is not None:
        command += ["--bind", spec.root, "/"]
    for mount in spec.mounts:
        if mount.kind is MountKind.TMPFS:
            command += ["--tmpfs", mount.destination]
        elif mount.kind is MountKind.SYMLINK:
            assert mount.source is not None
            command += ["--symlink", mount.source, mount.destination]
        else:
            assert mount.source is not None
            command += [f"--{mount.kind.value}", mount.source, mount.destination]
    command += ["--dev", "/dev", "--proc", "/proc", "--chdir", "/"]
    command += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    if not spec.network:
        command.append("--unshare-net")
    command.append("--clearenv")
    for key, value in spec.env:
        command += ["--setenv", key, value]
    if status_fd is not None:
        command += ["--json-status-fd", str(status_fd)]
    return [*command, "--", *spec.argv]


def _run_bwrap(spec: SandboxSpec, timeout: float | None, tracer: tuple[str, ...] = ()) -> RunResult:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bwrap not found: {BWRAP_HINT}")
    read_fd, write_fd = os.pipe()
    try:
        command = bwrap_command(spec, write_fd)
        command[0] = bwrap
        command = [*tracer, *command]
        result = _run_with_status(command, spec.argv, timeout, read_fd, write_fd)
    finally:
        os.close(read_fd)
    status, proc_result = result
    if proc_result.timed_out or status.get("exit-code") is not None:
        return proc_result
    stderr = proc_result.stderr.decode(errors="replace").strip()
    # bwrap reports a failed execvp of the program itself like this; that is the program's
    # failure to start in this root (a missing interpreter, say), not the sandbox's.
    prefix = f"bwrap: execvp {spec.argv[0]}: "
    if stderr.startswith(prefix):
        return RunResult(spec.argv, None, proc_result.stdout, b"", exec_error=stderr[len(prefix) :])
    raise SandboxFailed(f"bwrap failed: {stderr.splitlines()[-1] if stderr else 'no message'}")


def _run_with_status(
    command: list[str],
    argv: tuple[str, ...],
    timeout: float | None,
    read_fd: int,
    write_fd: int,
) -> tuple[dict[str, object], RunResult]:
    """Run `command`, collecting the JSON status lines it writes to `write_fd` (which this
    function closes)."""
    try:
        proc = subprocess.Popen(
            command,
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
        )
    except OSError as exc:
        raise SandboxFailed(f"{command[0]}: {exc.strerror or exc}") from None
    finally:
        # Only the runner holds the write end now, so reading stops when it exits.
        os.close(write_fd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # --die-with-parent / --kill-child take the program down with the runner.
        proc.kill()
        stdout, stderr = proc.communicate()
        return {}, RunResult(argv, None, stdout, stderr, timed_out=True)
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
    exit_status = code if isinstance(code, int) else _status(proc.returncode)
    return status, RunResult(argv, exit_status, stdout, stderr)


# The unshare fallback: runs as PID 1 of the new namespaces, as root of a private mount
# namespace. Argument: the JSON spec. Writes JSON status lines to spec["status_fd"], like bwrap;
# that descriptor is close-on-exec so the program never holds it.
_HELPER = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
os.set_inheritable(spec["status_fd"], False)
status = os.fdopen(spec["status_fd"], "w")
def report(**record):
    status.write(json.dumps(record) + "\n"); status.flush()
def mount(*args):
    subprocess.run([spec["mount"], *args], check=True)
def place(path, is_dir):
    os.makedirs(path if is_dir else os.path.dirname(path), exist_ok=True)
    if not is_dir and not os.path.lexists(path):
        open(path, "a").close()
try:
    new = spec["workdir"]
    if spec["root"] is None:
        mount("-t", "tmpfs", "tmpfs", new)
    else:
        mount("--bind", spec["root"], new)
    for kind, dest, source in spec["mounts"]:
        target = new + dest
        if kind == "symlink":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(source, target)
        elif kind == "tmpfs":
            place(target, True)
            mount("-t", "tmpfs", "tmpfs", target)
        else:
            place(target, os.path.isdir(source))
            mount("--rbind", source, target)
            if kind == "ro-bind":
                mount("-o", "remount,bind,ro", target)
    place(new + "/dev", True)
    mount("--rbind", "/dev", new + "/dev")
    place(new + "/proc", True)
    mount("-t", "proc", "proc", new + "/proc")
    os.chroot(new)
    os.chdir("/")
except Exception as exc:
    report(setup_error=str(exc))
    sys.exit(125)
argv = spec["argv"]
env = dict(spec["env"])
pid = os.fork()
if pid == 0:
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        report(exec_error=exc.strerror or str(exc))
        os._exit(127)
while True:
    done, wait_status = os.waitpid(-1, 0)
    if done == pid:
        break
code = os.waitstatus_to_exitcode(wait_status)
code = 128 - code if code < 0 else code
report(**{"exit-code": code})
sys.exit(code)
"""


def _run_unshare(
    spec: SandboxSpec, timeout: float | None, tracer: tuple[str, ...] = ()
) -> RunResult:
    unshare = shutil.which("unshare")
    mount = shutil.which("mount")
    if unshare is None or mount is None:
        raise SandboxUnavailable(f"unshare or mount not found: {BWRAP_HINT}")
    with tempfile.TemporaryDirectory(prefix="scratchprobe-chroot-") as workdir:
        payload: dict[str, object] = {
            "workdir": workdir,
            "root": spec.root,
            "mounts": [(m.kind.value, m.destination, m.source) for m in spec.mounts],
            "argv": list(spec.argv),
            "env": list(program_env(spec.env).items()),
            "mount": mount,
        }
        command = [unshare, "--mount", "--pid", "--fork", "--kill-child"]
        if not spec.network:
            command.append("--net")
        if os.geteuid() != 0:
            command.append("--map-root-user")
        read_fd, write_fd = os.pipe()
        payload["status_fd"] = write_fd
        command += ["--", sys.executable, "-I", "-c", _HELPER, json.dumps(payload)]
        command = [*tracer, *command]
        try:
            status, result = _run_with_status(command, spec.argv, timeout, read_fd, write_fd)
        finally:
            os.close(read_fd)
    if result.timed_out:
        return result
    if "exec_error" in status:
        return RunResult(spec.argv, None, result.stdout, b"", exec_error=str(status["exec_error"]))
    if "exit-code" not in status:
        detail = status.get("setup_error") or result.stderr.decode(errors="replace").strip()
        raise SandboxFailed(f"unshare + chroot failed: {detail or 'no message'}")
    return result
