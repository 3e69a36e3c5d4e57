"""Where the root filesystem goes: the destination policy, staging, locks and publishing.

- the destination's parent is opened component by component from `/` with O_NOFOLLOW (a
  symlink anywhere in the path is refused, naming the real path to give instead), and every
  later step is an `*at()` call relative to that descriptor, so nothing is written through a
  symlink, not even one swapped in during the run;
- a directory is built in a fresh temporary sibling of the destination and published by
  rename only when complete; a tar is written to a temporary sibling and renamed over the
  destination: a failed run leaves the previous output exactly as it was;
- staging files (`.<name>.scratchprobe-<pid>-<token>.partial`) are removed on any failure and
  on SIGTERM (the process then dies of SIGTERM); one left by SIGKILL is removed by the next
  run for the same destination, once its PID is not running and its flock(2) can be taken;
- `/`, a destination containing the root, and a symlink are always refused; a non-empty
  directory is replaced only when scratchprobe wrote it or with `force`.

"Scratchprobe wrote it" is recorded outside the tree, in a sibling file
`.<name>.scratchprobe-rootfs` holding the device and inode of the published directory: a
marker inside the tree would end up in the image (`COPY --from=... /rootfs /`) and make the
written tree differ from the plan. A directory replaced or recreated by someone else has
another inode, so the marker no longer vouches for it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from typing import IO

from scratchprobe.errors import ScratchprobeError, UsageError
from scratchprobe.root import Root


class DestinationRefused(ScratchprobeError):
    """The destination is `/`, a symlink, a non-empty directory not written by us, ..."""


class OutputKind(Enum):
    DIRECTORY = "directory"
    TAR = "tar"


@dataclass(frozen=True)
class Destination:
    path: str
    kind: OutputKind


def source_date_epoch(environ: Mapping[str, str]) -> int:
    """The mtime of every entry (reproducible-builds.org's SOURCE_DATE_EPOCH, else 0)."""
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return 0
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r}: not a non-negative integer")
    return int(value)


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Parent:
    """The destination's parent directory, opened component by component with O_NOFOLLOW:
    every later step works relative to `fd`, so no symlink in the path (or swapped into
    it meanwhile) can redirect a write."""

    fd: int
    path: str
    """Its absolute path (symlink-free, as checked when it was opened)."""
    name: str
    """The destination's last component."""


def open_parent(destination: str) -> Parent:
    absolute = os.path.abspath(destination)
    parent, name = os.path.split(absolute)
    if not name:
        raise DestinationRefused(f"{destination}: refusing to write to /")
    # O_PATH for the directories on the way: only search permission is needed there, as
    # for any path lookup; the parent itself is opened for reading (it is listed).
    fd = os.open("/", _PATH_FLAGS)
    walked = ""
    try:
        for part in [p for p in parent.split("/") if p]:
            walked += "/" + part
            try:
                next_fd = os.open(part, _PATH_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise DestinationRefused(
                        f"{destination}: the parent directory {parent} does not exist"
                    ) from None
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise DestinationRefused(
                        f"{destination}: {walked} is a symbolic link; give the real path "
                        f"({os.path.realpath(absolute)}), nothing is written through a link"
                    ) from None
                raise DestinationRefused(
                    f"{destination}: {walked} is not a usable directory: {exc.strerror}"
                ) from None
            os.close(fd)
            fd = next_fd
        readable = os.open(".", DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    return Parent(readable, parent, name)


# Files scratchprobe creates beside a destination while writing it are named
# `.<name>.scratchprobe-<pid>-<token>.<partial|old>`, and a writer holds an flock(2) on each
# for as long as it lives (the kernel releases it when the process dies, SIGKILL included).
# A later run removes one only when its name says it is ours, no live process of this PID
# namespace has that PID, and the lock can be taken: then nothing is writing it any more.
_STAGING = re.compile(r"\.(?P<name>.+)\.scratchprobe-(?P<pid>[0-9]+)-[0-9a-f]{16}\.(partial|old)")


def _staging_name(name: str, suffix: str) -> str:
    return f".{name}.scratchprobe-{os.getpid()}-{secrets.token_hex(8)}.{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock(fd: int, blocking: bool = True) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _remove(parent: Parent, name: str) -> None:
    """Remove a file or a whole directory below the parent, never following a link."""
    st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent.fd)
    else:
        os.unlink(name, dir_fd=parent.fd)


def remove_stale_staging(parent: Parent) -> list[str]:
    """Remove what an earlier run for this destination left when it was killed; returns
    the names removed."""
    removed: list[str] = []
    for entry in os.scandir(parent.fd):
        match = _STAGING.fullmatch(entry.name)
        if match is None or match["name"] != parent.name:
            continue
        if _pid_alive(int(match["pid"])):
            continue
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd)
        except OSError:
            continue
        try:
            if lock(fd, blocking=False):
                with suppress(OSError):
                    _remove(parent, entry.name)
                    removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


class _Terminated(BaseException):
    """SIGTERM arrived while writing: unwinds through the clean-up of the staging files."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While writing, SIGTERM raises _Terminated so that the staging files are removed,
    then the process dies of SIGTERM as it was asked to. Only where SIGTERM has its
    default action and only in the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    fired = False

    def handler(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:
            # Once: a second SIGTERM must not interrupt the clean-up itself.
            fired = True
            raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


MARKER_SUFFIX = ".scratchprobe-rootfs"


def _marker_name(name: str) -> str:
    return f".{name}{MARKER_SUFFIX}"


def _written_by_us(parent: Parent, st: os.stat_result) -> bool:
    try:
        fd = os.open(
            _marker_name(parent.name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd
        )
        with os.fdopen(fd, encoding="ascii") as handle:
            return handle.read().strip() == f"{st.st_dev}:{st.st_ino}"
    except (OSError, UnicodeDecodeError):
        return False


def _listdir(parent: Parent) -> list[str]:
    fd = os.open(parent.name, DIR_FLAGS, dir_fd=parent.fd)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def check_destination(
    destination: Destination, parent: Parent, root: Root, force: bool
) -> os.stat_result | None:
    """lstat of the existing destination (None when absent), or DestinationRefused."""
    path = destination.path
    # The parent is symlink-free, so this is the destination's real path.
    real = os.path.join(parent.path, parent.name)
    if root.directory == real or root.directory.startswith(real.rstrip("/") + "/"):
        raise DestinationRefused(f"{path}: it contains the --root directory {root.directory}")
    try:
        st = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise DestinationRefused(f"{path}: is a symbolic link; give the real path")
    if destination.kind is OutputKind.TAR:
        if not stat.S_ISREG(st.st_mode):
            raise DestinationRefused(f"{path}: exists and is not a regular file")
        return st
    if not stat.S_ISDIR(st.st_mode):
        raise DestinationRefused(f"{path}: exists and is not a directory")
    if _listdir(parent) and not force and not _written_by_us(parent, st):
        raise DestinationRefused(
            f"{path}: a non-empty directory scratchprobe did not write; use --force to replace it"
        )
    return st


_RENAME_EXCHANGE = 2


def _exchange(parent_fd: int, a: str, b: str) -> bool:
    """Swap two names of one directory atomically (renameat2 RENAME_EXCHANGE); False where
    unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(parent_fd, os.fsencode(a), parent_fd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), b)


def publish_directory(
    parent: Parent, existing: os.stat_result | None, write: Callable[[int], None]
) -> None:
    """Write a directory with `write` (given the descriptor of an empty staging directory)
    and publish it at the destination, replacing `existing`, then record it as ours."""
    # Every step from the mkdir on is inside the try: a SIGTERM arriving right after it
    # (the handler runs at the next bytecode) still removes the staging directory.
    staging = _staging_name(parent.name, "partial")
    destination = parent.name
    pfd = parent.fd
    staging_fd = -1
    try:
        os.mkdir(staging, 0o700, dir_fd=pfd)
        staging_fd = os.open(staging, DIR_FLAGS, dir_fd=pfd)
        lock(staging_fd)
        write(staging_fd)
        if existing is None or not _listdir(parent):
            # rename(2) replaces a missing or empty directory in one step.
            os.rename(staging, destination, src_dir_fd=pfd, dst_dir_fd=pfd)
        elif not _exchange(pfd, staging, destination):
            # No atomic swap here: move the old tree aside first; the window in which the
            # destination is absent is two renames long.
            aside = _staging_name(parent.name, "old")
            os.rename(destination, aside, src_dir_fd=pfd, dst_dir_fd=pfd)
            os.rename(staging, destination, src_dir_fd=pfd, dst_dir_fd=pfd)
            staging = aside
        # Here `staging` names the previous output (or nothing): remove it.
        with suppress(OSError):
            shutil.rmtree(staging, dir_fd=pfd)
    except BaseException:
        with suppress(OSError):
            shutil.rmtree(staging, dir_fd=pfd)
        raise
    finally:
        if staging_fd >= 0:
            os.close(staging_fd)
    st = os.stat(destination, dir_fd=pfd, follow_symlinks=False)
    tmp = _staging_name(parent.name, "partial")
    try:
        fd = os.open(tmp, NEW_FILE_FLAGS, 0o644, dir_fd=pfd)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{st.st_dev}:{st.st_ino}\n")
        os.replace(tmp, _marker_name(parent.name), src_dir_fd=pfd, dst_dir_fd=pfd)
    except OSError:
        # Without the marker the output is merely not recognised as ours next time.
        with suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
        raise


def publish_file(parent: Parent, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file with `write` (given a staging file) and rename it over the destination."""
    tmp = _staging_name(parent.name, "partial")
    try:
        # Inside the try from the creation on, as for a directory (SIGTERM right after it).
        fd = os.open(tmp, NEW_FILE_FLAGS, 0o600, dir_fd=parent.fd)
        with os.fdopen(fd, "wb") as out:
            lock(fd)
            write(out)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(out.fileno(), 0o666 & ~umask)
            os.replace(tmp, parent.name, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=parent.fd)
        raise
