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


# What runs binaries, builds images or walks the whole machine is slow by nature: left out of
# the fast loop (`pytest -m "not slow"`) along with the tests marked slow by hand.
_SLOW_BY_NATURE = ("host", "sandbox", "podman")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in _SLOW_BY_NATURE):
            item.add_marker(pytest.mark.slow)


# The package that puts each loader a committed testbin asks for on a Debian host.
_LOADER_PACKAGES = {"/lib/ld-musl-x86_64.so.1": "musl"}


def skip_unless_host_loads(name: str) -> None:
    """Skip a test that resolves testbin `name` on the host when the host lacks its loader
    (a fresh machine without musl), naming the package to install."""
    from scratchprobe.elf.reader import read_elf

    interpreter = read_elf(str(TESTBINS / name)).interpreter
    if interpreter is not None and not os.path.exists(interpreter):
        package = _LOADER_PACKAGES.get(interpreter, "the package providing it")
        pytest.skip(f"{name} needs {interpreter} on this machine: apt-get install {package}")


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


def run_cli_without_dac_override(*args: str) -> CliResult:
    """run_cli where file modes hold: root reads a mode-000 file, so as root the run drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv, util-linux) and stays uid 0."""
    if os.geteuid() != 0:
        return run_cli(*args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): modes cannot deny a read")
    drop = "-dac_override,-dac_read_search"
    prefix = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "scratchprobe", *args],
        capture_output=True,
        text=True,
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
