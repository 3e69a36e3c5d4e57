"""The conventions a command-line user expects: help, version, -f, -o, NO_COLOR, progress,
rules text from the package, and what a directory argument skips."""

from __future__ import annotations

import importlib
import os
import re
import select
import subprocess
import sys
from enum import Enum
from pathlib import Path

import click
import pytest

from scratchprobe.check.rules import RULES
from scratchprobe.cli import COMMANDS
from scratchprobe.render.formats import CheckFormat, ImageFormat, OutputFormat, VerifyFormat
from tests.conftest import REPO, TESTBINS, run_cli

DYNAMIC = str(TESTBINS / "c-glibc-dynamic")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_in_pty(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run scratchprobe with stdout and stderr on a pseudo-terminal each, as in a shell."""
    out_master, out_slave = os.openpty()
    err_master, err_slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchprobe", *args],
        stdout=out_slave,
        stderr=err_slave,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, bytearray] = {out_master: bytearray(), err_master: bytearray()}
    open_fds = [out_master, err_master]
    while open_fds:
        ready, _, _ = select.select(open_fds, [], [], 120)
        if not ready:
            proc.kill()
            break
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                data = b""
            if data:
                chunks[fd] += data
            else:
                open_fds.remove(fd)
                os.close(fd)
    code = proc.wait()
    return code, chunks[out_master].decode(), chunks[err_master].decode()


@pytest.mark.parametrize("command", ["inspect", "check"])
def test_progress_on_a_terminal_only(command: str) -> None:
    batch = str(TESTBINS / "runtime")
    code, _out, err = run_in_pty(command, "--format", "json", batch)
    assert code in (0, 1), err
    assert "inspecting" in err
    assert re.search(r"\b(\d+)/\1\b", ANSI.sub("", err)), "the bar reaches the end"
    piped = run_cli(command, "--format", "json", batch)
    assert piped.returncode == code
    assert "inspecting" not in piped.stderr
    assert "\x1b" not in piped.stderr


def test_no_progress_for_one_file() -> None:
    code, _out, err = run_in_pty("inspect", DYNAMIC)
    assert code == 0
    assert "inspecting" not in err


def test_bare_command_prints_help_and_exits_0() -> None:
    result = run_cli()
    assert result.returncode == 0
    assert "Commands:" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    from scratchprobe import __version__

    result = run_cli(flag)
    assert result.returncode == 0
    assert result.stdout == f"scratchprobe, version {__version__}\n"


def test_command_summaries_are_not_cut() -> None:
    result = run_cli("--help", env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    assert "..." not in result.stdout.split("Commands:")[1].replace("glibc floor, ...", "")
    # The whole first sentence of verify's docstring is there, on one line at 200 columns.
    assert "(bubblewrap: no capabilities, read-only root, own namespaces; QEMU for foreign" in (
        result.stdout
    )


def test_help_uses_the_terminal_width() -> None:
    narrow = run_cli("inspect", "--help", env={**os.environ, "COLUMNS": "60"}).stdout
    wide = run_cli("inspect", "--help", env={**os.environ, "COLUMNS": "160"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert max(len(line) for line in wide.splitlines()) > 80
    assert len(wide.splitlines()) < len(narrow.splitlines())


@pytest.mark.parametrize(
    ("command", "formats"),
    [
        ("inspect", OutputFormat),
        ("check", CheckFormat),
        ("verify", VerifyFormat),
        ("image", ImageFormat),
        ("rootfs", None),
    ],
)
def test_every_format_option_offers_its_registry_enum(
    command: str, formats: type[Enum] | None
) -> None:
    params = importlib.import_module(COMMANDS[command]).command.params
    offered = [
        list(p.type.choices)
        for p in params
        if isinstance(p, click.Option) and "--format" in p.opts and isinstance(p.type, click.Choice)
    ]
    assert offered == ([] if formats is None else [[fmt.value for fmt in formats]])


@pytest.mark.parametrize("command", ["inspect", "check"])
def test_short_format_flag(command: str) -> None:
    short = run_cli(command, "-f", "json", DYNAMIC)
    long = run_cli(command, "--format", "json", DYNAMIC)
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout
    assert short.stdout.startswith("{")


@pytest.mark.parametrize("command", ["inspect", "check"])
def test_output_file(command: str, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = run_cli(command, "-f", "json", "-o", str(target), DYNAMIC)
    assert result.returncode == 0
    assert result.stdout == ""
    assert target.read_text() == run_cli(command, "-f", "json", DYNAMIC).stdout


def test_output_file_that_cannot_be_written(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "report.txt"
    result = run_cli("inspect", "--output", str(target), DYNAMIC)
    assert result.returncode == 2
    assert result.stderr.startswith(f"scratchprobe: error: {target}: cannot write the report")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_colour_on_a_terminal_and_never_with_no_color() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    code, coloured, _ = run_in_pty("inspect", DYNAMIC, env=env)
    assert code == 0
    assert ANSI.search(coloured)
    code, plain, _ = run_in_pty("inspect", DYNAMIC, env={"NO_COLOR": "1"})
    assert code == 0
    assert not ANSI.search(plain)
    assert ANSI.sub("", coloured).split() == plain.split()


def test_check_text_honours_no_color() -> None:
    code, coloured, _ = run_in_pty("check", "--require-static", DYNAMIC)
    assert code == 1
    assert ANSI.search(coloured)
    code, plain, _ = run_in_pty("check", "--require-static", DYNAMIC, env={"NO_COLOR": "x"})
    assert code == 1
    assert not ANSI.search(plain)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_explain_prints_the_rule_from_the_package(rule: object) -> None:
    from scratchprobe.check.rules import Rule

    assert isinstance(rule, Rule)
    result = run_cli("check", "--explain", rule.code.lower())
    assert result.returncode == 0
    page = (REPO / "docs" / "rules.md").read_text()
    assert result.stdout.startswith(f"## {rule.code} {rule.name}\n")
    assert result.stdout.strip() in page
    assert f"**{rule.title}**" in result.stdout
    assert "## " not in result.stdout[3:]


def test_explain_unknown_rule() -> None:
    result = run_cli("check", "--explain", "SP999")
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: --explain: unknown rule 'SP999'")
    assert result.stdout == ""


def test_no_help_or_error_names_a_file_pip_does_not_install() -> None:
    texts = [run_cli("--help").stdout]
    texts += [run_cli(command, "--help").stdout for command in ("inspect", "check", "rootfs")]
    texts.append(run_cli("check", "--severity", "SP999=error", DYNAMIC).stderr)
    for text in texts:
        assert "docs/" not in text


GETPWNAM = str(TESTBINS / "runtime" / "c-getpwnam")


def _etc_files(*args: str) -> dict[str, dict[str, str]]:
    doc = run_cli("inspect", "--format", "json", *args, GETPWNAM).json()
    return {f["path"]: f for f in doc["files"] if f["path"] in ("/etc/passwd", "/etc/group")}


def test_passwd_and_group_are_generated_by_default() -> None:
    files = _etc_files()
    assert set(files) == {"/etc/passwd", "/etc/group"}
    assert "source" not in files["/etc/passwd"]
    lines = files["/etc/passwd"]["content"].splitlines()
    assert [line.split(":")[0] for line in lines] == ["root", "nobody", "nonroot"]
    assert _etc_files("--generate-etc") == files


def test_copy_etc_copies_the_builders_files() -> None:
    files = _etc_files("--copy-etc")
    assert files["/etc/passwd"]["source"] == "/etc/passwd"
    assert files["/etc/group"]["source"] == "/etc/group"
    assert "content" not in files["/etc/passwd"]


def test_generate_and_copy_etc_contradict() -> None:
    result = run_cli("inspect", "--generate-etc", "--copy-etc", GETPWNAM)
    assert result.returncode == 2
    assert "--generate-etc and --copy-etc contradict each other" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_shared_library_gets_no_entrypoint() -> None:
    library = str(TESTBINS / "rpath-inherit" / "libs" / "libB.so.1")
    result = run_cli("inspect", "--format", "dockerfile", library)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not any(line.startswith("ENTRYPOINT") for line in lines)
    assert lines[-1] == f'# no ENTRYPOINT: "{library}" is a shared library, not a program'
    program = run_cli("inspect", "--format", "dockerfile", DYNAMIC).stdout.splitlines()
    assert program[-1] == f'ENTRYPOINT ["{DYNAMIC}"]'


def test_inspect_install_places_a_build_context_binary(tmp_path: Path) -> None:
    from tests.conftest import HOST_LIBDIR, HOST_LOADER

    root = tmp_path / "root"
    for inner, host in (
        ("lib64/ld-linux-x86-64.so.2", HOST_LOADER),
        ("lib/x86_64-linux-gnu/libc.so.6", f"{HOST_LIBDIR}/libc.so.6"),
    ):
        (root / inner).parent.mkdir(parents=True, exist_ok=True)
        (root / inner).write_bytes(Path(host).read_bytes())
    context = tmp_path / "context"
    context.mkdir()
    (context / "app").write_bytes(Path(DYNAMIC).read_bytes())
    plain = run_cli("inspect", "-f", "copy", "--root", str(root), "app", cwd=context)
    assert plain.returncode == 0, plain.stderr
    assert "COPY app /app" in plain.stdout.splitlines()
    args = ("-f", "dockerfile", "--root", str(root), "--install", "/usr/local/bin/app", "app")
    placed = run_cli("inspect", *args, cwd=context)
    assert placed.returncode == 0, placed.stderr
    lines = placed.stdout.splitlines()
    assert "COPY app /usr/local/bin/app" in lines
    assert lines[-1] == 'ENTRYPOINT ["/usr/local/bin/app"]'
    relative = ("--install", "usr/bin/app", "--root", str(root), "app")
    refused = run_cli("inspect", *relative, cwd=context)
    assert refused.returncode == 2
    assert refused.stderr == (
        "scratchprobe: error: --install 'usr/bin/app': not an absolute path below /\n"
    )
