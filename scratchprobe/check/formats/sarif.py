"""`--format sarif`: SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

What GitHub needs (docs.github.com, "SARIF support for code scanning"): `tool.driver` with
`name`, `version`, `informationUri` and `rules`; each rule with `id`, `name`,
`shortDescription`, `fullDescription`, `help`, `helpUri` and `defaultConfiguration.level`;
each result with `ruleId`, `level`, `message` and a `physicalLocation` whose URI is relative
to the repository root, with a region. A binary has no lines, so the region is line 1: that
is where the alert is anchored in the file view.

The tests validate this output against the OASIS schema (tests/data/sarif-schema-2.1.0.json).

Names that are not valid UTF-8 (docs/output-encoding.md): an artifact URI percent-encodes the
file name's bytes, as a URI does (RFC 3986 §2.1, RFC 8089 for file:), and every text shows
an undecodable byte as `\\xNN`, so the log is strict UTF-8 JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any
from urllib.parse import quote

from scratchprobe import __version__
from scratchprobe.check.engine import BinaryCheck, CheckResult, Finding, RuleOutcome
from scratchprobe.check.formats import FormatOptions, relative_path
from scratchprobe.check.rules import PROJECT_URL, RULES, Rule, Severity
from scratchprobe.render.names import machine_document

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

# SARIF's `level` has no "off"; a rule switched off is "none" in its configuration.
_LEVEL = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.NOTE: "note",
    Severity.OFF: "none",
}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": _pascal(rule.name),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.meaning},
        "help": {
            "text": f"{rule.meaning}\n\nFix: {rule.fix}",
            "markdown": f"{rule.meaning}\n\n**Fix:** {rule.fix}\n\n[{rule.code} in docs/rules.md]"
            f"({rule.help_uri})",
        },
        "helpUri": rule.help_uri,
        "defaultConfiguration": {"level": _LEVEL[rule.default_severity]},
    }


def _artifact(path: str, options: FormatOptions) -> dict[str, Any]:
    shown = relative_path(path, options.base_dir)
    if os.path.isabs(shown):
        return {"uri": pathlib.Path(shown).as_uri()}
    # quote() of the bytes: a name that is not UTF-8 keeps its exact bytes as %NN.
    return {"uri": quote(os.fsencode(pathlib.PurePath(shown).as_posix())), "uriBaseId": SRCROOT}


def _fingerprint(rule: Rule, artifact: dict[str, Any], finding: Finding) -> str:
    # Stable across runs and machines (no absolute paths when the file is in the
    # repository), so code scanning matches a finding with last run's alert.
    key = "\0".join((rule.code, str(artifact["uri"]), finding.subject))
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _results(check: BinaryCheck, options: FormatOptions) -> list[dict[str, Any]]:
    artifact = _artifact(check.file, options)
    out: list[dict[str, Any]] = []
    for outcome in check.failed:
        out += [_result(outcome, finding, artifact) for finding in outcome.findings]
    return out


def _result(outcome: RuleOutcome, finding: Finding, artifact: dict[str, Any]) -> dict[str, Any]:
    rule = outcome.rule
    return {
        "ruleId": rule.code,
        "ruleIndex": RULES.index(rule),
        "level": _LEVEL[outcome.severity],
        "message": {"text": f"{rule.title}: {finding.message}"},
        "locations": [
            {"physicalLocation": {"artifactLocation": artifact, "region": {"startLine": 1}}}
        ],
        "partialFingerprints": {"scratchprobeFinding/v1": _fingerprint(rule, artifact, finding)},
    }


def render(result: CheckResult, options: FormatOptions) -> str:
    base = pathlib.Path(os.path.abspath(options.base_dir)).as_uri().rstrip("/") + "/"
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{problem.path}: {problem.message}"},
            "locations": [
                {"physicalLocation": {"artifactLocation": _artifact(problem.path, options)}}
            ],
        }
        for problem in result.problems
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "scratchprobe",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": PROJECT_URL,
                "rules": [_rule(rule) for rule in RULES],
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": base}},
        "invocations": [
            {
                "executionSuccessful": not result.problems,
                "exitCode": result.exit_code,
                "toolExecutionNotifications": notifications,
            }
        ],
        "results": [r for check in result.binaries for r in _results(check, options)],
    }
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(machine_document(document), indent=2) + "\n"
