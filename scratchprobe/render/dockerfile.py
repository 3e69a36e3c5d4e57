"""`--format dockerfile`: a complete scratch stage to append after the builder stage.

Two styles, both from the same plan:
- COPY style (default). Every instruction of a stage that changes its filesystem is a layer,
  and an image may have at most 127 of them (Docker's `maxDepth`; overlay's lower-directory
  limit: podman and buildah stop with "max depth exceeded"). So:
  - up to MAX_COPY_LAYERS layers: one `COPY --from=STAGE` per file, which a reader can
    check line by line and which shares layers between images. COPY cannot create a
    symlink or an empty directory, and follows a symlink given as its source; those
    entries come from a small stage on the builder;
  - past it (a program with a 200-library closure, a directory of programs): a stage on
    the builder copies every file into FILES_DIR with one shell script, and the scratch
    stage copies that directory whole: one layer, whatever the count.
- `--rootfs-stage`: a stage built on the builder runs `scratchprobe rootfs` there and the
  scratch stage copies its output whole. A directory COPY keeps symlinks, empty directories
  and modes (/tmp 1777), so the image gets exactly what `scratchprobe rootfs` writes. The
  builder must have scratchprobe on PATH (README: "scratchprobe in the builder stage").
"""

from __future__ import annotations

import json
import posixpath
import shlex

from scratchprobe import __version__
from scratchprobe.elf.classify import ObjectKind
from scratchprobe.model import Inspection
from scratchprobe.plan import FileType
from scratchprobe.render import RenderOptions
from scratchprobe.render.copy import (
    MAX_COPY_LAYERS,
    UnexpressibleName,
    check_copy_name,
    copy_line,
    copy_lines,
    problem_comments,
)
from scratchprobe.render.names import dockerfile_refusal, dockerfile_word, is_utf8

ROOTFS_STAGE = "scratchprobe-rootfs"
"""Name of the stage that writes the root filesystem."""
ROOTFS_DIR = "/rootfs"
"""Where that stage writes it."""


def _exec_form(words: list[str]) -> str:
    """A JSON array for RUN or ENTRYPOINT. Their exec form is not variable-expanded, and
    JSON escapes every control character, so only a name that is not UTF-8 (which JSON
    cannot hold) is refused."""
    for word in words:
        if not is_utf8(word):
            raise UnexpressibleName(word, "it is not valid UTF-8, and a Dockerfile is UTF-8 text")
    return json.dumps(words)


def _env_line(key: str, value: str) -> str:
    # ENV KEY=VALUE takes shell-like words: outside quotes the escape character makes the
    # next character literal (dockerfile_word); whitespace ends the word, so a value with
    # whitespace is written in double quotes, where `\\`, `"` and `$` are escaped the same
    # way (moby/buildkit frontend/dockerfile/shell/lex.go, processDoubleQuote).
    reason = dockerfile_refusal(value)
    if reason is not None:
        raise UnexpressibleName(value, reason)
    plain = value and not any(c.isspace() or c in "\"'\\$" for c in value)
    if plain:
        return f"ENV {key}={value}"
    quoted = "".join("\\" + c if c in '\\"$' else c for c in value)
    return f'ENV {key}="{quoted}"'


def _tail(inspection: Inspection) -> list[str]:
    """What follows the files in either style: the environment runtime needs ask for (TZ,
    SSL_CERT_FILE, ...), the user, and the entry point."""
    lines = [_env_line(key, value) for key, value in inspection.env]
    if inspection.user is not None:
        lines.append(f"USER {inspection.user}")
    if len(inspection.binaries) == 1:
        binary = inspection.binaries[0]
        if binary.object_kind is ObjectKind.EXECUTABLE:
            lines.append(f"ENTRYPOINT {_exec_form([binary.path])}")
        else:
            # A shared library (ET_DYN, no PT_INTERP) cannot be exec'd: the kernel has no
            # interpreter to start it with. The path is JSON-quoted, so the comment stays
            # one line whatever the file is called.
            lines.append(
                f"# no ENTRYPOINT: {json.dumps(binary.path)} is a shared library, not a program"
            )
    return lines


IMAGE_HINT = (
    "# Without a builder stage or a daemon, `scratchprobe image BINARY... --output app.tar`\n"
    "# writes the same files as an OCI image for podman load or skopeo copy (see --help)."
)
"""Both styles point to the daemonless path."""

FILES_STAGE = "scratchprobe-files"
"""Stage that gathers every file of the single-layer form."""
FILES_DIR = "/scratchprobe-rootfs"
"""Where that stage gathers them, at their image paths below it."""

_SCRIPT_CHUNK = 65536
"""Bytes of shell per RUN: Linux caps one argument at 128 KiB (MAX_ARG_STRLEN in
include/uapi/linux/binfmts.h), and `sh -c SCRIPT` passes the script as one."""

GENERATED_STAGE = "scratchprobe-generated"
"""Stage that writes the entries COPY cannot express: generated files, empty directories
with their modes (/tmp 1777) and symlinks (/etc/localtime)."""
GENERATED_DIR = "/scratchprobe-generated"


def generated_script(inspection: Inspection) -> str | None:
    """A POSIX shell script writing every generated entry under GENERATED_DIR, or None."""
    commands = _generated_commands(inspection, GENERATED_DIR)
    return " && ".join(commands) if commands else None


def _generated_commands(inspection: Inspection, base: str) -> list[str]:
    """Shell commands writing every entry COPY cannot express (generated content, empty
    directories, symlinks) under `base`, at their image paths."""
    commands: list[str] = []
    for entry in inspection.plan.files:
        if entry.copied:
            continue
        target = base + entry.path
        parent = shlex.quote(posixpath.dirname(target))
        quoted = shlex.quote(target)
        if entry.type is FileType.DIRECTORY:
            commands.append(f"mkdir -p {quoted}")
        elif entry.type is FileType.SYMLINK and entry.target is not None:
            commands.append(f"mkdir -p {parent} && ln -s {shlex.quote(entry.target)} {quoted}")
        elif entry.content is not None:
            commands.append(
                f"mkdir -p {parent} && printf '%s' {shlex.quote(entry.content)} > {quoted}"
            )
        else:
            continue
        if entry.mode is not None and entry.type is not FileType.SYMLINK:
            commands.append(f"chmod {entry.mode} {quoted}")
    return commands


def _tools(commands: list[str]) -> str:
    """The programs a script runs, in words, for the comment that says what the builder
    must have (besides /bin/sh, which runs it)."""
    used = {part.split(" ", 1)[0] for command in commands for part in command.split(" && ")}
    order = ("mkdir", "cp", "chmod", "ln", "printf")
    names = [name for name in order if name in used]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _copy_layers(inspection: Inspection, options: RenderOptions) -> int:
    """Layers the per-file form gives the scratch stage: one per copied entry (counted, not
    rendered: a name only the single-layer form's shell can spell must not stop the count)
    and one for the generated entries."""
    generated = 1 if generated_script(inspection) is not None else 0
    return sum(1 for f in inspection.plan.files if f.copied) + generated


def _copy_style(inspection: Inspection, options: RenderOptions) -> list[str]:
    if _copy_layers(inspection, options) > MAX_COPY_LAYERS:
        return _single_layer_style(inspection, options)
    lines = [
        f"# Generated by scratchprobe {__version__}: the files these binaries need, copied",
        f"# from the stage named {options.stage!r} (FROM <image> AS {options.stage}).",
        IMAGE_HINT,
    ]
    script = generated_script(inspection)
    if script is not None:
        tools = _tools(_generated_commands(inspection, GENERATED_DIR))
        lines += [
            "# Files COPY cannot express (generated content, empty directories, symlinks)",
            f"# are written by a stage on the builder (it needs /bin/sh, {tools}).",
            f"FROM {options.stage} AS {GENERATED_STAGE}",
            f"RUN {_exec_form(['/bin/sh', '-c', script])}",
            "",
        ]
    lines += ["FROM scratch", *copy_lines(inspection, options.stage)]
    if script is not None:
        lines.append(f"COPY --from={GENERATED_STAGE} {GENERATED_DIR}/ /")
    return lines


def _copy_commands(inspection: Inspection) -> list[str]:
    """Shell commands copying every COPY-able entry of the plan from the builder into
    FILES_DIR, as the COPY lines would: a symlink given as the source is followed and a
    regular file written (cp -L), modes and times kept (-p), directories copied whole with
    their symlinks (cp -a, like COPY of a directory)."""
    commands: list[str] = []
    for entry in inspection.plan.files:
        if entry.source is None or entry.from_context or not entry.copied:
            continue
        target = FILES_DIR + entry.path
        quoted = shlex.quote(target)
        if entry.type is FileType.DIRECTORY:
            commands.append(f"mkdir -p {quoted} && cp -a {shlex.quote(entry.source + '/.')} "
                            f"{quoted}/")  # fmt: skip
        else:
            parent = shlex.quote(posixpath.dirname(target))
            commands.append(f"mkdir -p {parent} && cp -pL {shlex.quote(entry.source)} {quoted}")
        if entry.mode is not None:
            commands.append(f"chmod {entry.mode} {quoted}")
    return commands


def _chunks(commands: list[str]) -> list[str]:
    """The commands joined with && into scripts of at most _SCRIPT_CHUNK bytes each."""
    scripts: list[str] = []
    current: list[str] = []
    size = 0
    for command in commands:
        if current and size + len(command) + 4 > _SCRIPT_CHUNK:
            scripts.append(" && ".join(current))
            current, size = [], 0
        current.append(command)
        size += len(command) + 4
    if current:
        scripts.append(" && ".join(current))
    return scripts


def _single_layer_style(inspection: Inspection, options: RenderOptions) -> list[str]:
    commands = _copy_commands(inspection) + _generated_commands(inspection, FILES_DIR)
    count = _copy_layers(inspection, options)
    lines = [
        f"# Generated by scratchprobe {__version__}: the files these binaries need, copied",
        f"# from the stage named {options.stage!r} (FROM <image> AS {options.stage}).",
        f"# One COPY per file would give the image {count} layers, more than {MAX_COPY_LAYERS}",
        "# (an image may have at most 127): a stage on the builder gathers every file at its",
        f"# image path below {FILES_DIR} (it needs /bin/sh, {_tools(commands)}),",
        "# and the scratch stage copies that directory whole, in one layer.",
        f"FROM {options.stage} AS {FILES_STAGE}",
    ]
    # Build-context files are not in the builder: put them where the image has them first.
    for entry in inspection.plan.files:
        if entry.from_context and entry.source is not None:
            words = [check_copy_name(entry.source), check_copy_name(FILES_DIR + entry.path)]
            lines.append(f"COPY {json.dumps([dockerfile_word(w) for w in words])}")
    # The scripts quote every name for the shell (shlex.quote); the exec form is not
    # variable-expanded, so only a name that is not UTF-8 is refused (_exec_form).
    lines += [f"RUN {_exec_form(['/bin/sh', '-c', script])}" for script in _chunks(commands)]
    lines += ["", "FROM scratch", f"COPY --from={FILES_STAGE} {FILES_DIR}/ /"]
    return lines


def _rootfs_style(
    inspection: Inspection, options: RenderOptions, planning_args: tuple[str, ...]
) -> list[str]:
    lines = [
        f"# Generated by scratchprobe {__version__}: the stage {options.stage!r} (which needs",
        "# scratchprobe on PATH: a wheel or the single-file zipapp built from its checkout)",
        "# writes the image's root filesystem, and the scratch stage copies it whole,",
        "# symlinks and empty directories included.",
        IMAGE_HINT,
        f"FROM {options.stage} AS {ROOTFS_STAGE}",
    ]
    # Build-context files are not in the builder: put them where the image has them first.
    for entry in inspection.plan.files:
        if entry.from_context:
            line = copy_line(entry, options.stage)
            if line is not None:
                lines.append(line)
    command = ["scratchprobe", "rootfs", "--output", ROOTFS_DIR, *planning_args]
    # `--` so that no binary path is ever read as an option.
    command += ["--", *(b.path for b in inspection.binaries)]
    lines += [
        f"RUN {_exec_form(command)}",
        "",
        "FROM scratch",
        f"COPY --from={ROOTFS_STAGE} {ROOTFS_DIR} /",
    ]
    return lines


def render(inspection: Inspection, options: RenderOptions) -> str:
    if options.rootfs_stage is None:
        lines = _copy_style(inspection, options)
    else:
        lines = _rootfs_style(inspection, options, options.rootfs_stage)
    # Problems as comments right after the header, where a reader of the file sees them.
    header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines[header:header] = problem_comments(inspection)
    lines += _tail(inspection)
    return "\n".join(lines) + "\n"
