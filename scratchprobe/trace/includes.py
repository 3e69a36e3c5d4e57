"""Files the user (or `verify --trace --learn`) adds to the plan by hand.

An include names a path inside `--root` — a file, a directory (copied whole) or a glob — and
optionally the image path it goes to (`SRC:DEST`; for a glob, DEST is the directory the
matches go into). `--include-from FILE` reads many: the TOML file `--learn` writes, or plain
lines (one `--include` spec per line, `#` comments). The TOML format (docs/trace.md):

    [[include]]
    path = "/usr/share/cmake-3.25"      # inside --root (required)
    dest = "/usr/share/cmake-3.25"      # image path (default: path)
    reason = "seen by verify --trace: ..."
    kind = "data-directory"             # what the trace classified it as (informational)
    tree = true                         # a directory: copy its contents (false: only create it)

Every included entry becomes a plan entry of kind `included` with its reason, so every
output (JSON manifest, COPY lines, Dockerfile, rootfs, verify) carries it.
"""

from __future__ import annotations

import glob
import os
import posixpath
import stat
from dataclasses import dataclass

from scratchprobe.errors import InputError, UsageError
from scratchprobe.plan import FileKind, FileType, ImageFile
from scratchprobe.root import Root, normalize

USER_REASON = "included by the user"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Include:
    source: str
    """Path or glob inside --root."""
    dest: str | None = None
    """Image path (None: the source path); for a glob, the directory the matches go into."""
    reason: str = USER_REASON
    origin: str = "--include"
    """Where the entry came from: `--include` or the include file's path."""
    kind: str | None = None
    """What `verify --trace` classified it as (informational)."""
    tree: bool = True
    """A directory: copy its contents; False: create it empty."""

    @property
    def spec(self) -> str:
        """The entry as an `--include` argument."""
        return self.source if self.dest in (None, self.source) else f"{self.source}:{self.dest}"


@dataclass(frozen=True)
class IncludeProblem:
    spec: str
    message: str


def parse_spec(spec: str, origin: str = "--include") -> Include:
    """`PATH`, `GLOB`, `SRC:DEST`. The separator is the first `:` followed by `/`, so a
    source path may itself contain colons as long as DEST is absolute."""
    source, dest = spec, None
    at = spec.find(":/")
    if at > 0:
        source, dest = spec[:at], spec[at + 1 :]
    if not source.startswith("/"):
        raise UsageError(f"{origin}: {spec!r}: the source must be an absolute path inside --root")
    if dest is not None and _has_glob(dest):
        raise UsageError(f"{origin}: {spec!r}: the destination cannot be a glob")
    return Include(source=source, dest=dest, origin=origin)


def _has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def load_file(path: str) -> tuple[Include, ...]:
    """The entries of an include file: TOML (`[[include]]` tables), else plain lines."""
    import tomllib  # only a run with --include-from pays for the TOML parser

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(path, f"cannot read the include file: {exc.strerror or exc}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InputError(path, "the include file is not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        lines = [
            line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
        ]
        if lines and all(line.startswith("/") for line in lines):
            return tuple(parse_spec(line, path) for line in lines)
        raise InputError(path, f"not an include file (TOML: {exc})") from None
    return _from_toml(document, path)


def _from_toml(document: dict[str, object], path: str) -> tuple[Include, ...]:
    entries = document.get("include", [])
    if not isinstance(entries, list):
        raise InputError(path, "'include' must be an array of tables ([[include]])")
    out = []
    for index, entry in enumerate(entries, 1):
        where = f"include entry {index}"
        if not isinstance(entry, dict):
            raise InputError(path, f"{where}: not a table")
        unknown = set(entry) - {"path", "dest", "reason", "kind", "tree"}
        if unknown:
            raise InputError(path, f"{where}: unknown key {sorted(unknown)[0]!r}")
        source = entry.get("path")
        if not isinstance(source, str) or not source.startswith("/"):
            raise InputError(path, f"{where}: 'path' must be an absolute path inside --root")
        dest = entry.get("dest")
        if dest is not None and (not isinstance(dest, str) or not dest.startswith("/")):
            raise InputError(path, f"{where}: 'dest' must be an absolute image path")
        reason = entry.get("reason", USER_REASON)
        kind = entry.get("kind")
        tree = entry.get("tree", True)
        if not isinstance(reason, str) or not isinstance(tree, bool):
            raise InputError(path, f"{where}: 'reason' is a string and 'tree' a boolean")
        if kind is not None and not isinstance(kind, str):
            raise InputError(path, f"{where}: 'kind' is a string")
        out.append(Include(source, dest, reason, path, kind, tree))
    return tuple(out)


def toml_string(value: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped (TOML 1.0,
    "Basic strings": any Unicode character except those that must be escaped)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate (an undecodable byte of a file name): not a Unicode scalar.
            out.append("\\uFFFD")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def render_file(includes: tuple[Include, ...], header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for include in includes:
        lines += ["", "[[include]]", f"path = {toml_string(include.source)}"]
        if include.dest is not None and include.dest != include.source:
            lines.append(f"dest = {toml_string(include.dest)}")
        lines.append(f"reason = {toml_string(include.reason)}")
        if include.kind is not None:
            lines.append(f"kind = {toml_string(include.kind)}")
        if not include.tree:
            lines.append("tree = false")
    return "\n".join(lines) + "\n"


def write_file(path: str, includes: tuple[Include, ...], header: str) -> None:
    """Write atomically: a half-written include file would break the next plan."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(render_file(includes, header))
    os.replace(temporary, path)


def _matches(include: Include, root: Root) -> list[str]:
    """In-root paths an include names (a glob expanded inside the root, sorted)."""
    source = normalize(include.source)
    if not _has_glob(source):
        return [source] if root.exists(source) else []
    found = []
    for host in glob.glob(root.host_path(source)):
        in_root = root.to_root_path(host)
        if in_root is not None and root.exists(in_root):
            found.append(in_root)
    return sorted(found)


def resolve(
    includes: tuple[Include, ...], root: Root
) -> tuple[tuple[ImageFile, ...], tuple[IncludeProblem, ...]]:
    """Plan entries for the includes, or a problem for each that names nothing in the root."""
    files: list[ImageFile] = []
    problems: list[IncludeProblem] = []
    for include in includes:
        matches = _matches(include, root)
        if not matches:
            what = "matches nothing" if _has_glob(include.source) else "no such file or directory"
            problems.append(IncludeProblem(include.spec, f"{include.origin}: {what} in --root"))
            continue
        for source in matches:
            if _has_glob(include.source):
                dest = (
                    posixpath.join(normalize(include.dest), posixpath.basename(source))
                    if include.dest is not None
                    else source
                )
            else:
                dest = normalize(include.dest) if include.dest is not None else source
            if dest == "/":
                problems.append(IncludeProblem(include.spec, f"{include.origin}: cannot be /"))
                continue
            files.append(_entry(include, source, dest, root))
    return tuple(files), tuple(problems)


def _entry(include: Include, source: str, dest: str, root: Root) -> ImageFile:
    resolved = root.resolve(source)
    if resolved.is_dir:
        return ImageFile(
            path=dest,
            type=FileType.DIRECTORY,
            kind=FileKind.INCLUDED,
            reason=include.reason,
            # A directory entry with a source is copied whole (COPY of a directory).
            source=source if include.tree else None,
            origin=include.origin,
        )
    st = os.stat(resolved.host_path)
    # COPY keeps the source's mode; the root filesystem writer gives data files 0644, so an
    # included program keeps its execute bits explicitly.
    mode = "0755" if stat.S_IMODE(st.st_mode) & 0o111 else None
    return ImageFile(
        path=dest,
        type=FileType.FILE,
        kind=FileKind.INCLUDED,
        reason=include.reason,
        source=source,
        mode=mode,
        size=st.st_size,
        origin=include.origin,
    )
