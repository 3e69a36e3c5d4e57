"""Directory arguments: what a walk lists, follows, skips (and says so), and what it cannot
read (an input problem, exit 2, the rest still reported); a script given as a binary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scratchprobe.discover import discover_all
from scratchprobe.root import Root
from tests.conftest import TESTBINS, run_cli, run_cli_without_dac_override

PROGRAM = TESTBINS / "c-glibc-dynamic"
STATIC = TESTBINS / "c-glibc-static"


def crafted_directory(base: Path) -> Path:
    """Two ELF files, links to one of them, a script, a data file, a link out, a dangling
    link and a FIFO."""
    top = base / "tools"
    (top / "sub").mkdir(parents=True)
    shutil.copy(PROGRAM, top / "prog")
    shutil.copy(STATIC, top / "sub" / "static")
    os.symlink("prog", top / "alias")
    os.symlink("../prog", top / "sub" / "alias2")
    (top / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (top / "notes.txt").write_text("not a program\n")
    os.symlink(str(base / "outside"), top / "out")
    shutil.copy(PROGRAM, base / "outside")
    os.symlink("missing", top / "dangling")
    os.mkfifo(top / "pipe")
    return top


def test_walk_follows_links_once_and_says_what_it_skipped(tmp_path: Path) -> None:
    top = crafted_directory(tmp_path)
    result = run_cli("inspect", "--format", "json", str(top))
    assert result.returncode == 0, result.stderr
    paths = [b["path"] for b in result.json()["binaries"]]
    assert paths == [f"{top}/prog", f"{top}/sub/static"]
    assert result.stderr == (
        f"scratchprobe: note: {top}: 2 ELF files; followed 2 symlinks to ELF files in it "
        "(each file analysed once); skipped 1 script (sh 1), 1 not ELF, 1 symlinks out "
        "of the directory or not to a file, 1 dangling symlinks, 1 not regular files\n"
    )


def test_walk_inside_a_root_follows_links_with_the_roots_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    top = crafted_directory(root / "opt")
    # An absolute target means the root's /opt/tools/prog, not the host's.
    os.symlink("/opt/tools/prog", top / "absolute")
    found = discover_all(("/opt/tools",), Root(str(root)))
    assert [c.image_path for c in found.candidates] == ["/opt/tools/prog", "/opt/tools/sub/static"]
    assert found.problems == ()
    assert len(found.notes) == 1
    assert "followed 3 symlinks" in found.notes[0]


def test_no_elf_file_says_what_was_there(tmp_path: Path) -> None:
    (tmp_path / "a.sh").write_text("#!/usr/bin/perl\n")
    (tmp_path / "b").write_text("data")
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        f"scratchprobe: error: {tmp_path}: directory holds no ELF file "
        "(skipped 1 script (perl 1), 1 not ELF)\n"
    )


def test_unreadable_file_in_a_walk_is_a_problem(tmp_path: Path) -> None:
    top = crafted_directory(tmp_path)
    (top / "sub" / "static").chmod(0)
    result = run_cli_without_dac_override("inspect", "--format", "json", str(top))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"scratchprobe: error: {top}/sub/static: permission denied"]
    assert [b["path"] for b in result.json()["binaries"]] == [f"{top}/prog"]


def test_unreadable_subdirectory_is_a_problem(tmp_path: Path) -> None:
    top = crafted_directory(tmp_path)
    (top / "sub").chmod(0)
    try:
        result = run_cli_without_dac_override("inspect", "--format", "json", str(top))
    finally:
        (top / "sub").chmod(0o755)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"scratchprobe: error: {top}/sub: permission denied (not walked)"]
    assert [b["path"] for b in result.json()["binaries"]] == [f"{top}/prog"]


@pytest.mark.parametrize(
    ("first_line", "message"),
    [
        ("#!/bin/sh -e", "a script for /bin/sh -e (inspect /bin/sh instead)"),
        (
            "#!/usr/bin/env -S python3 -u",
            "a script for python3, run through /usr/bin/env (inspect python3's binary instead)",
        ),
    ],
)
def test_script_given_as_a_binary(tmp_path: Path, first_line: str, message: str) -> None:
    script = tmp_path / "tool"
    script.write_text(f"{first_line}\nexit 0\n")
    result = run_cli("inspect", "--format", "json", str(script), str(PROGRAM))
    assert result.returncode == 2
    assert result.stderr == f"scratchprobe: error: {script}: {message}\n"
    assert [b["path"] for b in result.json()["binaries"]] == [str(PROGRAM)]


def test_git_core_lists_each_elf_file_once() -> None:
    directory = "/usr/lib/git-core"
    if not os.path.isdir(directory):
        pytest.skip("git is not installed (apt-get install git)")
    expected: set[str] = set()
    links = 0
    for current, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(current, name)
            real = os.path.realpath(path)
            with open(real, "rb") as handle:
                if handle.read(4) != b"\x7fELF":
                    continue
            if os.path.islink(path):
                links += 1
            expected.add(real)
    result = run_cli("inspect", "--format", "json", directory)
    assert result.returncode == 0
    assert sorted(b["path"] for b in result.json()["binaries"]) == sorted(expected)
    assert f"followed {links} symlinks" in result.stderr
