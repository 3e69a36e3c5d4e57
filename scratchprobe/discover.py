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
from collections.abc import Callable
from dataclasses import dataclass, field

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


def describe_os_error(exc: OSError) -> str:
    """An OSError in the words of every other input problem (lower case, no errno)."""
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop)"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a path component is not a directory"
    return exc.strerror or str(exc)


@dataclass(frozen=True)
class Discovery:
    candidates: tuple[Candidate, ...]
    problems: tuple[InputProblem, ...]
    notes: tuple[str, ...]
    """What a directory walk skipped or followed, one line per directory argument."""


def discover(args: tuple[str, ...], root: Root) -> tuple[list[Candidate], list[InputProblem]]:
    found = discover_all(args, root)
    return list(found.candidates), list(found.problems)


def discover_all(args: tuple[str, ...], root: Root) -> Discovery:
    candidates: list[Candidate] = []
    problems: list[InputProblem] = []
    notes: list[str] = []
    for arg in args:
        found, problem, walk = _discover_one(arg, root)
        candidates += found
        if walk is not None:
            problems += walk.problems
            note = walk.note(arg)
            # With no ELF file at all, the problem line already says what was skipped.
            if note and walk.files:
                notes.append(note)
        if problem is not None:
            problems.append(problem)
    return Discovery(tuple(candidates), tuple(problems), tuple(notes))


def _in_root_path(arg: str, root: Root) -> str | None:
    if root.is_host:
        return normalize(os.path.abspath(arg))
    inside = root.to_root_path(arg)
    if inside is not None:
        return normalize(inside)
    if arg.startswith("/") and os.path.lexists(root.host_path(arg)):
        return normalize(arg)
    return None


_Found = tuple[list[Candidate], InputProblem | None, "Walk | None"]


def _discover_one(arg: str, root: Root) -> _Found:
    in_root = _in_root_path(arg, root)
    if in_root is None:
        return _discover_context(arg)
    try:
        resolved = root.resolve(in_root)
    except OSError as exc:
        host = root.host_path(in_root)
        if exc.errno == errno.ENOENT and os.path.islink(host):
            return [], InputProblem(arg, f"dangling symbolic link to {os.readlink(host)}"), None
        return [], InputProblem(arg, describe_os_error(exc)), None
    if resolved.is_dir:
        top = resolved.path

        def follow(link_host: str) -> tuple[str, str] | None:
            # Inside the root, with the root's own rules (absolute targets re-rooted).
            inner = posixpath.join(top, os.path.relpath(link_host, resolved.host_path))
            target = root.resolve(inner)
            if not target.is_file:
                return None
            return target.host_path, target.path

        walk = walk_directory(resolved.host_path, arg, follow)
        found = [
            Candidate(
                label=label,
                image_path=posixpath.join(top, rel),
                source=posixpath.join(top, rel),
                host_path=host_file,
                from_context=False,
                walked=True,
            )
            for host_file, rel, label in walk.files
        ]
        if not found and not walk.problems:
            return [], InputProblem(arg, walk.empty_reason()), walk
        return found, None, walk
    if not resolved.is_file:
        return [], InputProblem(arg, "not a regular file"), None
    script = _script_problem(arg, resolved.host_path)
    if script is not None:
        return [], script, None
    candidate = Candidate(arg, in_root, resolved.path, resolved.host_path, False, walked=False)
    return [candidate], None, None


def _discover_context(arg: str) -> _Found:
    try:
        st = os.stat(arg)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(arg):
            return [], InputProblem(arg, f"dangling symbolic link to {os.readlink(arg)}"), None
        return [], InputProblem(arg, describe_os_error(exc)), None
    if stat.S_ISDIR(st.st_mode):

        def follow(link_host: str) -> tuple[str, str] | None:
            real = os.path.realpath(link_host, strict=True)
            if not os.path.isfile(real):
                return None
            return real, real

        walk = walk_directory(arg, arg, follow)
        found = [
            Candidate(
                label=label,
                image_path="/" + rel,
                source=os.path.normpath(os.path.join(arg, rel)),
                host_path=host_file,
                from_context=True,
                walked=True,
            )
            for host_file, rel, label in walk.files
        ]
        if not found and not walk.problems:
            return [], InputProblem(arg, walk.empty_reason()), walk
        return found, None, walk
    if not stat.S_ISREG(st.st_mode):
        return [], InputProblem(arg, "not a regular file"), None
    script = _script_problem(arg, arg)
    if script is not None:
        return [], script, None
    real = os.path.realpath(arg)
    image_path = "/" + os.path.basename(real)
    return [Candidate(arg, image_path, os.path.normpath(arg), real, True, False)], None, None


def script_interpreter(head: bytes) -> str | None:
    """The `#!` line of a script, as the kernel reads it (fs/binfmt_script.c: the
    interpreter path, then at most one argument, up to the first newline)."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip()
    return line.decode("utf-8", "replace") or "(none)"


def interpreter_name(interpreter: str) -> str:
    """`/usr/bin/perl -w` -> `perl`; `/usr/bin/env -S python3 -u` -> `python3`."""
    program, _, argument = interpreter.partition(" ")
    if posixpath.basename(program) == "env" and argument:
        return next((w for w in argument.split() if not w.startswith("-")), argument)
    return posixpath.basename(program) or program


def _script_problem(label: str, host_path: str) -> InputProblem | None:
    """A script given as a binary: the program the kernel runs is its interpreter."""
    try:
        with open(host_path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None  # the ELF reader reports an unreadable file in its own words
    interpreter = script_interpreter(head)
    if interpreter is None:
        return None
    program, _, argument = interpreter.partition(" ")
    if posixpath.basename(program) == "env" and argument:
        # `#!/usr/bin/env NAME`: env searches PATH for NAME at run time.
        name = next((w for w in argument.split() if not w.startswith("-")), argument)
        return InputProblem(
            label, f"a script for {name}, run through {program} (inspect {name}'s binary instead)"
        )
    return InputProblem(label, f"a script for {interpreter} (inspect {program} instead)")


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


@dataclass(eq=False)  # never compared: no __eq__ to generate at import
class Walk:
    """What walking one directory argument found (mutable while walking only)."""

    files: list[tuple[str, str, str]] = field(default_factory=list)
    """(host path, path relative to the directory, label) of each ELF file, sorted."""
    problems: list[InputProblem] = field(default_factory=list)
    links_followed: int = 0
    scripts: dict[str, int] = field(default_factory=dict)
    """Interpreter -> number of scripts for it."""
    not_elf: int = 0
    links_out: int = 0
    """Symlinks leaving the directory (or to a directory): not followed."""
    dangling: int = 0
    special: int = 0
    """FIFOs, sockets, devices."""

    def empty_reason(self) -> str:
        skipped = self._skipped()
        return "directory holds no ELF file" + (f" (skipped {skipped})" if skipped else "")

    def _skipped(self) -> str:
        parts = []
        if self.scripts:
            count = sum(self.scripts.values())
            ranked = sorted(self.scripts.items(), key=lambda item: (-item[1], item[0]))
            by = ", ".join(f"{name} {n}" for name, n in ranked)
            parts.append(f"{count} script{'s' if count != 1 else ''} ({by})")
        if self.not_elf:
            parts.append(f"{self.not_elf} not ELF")
        if self.links_out:
            parts.append(f"{self.links_out} symlinks out of the directory or not to a file")
        if self.dangling:
            parts.append(f"{self.dangling} dangling symlinks")
        if self.special:
            parts.append(f"{self.special} not regular files")
        return ", ".join(parts)

    def note(self, arg: str) -> str | None:
        """One line saying what this walk did besides listing ELF files; None when it
        listed every entry."""
        parts = []
        if self.links_followed:
            parts.append(
                f"followed {self.links_followed} symlink{'s' if self.links_followed != 1 else ''}"
                " to ELF files in it (each file analysed once)"
            )
        skipped = self._skipped()
        if skipped:
            parts.append(f"skipped {skipped}")
        if not parts:
            return None
        count = len(self.files)
        return f"{arg}: {count} ELF file{'s' if count != 1 else ''}; " + "; ".join(parts)


def walk_directory(
    directory: str, label_base: str, follow: Callable[[str], tuple[str, str] | None]
) -> Walk:
    """ELF files below `directory`, sorted, with what was skipped and why.

    A symlink is followed when it ends at a regular file inside `directory` (`follow` gives
    its host path and its path in the same namespace as `directory`'s); the file is then
    listed once, under its own name, however many links lead to it. Links leaving the
    directory and links to directories are not followed: the first would analyse files the
    user did not name, the second can loop. An unreadable file or subdirectory is an input
    problem (exit 2); the rest is still listed.
    """
    walk = Walk()
    top_real = os.path.realpath(directory)
    seen: set[str] = set()
    targets: list[tuple[str, str]] = []

    def unreadable(exc: OSError) -> None:
        path = exc.filename if isinstance(exc.filename, str) else directory
        rel = os.path.relpath(path, directory)
        walk.problems.append(
            InputProblem(os.path.join(label_base, rel), f"{describe_os_error(exc)} (not walked)")
        )

    def add(host_file: str, rel: str) -> None:
        key = os.path.realpath(host_file)
        if key in seen:
            return
        seen.add(key)
        walk.files.append((host_file, rel, os.path.join(label_base, rel)))

    for current, dirs, names in os.walk(directory, onerror=unreadable, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(current, name)
            rel = os.path.relpath(path, directory)
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    try:
                        target = follow(path)
                    except OSError:
                        walk.dangling += 1
                        continue
                    if target is None or not target[0].startswith(top_real + "/"):
                        walk.links_out += 1
                        continue
                    # A link to a script or data file counts as one more of those.
                    if _kind(target[0], walk) == "elf":
                        walk.links_followed += 1
                        targets.append((target[0], os.path.relpath(target[0], top_real)))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    walk.special += 1
                    continue
                if _kind(path, walk) == "elf":
                    add(path, rel)
            except OSError as exc:
                label = os.path.join(label_base, rel)
                walk.problems.append(InputProblem(label, describe_os_error(exc)))
            if len(walk.files) >= _MAX_WALK_FILES:
                return walk
    # Link targets after the regular files, so a file is listed under its own name; a
    # target inside the directory was walked already unless a linked subdirectory leads to it.
    for host_file, rel in targets:
        add(host_file, rel)
    return walk


def _kind(host_file: str, walk: Walk) -> str:
    """`elf`, or counts the file as a script or not-ELF in `walk`. Raises OSError."""
    with open(host_file, "rb") as handle:
        head = handle.read(256)
    if head[:4] == b"\x7fELF" and len(head) >= 52:
        return "elf"
    interpreter = script_interpreter(head)
    if interpreter is not None:
        name = interpreter_name(interpreter)
        walk.scripts[name] = walk.scripts.get(name, 0) + 1
        return "script"
    walk.not_elf += 1
    return "data"
