"""Helper programs a program executes from a directory of its own (git's exec path, a
libexec directory): found from evidence, reported, planned on request, and proven by
running a program whose helper is there or not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.model import InspectOptions
from scratchprobe.needs.model import Confidence, NeedKind, RuntimeNeed
from scratchprobe.pipeline import inspect
from tests.conftest import run_cli

HELPER_DIR = "/usr/libexec/sp-demo"

# Runs its helper from its libexec directory, as git runs git-remote-http.
PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
static const char libexec[] = "/usr/libexec/sp-demo";
int main(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", libexec, "sp-demo-helper");
    execl(path, path, (char *)0);
    perror("exec");
    return 127;
}
"""
HELPER = r"""
#include <stdio.h>
int main(void) { puts("helper ran"); return 0; }
"""
# Names a lib directory and calls exec, but the directory holds data, not programs.
DATA_USER = r"""
#include <stdio.h>
#include <unistd.h>
static const char data[] = "/usr/lib/sp-data";
int main(int argc, char **argv) {
    puts(data);
    if (argc > 1) execv(argv[1], argv + 1);
    return 0;
}
"""
# Names the libexec directory but never starts a program.
NO_EXEC = r"""
#include <stdio.h>
static const char libexec[] = "/usr/libexec/sp-demo";
int main(void) { puts(libexec); return 0; }
"""


def _compile(source: str, out: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = out.with_suffix(".c")
    src.write_text(source)
    # Static: the root needs no libc, and execl is found in the linked .symtab.
    proc = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"gcc -static does not work here: {proc.stderr.strip()[:200]}")
    return out


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    return build_demo_root(tmp_path)


def build_demo_root(tmp_path: Path) -> Path:
    """A root with sp-demo and its helper in HELPER_DIR (shared with the running proof)."""
    build = tmp_path / "build"
    build.mkdir()
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / HELPER_DIR.lstrip("/")).mkdir(parents=True)
    shutil.copy2(_compile(PROGRAM, build / "sp-demo"), root / "usr/bin/sp-demo")
    shutil.copy2(
        _compile(HELPER, build / "helper"), root / HELPER_DIR.lstrip("/") / "sp-demo-helper"
    )
    (root / HELPER_DIR.lstrip("/") / "README").write_text("not a program\n")
    return root


def _helpers(root: Path, binary: str, **options: object) -> list[RuntimeNeed]:
    result = inspect((binary,), InspectOptions(root=str(root), **options))  # type: ignore[arg-type]
    (report,) = result.binaries
    return [n for n in report.needs if n.kind is NeedKind.HELPERS]


def test_libexec_helper_is_found_and_reported(demo_root: Path) -> None:
    (need,) = _helpers(demo_root, "/usr/bin/sp-demo")
    assert need.confidence is Confidence.POSSIBLE
    assert [f.path for f in need.files] == [HELPER_DIR]
    assert "sp-demo-helper" in need.summary
    assert "(1 program)" in need.summary
    assert f'string "{HELPER_DIR}" in the program' in need.evidence
    assert any(e.startswith("calls ") and "execl" in e.split(", ") for e in need.evidence)
    assert any("libexec" in e for e in need.evidence)
    text = run_cli("inspect", "--root", str(demo_root), "/usr/bin/sp-demo").stdout
    assert "- helpers (possible, not included: --with helpers)" in text


def test_no_helper_need_without_evidence(tmp_path: Path, demo_root: Path) -> None:
    build = tmp_path / "more"
    build.mkdir()
    # A libexec string but no exec call.
    shutil.copy2(_compile(NO_EXEC, build / "no-exec"), demo_root / "usr/bin/no-exec")
    assert _helpers(demo_root, "/usr/bin/no-exec") == []
    # An exec call and a lib directory string, but the directory holds data only.
    data = demo_root / "usr/lib/sp-data"
    data.mkdir(parents=True)
    for name in ("a.dat", "b.dat", "c.dat"):
        (data / name).write_text("data\n")
    shutil.copy2(_compile(DATA_USER, build / "data-user"), demo_root / "usr/bin/data-user")
    assert _helpers(demo_root, "/usr/bin/data-user") == []
    # The same program once the directory exists nowhere: nothing either.
    shutil.rmtree(demo_root / HELPER_DIR.lstrip("/"))
    assert _helpers(demo_root, "/usr/bin/sp-demo") == []


def test_host_programs_with_only_library_strings_have_no_helpers() -> None:
    # Precision on real programs: ls and curl name /usr/lib paths (locale, ssl) or call
    # exec, but run no helper directory of their own.
    for program in ("/usr/bin/ls", "/usr/bin/curl", "/usr/bin/env", "/usr/bin/python3"):
        if not Path(program).exists():
            continue
        result = inspect((program,), InspectOptions())
        assert [n for n in result.binaries[0].needs if n.kind is NeedKind.HELPERS] == [], program


def test_git_exec_path_is_found() -> None:
    git = "/usr/bin/git"
    if not Path(git).exists() or not Path("/usr/lib/git-core/git-remote-http").exists():
        pytest.skip("git (with git-remote-http) is not installed")
    result = inspect((git,), InspectOptions())
    (need,) = [n for n in result.binaries[0].needs if n.kind is NeedKind.HELPERS]
    assert [f.path for f in need.files] == ["/usr/lib/git-core"]
    assert "has an exec-path setting (EXEC_PATH / exec-path)" in need.evidence
    assert "git-remote-http" in run_cli("inspect", "--format", "json", git).stdout
    # Reported, not planned by default; --with helpers plans the directory.
    default = {f.path for f in result.plan.files}
    assert "/usr/lib/git-core" not in default
    planned = inspect((git,), InspectOptions(with_kinds=frozenset({NeedKind.HELPERS})))
    assert "/usr/lib/git-core" in {f.path for f in planned.plan.files}
