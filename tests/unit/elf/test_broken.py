"""Bad input: one line on stderr, a non-zero exit, never a traceback; others still reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import TESTBINS, run_cli, run_cli_without_dac_override

BROKEN = TESTBINS / "broken"


@pytest.mark.parametrize("name", sorted(os.listdir(BROKEN)))
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_broken_file_gives_one_line(name: str, fmt: str) -> None:
    path = str(BROKEN / name)
    result = run_cli("inspect", "--format", fmt, path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"scratchprobe: error: {path}: ")
    assert "Traceback" not in result.stderr + result.stdout


def test_one_bad_file_does_not_lose_the_others() -> None:
    good = str(TESTBINS / "c-glibc-dynamic")
    bad = str(BROKEN / "truncated-phdrs")
    result = run_cli("inspect", "--format", "json", bad, good)
    assert result.returncode == 2
    doc = result.json()
    assert [b["path"] for b in doc["binaries"]] == [good]
    assert doc["errors"] == [{"path": bad, "message": "program header table lies outside the file"}]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("/nonexistent/binary", "no such file or directory"),
        (str(TESTBINS.parent / "src"), "directory holds no ELF file"),
    ],
)
def test_unusable_arguments(arg: str, message: str) -> None:
    result = run_cli("inspect", arg)
    assert result.returncode == 2
    assert result.stderr.startswith(f"scratchprobe: error: {arg}: {message}")
    assert len(result.stderr.splitlines()) == 1


def test_unreadable_file(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes((TESTBINS / "c-glibc-dynamic").read_bytes())
    target.chmod(0)
    result = run_cli_without_dac_override("inspect", str(target))
    assert result.returncode == 2
    assert "permission denied" in result.stderr


def test_relocatable_object_named_directly(tmp_path: Path) -> None:
    obj = tmp_path / "x.o"
    data = bytearray((TESTBINS / "c-glibc-dynamic").read_bytes()[:64])
    data[16] = 1  # e_type = ET_REL
    data[32:40] = bytes(8)  # no program headers
    data[40:48] = bytes(8)  # no section headers
    data[56:58] = bytes(2)  # e_phnum = 0
    obj.write_bytes(bytes(data))
    result = run_cli("inspect", str(obj))
    assert result.returncode == 2
    assert "relocatable object" in result.stderr


def test_bad_root() -> None:
    result = run_cli("inspect", "--root", "/nonexistent-root", str(TESTBINS / "c-glibc-dynamic"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
