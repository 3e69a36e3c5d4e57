"""Read /etc/ld.so.conf (with `include` globs) the way ldconfig does.

ld.so never reads this file: only ldconfig does, to build /etc/ld.so.cache. scratchprobe uses
it only when a root has no cache at all, to say which directories ldconfig *would* index,
and it never copies it into an image (ldconfig(8); docs/runtime-facts.md, "Loader").
"""

from __future__ import annotations

import posixpath

from scratchprobe.root import Root

_MAX_DEPTH = 16


def read_ld_so_conf(root: Root, path: str = "/etc/ld.so.conf") -> tuple[str, ...]:
    """Directories listed by `path` and its includes, in order, without duplicates."""
    seen: list[str] = []
    _read(root, path, seen, 0, set())
    return tuple(seen)


def _read(root: Root, path: str, out: list[str], depth: int, visited: set[str]) -> None:
    if depth > _MAX_DEPTH or path in visited:
        return
    visited.add(path)
    try:
        lines = root.read_text(path).splitlines()
    except OSError:
        return
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            for word in line[8:].split():
                pattern = (
                    word if word.startswith("/") else posixpath.join(posixpath.dirname(path), word)
                )
                for included in _glob(root, pattern):
                    _read(root, included, out, depth + 1, visited)
            continue
        if line.startswith("hwcap"):
            continue  # a legacy directive ldconfig ignores since glibc 2.37
        # ldconfig accepts "dir=type" and commas/whitespace as separators.
        for item in line.replace(",", " ").split():
            directory = item.split("=", 1)[0].rstrip("/") or "/"
            if directory.startswith("/") and directory not in out:
                out.append(directory)


def _glob(root: Root, pattern: str) -> list[str]:
    import fnmatch  # here: only a root without ld.so.cache reads ld.so.conf

    directory, name_pattern = posixpath.split(pattern)
    if any(c in directory for c in "*?["):
        return []  # glibc's ldconfig globs the whole pattern, but nobody globs directories
    return sorted(
        posixpath.join(directory, name)
        for name in root.listdir(directory)
        if fnmatch.fnmatchcase(name, name_pattern)
    )
