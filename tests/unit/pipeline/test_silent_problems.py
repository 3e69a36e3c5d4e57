"""No silent problem: whatever the format, a missing library, an unknown `--tz` zone or an
unknown `--user` is one line on stderr with the documented exit status, and the outputs that
can carry a comment carry it too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TESTBINS, RootBuilder, run_cli

RUNTIME = TESTBINS / "runtime"
# libA.so.1 is found through the program's RUNPATH, but RUNPATH is not inherited by libA's
# own dependency libB.so.1 (glibc elf/dl-load.c: DT_RUNPATH applies to the object's own
# DT_NEEDED only): the loader cannot find it.
UNRESOLVED = TESTBINS / "runpath-not-inherited" / "app"
FORMATS = ("text", "json", "copy", "dockerfile")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("scratchprobe: error: ")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_library_is_an_error_line_in_every_format(fmt: str) -> None:
    result = run_cli("inspect", "--format", fmt, str(UNRESOLVED))
    assert result.returncode == 1
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"scratchprobe: error: {UNRESOLVED}: libB.so.1 not found")
    assert "libA.so.1" in errors[0]
    if fmt in ("copy", "dockerfile"):
        comments = [line for line in result.stdout.splitlines() if line.startswith("# error: ")]
        assert comments == [errors[0].replace("scratchprobe: error: ", "# error: ")]
    if fmt == "json":
        (binary,) = result.json()["binaries"]
        assert binary["missing"] == ["libB.so.1"]


def test_resolved_program_has_a_quiet_stderr() -> None:
    result = run_cli("inspect", "--format", "copy", str(TESTBINS / "c-glibc-dynamic"))
    assert result.returncode == 0
    assert result.stderr == ""
    assert not any(line.startswith("#") for line in result.stdout.splitlines())


def test_verdict_line_names_what_is_missing() -> None:
    # Built with -z nodefaultlib: the loader never searches the default directories, so
    # libc.so.6 is not found although the root has it.
    result = run_cli("inspect", str(TESTBINS / "c-nodeflib"))
    assert result.returncode == 1
    verdict = result.stdout.splitlines()[0]
    assert verdict.endswith("; missing: libc.so.6"), verdict
    assert "needs 2 files" in verdict
    clean = run_cli("inspect", str(TESTBINS / "c-glibc-dynamic")).stdout.splitlines()[0]
    assert "missing" not in clean


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_zone_is_a_usage_error(fmt: str) -> None:
    result = run_cli(
        "inspect", "--format", fmt, "--tz", "Mars/Olympus", str(RUNTIME / "c-localtime")
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "scratchprobe: error: --tz Mars/Olympus: no such zone in the root's /usr/share/zoneinfo"
    ]


def test_zone_name_that_leaves_the_directory_is_a_usage_error() -> None:
    result = run_cli("inspect", "--tz", "../../etc/passwd", str(RUNTIME / "c-localtime"))
    assert result.returncode == 2
    assert "not a time zone name" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_known_zone_passes() -> None:
    if not Path("/usr/share/zoneinfo/Europe/Paris").is_file():
        pytest.skip("the host has no tzdata: apt-get install tzdata")
    result = run_cli(
        "inspect", "--format", "copy", "--tz", "Europe/Paris", str(RUNTIME / "c-localtime")
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_user_is_a_usage_error(fmt: str) -> None:
    result = run_cli(
        "inspect",
        "--format",
        fmt,
        "--copy-etc",
        "--user",
        "nosuchuser",
        str(RUNTIME / "c-getpwnam"),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("scratchprobe: error: --user nosuchuser: nosuchuser is not in the root")


def test_unknown_group_is_a_usage_error() -> None:
    result = run_cli(
        "inspect", "--copy-etc", "--user", "root:nosuchgroup", str(RUNTIME / "c-getpwnam")
    )
    assert result.returncode == 2
    assert "nosuchgroup is not in the root's /etc/group" in result.stderr


def test_user_checks_follow_the_root(make_root: RootBuilder, tmp_path: Path) -> None:
    root = make_root({"/app": RUNTIME / "c-getpwnam"})
    # With --copy-etc, a root without /etc/passwd: a name cannot be resolved, a number can.
    named = run_cli("inspect", "--root", str(root), "--copy-etc", "--user", "app", "/app")
    assert named.returncode == 2
    assert "the root has no /etc/passwd (drop --copy-etc to generate one)" in named.stderr
    numeric = run_cli(
        "inspect", "--root", str(root), "--copy-etc", "--format", "copy", "--user", "1000", "/app"
    )
    assert numeric.returncode != 2, numeric.stderr
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/x\n")
    (root / "etc/group").write_text("root:x:0:\n")
    assert (
        "USER app"
        in run_cli(
            "inspect",
            "--root",
            str(root),
            "--copy-etc",
            "--format",
            "dockerfile",
            "--user",
            "app",
            "/app",
        ).stdout
    )


def test_generated_etc_accepts_any_user() -> None:
    result = run_cli(
        "inspect",
        "--format",
        "dockerfile",
        "--generate-etc",
        "--user",
        "nosuchuser",
        str(RUNTIME / "c-getpwnam"),
    )
    assert result.returncode == 0, result.stderr
    assert "USER nosuchuser" in result.stdout


def test_rootfs_refuses_an_unknown_zone_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "rootfs", "--tz", "Mars/Olympus", str(RUNTIME / "c-localtime"), "--output", str(out)
    )
    assert result.returncode == 2
    assert not out.exists()


def test_warnings_reach_stderr_and_the_dockerfile(make_root: RootBuilder) -> None:
    # A TLS client in a root without any CA bundle: the need cannot be met.
    root = make_root({"/app": RUNTIME / "go-https-get"})
    for fmt in ("dockerfile", "copy", "json"):
        result = run_cli("inspect", "--root", str(root), "--format", fmt, "/app")
        warnings = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("scratchprobe: warning: ")
        ]
        assert warnings, (fmt, result.stderr)
        assert any("CA bundle" in w or "ca-certificates" in w for w in warnings), warnings
        if fmt != "json":
            assert any(line.startswith("# warning: /app: ") for line in result.stdout.splitlines())


def test_rootfs_of_a_zoneinfo_program_gives_no_localtime_warning(tmp_path: Path) -> None:
    zoneinfo = Path("/usr/share/zoneinfo")
    if not (zoneinfo / "localtime").is_symlink():
        pytest.skip("this tzdata has no zoneinfo/localtime link to /etc/localtime")
    out = tmp_path / "out"
    result = run_cli("rootfs", str(RUNTIME / "c-localtime"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "localtime" not in result.stderr, result.stderr
    # The directory is still copied as COPY copies it: the link is there, as it is.
    assert (out / "usr/share/zoneinfo/localtime").is_symlink()
