"""Output formats of `check`. Each format is one module with a `render` function; adding a
format touches that module and `CheckFormat` (render/formats.py) only (a test loops over
every member)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Protocol

from scratchprobe.check.engine import CheckResult
from scratchprobe.render.formats import CheckFormat

__all__ = ["CheckFormat", "FormatOptions", "Formatter", "formatter", "relative_path"]


@dataclass(frozen=True)
class FormatOptions:
    base_dir: str = "."
    """Paths in reports are shown relative to this directory when they lie below it (the
    working directory: the repository root in CI, where annotations must point)."""
    color: bool = False
    width: int | None = None
    """Columns for the text report; None: the terminal's width, or unlimited when piped."""


class Formatter(Protocol):
    def __call__(self, result: CheckResult, options: FormatOptions) -> str: ...


_MODULES: dict[CheckFormat, str] = {
    CheckFormat.TEXT: "scratchprobe.check.formats.text",
    CheckFormat.JSON: "scratchprobe.check.formats.json",
    CheckFormat.SARIF: "scratchprobe.check.formats.sarif",
    CheckFormat.JUNIT: "scratchprobe.check.formats.junit",
    CheckFormat.GITHUB: "scratchprobe.check.formats.github",
}


def formatter(fmt: CheckFormat) -> Formatter:
    """The renderer of `fmt`, imported on demand so that `--format sarif` never loads rich."""
    module = importlib.import_module(_MODULES[fmt])
    render: Formatter = module.render
    return render


def relative_path(path: str, base_dir: str) -> str:
    """`path` relative to `base_dir` when it lies below it, else absolute.

    Code-scanning tools resolve a relative path against the repository checkout; a path that
    climbs out with `..` would point at nothing there, so it stays absolute.
    """
    absolute = os.path.abspath(path)
    base = os.path.abspath(base_dir)
    try:
        rel = os.path.relpath(absolute, base)
    except ValueError:
        return absolute
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return absolute
    return rel
