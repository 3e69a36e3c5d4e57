"""The whole pipeline over some inputs, every output format, every output parsed strictly.

Shared by the fuzz tests (tests/hostile/test_fuzz.py), the crasher corpus replay
(tests/hostile/test_crashers.py) and the coverage-guided target (tests/fuzz/atheris_target.py). An
exception escaping from here is a finding: the CLI would have printed a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from scratchprobe.annotate import annotate
from scratchprobe.check.engine import run_check
from scratchprobe.check.formats import CheckFormat, FormatOptions, formatter
from scratchprobe.check.policy import Policy
from scratchprobe.model import Inspection, InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(text: str) -> object:
    """RFC 8259 JSON only (json.loads alone accepts NaN and Infinity)."""
    return json.loads(text, parse_constant=_reject_constant)


# A non-UTF-8 DT_NEEDED or file name (issue 9 §2) once made SARIF raise UnicodeEncodeError
# and JUnit write XML that does not parse; the escaping of docs/output-encoding.md fixed
# both, so no format is exempt any more: an error from any of them fails the tests.
ESCAPING_PENDING: frozenset[CheckFormat] = frozenset()
PENDING_ESCAPING: list[str] = []


def _written(text: str, what: str) -> None:
    # The CLI writes every output to stdout, whose error handler is surrogateescape in the
    # C and C.UTF-8 locales (PEP 540): a name's undecodable bytes come back out as they
    # were; any other lone surrogate could not be written at all.
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise AssertionError(f"{what} output cannot be written: {exc}") from None


def run_pipeline(
    paths: tuple[str, ...], root: str = "/", policy: Policy | None = None
) -> Inspection:
    """inspect, annotate, every inspect format and every check format, parsed."""
    result = inspect(paths, InspectOptions(root=root, strict=True), jobs=1)
    assert len(result.binaries) + len(result.problems) >= 1
    for problem in result.problems:
        assert "\n" not in problem.message, problem
        assert "internal error" not in problem.message, problem
    annotated = {
        OutputFormat.JSON: annotate(result, sbom=False),
        OutputFormat.CYCLONEDX: annotate(result, sbom=True),
    }
    for fmt in OutputFormat:
        text = renderer(fmt)(result, RenderOptions(), annotated.get(fmt))
        _written(text, fmt.value)
        if fmt in (OutputFormat.JSON, OutputFormat.CYCLONEDX):
            strict_json(text)
    checked = run_check(result, policy or Policy())
    for check_format in CheckFormat:
        try:
            text = formatter(check_format)(checked, FormatOptions())
            _written(text, f"check {check_format.value}")
            if check_format in (CheckFormat.JSON, CheckFormat.SARIF):
                strict_json(text)
            elif check_format is CheckFormat.JUNIT:
                ET.fromstring(text.encode("utf-8", "surrogateescape"))
        except (UnicodeEncodeError, ET.ParseError) as exc:
            if check_format not in ESCAPING_PENDING:
                raise
            PENDING_ESCAPING.append(f"check {check_format.value} of {paths}: {exc}")
    return result


HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"
HOST_LIBDIR = "/lib/x86_64-linux-gnu"


def base_root(root: Path) -> None:
    """A small root: the host's glibc loader and libc, and musl's, at their usual paths
    (no package database, so annotate stays cheap; nothing of the host's `/` is read)."""
    for inner, source in {
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": HOST_LOADER,
        "/lib/x86_64-linux-gnu/libc.so.6": f"{HOST_LIBDIR}/libc.so.6",
        "/lib/ld-musl-x86_64.so.1": "/usr/lib/x86_64-linux-musl/libc.so",
    }.items():
        if Path(source).exists():
            dest = root / inner.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    (root / "lib64").mkdir(parents=True, exist_ok=True)
    link = root / "lib64" / "ld-linux-x86-64.so.2"
    if not link.is_symlink():
        os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", link)
    (root / "etc").mkdir(exist_ok=True)
