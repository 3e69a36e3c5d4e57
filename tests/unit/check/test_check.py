"""`scratchprobe check` end to end: each rule fires on a testbin that breaks it and stays
silent on one that does not; exit codes of mixed batches; bad input never a traceback.

Every run happens in an empty temporary working directory, so no scratchprobe.toml or
pyproject.toml of the checkout leaks a policy into the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scratchprobe.check.engine import Status, run_check
from scratchprobe.check.policy import Policy
from scratchprobe.check.rules import RULES, Severity
from scratchprobe.cli import main
from scratchprobe.elf.reader import read_elf
from scratchprobe.elf.sections import read_symbols
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect

BUILT = Path(__file__).resolve().parents[3] / "testbins" / "built"
STATIC = str(BUILT / "c-glibc-static")
STATIC_PIE = str(BUILT / "c-glibc-static-pie")
DYNAMIC = str(BUILT / "c-glibc-dynamic")
CPP = str(BUILT / "cpp-dynamic")
RUST = str(BUILT / "rust-hello")
GO_STATIC = str(BUILT / "go-static")
NODEFLIB = str(BUILT / "c-nodeflib")
RUNPATH_APP = str(BUILT / "runpath-not-inherited" / "app")
RPATH_APP = str(BUILT / "rpath-inherit" / "app")
AARCH64 = str(BUILT / "foreign" / "hello-aarch64")
EMPTY = str(BUILT / "broken" / "empty")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check", *args])


def check_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = check("--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def outcome(document: dict[str, Any], binary: str, code: str) -> dict[str, Any]:
    """The JSON outcome of rule `code` for the binary given as `binary`."""
    for entry in document["binaries"]:
        if entry["input"] == binary:
            for rule in entry["rules"]:
                if rule["code"] == code:
                    found: dict[str, Any] = rule
                    return found
    raise AssertionError(f"no outcome for {binary} {code}")


def status(code: str, binary: str, *flags: str) -> str:
    _, document = check_json(*flags, binary)
    found: str = outcome(document, binary, code)["status"]
    return found


def patched_copy(source: Path, target: Path, old: bytes, new: bytes) -> None:
    """Copy an ELF file with one string of its tables replaced by one of the same length.

    This is how testbins/make_broken.py derives its files: a byte patch changes exactly one
    fact, here a symbol or version name, which is all static analysis looks at.
    """
    data = source.read_bytes()
    assert data.count(old) == 1, f"{old!r} is not unique in {source}"
    assert len(new) == len(old)
    target.write_bytes(data.replace(old, new))
    target.chmod(0o755)


# The binary imports __cxa_finalize; renamed, it imports dlopen (same string-table slot).
_CXA = b"__cxa_finalize\0"
_DLOPEN = b"dlopen\0".ljust(len(_CXA), b"\0")


@pytest.fixture
def dlopen_binary(tmp_path: Path) -> str:
    target = tmp_path / "c-dlopen"
    patched_copy(Path(DYNAMIC), target, _CXA, _DLOPEN)
    assert "dlopen" in read_symbols(read_elf(str(target))).imported
    return str(target)


@pytest.fixture
def dlopen_library_app(tmp_path: Path) -> str:
    """rpath-inherit with libA.so.1 importing dlopen: the app itself does not."""
    tree = tmp_path / "rpath-inherit"
    shutil.copytree(BUILT / "rpath-inherit", tree, symlinks=True)
    library = tree / "libs" / "libA.so.1"
    patched = tmp_path / "libA.patched"
    patched_copy(library, patched, _CXA, _DLOPEN)
    patched.replace(library)
    return str(tree / "app")


@pytest.fixture
def future_glibc_binary(tmp_path: Path) -> str:
    """c-glibc-dynamic asking libc.so.6 for GLIBC_2.99, a version no glibc defines."""
    target = tmp_path / "c-glibc-2.99"
    patched_copy(Path(DYNAMIC), target, b"GLIBC_2.34\0", b"GLIBC_2.99\0")
    return str(target)


# ----- the acceptance criteria -------------------------------------------------------------


def test_static_binary_passes_require_static() -> None:
    result = check("--require-static", STATIC)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout


def test_dynamic_binary_fails_require_static_and_says_what_to_do() -> None:
    result = check("--require-static", DYNAMIC)
    assert result.exit_code == 1
    assert "SP001" in result.stdout
    assert "Link statically" in result.stdout
    assert "CGO_ENABLED=0" in result.stdout


# ----- SP001 not-static ---------------------------------------------------------------------


@pytest.mark.parametrize("binary", [STATIC, STATIC_PIE, GO_STATIC])
def test_sp001_silent_on_static_binaries(binary: str) -> None:
    assert status("SP001", binary, "--require-static") == "passed"


@pytest.mark.parametrize("binary", [DYNAMIC, CPP, RUST])
def test_sp001_fires_on_dynamic_binaries(binary: str) -> None:
    assert status("SP001", binary, "--require-static") == "failed"


def test_sp001_only_when_asked() -> None:
    assert status("SP001", DYNAMIC) == "skipped"
    assert check(DYNAMIC).exit_code == 0


# ----- SP002 library-not-found -------------------------------------------------------------


def test_sp002_fires_when_runpath_is_not_inherited() -> None:
    _, document = check_json(RUNPATH_APP)
    found = outcome(document, RUNPATH_APP, "SP002")
    assert found["status"] == "failed"
    assert [f["subject"] for f in found["findings"]] == ["libB.so.1"]


def test_sp002_fires_when_nodefaultlib_hides_libc() -> None:
    assert status("SP002", NODEFLIB) == "failed"
    assert check(NODEFLIB).exit_code == 1


def test_sp002_silent_when_rpath_is_inherited() -> None:
    assert status("SP002", RPATH_APP) == "passed"
    assert check(RPATH_APP).exit_code == 0


# ----- SP003 library-not-allowed -----------------------------------------------------------


def test_sp003_fires_for_libraries_off_the_list() -> None:
    _, document = check_json("--allow-library", "libc.so.*", CPP)
    found = outcome(document, CPP, "SP003")
    assert found["status"] == "failed"
    assert {f["subject"] for f in found["findings"]} == {
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libm.so.6",
    }


def test_sp003_globs_match_and_the_interpreter_is_exempt() -> None:
    # rust-hello names ld-linux-x86-64.so.2 in DT_NEEDED; the interpreter is not a library
    # the allow-list governs.
    assert (
        status("SP003", RUST, "--allow-library", "libc.so.*", "--allow-library", "libgcc_s*")
        == "passed"
    )
    assert status("SP003", DYNAMIC, "--allow-library", "libc.so.[0-9]") == "passed"


def test_sp003_only_with_an_allow_list() -> None:
    assert status("SP003", CPP) == "skipped"


# ----- SP004 glibc-too-new -----------------------------------------------------------------


def test_sp004_fires_above_the_floor() -> None:
    _, document = check_json("--max-glibc", "2.31", DYNAMIC)
    found = outcome(document, DYNAMIC, "SP004")
    assert found["status"] == "failed"
    assert "GLIBC_2.34" in found["findings"][0]["message"]


def test_sp004_compares_versions_as_numbers() -> None:
    # As strings "2.34" < "2.4"; as versions 2.34 > 2.4.
    assert status("SP004", DYNAMIC, "--max-glibc", "2.4") == "failed"


@pytest.mark.parametrize("floor", ["2.34", "2.36", "GLIBC_2.40"])
def test_sp004_silent_at_or_below_the_floor(floor: str) -> None:
    # libc.so.6 itself needs GLIBC_2.35 from ld.so: glibc's own objects are not counted.
    assert status("SP004", DYNAMIC, "--max-glibc", floor) == "passed"


def test_sp004_counts_non_glibc_libraries_of_the_closure() -> None:
    # cpp-dynamic needs only GLIBC_2.34 itself, but the builder's libstdc++ needs more.
    libstdcxx = read_elf("/lib/x86_64-linux-gnu/libstdc++.so.6").max_glibc
    if libstdcxx is None or libstdcxx <= (2, 34):
        pytest.skip("this machine's libstdc++ does not need a glibc newer than 2.34")
    _, document = check_json("--max-glibc", "2.34", CPP)
    messages = [f["message"] for f in outcome(document, CPP, "SP004")["findings"]]
    assert any("libstdc++.so.6" in m for m in messages)
    assert not any("the binary" in m for m in messages)


def test_sp004_silent_on_static_binaries() -> None:
    assert status("SP004", STATIC, "--max-glibc", "2.17") == "passed"


# ----- SP005 version-missing ---------------------------------------------------------------


def test_sp005_fires_when_libc_lacks_the_version(future_glibc_binary: str) -> None:
    code, document = check_json(future_glibc_binary)
    found = outcome(document, future_glibc_binary, "SP005")
    assert found["status"] == "failed"
    assert found["findings"][0]["subject"] == "libc.so.6@GLIBC_2.99"
    assert code == 1


def test_sp005_silent_when_versions_match() -> None:
    assert status("SP005", DYNAMIC) == "passed"


# ----- SP006 interpreter-missing -----------------------------------------------------------


def test_sp006_fires_for_a_foreign_loader_missing_in_the_root() -> None:
    _, document = check_json(AARCH64)
    found = outcome(document, AARCH64, "SP006")
    assert found["status"] == "failed"
    assert found["findings"][0]["subject"] == "/lib/ld-linux-aarch64.so.1"


def test_sp006_silent_when_the_loader_exists() -> None:
    assert status("SP006", DYNAMIC) == "passed"


# ----- SP007 runtime-denied ----------------------------------------------------------------


def test_sp007_fires_for_a_denied_kind() -> None:
    _, document = check_json("--deny-runtime", "library", DYNAMIC)
    found = outcome(document, DYNAMIC, "SP007")
    assert found["status"] == "failed"
    assert all("'library'" in f["message"] for f in found["findings"])
    assert any(f["subject"].endswith("/libc.so.6") for f in found["findings"])


def test_sp007_silent_when_no_file_of_the_kind_is_needed() -> None:
    assert status("SP007", STATIC, "--deny-runtime", "library") == "passed"
    assert status("SP007", DYNAMIC, "--deny-runtime", "kind-nobody-detects") == "passed"


def test_sp007_counts_only_the_binarys_own_files() -> None:
    # In one batch the plan holds libc for the dynamic binary; the static one does not
    # need it and must not be blamed for it.
    _, document = check_json("--deny-runtime", "interpreter", STATIC, DYNAMIC)
    assert outcome(document, STATIC, "SP007")["status"] == "passed"
    assert outcome(document, DYNAMIC, "SP007")["status"] == "failed"


# ----- SP008 dlopen ------------------------------------------------------------------------


def test_sp008_warns_when_the_binary_imports_dlopen(dlopen_binary: str) -> None:
    code, document = check_json(dlopen_binary)
    found = outcome(document, dlopen_binary, "SP008")
    assert (found["status"], found["level"]) == ("failed", "warning")
    assert code == 0, "a warning must not fail the check"


def test_sp008_fires_for_a_library_of_the_closure(dlopen_library_app: str) -> None:
    _, document = check_json(dlopen_library_app)
    found = outcome(document, dlopen_library_app, "SP008")
    assert found["status"] == "failed"
    assert [f["subject"].rsplit("/", 1)[-1] for f in found["findings"]] == ["libA.so.1"]


def test_sp008_severity_is_configurable(dlopen_binary: str) -> None:
    assert check("--severity", "SP008=error", dlopen_binary).exit_code == 1
    assert status("SP008", dlopen_binary, "--severity", "sp008=off") == "skipped"


def test_sp008_silent_without_dlopen() -> None:
    assert status("SP008", DYNAMIC) == "passed"
    assert status("SP008", CPP) == "passed"


def test_sp008_silent_for_a_system_librarys_own_dlopen() -> None:
    """ls links libselinux, which imports dlopen for itself: nothing the user can act on."""
    from scratchprobe.elf.dynsym import imported_symbols
    from scratchprobe.loader.closure import FoundVia

    report = inspect(("/usr/bin/ls",), InspectOptions()).binaries[0]
    assert report.closure is not None
    system = [
        lib
        for lib in report.closure.libraries
        if lib.via is FoundVia.SYSTEM_DIRS and "dlopen" in imported_symbols(lib.elf)
    ]
    if not system or "dlopen" in imported_symbols(report.elf):
        pytest.skip("this machine's ls has no system library importing dlopen")
    assert status("SP008", "/usr/bin/ls") == "passed"


def test_sp008_fires_for_a_static_binary_that_links_dlopen(tmp_path: Path) -> None:
    """A static binary has no dynamic imports: inspect's evidence (its symbol table) counts."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (apt-get install gcc libc6-dev)")
    source = tmp_path / "dl.c"
    source.write_text(
        "#include <dlfcn.h>\n#include <stdio.h>\n"
        'int main(int c, char **v) { printf("%p\\n", dlopen(c > 1 ? v[1] : "x", 2)); }\n'
    )
    binary = tmp_path / "dl-static"
    built = subprocess.run(
        ["gcc", "-static", "-o", str(binary), str(source)], capture_output=True, check=False
    )
    if built.returncode != 0:
        pytest.skip("no static glibc (apt-get install libc6-dev)")
    _, document = check_json(str(binary))
    found = outcome(document, str(binary), "SP008")
    assert found["status"] == "failed"
    (finding,) = found["findings"]
    assert finding["message"].startswith(f"{binary} calls dlopen")
    assert "names chosen at run time" in finding["message"]


def test_sp008_without_runtime_needs_reads_the_binarys_imports(dlopen_binary: str) -> None:
    _, document = check_json("--no-runtime", dlopen_binary)
    found = outcome(document, dlopen_binary, "SP008")
    assert [f["subject"] for f in found["findings"]] == [dlopen_binary]


# ----- SP009 foreign-arch ------------------------------------------------------------------


def test_sp009_fires_as_error_when_arch_is_given() -> None:
    code, document = check_json("--arch", "x86_64", AARCH64, STATIC)
    found = outcome(document, AARCH64, "SP009")
    assert (found["status"], found["level"]) == ("failed", "error")
    assert outcome(document, STATIC, "SP009")["status"] == "passed"
    assert code == 1


def test_sp009_accepts_platform_aliases() -> None:
    assert status("SP009", AARCH64, "--arch", "arm64") == "passed"
    assert status("SP009", STATIC, "--arch", "amd64") == "passed"


def test_sp009_against_the_host_is_a_warning() -> None:
    inspection = inspect((AARCH64, STATIC), InspectOptions())
    result = run_check(inspection, Policy(), host="x86_64")
    foreign, native = result.binaries
    sp009 = {b.label: o for b in result.binaries for o in b.outcomes if o.rule.code == "SP009"}
    assert sp009[foreign.label].status is Status.FAILED
    assert sp009[foreign.label].severity is Severity.WARNING
    assert sp009[native.label].status is Status.PASSED
    on_arm = run_check(inspection, Policy(), host="aarch64")
    assert [o.status for o in on_arm.binaries[0].outcomes if o.rule.code == "SP009"] == [
        Status.PASSED
    ]


# ----- batches and exit codes --------------------------------------------------------------


def test_every_binary_gets_every_rule() -> None:
    _, document = check_json(STATIC, DYNAMIC, AARCH64)
    assert [b["input"] for b in document["binaries"]] == [STATIC, DYNAMIC, AARCH64]
    for entry in document["binaries"]:
        assert [r["code"] for r in entry["rules"]] == [rule.code for rule in RULES]


def test_mixed_batch_fails_and_reports_both() -> None:
    code, document = check_json("--require-static", STATIC, DYNAMIC)
    assert code == 1
    assert document["exit_code"] == 1
    assert [b["passed"] for b in document["binaries"]] == [True, False]


def test_unreadable_input_is_exit_2_and_the_others_are_still_checked() -> None:
    result = check("--format", "json", "--require-static", STATIC, EMPTY, DYNAMIC)
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert [b["input"] for b in document["binaries"]] == [STATIC, DYNAMIC]
    assert document["problems"] == [{"input": EMPTY, "message": "empty file, not an ELF file"}]
    assert result.stderr == f"scratchprobe: error: {EMPTY}: empty file, not an ELF file\n"


def test_warnings_alone_pass(dlopen_binary: str) -> None:
    result = check(dlopen_binary, STATIC)
    assert result.exit_code == 0
    assert "SP008" in result.stdout


def test_every_broken_file_is_one_line_never_a_traceback() -> None:
    broken = sorted(str(p) for p in (BUILT / "broken").iterdir())
    run = subprocess.run(
        [sys.executable, "-m", "scratchprobe", "check", "--require-static", STATIC, *broken],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == len(broken)
    assert all(line.startswith("scratchprobe: error: ") for line in lines)
    assert "PASS" in run.stdout


def test_unusable_root_is_a_usage_error(tmp_path: Path) -> None:
    result = check("--root", str(tmp_path / "missing"), STATIC)
    assert result.exit_code == 2
    assert result.stderr.startswith("scratchprobe: error: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--max-glibc", "two", "--max-glibc: 'two' is not a glibc version"),
        ("--arch", "pdp11", "--arch: unknown architecture 'pdp11'"),
        ("--severity", "SP008", "--severity: 'SP008' is not CODE=LEVEL"),
        ("--severity", "SP999=error", "--severity: unknown rule 'SP999'"),
        ("--severity", "SP008=fatal", "--severity: 'fatal' is not a severity"),
    ],
)
def test_bad_flag_values_are_one_line_usage_errors(flag: str, value: str, needle: str) -> None:
    result = check(flag, value, STATIC)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"scratchprobe: error: {needle}")
    assert len(result.stderr.splitlines()) == 1
