"""Turn command-line arguments into binaries to analyse, or into one-line input problems.

An argument is a file or a directory (walked for ELF files). With a --root other than `/`,
an argument is taken inside the root when it names a file there (`/usr/bin/app` means
ROOT/usr/bin/app; ROOT/usr/bin/app is accepted too); anything else is a file from the build
context, copied into the image from outside the builder stage.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass

from scratchprobe.root import Root, normalize

_MAX_WALK_FILES = 200_000


@dataclass(frozen=True)
class Candidate:
    """A file to analyse."""

    label: str
    """The path as the user will recognise it in messages."""
    image_path: str
    """Where the binary goes in the image."""
    source: str
    """In-root real path to copy from; for a build-context file, its path as given (relative
    paths stay relative: a Dockerfile COPY names context files relative to the context)."""
    host_path: str
    """Where this process reads it."""
    from_context: bool
    walked: bool
    """Found by walking a directory (then non-ELF files are skipped, not errors)."""


@dataclass(frozen=True)
class InputProblem:
    path: str
    message: str


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop)"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a path component is not a directory"
    return exc.strerror or str(exc)


def discover(args: tuple[str, ...], root: Root) -> tuple[list[Candidate], list[InputProblem]]:
    candidates: list[Candidate] = []
    problems: list[InputProblem] = []
    for arg in args:
        found, problem = _discover_one(arg, root)
        candidates += found
        if problem is not None:
            problems.append(problem)
    return candidates, problems


def _in_root_path(arg: str, root: Root) -> str | None:
    if root.is_host:
        return normalize(os.path.abspath(arg))
    inside = root.to_root_path(arg)
    if inside is not None:
        return normalize(inside)
    if arg.startswith("/") and os.path.lexists(root.host_path(arg)):
        return normalize(arg)
    return None


def _discover_one(arg: str, root: Root) -> tuple[list[Candidate], InputProblem | None]:
    in_root = _in_root_path(arg, root)
    if in_root is None:
        return _discover_context(arg)
    try:
        resolved = root.resolve(in_root)
    except OSError as exc:
        host = root.host_path(in_root)
        if exc.errno == errno.ENOENT and os.path.islink(host):
            return [], InputProblem(arg, f"dangling symbolic link to {os.readlink(host)}")
        return [], InputProblem(arg, _describe(exc))
    if resolved.is_dir:
        found = []
        for host_file in walk_elf_files(resolved.host_path):
            rel = os.path.relpath(host_file, resolved.host_path)
            inner = posixpath.join(resolved.path, rel)
            found.append(
                Candidate(
                    label=os.path.join(arg, rel),
                    image_path=inner,
                    source=inner,
                    host_path=host_file,
                    from_context=False,
                    walked=True,
                )
            )
        if not found:
            return [], InputProblem(arg, "directory holds no ELF file")
        return found, None
    if not resolved.is_file:
        return [], InputProblem(arg, "not a regular file")
    return [Candidate(arg, in_root, resolved.path, resolved.host_path, False, walked=False)], None


def _discover_context(arg: str) -> tuple[list[Candidate], InputProblem | None]:
    try:
        st = os.stat(arg)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(arg):
            return [], InputProblem(arg, f"dangling symbolic link to {os.readlink(arg)}")
        return [], InputProblem(arg, _describe(exc))
    if stat.S_ISDIR(st.st_mode):
        found = [
            Candidate(
                label=path,
                image_path="/" + os.path.relpath(path, arg),
                source=os.path.normpath(path),
                host_path=path,
                from_context=True,
                walked=True,
            )
            for path in walk_elf_files(arg)
        ]
        if not found:
            return [], InputProblem(arg, "directory holds no ELF file")
        return found, None
    if not stat.S_ISREG(st.st_mode):
        return [], InputProblem(arg, "not a regular file")
    real = os.path.realpath(arg)
    return [
        Candidate(arg, "/" + os.path.basename(real), os.path.normpath(arg), real, True, False)
    ], None


def walk_elf_files(directory: str) -> list[str]:
    """Regular files with the ELF magic below `directory`, sorted; symlinks are not followed
    (a link to a file in the same tree would only repeat it)."""
    out: list[str] = []
    for current, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(current, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size < 52:
                    continue
                with open(path, "rb") as handle:
                    if handle.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            out.append(path)
            if len(out) >= _MAX_WALK_FILES:
                return out
    return out
