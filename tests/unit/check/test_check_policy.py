"""The policy of `check`: where it is found, how flags override it, how bad keys are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scratchprobe.check.policy import (
    Policy,
    PolicyOverrides,
    find_policy_file,
    load_policy,
    merge,
    parse_glibc_version,
    parse_policy,
)
from scratchprobe.check.rules import DLOPEN, FOREIGN_ARCH, NOT_STATIC, Severity
from scratchprobe.cli import main
from scratchprobe.errors import UsageError

BUILT = Path(__file__).resolve().parents[3] / "testbins" / "built"
STATIC = str(BUILT / "c-glibc-static")
DYNAMIC = str(BUILT / "c-glibc-dynamic")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "repo" / "sub"
    directory.mkdir(parents=True)
    monkeypatch.chdir(directory)
    return directory


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check", *args])


def policy_of(*args: str) -> dict[str, Any]:
    result = check("--format", "json", *args, STATIC)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)["policy"]
    return found


def test_defaults_without_any_file(workdir: Path) -> None:
    assert find_policy_file(str(workdir)) is None
    assert load_policy(None, str(workdir)) == Policy()


def test_scratchprobe_toml_in_the_working_directory(workdir: Path) -> None:
    (workdir / "scratchprobe.toml").write_text("require-static = true\n")
    assert check(DYNAMIC).exit_code == 1
    assert policy_of()["source"] == str(workdir / "scratchprobe.toml")


def test_pyproject_found_upward(workdir: Path) -> None:
    pyproject = workdir.parent / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[tool.scratchprobe]\nmax-glibc = "2.17"\n')
    assert find_policy_file(str(workdir)) == str(pyproject)
    result = check("--format", "json", DYNAMIC)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["policy"]["max_glibc"] == "2.17"


def test_pyproject_without_our_table_is_passed_over(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text("[tool.scratchprobe-other]\nx = 1\n")
    outer = workdir.parent / "pyproject.toml"
    outer.write_text("[tool.scratchprobe]\nrequire-static = true\n")
    assert find_policy_file(str(workdir)) == str(outer)


def test_unrelated_broken_pyproject_is_ignored(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text("this is [not toml\n")
    assert find_policy_file(str(workdir)) is None


def test_scratchprobe_toml_wins_over_pyproject(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text("[tool.scratchprobe]\nrequire-static = true\n")
    (workdir / "scratchprobe.toml").write_text("require-static = false\n")
    assert find_policy_file(str(workdir)) == str(workdir / "scratchprobe.toml")
    assert check(DYNAMIC).exit_code == 0


def test_policy_option_wins_over_discovery(workdir: Path, tmp_path: Path) -> None:
    (workdir / "scratchprobe.toml").write_text("require-static = false\n")
    chosen = tmp_path / "strict.toml"
    chosen.write_text('require-static = true\nallow-libraries = ["libc.so.*"]\n')
    assert check("--policy", str(chosen), DYNAMIC).exit_code == 1


def test_policy_option_reads_a_pyproject_table(workdir: Path, tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.scratchprobe]\ndeny-runtime = ["library"]\n')
    assert check("--policy", str(pyproject), DYNAMIC).exit_code == 1
    bare = tmp_path / "elsewhere" / "pyproject.toml"
    bare.parent.mkdir()
    bare.write_text('[project]\nname = "x"\n')
    result = check("--policy", str(bare), DYNAMIC)
    assert result.exit_code == 2
    assert result.stderr == f"scratchprobe: error: {bare}: no [tool.scratchprobe] table\n"


def test_flags_win_over_the_file(workdir: Path) -> None:
    (workdir / "scratchprobe.toml").write_text(
        "require-static = true\n"
        'allow-libraries = ["libfoo.so.1"]\n'
        'max-glibc = "2.17"\n'
        'deny-runtime = ["library"]\n'
        'arch = "aarch64"\n'
        '[severity]\nSP008 = "error"\nSP009 = "note"\n'
    )
    policy = policy_of(
        "--no-require-static",
        "--allow-library",
        "libc.so.*",
        "--max-glibc",
        "2.36",
        "--deny-runtime",
        "kind-nobody-detects",
        "--arch",
        "amd64",
        "--severity",
        "SP009=off",
    )
    assert policy["require_static"] is False
    assert policy["allow_libraries"] == ["libc.so.*"]
    assert policy["max_glibc"] == "2.36"
    assert policy["deny_runtime"] == ["kind-nobody-detects"]
    assert policy["arch"] == "x86_64"
    assert policy["severity"] == {"SP008": "error", "SP009": "off"}
    assert check(DYNAMIC).exit_code == 1
    relaxed = ("--no-require-static", "--allow-library", "lib*", "--max-glibc", "2.36")
    more = (
        "--deny-runtime",
        "kind-nobody-detects",
        "--arch",
        "x86_64",
        "--severity",
        "SP008=warning",
    )
    assert check(*relaxed, *more, DYNAMIC).exit_code == 0


def test_merge_keeps_file_values_for_flags_not_given() -> None:
    base = Policy(require_static=True, allow_libraries=("libc.so.*",), max_glibc=(2, 31))
    assert merge(base, PolicyOverrides()) == base
    merged = merge(base, PolicyOverrides(severity=(("SP008", Severity.OFF),)))
    assert merged.severity_of(DLOPEN) is Severity.OFF
    assert merged.allow_libraries == ("libc.so.*",)


def test_severity_of_foreign_arch_depends_on_arch_being_set() -> None:
    assert Policy().severity_of(FOREIGN_ARCH) is Severity.WARNING
    assert Policy(arch="x86_64").severity_of(FOREIGN_ARCH) is Severity.ERROR
    overridden = Policy(arch="x86_64", severity=(("SP009", Severity.NOTE),))
    assert overridden.severity_of(FOREIGN_ARCH) is Severity.NOTE
    assert Policy().severity_of(NOT_STATIC) is Severity.ERROR


def test_glibc_versions_compare_as_tuples() -> None:
    assert parse_glibc_version("2.4", "x") < parse_glibc_version("2.31", "x")
    assert parse_glibc_version("GLIBC_2.3.4", "x") == (2, 3, 4)
    with pytest.raises(UsageError):
        parse_glibc_version("2", "x")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("requre-static = true\n", "unknown key 'requre-static'; did you mean 'require-static'?"),
        ("colour = true\n", "unknown key 'colour' (known keys: require-static, "),
        ('[severity]\nSP099 = "error"\n', "unknown key 'severity.SP099'"),
        ('[severity]\nSP008 = "loud"\n', "severity.SP008: 'loud' is not a severity"),
        ("require-static = 1\n", "require-static must be true or false"),
        ("max-glibc = 2.30\n", 'max-glibc must be a string such as "2.31"'),
        ('allow-libraries = "libc.so.6"\n', "allow-libraries must be a list of strings"),
        ('arch = "vax11"\n', "arch: unknown architecture 'vax11'"),
        ("require-static = \n", "invalid TOML: "),
    ],
)
def test_bad_policy_files_are_one_line_usage_errors(workdir: Path, toml: str, message: str) -> None:
    path = workdir / "scratchprobe.toml"
    path.write_text(toml)
    result = check(STATIC)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"scratchprobe: error: {path}: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_policy_file_is_a_usage_error(workdir: Path) -> None:
    result = check("--policy", "nope.toml", STATIC)
    assert result.exit_code == 2
    assert result.stderr == (
        "scratchprobe: error: nope.toml: cannot read the policy: No such file or directory\n"
    )


def test_parse_policy_reads_every_key() -> None:
    policy = parse_policy(
        {
            "require-static": True,
            "allow-libraries": ["libc.so.*"],
            "max-glibc": "2.28",
            "deny-runtime": ["library", "certs"],
            "arch": "arm64",
            "severity": {"sp008": "off"},
        },
        "policy.toml",
    )
    assert policy == Policy(
        require_static=True,
        allow_libraries=("libc.so.*",),
        max_glibc=(2, 28),
        deny_runtime=("library", "certs"),
        arch="aarch64",
        severity=(("SP008", Severity.OFF),),
        source="policy.toml",
    )
    assert policy.enables(NOT_STATIC)


def test_empty_allow_list_allows_nothing(workdir: Path) -> None:
    (workdir / "scratchprobe.toml").write_text("allow-libraries = []\n")
    assert check(DYNAMIC).exit_code == 1
    assert check(STATIC).exit_code == 0
