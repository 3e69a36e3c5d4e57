"""Apply an image's layers in order into a private directory, never trusting the archive.

The rules are the OCI image-spec's layer.md ("Applying Changesets", "Whiteouts") and what
container runtimes do when they unpack a layer:

- members are applied in archive order, layer after layer; a later member of the same path
  replaces the earlier one (duplicates: the last wins);
- `DIR/.wh.NAME` deletes NAME from the layers below; `DIR/.wh..wh..opq` hides every entry of
  DIR that came from the layers below (entries of the same layer stay);
- a member path is relative to the root: an absolute path or a `..` component is refused;
- the parent directories of a member are resolved inside the root as the runtime does
  (a symlink is followed with `/` meaning the root and `..` stopping at it, like
  filepath-securejoin), so a symlink planted by a layer cannot redirect a write outside;
- a symlink is created as a symlink and never followed while unpacking; a hard link must
  name a member already unpacked inside the root;
- character and block devices and FIFOs are recorded, never created (the analysis needs
  none, and creating device nodes from an untrusted archive is exactly what must not happen);
- the unpacked bytes and the number of members are bounded (a decompression bomb ends in one
  error line, not a full disk).

Layers are gzip-compressed or plain tar (image-spec media types `...tar+gzip`, `...tar`);
zstd (`...tar+zstd`) is refused with a clear message, Python's standard library has no zstd.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from scratchprobe.errors import ScratchprobeError
from scratchprobe.root import PathLoopError, follow_links

_CHUNK = 1 << 20

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class ImageSourceError(ScratchprobeError):
    """The image cannot be read or unpacked safely (one line for the user)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what the layers may unpack to."""

    max_bytes: int = 16 << 30
    """Total bytes of regular-file content over all layers."""
    max_members: int = 2_000_000
    """Total tar members over all layers."""


@dataclass(frozen=True)
class SpecialFile:
    """A device node or FIFO of a layer: recorded, never created."""

    path: str
    kind: str
    """"character device", "block device" or "fifo"."""
    major: int = 0
    minor: int = 0


@dataclass(frozen=True)
class Unpacked:
    """What the layers unpacked to."""

    directory: str
    """The private root, to be used as --root."""
    files: int
    bytes: int
    """Bytes of regular-file content now in the root (a hard link counted once)."""
    specials: tuple[SpecialFile, ...]


@dataclass
class _State:
    limits: Limits
    members: int = 0
    bytes: int = 0
    specials: dict[str, SpecialFile] = field(default_factory=dict)
    dir_modes: dict[str, int] = field(default_factory=dict)


def member_path(name: str, layer: str) -> tuple[str, ...]:
    """The components of a member's path, or an error for one that leaves the root."""
    if name.startswith("/"):
        raise ImageSourceError(f"{layer}: member {name!r} is an absolute path")
    parts = tuple(p for p in name.split("/") if p and p != ".")
    if ".." in parts:
        raise ImageSourceError(f"{layer}: member {name!r} climbs out of the root with '..'")
    return parts


def _resolve_dir(root: str, parts: tuple[str, ...], layer: str, create: bool) -> str | None:
    """The host path of the in-root directory `parts`, every symlink followed inside the
    root (root.follow_links). Missing directories are created (mode 0755, as runtimes do for
    implied parents) when `create`, else None is returned."""

    def step(candidate: str, more: bool) -> str | None:
        host = os.path.join(root, *candidate.split("/")[1:])
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(host, 0o755)
            return None
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(host)
        if not stat.S_ISDIR(st.st_mode):
            if not create:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", candidate)
            raise ImageSourceError(
                f"{layer}: {'/'.join(parts)}: a parent is not a directory "
                f"({posixpath.basename(candidate)})"
            )
        return None

    try:
        current = follow_links("/" + "/".join(parts), step)
    except PathLoopError:
        raise ImageSourceError(f"{layer}: {'/'.join(parts)}: too many symbolic links") from None
    except (FileNotFoundError, NotADirectoryError):
        if create:
            raise
        return None
    return os.path.join(root, *[p for p in current.split("/") if p])


def _is_real_dir(host: str) -> bool:
    return stat.S_ISDIR(os.lstat(host).st_mode)


def _remove(host: str) -> None:
    """Remove whatever is at host (never following a symlink)."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(host)
    else:
        os.unlink(host)


class _Hashing(io.RawIOBase):
    """A read-only stream that hashes what it passes on, to check a blob's digest."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> str:
        while self.read(_CHUNK):
            pass
        return "sha256:" + self.hash.hexdigest()


def _decompressed(stream: io.BufferedReader, media_type: str, layer: str) -> IO[bytes]:
    head = stream.peek(4)[:4]
    if media_type.endswith("+zstd") or head == b"\x28\xb5\x2f\xfd":
        raise ImageSourceError(f"{layer}: zstd-compressed layers are not supported")
    if media_type.endswith("gzip") or head[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    return cast(IO[bytes], stream)


def _members(tar: tarfile.TarFile, layer: str) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ImageSourceError(f"{layer}: not a readable tar layer ({exc})") from None


def apply_layer(
    root: str, blob: IO[bytes], media_type: str, layer: str, state: _State, digest: str | None
) -> None:
    """Apply one layer (a tar stream, maybe gzip) onto the root."""
    hashing = _Hashing(blob)
    stream = _decompressed(io.BufferedReader(hashing, _CHUNK), media_type, layer)
    written: set[tuple[str, ...]] = set()
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed by `with` below)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageSourceError(f"{layer}: not a readable tar layer ({exc})") from None
    with tar:
        for member in _members(tar, layer):
            state.members += 1
            if state.members > state.limits.max_members:
                raise ImageSourceError(
                    f"{layer}: more than {state.limits.max_members} members in the layers "
                    "(a decompression bomb?): refused"
                )
            _apply_member(root, tar, member, layer, state, written)
    if digest is not None:
        actual = hashing.drain()
        if actual != digest:
            raise ImageSourceError(f"{layer}: the blob's digest is {actual}, not {digest}")


def _apply_member(
    root: str,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    layer: str,
    state: _State,
    written: set[tuple[str, ...]],
) -> None:
    parts = member_path(member.name, layer)
    if not parts:
        # The root directory itself: its mode is the runtime's business.
        return
    *parent_parts, name = parts
    parent = tuple(parent_parts)
    if name == OPAQUE_MARKER:
        directory = _resolve_dir(root, parent, layer, create=False)
        if directory is not None:
            for child in os.listdir(directory):
                if (*parent, child) not in written:
                    _remove(os.path.join(directory, child))
        prefix = "/" + "/".join(parent) + "/" if parent else "/"
        for path in [p for p in state.specials if p.startswith(prefix)]:
            if tuple(path[1:].split("/")) not in written:
                del state.specials[path]
        return
    if name.startswith(WHITEOUT_PREFIX):
        hidden = name[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise ImageSourceError(f"{layer}: whiteout {member.name!r} names no entry")
        directory = _resolve_dir(root, parent, layer, create=False)
        if directory is not None:
            _remove(os.path.join(directory, hidden))
        state.specials.pop("/" + "/".join((*parent, hidden)), None)
        return
    directory = _resolve_dir(root, parent, layer, create=True)
    assert directory is not None
    host = os.path.join(directory, name)
    in_root = "/" + "/".join(parts)
    written.add(parts)
    state.specials.pop(in_root, None)
    mode = member.mode & 0o7777
    if member.isdir():
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            _remove(host)
            os.mkdir(host, 0o700)
        # Modes are applied at the end: a 0555 directory must still take its members.
        state.dir_modes[host] = mode
        return
    _remove(host)
    state.dir_modes.pop(host, None)
    if member.isreg():
        state.bytes += member.size
        if state.bytes > state.limits.max_bytes:
            raise ImageSourceError(
                f"{layer}: the layers unpack to more than {state.limits.max_bytes} bytes "
                "(a decompression bomb?): refused"
            )
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            try:
                shutil.copyfileobj(source, out, _CHUNK)
            except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
                raise ImageSourceError(f"{layer}: {member.name}: truncated ({exc})") from None
            os.fchmod(out.fileno(), mode)
    elif member.issym():
        # Created as it is; an absolute or climbing target means something inside the
        # root when the analysis resolves it (root.py), and is never followed here.
        os.symlink(member.linkname, host)
    elif member.islnk():
        target_parts = member_path(member.linkname, layer)
        if not target_parts:
            raise ImageSourceError(f"{layer}: hard link {member.name!r} to the root")
        *target_parent, target_name = target_parts
        target_dir = _resolve_dir(root, tuple(target_parent), layer, create=False)
        target = None if target_dir is None else os.path.join(target_dir, target_name)
        if target is None or not os.path.lexists(target) or _is_real_dir(target):
            raise ImageSourceError(
                f"{layer}: hard link {member.name!r} names {member.linkname!r}, "
                "which no earlier member unpacked"
            )
        os.link(target, host, follow_symlinks=False)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = (
            "character device" if member.ischr() else "block device" if member.isblk() else "fifo"
        )
        state.specials[in_root] = SpecialFile(in_root, kind, member.devmajor, member.devminor)
    else:
        raise ImageSourceError(f"{layer}: member {member.name!r} has an unknown type")


def finish(root: str, state: _State) -> Unpacked:
    """Apply the deferred directory modes and count what the root holds."""
    for host, mode in sorted(state.dir_modes.items(), key=lambda kv: -len(kv[0])):
        try:
            os.chmod(host, mode, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
    files = 0
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return Unpacked(root, files, total, tuple(sorted(state.specials.values(), key=_key)))


def _key(special: SpecialFile) -> str:
    return special.path


def new_state(limits: Limits) -> _State:
    return _State(limits)
