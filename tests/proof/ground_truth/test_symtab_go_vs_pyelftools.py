"""The struct symbol-table reader against pyelftools on a freshly built unstripped static Go
program, tens of thousands of .symtab entries (the corpus half is
tests/unit/elf/test_symtab_vs_pyelftools.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.elf.reader import read_elf
from scratchprobe.elf.sections import read_symbols
from tests.unit.elf.test_symtab_vs_pyelftools import _lookup_agrees, pyelftools_symbols

elftools = pytest.importorskip("elftools")


@pytest.mark.slow  # builds a Go program
def test_unstripped_static_go_program(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed")
    (tmp_path / "go.mod").write_text("module symtabprobe\n\ngo 1.19\n")
    (tmp_path / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"os/user"\n)\n\n'
        "func main() {\n\tu, _ := user.Current()\n\tfmt.Println(u, http.DefaultClient)\n}\n"
    )
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "HOME": str(tmp_path)}
    env.setdefault("GOCACHE", str(tmp_path / "cache"))
    subprocess.run([go, "build", "-o", "prog", "."], cwd=tmp_path, env=env, check=True)
    path = str(tmp_path / "prog")
    ours = read_symbols(read_elf(path))
    assert ours == pyelftools_symbols(path)
    # A static Go program defines its runtime in .symtab and imports nothing dynamically.
    assert "runtime.main" in ours.defined
    assert ours.imported == frozenset()
    assert len(ours.defined) > 1000
    # The lookup the detectors use gives the same answers without decoding every name.
    _lookup_agrees(path, ours.defined)
