"""Every output format, the JSON contract against its schema, and help texts."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scratchprobe.cli import COMMANDS
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from tests.conftest import TESTBINS, run_cli

DYNAMIC = str(TESTBINS / "c-glibc-dynamic")


def schema() -> dict[str, Any]:
    text = resources.files("scratchprobe").joinpath("schema/manifest-v1.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_manifest_of_a_batch_shares_files() -> None:
    doc = run_cli("inspect", "--format", "json", DYNAMIC, str(TESTBINS / "cpp-dynamic")).json()
    jsonschema.validate(doc, schema())
    paths = [f["path"] for f in doc["files"]]
    assert len(paths) == len(set(paths)), "several binaries share one plan with no duplicates"
    assert paths.count("/lib/x86_64-linux-gnu/libc.so.6") == 1
    kinds = {f["path"]: f["kind"] for f in doc["files"]}
    assert kinds["/lib64/ld-linux-x86-64.so.2"] == "interpreter"
    assert kinds[DYNAMIC] == "binary"


def test_contract_field_types() -> None:
    doc = run_cli("inspect", "--format", "json", DYNAMIC).json()
    (binary,) = doc["binaries"]
    assert binary["linkage"] == "dynamic"
    assert binary["libc"] == "glibc"
    assert binary["arch"] == "x86_64"
    assert binary["max_glibc"] == "2.34"
    assert binary["elf_type"] == "DYN"
    assert binary["libraries"] == [
        {
            "soname": "libc.so.6",
            "path": "/lib/x86_64-linux-gnu/libc.so.6",
            "source": os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"),
            "needed_by": DYNAMIC,
            "found_via": "system-dirs",
        }
    ]
    interp = next(f for f in doc["files"] if f["kind"] == "interpreter")
    assert interp["path"] == "/lib64/ld-linux-x86-64.so.2"
    assert interp["source"] == os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    assert interp["type"] == "file"


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_format_renders(fmt: OutputFormat) -> None:
    result = inspect((DYNAMIC,), InspectOptions())
    text = renderer(fmt)(result, RenderOptions(stage="build"))
    assert text.endswith("\n")
    assert "/lib64/ld-linux-x86-64.so.2" in text


def test_copy_lines() -> None:
    result = run_cli("inspect", "--format", "copy", "--from", "build", DYNAMIC)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"COPY --from=build {DYNAMIC} {DYNAMIC}"
    loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    assert f"COPY --from=build {loader} /lib64/ld-linux-x86-64.so.2" in lines
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    assert f"COPY --from=build {libc} /lib/x86_64-linux-gnu/libc.so.6" in lines
    assert len(lines) == 3
    again = run_cli("inspect", "--format", "copy", "--from", "build", DYNAMIC)
    assert again.stdout == result.stdout, "stable order"


def test_copy_line_quotes_paths_with_spaces(tmp_path: Path) -> None:
    spaced = tmp_path / "my app"
    spaced.write_bytes((TESTBINS / "c-glibc-static").read_bytes())
    result = run_cli("inspect", "--format", "copy", str(spaced))
    assert result.stdout.splitlines()[0] == (
        "COPY --from=builder " + json.dumps([str(spaced), str(spaced)])
    )


def test_dockerfile() -> None:
    result = run_cli("inspect", "--format", "dockerfile", DYNAMIC)
    lines = result.stdout.splitlines()
    assert "FROM scratch" in lines
    assert lines[-1] == f'ENTRYPOINT ["{DYNAMIC}"]'
    assert sum(line.startswith("COPY --from=builder ") for line in lines) == 3


def test_text_report() -> None:
    result = run_cli("inspect", "--full", DYNAMIC)
    assert result.returncode == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{DYNAMIC}: dynamic glibc x86_64, needs 3 files, ")
    assert "requires glibc >= 2.34" in result.stdout
    assert "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6" in result.stdout
    assert "\x1b[" not in result.stdout, "no colour when piped"
    assert f"COPY --from=builder {DYNAMIC} {DYNAMIC}" in result.stdout


def test_text_report_summary_comes_first() -> None:
    """Verdict, problems and needs where a terminal shows them; the tree only with --full."""
    binary = str(TESTBINS / "runtime" / "c-getpwnam")
    summary = run_cli("inspect", binary).stdout
    full = run_cli("inspect", "--full", binary).stdout
    assert "=>" not in summary
    assert "COPY --from" not in summary
    assert "  libraries: 1 found (--full shows who needs what)" in summary.splitlines()
    assert summary.splitlines()[-1].startswith("5 image entries: --format copy prints")
    # --full adds the tree and the COPY lines after the same summary.
    head = summary.split("  libraries:")[0]
    assert full.startswith(head)
    assert full.index("runtime needs:") < full.index("libc.so.6 =>") < full.index("COPY lines")


def test_text_report_of_missing_library() -> None:
    app = str(TESTBINS / "runpath-not-inherited/app")
    result = run_cli("inspect", app)
    assert result.returncode == 1
    assert "missing: libB.so.1" in result.stdout
    assert "1 missing" in result.stdout
    assert "libB.so.1 => not found" in run_cli("inspect", "--full", app).stdout


def test_directory_argument_is_walked() -> None:
    doc = run_cli("inspect", "--format", "json", str(TESTBINS / "rpath-inherit")).json()
    assert sorted(os.path.basename(b["path"]) for b in doc["binaries"]) == [
        "app",
        "libA.so.1",
        "libB.so.1",
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "Usage: " in result.stdout
    assert len(result.stdout.splitlines()) > 3


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert "scratchprobe" in result.stdout


def test_stage_name_cannot_inject_dockerfile_lines() -> None:
    result = run_cli("inspect", "--format", "dockerfile", "--from", "b\nRUN evil", DYNAMIC)
    assert result.returncode == 2
    assert "RUN evil" not in result.stdout


def test_path_with_newline_is_quoted(tmp_path: Path) -> None:
    odd = tmp_path / "app\nRUN evil"
    odd.write_bytes((TESTBINS / "c-glibc-static").read_bytes())
    lines = run_cli("inspect", "--format", "dockerfile", str(odd)).stdout.splitlines()
    assert not any(line.startswith("RUN evil") for line in lines)
