"""The tracer: strace's command line, and a parser of what it writes.

strace runs outside the sandbox and traces the sandbox runner (bwrap, or unshare + chroot)
and every child (`-f`): the program's own syscalls carry the paths exactly as the sandboxed
process passed them, i.e. as the image sees them. Chosen over alternatives because it is
one Debian package, needs no kernel support beyond ptrace, and `--seccomp-bpf` keeps the
untraced syscalls at full speed (strace(1)).

Output format relied on (strace(1)):
- `-o FILE -f`: each line starts with the thread id;
- `-xx`: every string argument is printed as `\\xNN` escapes, so a path is decoded
  byte-exactly and never contains a quote, comma or ` = ` that could confuse the parser;
- a call interrupted by another thread's line is split into `NAME(ARGS <unfinished ...>`
  and `<... NAME resumed>REST`, joined here per thread id;
- the result follows the last ` = `: a number, `-1 ERRNO (message)`, or `?`.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import threading
from dataclasses import dataclass

STRACE_HINT = "install strace (apt-get install strace)"
TRACE_LIMIT = 256 * 1024 * 1024
"""Bytes of trace read at most; past it the trace is reported as truncated."""

# Syscalls whose first string argument is a path, and whether a directory fd comes first.
_PATH_FIRST = frozenset(
    {
        "open",
        "creat",
        "stat",
        "lstat",
        "stat64",
        "lstat64",
        "access",
        "readlink",
        "execve",
        "statfs",
        "statfs64",
        "chdir",
        "truncate",
        "getxattr",
        "lgetxattr",
        "listxattr",
        "llistxattr",
        "mkdir",
        "opendir",
        "uselib",
    }
)
_DIRFD_FIRST = frozenset(
    {
        "openat",
        "openat2",
        "newfstatat",
        "fstatat64",
        "statx",
        "faccessat",
        "faccessat2",
        "readlinkat",
        "execveat",
        "mkdirat",
        "name_to_handle_at",
    }
)
_OPENS = frozenset({"open", "openat", "openat2", "creat", "opendir"})
_EXECS = frozenset({"execve", "execveat"})

TRACED = "%file,%process,getdents64,getdents"


class BoundedSink:
    """A FIFO strace writes its output to, drained by a thread that keeps at most `limit`
    bytes in `path` and discards the rest: the trace of a runaway program never fills the
    disk, and strace (hence the program) never blocks on a full pipe.

    Use: `with BoundedSink(work, limit) as sink:` run with `-o sink.fifo`; after the block,
    `sink.path` holds the trace and `sink.truncated` says whether bytes were dropped.
    """

    def __init__(self, directory: str, limit: int = TRACE_LIMIT) -> None:
        self.fifo = os.path.join(directory, "trace.fifo")
        self.path = os.path.join(directory, "trace.txt")
        self.limit = limit
        self.truncated = False
        self._thread: threading.Thread | None = None
        self._keep_open = -1

    def __enter__(self) -> BoundedSink:
        os.mkfifo(self.fifo, 0o600)
        if os.geteuid() == 0:
            # As root, the tracer runs as the sandbox's unprivileged host user, like bwrap
            # (sandbox.runner_user): it may pass through the work directory and open only
            # this FIFO.
            from scratchprobe.sandbox import SANDBOX_UID

            os.chown(self.fifo, SANDBOX_UID, SANDBOX_UID)
            os.chmod(os.path.dirname(self.fifo) or ".", 0o711)
        reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO open until the run is over, so the reader sees
        # end-of-file only after strace, too, has closed it.
        self._keep_open = os.open(self.fifo, os.O_WRONLY)
        self._thread = threading.Thread(target=self._drain, args=(reader,), daemon=True)
        self._thread.start()
        return self

    def _drain(self, reader: int) -> None:
        written = 0
        try:
            with open(self.path, "wb") as out:
                while True:
                    select.select([reader], [], [])
                    chunk = os.read(reader, 1 << 16)
                    if not chunk:
                        return
                    room = self.limit - written
                    if len(chunk) > room:
                        self.truncated = True
                        chunk = chunk[: max(room, 0)]
                    out.write(chunk)
                    written += len(chunk)
        finally:
            os.close(reader)

    def __exit__(self, *exc: object) -> None:
        os.close(self._keep_open)
        if self._thread is not None:
            self._thread.join()


def find_strace() -> str | None:
    return shutil.which("strace")


def command_prefix(strace: str, output: str) -> tuple[str, ...]:
    """The words before the sandbox runner's own command line."""
    return (
        strace,
        "-f",
        "-qq",
        "-xx",
        "-s",
        "4096",
        "--seccomp-bpf",
        "-e",
        f"trace={TRACED}",
        "-e",
        "signal=none",
        "-o",
        output,
    )


@dataclass(frozen=True)
class Syscall:
    """One completed syscall of the trace."""

    pid: int
    name: str
    args: tuple[str, ...]
    """Raw argument texts (strings still hex-escaped)."""
    result: str
    """Everything after ` = `: "0", "3", "-1 ENOENT (No such file or directory)", "?"."""

    @property
    def failed(self) -> bool:
        return self.result.startswith("-1 ")

    @property
    def errno(self) -> str | None:
        if not self.failed:
            return None
        return self.result.split()[1]

    @property
    def value(self) -> int | None:
        head = self.result.split(" ", 1)[0]
        try:
            return int(head, 0)
        except ValueError:
            return None


@dataclass(frozen=True)
class TraceLog:
    calls: tuple[Syscall, ...]
    truncated: bool


_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. ([A-Za-z0-9_]+) resumed>(.*)$")
_STRING = re.compile(r'^"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?$')
_HEX = re.compile(r"\\x([0-9a-f]{2})")


def decode_string(arg: str) -> bytes | None:
    """The bytes of a `-xx` string argument, or None when `arg` is not a string."""
    match = _STRING.match(arg.strip())
    if match is None:
        return None
    return bytes.fromhex(match.group(1).replace("\\x", ""))


def split_args(text: str) -> tuple[str, ...]:
    """Top-level comma-separated arguments (brackets, braces and parentheses nest; with
    -xx strings hold no comma or quote)."""
    args: list[str] = []
    depth = 0
    current: list[str] = []
    in_string = False
    for char in text:
        if char == '"':
            in_string = not in_string
        elif not in_string:
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif char == "," and depth == 0:
                args.append("".join(current).strip())
                current = []
                continue
        current.append(char)
    tail = "".join(current).strip()
    if tail:
        args.append(tail)
    return tuple(args)


def _complete(pid: int, text: str) -> Syscall | None:
    """`NAME(ARGS) = RESULT` into a Syscall (None for anything else strace prints)."""
    open_at = text.find("(")
    head, sep, result = text.rpartition(" = ")
    if open_at <= 0 or not sep:
        return None
    name = text[:open_at]
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return None
    inner = head[open_at + 1 :].rstrip()
    if inner.endswith(")"):
        inner = inner[:-1]
    return Syscall(pid, name, split_args(inner), result.strip())


def parse(path: str, limit: int = TRACE_LIMIT) -> TraceLog:
    """The completed syscalls of an strace -f -xx output file, in order."""
    calls: list[Syscall] = []
    pending: dict[int, str] = {}
    truncated = False
    read = 0
    with open(path, "rb") as handle:
        for raw in handle:
            read += len(raw)
            if read > limit:
                truncated = True
                break
            line = raw.decode("ascii", errors="replace").rstrip("\n")
            match = _LINE.match(line)
            if match is None:
                continue
            pid, text = int(match.group(1)), match.group(2)
            if text.endswith("<unfinished ...>"):
                pending[pid] = text[: -len("<unfinished ...>")].rstrip()
                continue
            resumed = _RESUMED.match(text)
            if resumed is not None:
                start = pending.pop(pid, None)
                if start is None:
                    continue
                rest = resumed.group(2)
                joiner = "" if start.endswith("(") or rest.startswith((")", ",")) else ", "
                text = start + joiner + rest
            call = _complete(pid, text)
            if call is not None:
                calls.append(call)
    return TraceLog(tuple(calls), truncated)


@dataclass(frozen=True)
class PathEvent:
    """One attempt of the program on a path."""

    pid: int
    syscall: str
    path: str
    """Absolute, as the sandboxed process saw it (relative paths joined to its cwd)."""
    result: str
    errno: str | None
    directory: bool
    """Opened with O_DIRECTORY, or listed with getdents."""
    opened: bool
    """An open, exec or listing (not a stat, access or readlink)."""
    executed: bool

    def evidence(self) -> str:
        return f"{self.syscall}({self.path}) = {self.result} (pid {self.pid})"


def _join(base: str, path: str) -> str:
    return os.path.normpath(os.path.join(base, path)) if not path.startswith("/") else path


def path_events(log: TraceLog, program: str) -> tuple[tuple[PathEvent, ...], bool]:
    """The path attempts of the program, from its own successful execve of `program` on:
    the runner's set-up syscalls before it (bwrap's mounts, the chroot helper) do not count,
    nor later calls of the runner's processes. Returns the events and whether the program's
    execve was seen at all."""
    started = False
    runner: set[int] = set()
    cwd: dict[int, str] = {}
    fds: dict[tuple[int, int], str] = {}
    # Threads share their process's descriptors: an fd unknown for this thread id is taken
    # from the latest open that returned it.
    latest: dict[int, str] = {}
    events: list[PathEvent] = []
    first_pid = 0
    for call in log.calls:
        if not started:
            if call.name in _EXECS and not call.failed and call.args:
                target = decode_string(call.args[0])
                if target is not None and os.fsdecode(target) == program:
                    started = True
                    first_pid = call.pid
                    runner.discard(call.pid)
            if not started:
                runner.add(call.pid)
                continue
        if call.pid in runner:
            continue
        here = cwd.get(call.pid, cwd.get(first_pid, "/"))
        if call.name in ("getdents64", "getdents"):
            fd = _int(call.args[0]) if call.args else None
            listed = fds.get((call.pid, fd), latest.get(fd)) if fd is not None else None
            if listed is not None:
                events.append(
                    PathEvent(call.pid, call.name, listed, call.result, None, True, True, False)
                )
            continue
        if call.name in _PATH_FIRST:
            index, base = 0, here
        elif call.name in _DIRFD_FIRST and len(call.args) >= 2:
            index = 1
            dirfd = call.args[0]
            if dirfd == "AT_FDCWD":
                base = here
            else:
                number = _int(dirfd)
                known = (
                    fds.get((call.pid, number), latest.get(number)) if number is not None else None
                )
                if known is None:
                    continue
                base = known
        else:
            continue
        raw = decode_string(call.args[index]) if len(call.args) > index else None
        if raw is None or not raw:
            # AT_EMPTY_PATH: an operation on the descriptor itself, not a path.
            continue
        path = _join(base, os.fsdecode(raw))
        flags = call.args[index + 1] if len(call.args) > index + 1 else ""
        opened = call.name in _OPENS or call.name in _EXECS
        events.append(
            PathEvent(
                pid=call.pid,
                syscall=call.name,
                path=path,
                result=call.result,
                errno=call.errno,
                directory="O_DIRECTORY" in flags,
                opened=opened,
                executed=call.name in _EXECS,
            )
        )
        if call.name in _OPENS and not call.failed:
            fd = call.value
            if fd is not None:
                fds[(call.pid, fd)] = path
                latest[fd] = path
        if call.name == "chdir" and not call.failed:
            cwd[call.pid] = path
    return tuple(events), started


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None
