"""--include and --include-from: files, directories, globs and SRC:DEST inside --root, the
TOML include file and plain lines, and the included entries in every planning output."""

from __future__ import annotations

import json
import tarfile
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scratchprobe.root import Root
from scratchprobe.trace.includes import (
    Include,
    load_file,
    parse_spec,
    render_file,
    resolve,
    toml_string,
)
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli

BINARY = "/usr/bin/app"


def _schema() -> dict[str, Any]:
    text = resources.files("scratchprobe").joinpath("schema/manifest-v1.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture
def root(make_root: RootBuilder) -> Path:
    """A builder with a C program, a data tree, a config file and a few glob targets."""
    built = make_root({**glibc_base(), BINARY: TESTBINS / "c-glibc-dynamic"})
    data = built / "usr/share/app"
    (data / "sub").mkdir(parents=True)
    (data / "a.dat").write_text("a\n")
    (data / "sub/b.dat").write_text("b\n")
    (data / "link").symlink_to("a.dat")
    (built / "etc").mkdir(exist_ok=True)
    (built / "etc/app.conf").write_text("key = 1\n")
    plugins = built / "usr/lib/app/plugins"
    plugins.mkdir(parents=True)
    for name in ("one.so", "two.so", "README"):
        (plugins / name).write_text(name)
    tool = built / "usr/libexec/app-helper"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return built


def _included(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in doc["files"] if f["kind"] == "included"}


def test_file_directory_glob_and_dest_in_the_manifest(root: Path) -> None:
    result = run_cli(
        "inspect",
        "--root",
        str(root),
        "--format",
        "json",
        "--include",
        "/usr/share/app",
        "--include",
        "/etc/app.conf:/etc/app/app.conf",
        "--include",
        "/usr/lib/app/plugins/*.so:/opt/plugins",
        "--include",
        "/usr/libexec/app-helper",
        BINARY,
    )
    assert result.returncode == 0, result.stderr
    doc = result.json()
    jsonschema.validate(doc, _schema())
    included = _included(doc)
    assert set(included) == {
        "/usr/share/app",
        "/etc/app/app.conf",
        "/opt/plugins/one.so",
        "/opt/plugins/two.so",
        "/usr/libexec/app-helper",
    }
    assert included["/usr/share/app"]["type"] == "directory"
    assert included["/usr/share/app"]["source"] == "/usr/share/app"
    assert included["/etc/app/app.conf"]["source"] == "/etc/app.conf"
    assert included["/opt/plugins/one.so"]["source"] == "/usr/lib/app/plugins/one.so"
    assert included["/usr/libexec/app-helper"]["mode"] == "0755"
    assert "mode" not in included["/etc/app/app.conf"]
    for entry in included.values():
        assert entry["reason"] == "included by the user"
        assert entry["included_from"] == "--include"
    # Included entries come after everything the analysis planned.
    kinds = [f["kind"] for f in doc["files"]]
    assert kinds.index("included") == len(kinds) - len(included)


def test_included_entries_in_copy_lines_dockerfile_and_text(root: Path) -> None:
    args = ("--root", str(root), "--include", "/usr/share/app", "--include", "/etc/app.conf")
    copy = run_cli("inspect", *args, "--format", "copy", BINARY)
    assert copy.returncode == 0, copy.stderr
    assert "COPY --from=builder /usr/share/app /usr/share/app" in copy.stdout.splitlines()
    assert "COPY --from=builder /etc/app.conf /etc/app.conf" in copy.stdout.splitlines()
    dockerfile = run_cli("inspect", *args, "--format", "dockerfile", BINARY)
    assert "COPY --from=builder /usr/share/app /usr/share/app" in dockerfile.stdout
    text = run_cli("inspect", *args, BINARY)
    assert "included (--include, --include-from):" in text.stdout
    assert "+ /usr/share/app (directory, whole): included by the user" in text.stdout
    stage = run_cli("inspect", *args, "--format", "dockerfile", "--rootfs-stage", BINARY)
    # The rootfs stage plans in the builder, where the include files are not: entries are
    # passed as --include.
    assert '"--include", "/usr/share/app"' in stage.stdout


def test_rootfs_writes_included_entries(root: Path, tmp_path: Path) -> None:
    tar_path = tmp_path / "out.tar"
    result = run_cli(
        "rootfs",
        "--root",
        str(root),
        "--tar",
        str(tar_path),
        "--include",
        "/usr/share/app",
        "--include",
        "/usr/libexec/app-helper",
        BINARY,
    )
    assert result.returncode == 0, result.stderr
    with tarfile.open(tar_path) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
    assert members["usr/share/app/sub/b.dat"].isfile()
    assert members["usr/share/app/link"].issym()
    assert members["usr/share/app/link"].linkname == "a.dat"
    assert members["usr/libexec/app-helper"].mode & 0o111


def test_check_takes_includes(root: Path) -> None:
    result = run_cli("check", "--root", str(root), "--format", "json", "--include", "/nope", BINARY)
    assert result.returncode == 2
    assert "scratchprobe: error: /nope: --include: no such file or directory in --root" in (
        result.stderr
    )


def test_a_missing_include_is_one_error_line_and_the_rest_is_reported(root: Path) -> None:
    result = run_cli(
        "inspect",
        "--root",
        str(root),
        "--format",
        "json",
        "--include",
        "/usr/share/none",
        "--include",
        "/usr/lib/app/plugins/*.dylib",
        "--include",
        "/etc/app.conf",
        BINARY,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    missing = "/usr/share/none: --include: no such file or directory in --root"
    assert f"scratchprobe: error: {missing}" in lines
    assert (
        "scratchprobe: error: /usr/lib/app/plugins/*.dylib: --include: matches nothing in --root"
        in lines
    )
    assert "/etc/app.conf" in _included(result.json())
    assert "Traceback" not in result.stderr


def test_a_symlink_out_of_the_root_stays_inside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("host file\n")
    (root / "etc/escape").symlink_to(str(outside))
    result = run_cli("inspect", "--root", str(root), "--include", "/etc/escape", BINARY)
    # The absolute target is taken inside the root, where it does not exist.
    assert result.returncode == 2
    assert "/etc/escape: --include: no such file or directory in --root" in result.stderr


@pytest.mark.parametrize(
    "spec",
    ["relative/path", "/a:/b*"],
)
def test_bad_specs_are_usage_errors(root: Path, spec: str) -> None:
    result = run_cli("inspect", "--root", str(root), "--include", spec, BINARY)
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: --include: ")
    assert len(result.stderr.splitlines()) == 1


def test_spec_parsing() -> None:
    assert parse_spec("/a/b") == Include("/a/b")
    assert parse_spec("/a/b:/c") == Include("/a/b", "/c")
    # A colon not followed by / belongs to the source.
    assert parse_spec("/a:b:/c") == Include("/a:b", "/c")
    assert parse_spec("/a:b") == Include("/a:b")


def test_include_from_toml_and_plain_lines(root: Path, tmp_path: Path) -> None:
    toml_file = tmp_path / "inc.toml"
    toml_file.write_text(
        '[[include]]\npath = "/usr/share/app"\nreason = "its data"\n\n'
        '[[include]]\npath = "/etc/app.conf"\ndest = "/etc/other.conf"\n\n'
        '[[include]]\npath = "/usr/lib/app"\ntree = false\n'
    )
    plain = tmp_path / "inc.txt"
    plain.write_text("# plugins\n/usr/lib/app/plugins/one.so\n\n/usr/libexec/app-helper:/bin/h\n")
    result = run_cli(
        "inspect",
        "--root",
        str(root),
        "--format",
        "json",
        "--include-from",
        str(toml_file),
        "--include-from",
        str(plain),
        BINARY,
    )
    assert result.returncode == 0, result.stderr
    included = _included(result.json())
    assert included["/usr/share/app"]["reason"] == "its data"
    assert included["/usr/share/app"]["included_from"] == str(toml_file)
    assert included["/etc/other.conf"]["source"] == "/etc/app.conf"
    # tree = false: only the directory, no source to copy from.
    assert included["/usr/lib/app"]["type"] == "directory"
    assert "source" not in included["/usr/lib/app"]
    assert included["/usr/lib/app/plugins/one.so"]["included_from"] == str(plain)
    assert included["/bin/h"]["source"] == "/usr/libexec/app-helper"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[include]]\ndest = "/x"\n', "include entry 1: 'path' must be an absolute path"),
        ('[[include]]\npath = "/x"\ncolour = "red"\n', "unknown key 'colour'"),
        ('include = "x"\n', "'include' must be an array of tables"),
        ("[[include]\nnot toml, not a path\n", "not an include file (TOML:"),
        ('[[include]]\npath = "/x"\ntree = "yes"\n', "'tree' a boolean"),
    ],
)
def test_bad_include_files_are_one_line(
    root: Path, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    result = run_cli("inspect", "--root", str(root), "--include-from", str(bad), BINARY)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"scratchprobe: error: {bad}: ")
    assert message in result.stderr


def test_unreadable_include_file(root: Path, tmp_path: Path) -> None:
    result = run_cli(
        "inspect", "--root", str(root), "--include-from", str(tmp_path / "none"), BINARY
    )
    assert result.returncode == 2
    assert "cannot read the include file" in result.stderr


HOSTILE = [
    'quote " and backslash \\ here',
    "new\nline and\ttab",
    "control \x01\x1f\x7f",
    "unicode é ü 日本",
    "lone surrogate \udcff from an undecodable byte",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_toml_strings_round_trip(value: str) -> None:
    parsed = tomllib.loads(f"x = {toml_string(value)}\n")
    expected = value.replace("\udcff", "\ufffd")
    assert parsed["x"] == expected


def test_written_file_reads_back(tmp_path: Path) -> None:
    includes = (
        Include("/usr/share/a b", reason='seen "here"\n', kind="data-directory"),
        Include("/etc/x", "/etc/y", reason="r", kind="config"),
        Include("/usr/lib/d", reason="checked", kind="directory", tree=False),
    )
    path = tmp_path / "learn.toml"
    path.write_text(render_file(includes, "header line\n\nsecond"))
    back = load_file(str(path))
    assert [(i.source, i.dest, i.reason, i.kind, i.tree) for i in back] == [
        ("/usr/share/a b", None, 'seen "here"\n', "data-directory", True),
        ("/etc/x", "/etc/y", "r", "config", True),
        ("/usr/lib/d", None, "checked", "directory", False),
    ]
    assert path.read_text().startswith("# header line\n#\n# second\n")


def test_resolve_reports_each_problem(root: Path) -> None:
    files, problems = resolve(
        (Include("/usr/share/app"), Include("/none"), Include("/usr/lib/app/plugins/*.so")),
        Root(str(root)),
    )
    assert [f.path for f in files] == [
        "/usr/share/app",
        "/usr/lib/app/plugins/one.so",
        "/usr/lib/app/plugins/two.so",
    ]
    assert [p.spec for p in problems] == ["/none"]


def test_a_planned_path_keeps_its_planned_entry(root: Path) -> None:
    result = run_cli(
        "inspect",
        "--root",
        str(root),
        "--format",
        "json",
        "--include",
        "/lib/x86_64-linux-gnu/libc.so.6",
        BINARY,
    )
    assert result.returncode == 0, result.stderr
    libc = [f for f in result.json()["files"] if f["path"] == "/lib/x86_64-linux-gnu/libc.so.6"]
    assert len(libc) == 1
    assert libc[0]["kind"] == "library"
