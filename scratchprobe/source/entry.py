"""The binaries to analyse in a source image: its entry point, resolved as the runtime would.

The runtime execs ENTRYPOINT + CMD (image-spec config.md). A first word without `/` is
looked up in the image's PATH (runc and crun search the container's PATH like execvp(3));
a relative path with `/` is taken from WORKDIR. Nothing is executed: the file is read.

A file starting with `#!` is a script: the kernel runs the interpreter named on that line
(fs/binfmt_script.c, at most 4 interpreters deep: fs/exec.c's recursion limit), and
`#!/usr/bin/env NAME` looks NAME up in PATH (env(1)). The interpreter is what the slim
image needs as a binary; the script files themselves are included as they are (the kernel
opens the script to read its #! line, and the interpreter reads it again); what the script
runs is only known to a trace.

An argument of the entry point that names a regular file of the image (`python3
/app/job.py`, `node server.js` from WORKDIR) is a file the program is given to open: it is
included too. A word naming no file, a directory or a device is left alone.
"""

from __future__ import annotations

import glob
import os
import posixpath
import stat
from dataclasses import dataclass

from scratchprobe.root import Root, open_regular
from scratchprobe.source.config import SourceConfig
from scratchprobe.source.unpack import ImageSourceError
from scratchprobe.trace.includes import Include

SCRIPT_REASON = "the image's entry point script"
ARGUMENT_REASON = "an argument of the image's entry point: a regular file in the image"

# fs/binfmt_script.c reads the #! line from the first BINPRM_BUF_SIZE (256) bytes.
_SHEBANG_LIMIT = 256
_MAX_INTERPRETERS = 4


@dataclass(frozen=True)
class EntryPoint:
    argv: tuple[str, ...]
    """ENTRYPOINT + CMD as the image gives them."""
    binaries: tuple[str, ...]
    """In-root paths of the ELF files to analyse: the entry point, or its final interpreter
    then the `env` of any `#!/usr/bin/env NAME` line on the way."""
    scripts: tuple[str, ...]
    """In-root paths of scripts on the way (the entry point script first)."""
    exec_argv: tuple[str, ...]
    """What the ELF binary is finally run with: its path, then its arguments (for a
    script: the #! argument, the script, then the entry point's arguments)."""
    warnings: tuple[str, ...]
    includes: tuple[Include, ...] = ()
    """Files of the image the plan gets as they are: the scripts on the way, then the
    arguments that name regular files."""


def _executable(root: Root, path: str) -> str | None:
    try:
        resolved = root.resolve(path)
    except OSError:
        return None
    if resolved.is_file and resolved.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return path
    return None


def lookup(root: Root, word: str, search_path: str, workdir: str | None) -> str | None:
    """The in-root path the runtime would exec for `word`."""
    if "/" in word:
        path = word if word.startswith("/") else posixpath.join(workdir or "/", word)
        return _executable(root, posixpath.normpath(path))
    for directory in search_path.split(":"):
        if directory.startswith("/"):
            found = _executable(root, posixpath.join(directory, word))
            if found is not None:
                return found
    return None


def _shebang(root: Root, path: str) -> tuple[str, ...] | None:
    with os.fdopen(open_regular(root.resolve(path).host_path), "rb") as handle:
        head = handle.read(_SHEBANG_LIMIT)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip()
    # binfmt_script: the interpreter, then everything after it as one optional argument.
    interpreter, _, argument = line.partition(" ")
    interpreter = interpreter.split("\t", 1)[0]
    return (interpreter, argument.strip()) if argument.strip() else (interpreter,)


def resolve_entry(root: Root, config: SourceConfig) -> EntryPoint:
    argv = config.argv
    if not argv:
        raise ImageSourceError("the image has neither ENTRYPOINT nor CMD: give --binary")
    path = lookup(root, argv[0], config.path, config.workdir)
    if path is None:
        raise ImageSourceError(
            f"the entry point {argv[0]!r} is not an executable file in the image "
            f"(PATH={config.path})"
        )
    scripts: list[str] = []
    envs: list[str] = []
    exec_argv: tuple[str, ...] = (path, *argv[1:])
    for _ in range(_MAX_INTERPRETERS + 1):
        line = _shebang(root, path)
        if line is None:
            break
        scripts.append(path)
        interpreter = line[0]
        if posixpath.basename(interpreter) == "env" and len(line) > 1:
            # The kernel execs env itself, which then execs NAME: both are in the image.
            env = _executable(root, interpreter) if interpreter.startswith("/") else None
            name = line[1].split()[0]
            found = lookup(root, name, config.path, config.workdir) if env else None
            if env is not None:
                envs.append(env)
        else:
            found = _executable(root, interpreter) if interpreter.startswith("/") else None
        if found is None:
            raise ImageSourceError(
                f"the entry point {path} is a script whose interpreter {' '.join(line)!r} "
                "is not in the image"
            )
        if posixpath.basename(interpreter) == "env":
            exec_argv = (found, *line[1].split()[1:], path, *exec_argv[1:])
        else:
            exec_argv = (found, *line[1:], path, *exec_argv[1:])
        path = found
    else:
        raise ImageSourceError(f"the entry point {argv[0]} has more than 4 script interpreters")
    warnings = []
    if scripts:
        warnings.append(
            f"the entry point {scripts[0]} is a script run by {path}: the slim image gets "
            "the interpreter and the script, but the commands the script runs are only known "
            "to a trace (verify --trace)"
        )
    includes = [_include(script, SCRIPT_REASON) for script in scripts]
    includes += _argument_files(root, argv[1:], config.workdir, set(scripts))
    binaries = tuple(dict.fromkeys((path, *envs)))
    return EntryPoint(argv, binaries, tuple(scripts), exec_argv, tuple(warnings), tuple(includes))


def _include(path: str, reason: str) -> Include:
    # An include source with `*?[` is a glob (trace/includes.py): escaped, it names this
    # one file, which then goes to its own path.
    return Include(glob.escape(path), reason=reason, origin="--from-image")


def _argument_files(
    root: Root, words: tuple[str, ...], workdir: str | None, seen: set[str]
) -> list[Include]:
    """The entry point's arguments that name regular files in the image: absolute, or
    relative to WORKDIR (the process's working directory, image-spec config.md). Options
    (`-c`, `--config=PATH`) are not paths of their own; the value of `--opt=/PATH` is."""
    out = []
    for argument in words:
        word = argument
        if argument.startswith("-"):
            _, equals, word = argument.partition("=")
            if not equals or not word.startswith("/"):
                continue
        if not word or "\0" in word:
            continue
        path = posixpath.normpath(
            word if word.startswith("/") else posixpath.join(workdir or "/", word)
        )
        if path in seen or path == "/":
            continue
        try:
            resolved = root.resolve(path)
        except OSError:
            continue
        if resolved.is_file:
            seen.add(path)
            out.append(_include(path, ARGUMENT_REASON))
    return out


def checked_binaries(root: Root, paths: tuple[str, ...], config: SourceConfig) -> tuple[str, ...]:
    """`--binary` paths: in-root, looked up in PATH when they have no `/`."""
    out = []
    for word in paths:
        found = lookup(root, word, config.path, config.workdir)
        if found is None:
            raise ImageSourceError(f"--binary {word}: not an executable file in the image")
        out.append(found)
    return tuple(out)
