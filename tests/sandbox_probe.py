"""Run a program inside a directory used as `/` (bubblewrap), optionally under strace.

This is how the runtime needs in testbins/built/runtime/MANIFEST-c.json were measured:
build a minimal root (the binary, its loader and its DT_NEEDED closure, copied from the
host at the paths `ldd` prints), add the candidate runtime files, run the program, and
see which files it opens and which ones it needs to succeed.

Not a test module. Nothing here inspects an ELF file the way scratchprobe does; it only
*runs* the trusted testbins.

The network namespace is shared with the host by default (bwrap without
--unshare-net), so a server a test started on 127.0.0.1 is reachable from inside.
``share_net=False`` gives the program a private namespace with only a loopback, for
programs that must not reach anything (a resolver falling back to DNS).

    python -m tests.sandbox_probe record     # re-measure MANIFEST-c.json's evidence fields
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, NotRequired, TypedDict

BWRAP = shutil.which("bwrap")
STRACE = shutil.which("strace")

MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"
REPO = Path(__file__).resolve().parent.parent
TESTBINS = REPO / "testbins" / "built"
RUNTIME_BINS = TESTBINS / "runtime"
MANIFEST_C = RUNTIME_BINS / "MANIFEST-c.json"
PORT_PLACEHOLDER = "{port}"


class SandboxOptions(NamedTuple):
    """How the sandbox differs from the default (host network, /proc mounted, root)."""

    share_net: bool = True
    uid: int | None = None
    mount_proc: bool = True


DEFAULT = SandboxOptions()


def bwrap_argv(
    root: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    options: SandboxOptions = DEFAULT,
) -> list[str]:
    """The bwrap command line that runs ``argv`` with ``root`` as `/`."""
    real = Path(root).resolve()
    if real == Path("/"):
        # Binding the host's / would make every "file is missing" experiment meaningless.
        raise ValueError("run_in_root needs a dedicated root directory, not /")
    if BWRAP is None:
        raise FileNotFoundError("bwrap (package bubblewrap) is not installed")
    cmd = [BWRAP, "--bind", str(real), "/", "--dev", "/dev"]
    if options.mount_proc:
        cmd += ["--proc", "/proc"]
    cmd += ["--unshare-pid", "--die-with-parent", "--clearenv"]
    if not options.share_net:
        cmd.append("--unshare-net")
    if options.uid is not None:
        # A new user namespace maps `uid` to the caller. Files in the root owned by any
        # other host uid are then "other" to the program, as a root-owned directory is
        # to a USER nobody process in a container image.
        cmd += ["--unshare-user", "--uid", str(options.uid), "--gid", str(options.uid)]
    for key, value in (env or {}).items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *argv]


def _run_bounded(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """subprocess.run, but a timeout kills the whole process group it started.

    subprocess.run would kill only its direct child; under strace that leaves bwrap and
    the program running (strace detaches from its tracees when it dies).
    """
    with subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(cmd, timeout, out, err) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_in_root(
    root: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 20,
    options: SandboxOptions = DEFAULT,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (paths as seen inside the root) with ``root`` as `/` and an empty
    environment plus ``env``. Raises subprocess.TimeoutExpired after ``timeout`` s."""
    return _run_bounded(bwrap_argv(root, argv, env, options), timeout)


# --------------------------------------------------------------------------- strace


class TraceEvent(NamedTuple):
    """One traced syscall, e.g. ("openat", "/etc/hosts", "-1 ENOENT").

    ``path`` is the first path argument as the program saw it (in-root). For connect()
    it is the AF_UNIX socket path, or "ADDRESS:PORT" for AF_INET/AF_INET6.
    ``result`` is strace's return value without the explanation: "0", "3", "-1 ENOENT".
    """

    syscall: str
    path: str
    result: str

    @property
    def ok(self) -> bool:
        return not self.result.startswith("-")

    def __str__(self) -> str:
        return f"{self.syscall} {self.path} -> {self.result}"


_COMPLETE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(.*)$")
_UNFINISHED = re.compile(r"^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(.*)$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")


def _path_of(syscall: str, args: str) -> str:
    if syscall == "connect":
        if "sun_path=" in args:
            m = _QUOTED.search(args[args.index("sun_path=") :])
            return m.group(1) if m else ""
        port = _PORT.search(args)
        addr = _QUOTED.search(args)
        return f"{addr.group(1)}:{port.group(1)}" if port and addr else ""
    m = _QUOTED.search(args)
    return m.group(1) if m else ""


def _short_result(result: str) -> str:
    # "-1 ENOENT (No such file or directory)" -> "-1 ENOENT"; "3" stays "3".
    words = result.split()
    return " ".join(words[:2]) if result.startswith("-") else words[0]


def parse_strace(text: str, bwrap_path: str | None = None) -> list[TraceEvent]:
    """The traced program's events from `strace -f` output: everything after its
    successful execve, from that process and the threads/children it creates, but not
    from bwrap's own processes. Calls with an empty path (fstat of an fd through
    AT_EMPTY_PATH) are dropped."""
    bwrap_path = bwrap_path or BWRAP or "bwrap"
    pending: dict[str, str] = {}
    bwrap_pids: set[str] = set()
    started = False
    events: list[TraceEvent] = []
    for line in text.splitlines():
        if m := _UNFINISHED.match(line):
            pending[m.group(1)] = m.group(3)
            if not started:
                bwrap_pids.add(m.group(1))
            continue
        if m := _RESUMED.match(line):
            pid, syscall, rest, result = m.groups()
            args = pending.pop(pid, "") + rest
        elif m := _COMPLETE.match(line):
            pid, syscall, args, result = m.groups()
        else:
            continue  # signals, "+++ exited", strace's own notes
        path = _path_of(syscall, args)
        if not started:
            if syscall == "execve" and result.strip() == "0" and path != bwrap_path:
                started = True
                # bwrap forks the process that execs the program; from here on that
                # pid is the program.
                bwrap_pids.discard(pid)
            else:
                bwrap_pids.add(pid)
            continue
        if pid not in bwrap_pids and path:
            events.append(TraceEvent(syscall, path, _short_result(result)))
    return events


def traced_run(
    root: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 20,
    options: SandboxOptions = DEFAULT,
) -> tuple[subprocess.CompletedProcess[str], list[TraceEvent]]:
    """run_in_root under `strace -f -qq -e trace=%file,connect`: the run and the
    program's events (see parse_strace)."""
    if STRACE is None:
        raise FileNotFoundError("strace is not installed")
    cmd = bwrap_argv(root, argv, env, options)
    # The trace goes to a file beside (not inside) the root, so it neither mixes with
    # the program's stderr nor shows up in the program's view of the filesystem.
    trace_file = Path(root).resolve().parent / f".strace-{os.getpid()}-{id(cmd)}.txt"
    try:
        proc = _run_bounded(
            [STRACE, "-f", "-qq", "-e", "trace=%file,connect", "-o", str(trace_file), *cmd],
            timeout,
        )
        text = trace_file.read_text(errors="replace")
    finally:
        trace_file.unlink(missing_ok=True)
    return proc, parse_strace(text, cmd[0])


def trace_in_root(
    root: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 20,
    options: SandboxOptions = DEFAULT,
) -> list[TraceEvent]:
    """The (syscall, path, result) events of the program run in ``root``, after its execve."""
    return traced_run(root, argv, env, timeout, options)[1]


_LOADER_PROBE = re.compile(r"/(glibc-hwcaps|tls|x86_64)(/|$)")


def is_loader_probe(event: TraceEvent) -> bool:
    """A failed look into an optional glibc library subdirectory (hwcaps, tls,
    platform): ld.so's search noise, never a need."""
    return not event.ok and bool(_LOADER_PROBE.search(event.path))


def touches(event: TraceEvent, path: str) -> bool:
    """Whether ``event`` is about ``path``: the path itself, something inside it (a
    directory), or a library search for the same file name in another directory."""
    return (
        event.path == path
        or event.path.startswith(path.rstrip("/") + "/")
        or ("/lib" in path and event.path.rsplit("/", 1)[-1] == path.rsplit("/", 1)[-1])
    )


# --------------------------------------------------------------------------- roots


def elf_interpreter(binary: Path) -> str | None:
    """PT_INTERP of a little-endian ELF64 file, or None (static). Enough for the
    x86_64 testbins, and deliberately independent of scratchprobe's own reader."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{binary}: not a little-endian ELF64 file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == 3:  # PT_INTERP
            return data[p_offset : p_offset + p_filesz].split(b"\0", 1)[0].decode()
    return None


def loader_closure(binary: Path) -> list[str]:
    """Host paths of the loader and every library the host loader maps for ``binary``,
    as `ldd` prints them (musl: the musl loader's --list). This runs the host loader in
    list mode, acceptable only for trusted testbins."""
    interp = elf_interpreter(binary)
    if interp is None:
        return []
    cmd = [MUSL_LOADER, "--list", str(binary)] if "ld-musl" in interp else ["ldd", str(binary)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    paths: list[str] = [interp]
    for line in out.splitlines():
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        target = line.split("=>", 1)[1] if "=>" in line else line
        word = target.strip().split(" ", 1)[0]
        if word.startswith("/") and word not in paths:
            paths.append(word)
    return paths


def copy_into_root(root: Path, inner: str, source: str | Path) -> Path:
    """Copy host file ``source`` (symlinks resolved) to ``inner`` inside ``root``."""
    dest = root / inner.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(source), dest)
    return dest


def minimal_root(root: Path, binary: Path, inner: str | None = None) -> str:
    """Populate ``root`` with ``binary`` (at ``inner``, default /app/<name>), its loader
    and its DT_NEEDED closure at the host paths ldd prints, and nothing else (no /etc,
    /tmp or /usr/share). Returns the in-root path of the binary."""
    inner = inner or f"/app/{binary.name}"
    root.mkdir(parents=True, exist_ok=True)
    copy_into_root(root, inner, binary)
    for lib in loader_closure(binary):
        copy_into_root(root, lib, lib)
    return inner


# --------------------------------------------------------------------------- MANIFEST-c


class Provide(TypedDict, total=False):
    """How a test materialises a need: exactly one key.

    copy: host path (absolute) or a path relative to testbins/built; text: file
    contents; dir: octal mode of an empty directory; test_ca: the TLS fixture's CA PEM.
    """

    copy: str
    text: str
    dir: str
    test_ca: bool


class Outcome(TypedDict):
    returncode: int
    stdout: str
    stderr: str
    trace: list[str]


class Need(TypedDict):
    path: str
    needed_for_success: bool
    observed_open: bool
    note: str
    provide: NotRequired[Provide]
    without: NotRequired[Outcome]


class BinaryEntry(TypedDict):
    source: str
    compiler: str
    flags: list[str]
    linkage: str
    libc: str
    closure: list[str]
    argv: list[str]
    env: dict[str, str]
    share_net: bool
    expect_stdout: str
    needs: list[Need]
    trace: list[str]


class Manifest(TypedDict):
    about: str
    measured_on: dict[str, str]
    binaries: dict[str, BinaryEntry]


def load_manifest(path: Path = MANIFEST_C) -> Manifest:
    data: Manifest = json.loads(path.read_text())
    return data


def provide(root: Path, need: Need, ca_pem: Path | None) -> None:
    """Create ``need`` inside ``root`` as its ``provide`` spec says."""
    spec = need.get("provide")
    if spec is None:
        raise ValueError(f"{need['path']}: no 'provide' spec")
    dest = root / need["path"].lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if "copy" in spec:
        source = Path(spec["copy"])
        copy_into_root(root, need["path"], source if source.is_absolute() else TESTBINS / source)
    elif "text" in spec:
        dest.write_text(spec["text"])
    elif "dir" in spec:
        dest.mkdir(exist_ok=True)
        dest.chmod(int(spec["dir"], 8))  # mkdir's mode is filtered by the umask; chmod is not
    elif spec.get("test_ca"):
        if ca_pem is None:
            raise ValueError(f"{need['path']}: needs the TLS fixture's CA")
        copy_into_root(root, need["path"], ca_pem)
    else:
        raise ValueError(f"{need['path']}: unknown provide spec {spec}")


def required(entry: BinaryEntry) -> list[Need]:
    return [n for n in entry["needs"] if n["needed_for_success"]]


def build_root(
    root: Path, name: str, entry: BinaryEntry, *, omit: str | None = None, ca_pem: Path | None
) -> str:
    """Minimal root for testbin ``name`` plus every needed file except ``omit``.
    Returns the in-root path of the binary."""
    inner = minimal_root(root, RUNTIME_BINS / name)
    for need in required(entry):
        if need["path"] != omit:
            provide(root, need, ca_pem)
    return inner


def argv_of(inner: str, entry: BinaryEntry, port: int | None) -> list[str]:
    args = [a.replace(PORT_PLACEHOLDER, str(port)) if port else a for a in entry["argv"]]
    return [inner, *args]


def options_of(entry: BinaryEntry) -> SandboxOptions:
    return SandboxOptions(share_net=entry["share_net"])


def needs_tls(entry: BinaryEntry) -> bool:
    return any(n.get("provide", {}).get("test_ca") for n in entry["needs"])


# Recorded text must not change between runs: ports, mkstemp names and OpenSSL's
# per-thread error prefixes do.
_VOLATILE = [
    (re.compile(r"/tmp/probe[A-Za-z0-9]{6}"), "/tmp/probeXXXXXX"),
    (re.compile(r"^[0-9A-F]{8,16}:error:", re.MULTILINE), "<thread>:error:"),
]


def normalise(text: str, port: int | None) -> str:
    if port:
        text = text.replace(f":{port}", ":{port}")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _record(manifest: Manifest, workdir: Path) -> None:
    """Re-measure the evidence fields of every binary: closure, trace, observed_open,
    and for each needed file the outcome without it. The judgement fields
    (needed_for_success, note, provide, expect_stdout) stay as written; the tests in
    tests/proof/runtime/test_runtime_c_evidence.py check them."""
    from tests.tls_fixture import https_server

    roots = (workdir / str(i) / "root" for i in itertools.count())

    def run(name: str, entry: BinaryEntry, omit: str | None) -> tuple[Outcome, list[TraceEvent]]:
        root = next(roots)
        inner = build_root(root, name, entry, omit=omit, ca_pem=ca_pem)
        p = port if needs_tls(entry) else None
        proc, events = traced_run(root, argv_of(inner, entry, p), entry["env"], 20,
                                  options_of(entry))  # fmt: skip
        events = [e for e in events if not is_loader_probe(e)]
        outcome = Outcome(
            returncode=proc.returncode,
            stdout=normalise(proc.stdout, p),
            stderr=normalise(proc.stderr, p),
            trace=[normalise(str(e), p) for e in events],
        )
        return outcome, events

    with https_server() as (port, ca_pem):
        for name, entry in manifest["binaries"].items():
            entry["closure"] = loader_closure(RUNTIME_BINS / name)
            outcome, events = run(name, entry, None)
            if outcome["returncode"] != 0 or outcome["stdout"] != entry["expect_stdout"]:
                raise RuntimeError(f"{name}: fails with all its needs present: {outcome}")
            entry["trace"] = outcome["trace"]
            for need in entry["needs"]:
                need["observed_open"] = any(touches(e, need["path"]) for e in events)
            for need in required(entry):
                outcome, events = run(name, entry, need["path"])
                # Keep only the lines about the missing file: the rest equals `trace`.
                outcome["trace"] = [
                    line
                    for line, e in zip(outcome["trace"], events, strict=True)
                    if touches(e, need["path"])
                ]
                need["without"] = outcome
            print(f"recorded {name}", file=sys.stderr)


def main(args: list[str]) -> int:
    if args != ["record"]:
        print("usage: python -m tests.sandbox_probe record", file=sys.stderr)
        return 2
    manifest = load_manifest()
    with tempfile.TemporaryDirectory(prefix="scratchprobe-record-") as tmp:
        _record(manifest, Path(tmp))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    MANIFEST_C.write_text(text)
    print(f"wrote {MANIFEST_C}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
