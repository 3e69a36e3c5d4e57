"""`--format copy`: only the Dockerfile COPY lines, in plan order."""

from __future__ import annotations

import json
import re

from scratchprobe.errors import ScratchprobeError
from scratchprobe.model import Inspection
from scratchprobe.plan import ImageFile
from scratchprobe.render import RenderOptions
from scratchprobe.render.names import copy_refusal, dockerfile_word, visible_text

# A word the plain COPY form writes as it is: no whitespace, quote, `$`, backslash or other
# character the Dockerfile lexer gives a meaning (see names.dockerfile_word).
_PLAIN = re.compile(r"[^\s\"'$\\]+")


class UnexpressibleName(ScratchprobeError):
    """A planned path that no Dockerfile instruction can name; the image must be written
    with `scratchprobe rootfs` (or built by a `--rootfs-stage` stage) instead."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"{visible_text(name)}: no Dockerfile can name this path ({reason}); write the "
            "image with `scratchprobe rootfs` (ADD its --tar) or use --format dockerfile "
            "--rootfs-stage"
        )
        self.name = name
        self.reason = reason


MAX_COPY_LAYERS = 100
"""Most COPY layers the per-file form may give the scratch stage: well below the 127-layer
limit, leaving room for the layers a user appends (a config file, a CA bundle). Here, not in
dockerfile.py, which reads it too: a copy run needs nothing else of that module."""


def check_copy_name(name: str) -> str:
    """`name`, or UnexpressibleName when a COPY line cannot name it exactly."""
    reason = copy_refusal(name)
    if reason is not None:
        raise UnexpressibleName(name, reason)
    return name


def copy_line(entry: ImageFile, stage: str) -> str | None:
    """One COPY instruction for a copied entry; None for entries COPY cannot express
    (generated content, empty directories, symlinks), which the Dockerfile renders itself.

    Docker and Buildah dereference a symlink named as the COPY source and write a regular
    file at the destination, which is why every path the loader opens is listed as a file.

    COPY expands variables and removes quotes in its arguments, also in the JSON-array form,
    so a name with a space, quote, `$` or backslash is written in the JSON form with each of
    those escaped (`dockerfile_word`); a name COPY cannot express raises UnexpressibleName.
    """
    if not entry.copied or entry.source is None:
        return None
    source = entry.source
    flags = "" if entry.from_context else f"--from={stage} "
    if entry.mode is not None:
        flags += f"--chmod={entry.mode} "
    check_copy_name(source)
    check_copy_name(entry.path)
    if _PLAIN.fullmatch(source) and _PLAIN.fullmatch(entry.path):
        return f"COPY {flags}{source} {entry.path}"
    words = [dockerfile_word(source), dockerfile_word(entry.path)]
    return f"COPY {flags}{json.dumps(words)}"


def copy_lines(inspection: Inspection, stage: str) -> list[str]:
    lines = []
    for entry in inspection.plan.files:
        line = copy_line(entry, stage)
        if line is not None:
            lines.append(line)
    return lines


def uncopyable_note(inspection: Inspection) -> str | None:
    """A comment naming the entries no COPY line can create, or None when there are none."""
    generated = [f.path for f in inspection.plan.files if not f.copied]
    if not generated:
        return None
    return (
        "# not expressible as COPY (generated, empty directory or symlink): "
        + ", ".join(visible_text(path) for path in generated)
        + "; use --format dockerfile or `scratchprobe rootfs`"
    )


def problem_comments(inspection: Inspection) -> list[str]:
    """The problems stderr carries, as comments a Dockerfile keeps beside the COPY lines:
    unusable inputs and unresolved libraries (`# error:`), and warnings. A line break in a
    name is shown as `\\n`: it would end the comment."""
    errors = [f"{p.path}: {p.message}" for p in inspection.problems]
    errors += inspection.unresolved
    lines = [f"# error: {message}" for message in errors]
    lines += [f"# warning: {message}" for message in inspection.warnings]
    return [line.replace("\n", "\\n").replace("\r", "\\r") for line in lines]


def layer_note(count: int) -> str | None:
    """A comment when `count` COPY lines are too many to build as they are, or None."""
    if count <= MAX_COPY_LAYERS:
        return None
    # Each COPY is a layer and an image holds at most 127: pasted as they are, these lines
    # do not build ("max depth exceeded").
    return (
        f"# {count} COPY lines, one layer each: an image may have at most 127 layers; "
        "--format dockerfile gathers the files into one"
    )


def render(inspection: Inspection, options: RenderOptions) -> str:
    lines = copy_lines(inspection, options.stage)
    count = len(lines)
    note = uncopyable_note(inspection)
    if note is not None:
        lines.append(note)
    lines += problem_comments(inspection)
    note = layer_note(count)
    if note is not None:
        lines.append(note)
    return "\n".join(lines) + ("\n" if lines else "")
