"""Hostile names in every output: a Dockerfile names exactly the planned files or is refused,
a name never forges a line or reaches the terminal as a control sequence, and every machine
format parses with a strict parser (docs/output-encoding.md).

The names are real files: a dynamic test binary copied to a hostile name, and libraries under
hostile directory names that a program compiled here finds through its RUNPATH.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
import xml.dom.minidom
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.render.names import (
    dockerfile_word,
    machine_text,
    visible_text,
)
from tests.conftest import REPO, TESTBINS
from tests.helpers_sandbox import extract

jsonschema: Any = importlib.import_module("jsonschema")

DYNAMIC = TESTBINS / "c-glibc-dynamic"
SARIF_SCHEMA = Path(__file__).resolve().parents[2] / "data" / "sarif-schema-2.1.0.json"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        # Strict: any byte that is not UTF-8 fails the test.
        return self.stdout.decode("utf-8")

    def error_lines(self) -> list[str]:
        return self.stderr.decode("utf-8").splitlines()


def run(*args: str | bytes, cwd: Path | None = None) -> Run:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "scratchprobe", *args],
        capture_output=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def hostile_copy(tmp_path: Path, name: bytes) -> str:
    """The dynamic test binary copied to `name` in tmp_path; its path as Python sees it."""
    path = os.path.join(os.fsencode(tmp_path), name)
    shutil.copyfile(DYNAMIC, path)
    os.chmod(path, 0o755)
    return os.fsdecode(path)


def assert_no_surrogates(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # strict: a lone surrogate raises
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_no_surrogates(key)
            assert_no_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_surrogates(item)


def strict_json(data: bytes) -> Any:
    document = json.loads(data.decode("utf-8"))
    assert_no_surrogates(document)
    return document


def unlex(word: str) -> str:
    """What a Dockerfile frontend's word processing makes of an unquoted word with no
    variable (moby/buildkit shell/lex.go): the escape character makes the next one literal."""
    out, escaped = [], False
    for ch in word:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            assert ch not in "$'\"", f"unescaped {ch!r} in {word!r}"
            out.append(ch)
    return "".join(out)


# ----- the escaping itself ------------------------------------------------------------


def test_valid_names_are_unchanged() -> None:
    for name in ("/usr/lib/libc.so.6", "/opt/é/a b", "/a\\b", "/a$X"):
        assert machine_text(name) == name
        assert visible_text(name) == name


def test_undecodable_bytes_and_controls_are_escaped_losslessly() -> None:
    name = os.fsdecode(b"/a\\b\xff\n\x1b[31m")
    assert machine_text(name) == "/a\\\\b\\xff\n\x1b[31m"
    assert visible_text(name) == "/a\\\\b\\xff\\x0a\\x1b[31m"
    assert visible_text("a\u202eb\u0085") == "a\\u202eb\\u0085"
    assert visible_text("a\tb\n", keep="\t\n") == "a\tb\n"


def test_dockerfile_word_undoes_to_the_name() -> None:
    for name in ("/bin/a${X:-b}", '/a b"c', "/it's", "/a$X"):
        assert unlex(dockerfile_word(name)) == name


# ----- --from and --user: full matches ----------------------------------------------


@pytest.mark.parametrize(
    "option", [("--from", "builder\n"), ("--user", "root\n"), ("--from", "b\nRUN x")]
)
def test_trailing_newline_is_not_a_valid_stage_or_user(option: tuple[str, str]) -> None:
    result = run("inspect", "--format", "dockerfile", *option, str(DYNAMIC))
    assert result.returncode == 2
    assert result.stdout == b""


# ----- COPY lines and Dockerfiles -----------------------------------------------------


def copy_words(line: str) -> list[str]:
    prefix = "COPY --from=builder "
    assert line.startswith(prefix), line
    rest = line[len(prefix) :]
    words: list[str] = json.loads(rest) if rest.startswith("[") else rest.split(" ")
    return [unlex(word) for word in words]


@pytest.mark.parametrize("name", [b"a${X:-b}", b"a$X", b'sp ace"q', b"it's", b"#hash"])
def test_copy_line_names_exactly_the_file(tmp_path: Path, name: bytes) -> None:
    path = hostile_copy(tmp_path, name)
    for fmt in ("copy", "dockerfile"):
        result = run("inspect", "--format", fmt, path)
        assert result.returncode == 0, result.stderr
        copies = [line for line in result.text().splitlines() if line.startswith("COPY ")]
        assert len(copies) == 3, result.text()
        assert copy_words(copies[0]) == [path, path]
        # Ordinary names keep the plain form.
        assert all(" [" not in line for line in copies[1:])


@pytest.mark.parametrize(
    "name",
    [
        b"nl\nscratchprobe: error: forged",
        b"esc\x1b[31mred",
        b"tab\there",
        b"bad\xff",
        b"trail\\",
        b"back\\slash",
        b"star*",
        b"q[1]",
    ],
)
def test_name_no_dockerfile_can_express_is_refused(tmp_path: Path, name: bytes) -> None:
    path = hostile_copy(tmp_path, name)
    for fmt in ("copy", "dockerfile"):
        result = run("inspect", "--format", fmt, path)
        assert result.returncode == 2
        assert result.stdout == b"", "no partial output"
        errors = result.error_lines()
        assert len(errors) == 1, errors
        assert errors[0].startswith("scratchprobe: error: ")
        assert "scratchprobe rootfs" in errors[0]
        assert "--rootfs-stage" in errors[0]
        assert "\x1b" not in errors[0]


def test_rootfs_stage_expresses_a_control_character_in_the_binary_name(tmp_path: Path) -> None:
    # RUN and ENTRYPOINT in exec form are JSON arrays, not expanded: JSON escapes the newline.
    path = hostile_copy(tmp_path, b"nl\nRUN evil")
    result = run("inspect", "--format", "dockerfile", "--rootfs-stage", path)
    assert result.returncode == 0, result.stderr
    lines = result.text().splitlines()
    assert not any(line.startswith("RUN evil") for line in lines)
    run_line = next(line for line in lines if line.startswith("RUN "))
    assert json.loads(run_line[4:])[-1] == path
    assert json.loads(lines[-1].removeprefix("ENTRYPOINT ")) == [path]


def test_rootfs_stage_refuses_a_binary_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = hostile_copy(tmp_path, b"bad\xff")
    result = run("inspect", "--format", "dockerfile", "--rootfs-stage", path)
    assert result.returncode == 2
    assert result.stdout == b""
    assert len(result.error_lines()) == 1


# ----- the text report and error lines ----------------------------------------------


def test_text_report_escapes_names_visibly(tmp_path: Path) -> None:
    forged = hostile_copy(tmp_path, b"nl\nscratchprobe: error: forged\x1b[2J")
    markup = hostile_copy(tmp_path, b"[bold]x:smile:")
    result = run("inspect", forged, markup)
    assert result.returncode == 0, result.stderr
    text = result.text()
    assert "\x1b" not in text
    assert not any(line.startswith("scratchprobe: error") for line in text.splitlines())
    assert f"{tmp_path}/nl\\x0ascratchprobe: error: forged\\x1b[2J: dynamic glibc" in text
    # Rich neither interprets markup nor replaces emoji codes in a name.
    assert f"{tmp_path}/[bold]x:smile:: dynamic glibc" in text
    # No COPY block that leaves the file out: the report says why there is none.
    copy = [line for line in text.splitlines() if line.startswith("COPY lines")]
    assert len(copy) == 1
    assert "scratchprobe rootfs" in copy[0]


def test_error_line_of_an_unreadable_input_is_one_line(tmp_path: Path) -> None:
    missing = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"gone\nscratchprobe: error: x\xff"))
    result = run("inspect", "--format", "json", missing)
    assert result.returncode == 2
    errors = result.error_lines()
    assert len(errors) == 1, errors
    assert "gone\\x0ascratchprobe: error: x\\xff" in errors[0]
    document = strict_json(result.stdout)
    assert document["errors"][0]["path"].endswith("gone\nscratchprobe: error: x\\xff")


# ----- machine formats: strict parsers ---------------------------------------------


def manifest_schema() -> dict[str, Any]:
    text = resources.files("scratchprobe").joinpath("schema/manifest-v1.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def test_json_manifest_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = hostile_copy(tmp_path, b"bad\xff\\x")
    result = run("inspect", "--format", "json", path)
    assert result.returncode == 0, result.stderr
    document = strict_json(result.stdout)
    jsonschema.validate(document, manifest_schema())
    shown = f"{tmp_path}/bad\\xff\\\\x"
    assert document["binaries"][0]["path"] == shown
    binary = next(f for f in document["files"] if f["kind"] == "binary")
    assert binary["path"] == shown
    assert base64.b64decode(binary["path_base64"]) == os.fsencode(path)
    assert base64.b64decode(binary["source_base64"]) == os.fsencode(path)
    # Entries whose names are UTF-8 gain nothing.
    assert not any("path_base64" in f for f in document["files"] if f["kind"] != "binary")


def test_cyclonedx_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = hostile_copy(tmp_path, b"bad\xff")
    result = run("inspect", "--format", "cyclonedx", path)
    assert result.returncode == 0, result.stderr
    document = strict_json(result.stdout)
    names = [c["name"] for c in document["components"]]
    assert f"{tmp_path}/bad\\xff" in names


def compile_runpath_program(tmp_path: Path, libdir: bytes, soname: bytes) -> str:
    """A program whose RUNPATH is `libdir` and which needs `soname` (both bytes, as hostile
    as wanted); the library is built and placed there. Returns the program's path."""
    work = os.fsencode(tmp_path)
    directory = os.path.join(work, libdir)
    os.makedirs(directory)
    source = tmp_path / "lib.c"
    source.write_text("int answer(void) { return 42; }\n")
    library = os.path.join(directory, soname)
    subprocess.run(
        [b"gcc", b"-shared", b"-fPIC", b"-Wl,-soname," + soname, b"-o", library, source],
        check=True,
    )
    main = tmp_path / "main.c"
    main.write_text("int answer(void);\nint main(void) { return answer() == 42 ? 0 : 1; }\n")
    program = os.path.join(work, b"app")
    subprocess.run(
        [b"gcc", b"-o", program, main, library, b"-Wl,--enable-new-dtags,-rpath," + directory],
        check=True,
    )
    return os.fsdecode(program)


@needs_gcc
def test_library_under_a_hostile_directory_found_via_runpath(tmp_path: Path) -> None:
    program = compile_runpath_program(tmp_path, b"lib dir'$X", b"libanswer.so.1")
    library = f"{tmp_path}/lib dir'$X/libanswer.so.1"
    result = run("inspect", "--format", "copy", program)
    assert result.returncode == 0, result.stderr
    lines = result.text().splitlines()
    assert [library, library] in [copy_words(line) for line in lines if "libanswer" in line]


@needs_gcc
def test_library_name_that_is_not_utf8_in_every_format(tmp_path: Path) -> None:
    program = compile_runpath_program(tmp_path, b"lib\xff", b"libanswer\xfe.so.1")
    library = os.fsdecode(os.fsencode(tmp_path) + b"/lib\xff/libanswer\xfe.so.1")
    copy = run("inspect", "--format", "copy", program)
    assert copy.returncode == 2
    assert copy.stdout == b""
    document = strict_json(run("inspect", "--format", "json", program).stdout)
    jsonschema.validate(document, manifest_schema())
    entry = next(f for f in document["files"] if f["kind"] == "library" and "answer" in f["path"])
    assert base64.b64decode(entry["path_base64"]) == os.fsencode(library)
    assert document["binaries"][0]["needed"][0] == "libanswer\\xfe.so.1"
    # The library missing: check reports the non-UTF-8 DT_NEEDED in every format.
    os.unlink(library)
    formats: dict[str, bytes] = {}
    for fmt in ("text", "json", "sarif", "junit", "github"):
        result = run("check", "--policy", os.devnull, "--format", fmt, program, cwd=tmp_path)
        assert result.returncode == 1, (fmt, result.stderr)
        assert result.stderr == b"", (fmt, result.stderr)
        formats[fmt] = result.stdout
    for fmt in ("text", "junit", "github"):
        assert "libanswer\\xfe.so.1 (needed by" in formats[fmt].decode("utf-8"), fmt
    document = strict_json(formats["json"])
    sp002 = next(r for r in document["binaries"][0]["rules"] if r["code"] == "SP002")
    assert sp002["findings"][0]["subject"] == "libanswer\\xfe.so.1"
    sarif = strict_json(formats["sarif"])
    assert "libanswer\\xfe.so.1" in sarif["runs"][0]["results"][0]["message"]["text"]
    jsonschema.Draft7Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    xml.dom.minidom.parseString(formats["junit"])
    for line in formats["github"].decode("utf-8").splitlines():
        assert line.startswith("::") or line.startswith("scratchprobe check:")


def test_check_formats_of_a_name_with_control_characters(tmp_path: Path) -> None:
    path = hostile_copy(tmp_path, b"esc\x1b[31m\x01\nbad\xff")
    formats: dict[str, bytes] = {}
    for fmt in ("text", "json", "sarif", "junit", "github"):
        result = run("check", "--policy", os.devnull, "--require-static", "--format", fmt, path)
        assert result.returncode == 1, (fmt, result.stderr)
        formats[fmt] = result.stdout
    for fmt in ("text", "sarif", "junit", "github"):
        assert b"\x1b" not in formats[fmt], fmt
    strict_json(formats["json"])
    sarif = strict_json(formats["sarif"])
    jsonschema.Draft7Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri["uri"].endswith("esc%1B%5B31m%01%0Abad%FF")
    dom = xml.dom.minidom.parseString(formats["junit"])
    suite = dom.getElementsByTagName("testsuite")[0]
    assert suite.getAttribute("name").endswith("esc\\x1b[31m\\x01\nbad\\xff")
    github = formats["github"].decode("utf-8").splitlines()
    assert len(github) == 2, github  # one annotation and the summary: no forged line
    text = formats["text"].decode("utf-8")
    assert "esc\\x1b[31m\\x01\\x0abad\\xff: FAIL" in text


# ----- a real image build ----------------------------------------------------------


def build_image(builder: Path, stage: str, work: Path, made: list[str]) -> Path:
    """Import `builder` as the image `builder` stage's base, build `stage` after it, and
    export the result's filesystem (podman create + export: `podman run` is not assumed)."""

    def podman(*args: str) -> None:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"

    token = uuid.uuid4().hex[:12]
    base = f"localhost/scratchprobe-escaping-builder-{token}"
    archive = work / "builder.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(builder, arcname=".")
    made.append(base)
    podman("import", str(archive), base)
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base} AS builder\n{stage}")
    tag = f"localhost/scratchprobe-escaping-image-{token}"
    made.append(tag)
    podman("build", "--isolation=chroot", "--layers=false", "-t", tag, str(context))
    container = f"scratchprobe-escaping-{token}"
    made.append(container)
    podman("create", "--name", container, tag)
    exported = work / "image.tar"
    podman("export", "-o", str(exported), container)
    return extract(exported, work / "image")
