"""Shared fixtures: the committed testbins corpus and small root filesystems built from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTBINS = REPO / "testbins" / "built"
HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"
HOST_LIBDIR = "/lib/x86_64-linux-gnu"


def manifest() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((TESTBINS / "MANIFEST.json").read_text())
    return data


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run scratchprobe in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "scratchprobe", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


RootBuilder = Callable[[dict[str, str | Path]], Path]


@pytest.fixture
def make_root(tmp_path: Path) -> RootBuilder:
    """Build a root from {in-root path: host file to copy, or '->target' for a symlink}."""

    def build(files: dict[str, str | Path]) -> Path:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        for inner, source in files.items():
            dest = root / inner.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, str) and source.startswith("->"):
                os.symlink(source[2:], dest)
            else:
                shutil.copy2(os.path.realpath(source), dest)
        return root

    return build


def glibc_base() -> dict[str, str | Path]:
    """The host's loader and libc, at Debian's paths: enough for a plain C program."""
    return {
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": HOST_LOADER,
        "/lib64/ld-linux-x86-64.so.2": "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6": f"{HOST_LIBDIR}/libc.so.6",
    }


# Any input that reaches inspect's last-resort handler is a bug to fix where it arises: the
# suite (and every CLI it starts, which inherits the environment) raises instead.
os.environ["SCRATCHPROBE_DEBUG_INTERNAL"] = "1"
