"""The output formats of `check`: every `CheckFormat` member renders; SARIF validates against
the OASIS schema; JUnit parses back; GitHub workflow commands are escaped; JSON validates
against the schema published in docs/rules.md."""

from __future__ import annotations

import importlib
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scratchprobe.check.engine import CheckResult, run_check
from scratchprobe.check.formats import CheckFormat, FormatOptions, formatter, relative_path
from scratchprobe.check.formats.github import command, escape_data, escape_property
from scratchprobe.check.policy import Policy
from scratchprobe.check.rules import RULES
from scratchprobe.cli import main
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect

# jsonschema ships no type hints and types-jsonschema is not in the `test` extra; imported
# this way it is an untyped module instead of a mypy error (and still a hard requirement).
jsonschema: Any = importlib.import_module("jsonschema")

REPO = Path(__file__).resolve().parents[3]
BUILT = REPO / "testbins" / "built"
STATIC = "testbins/built/c-glibc-static"
DYNAMIC = "testbins/built/c-glibc-dynamic"
RUNPATH_APP = "testbins/built/runpath-not-inherited/app"
AARCH64 = "testbins/built/foreign/hello-aarch64"
EMPTY = "testbins/built/broken/empty"
SARIF_SCHEMA = Path(__file__).resolve().parents[2] / "data" / "sarif-schema-2.1.0.json"

# A batch that breaks rules at error and warning level and holds an unreadable input.
FAILING_BATCH = ("--require-static", STATIC, DYNAMIC, RUNPATH_APP, AARCH64, EMPTY)


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths relative to the repository root, as in CI.
    monkeypatch.chdir(REPO)


def check(*args: str) -> Result:
    # An empty policy, so that a [tool.scratchprobe] table the checkout may grow cannot
    # change these results.
    return CliRunner().invoke(main, ["check", "--policy", os.devnull, *args])


def result_of(*paths: str, policy: Policy | None = None) -> CheckResult:
    inspection = inspect(paths, InspectOptions())
    return run_check(inspection, policy or Policy(require_static=True), host="x86_64")


# ----- every format ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(CheckFormat))
def test_every_format_renders_a_failing_batch(fmt: CheckFormat) -> None:
    result = result_of(STATIC, DYNAMIC, AARCH64)
    text = formatter(fmt)(result, FormatOptions(base_dir=str(REPO)))
    assert "c-glibc-dynamic" in text
    # Every format names the binaries and the rules they break.
    assert "SP001" in text
    assert "SP006" in text


@pytest.mark.parametrize("fmt", [fmt.value for fmt in CheckFormat])
def test_cli_exit_code_does_not_depend_on_the_format(fmt: str) -> None:
    assert check("--format", fmt, *FAILING_BATCH).exit_code == 2
    assert check("--format", fmt, "--require-static", STATIC, DYNAMIC).exit_code == 1
    assert check("--format", fmt, "--require-static", STATIC).exit_code == 0


def test_relative_path_only_below_the_base(tmp_path: Path) -> None:
    assert relative_path(str(REPO / DYNAMIC), str(REPO)) == DYNAMIC
    assert relative_path(str(REPO / DYNAMIC), str(tmp_path)) == str(REPO / DYNAMIC)


# ----- text --------------------------------------------------------------------------------


def test_text_has_no_colour_codes_when_piped() -> None:
    result = check("--format", "text", *FAILING_BATCH)
    assert "\x1b[" not in result.stdout
    assert f"{DYNAMIC}: FAIL" in result.stdout
    assert f"{STATIC}: PASS" in result.stdout


def test_text_colour_when_asked() -> None:
    result = result_of(DYNAMIC)
    rendered = formatter(CheckFormat.TEXT)(result, FormatOptions(base_dir=str(REPO), color=True))
    assert "\x1b[" in rendered


# ----- json --------------------------------------------------------------------------------


def _docs_json_schema() -> dict[str, Any]:
    text = (REPO / "docs" / "rules.md").read_text()
    section = text.split("## JSON output", 1)[1]
    match = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert match is not None, "docs/rules.md has no JSON Schema under 'JSON output'"
    schema: dict[str, Any] = json.loads(match.group(1))
    return schema


def test_json_validates_against_the_documented_schema() -> None:
    schema = _docs_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    result = check("--format", "json", "--severity", "SP008=note", *FAILING_BATCH)
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema_version"] == 1
    assert document["exit_code"] == 2
    assert document["passed"] is False


def test_json_schema_rejects_a_wrong_document() -> None:
    # The schema must be able to fail, or the validation above proves nothing.
    schema = _docs_json_schema()
    document = json.loads(check("--format", "json", STATIC).stdout)
    document["binaries"][0]["rules"][0]["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(document)


# ----- sarif -------------------------------------------------------------------------------


def _sarif(*args: str) -> dict[str, Any]:
    result = check("--format", "sarif", *args)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_sarif_of_a_failing_batch_validates_against_the_oasis_schema() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    document = _sarif(*FAILING_BATCH)
    jsonschema.Draft7Validator(schema).validate(document)
    assert document["version"] == "2.1.0"
    broken = dict(document)
    broken["runs"] = [{"results": []}]  # no tool: must not validate
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_sarif_has_what_github_code_scanning_needs() -> None:
    run = _sarif(*FAILING_BATCH)["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "scratchprobe"
    assert driver["version"]
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [rule.code for rule in RULES]
    for descriptor, rule in zip(driver["rules"], RULES, strict=True):
        assert descriptor["name"]
        assert descriptor["shortDescription"]["text"] == rule.title
        assert descriptor["fullDescription"]["text"]
        assert descriptor["help"]["text"]
        assert descriptor["helpUri"].endswith(f"docs/rules.md#{rule.code.lower()}-{rule.name}")
        assert descriptor["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = run["results"]
    assert results
    for result in results:
        assert result["ruleId"] in {rule.code for rule in RULES}
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["region"]["startLine"] == 1
        assert not location["artifactLocation"]["uri"].startswith("/")
    by_rule = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in results
    }
    assert ("SP001", DYNAMIC) in by_rule
    assert ("SP002", "testbins/built/runpath-not-inherited/app") in by_rule
    assert ("SP006", AARCH64) in by_rule
    assert ("SP009", AARCH64) in by_rule
    assert not any(uri == STATIC for _, uri in by_rule)
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["SP001"] == "error"
    assert levels["SP009"] == "warning"


def test_sarif_reports_unreadable_inputs_as_notifications() -> None:
    invocation = _sarif(*FAILING_BATCH)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert [n["message"]["text"] for n in invocation["toolExecutionNotifications"]] == [
        f"{EMPTY}: empty file, not an ELF file"
    ]


def test_sarif_fingerprints_are_stable_and_distinct() -> None:
    first = _sarif(*FAILING_BATCH)["runs"][0]["results"]
    second = _sarif(*FAILING_BATCH)["runs"][0]["results"]
    prints = [r["partialFingerprints"] for r in first]
    assert prints == [r["partialFingerprints"] for r in second]
    assert len({json.dumps(p) for p in prints}) == len(prints)


def test_sarif_uri_outside_the_working_directory_is_a_file_uri(tmp_path: Path) -> None:
    result = result_of(str(BUILT / "c-glibc-dynamic"))
    document = json.loads(formatter(CheckFormat.SARIF)(result, FormatOptions(str(tmp_path))))
    location = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == (BUILT / "c-glibc-dynamic").as_uri()


# ----- junit -------------------------------------------------------------------------------


def test_junit_parses_back_with_one_suite_per_binary_and_one_case_per_rule() -> None:
    result = check("--format", "junit", *FAILING_BATCH)
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {STATIC, DYNAMIC, RUNPATH_APP, AARCH64, EMPTY}
    for name in (STATIC, DYNAMIC, RUNPATH_APP, AARCH64):
        cases = suites[name].findall("testcase")
        assert [c.get("name", "").split()[0] for c in cases] == [rule.code for rule in RULES]
    dynamic = {c.get("name"): c for c in suites[DYNAMIC].findall("testcase")}
    failure = dynamic["SP001 not-static"].find("failure")
    assert failure is not None
    assert failure.get("type") == "SP001"
    assert "Fix: Link statically" in (failure.text or "")
    assert dynamic["SP002 library-not-found"].find("failure") is None
    assert dynamic["SP003 library-not-allowed"].find("skipped") is not None
    assert suites[DYNAMIC].get("failures") == "1"
    assert suites[STATIC].get("failures") == "0"
    aarch64 = {c.get("name"): c for c in suites[AARCH64].findall("testcase")}
    # A warning is not a failure: JUnit would otherwise fail a build that exits 0.
    assert aarch64["SP009 foreign-arch"].find("failure") is None
    assert "warning" in (aarch64["SP009 foreign-arch"].findtext("system-out") or "")
    error = suites[EMPTY].find("testcase/error")
    assert error is not None
    assert error.get("message") == "empty file, not an ELF file"
    total = sum(int(s.get("failures", "0")) for s in suites.values())
    assert root.get("failures") == str(total)
    assert root.get("errors") == "1"


# ----- github ------------------------------------------------------------------------------


def test_github_escaping() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a,b:c%\n") == "a%2Cb%3Ac%25%0A"
    line = command("error", "x: y, z\n", file="dir/a,b:c", title="SP001 t")
    assert line == "::error file=dir/a%2Cb%3Ac,title=SP001 t::x: y, z%0A"


def test_github_commands_per_finding() -> None:
    result = check("--format", "github", *FAILING_BATCH)
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    pattern = re.compile(r"^::(error|warning|notice) file=([^,:]+),title=(SP\d{3}) [^:,]+::(.+)$")
    parsed = []
    for line in commands:
        match = pattern.match(line)
        if match is None:
            assert line == f"::error file={EMPTY},title=scratchprobe%3A unreadable input::" + (
                "empty file, not an ELF file"
            )
            continue
        parsed.append(match.groups())
    assert ("error", DYNAMIC, "SP001") in {(k, f, c) for k, f, c, _ in parsed}
    assert ("warning", AARCH64, "SP009") in {(k, f, c) for k, f, c, _ in parsed}
    assert all("Fix:" in message for *_, message in parsed)
    assert lines[-1].startswith("scratchprobe check: 4 binaries checked, 3 failed, 1 unreadable")
