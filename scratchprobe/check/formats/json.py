"""`--format json`: the check result for programs, schema_version 1.

The JSON Schema of this document is published in docs/rules.md ("JSON output") and the
tests validate this output against the schema taken from that page, so the two agree.
A public contract like the manifest: add fields, never rename. Every string is written
with undecodable bytes as `\\xNN` (docs/output-encoding.md), so the document is strict
UTF-8 JSON.
"""

from __future__ import annotations

import json
from typing import Any

from scratchprobe import __version__
from scratchprobe.check.engine import BinaryCheck, CheckResult, RuleOutcome
from scratchprobe.check.formats import FormatOptions, relative_path
from scratchprobe.check.policy import Policy
from scratchprobe.elf.reader import format_version
from scratchprobe.render.names import machine_document

SCHEMA_VERSION = 1


def _policy(policy: Policy) -> dict[str, Any]:
    return {
        "source": policy.source,
        "require_static": policy.require_static,
        "allow_libraries": (
            list(policy.allow_libraries) if policy.allow_libraries is not None else None
        ),
        "max_glibc": format_version(policy.max_glibc) if policy.max_glibc else None,
        "deny_runtime": list(policy.deny_runtime),
        "arch": policy.arch,
        "severity": {code: severity.value for code, severity in policy.severity},
    }


def _outcome(outcome: RuleOutcome) -> dict[str, Any]:
    return {
        "code": outcome.rule.code,
        "name": outcome.rule.name,
        "title": outcome.rule.title,
        "status": outcome.status.value,
        "level": outcome.severity.value,
        "findings": [{"message": f.message, "subject": f.subject} for f in outcome.findings],
        "skip_reason": outcome.skip_reason,
    }


def _binary(check: BinaryCheck, options: FormatOptions) -> dict[str, Any]:
    return {
        "input": check.label,
        "file": relative_path(check.file, options.base_dir),
        "path": check.path,
        "arch": check.arch,
        "linkage": check.linkage,
        "passed": check.passed,
        "rules": [_outcome(outcome) for outcome in check.outcomes],
    }


def render(result: CheckResult, options: FormatOptions) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "scratchprobe", "version": __version__},
        "root": result.root,
        "policy": _policy(result.policy),
        "expected_arch": result.expected_arch,
        "passed": result.passed,
        "exit_code": result.exit_code,
        "binaries": [_binary(check, options) for check in result.binaries],
        "problems": [{"input": p.path, "message": p.message} for p in result.problems],
    }
    return json.dumps(machine_document(document), indent=2) + "\n"
