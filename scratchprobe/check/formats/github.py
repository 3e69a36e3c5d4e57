"""`--format github`: GitHub Actions workflow commands, shown as annotations on the run.

`::error file=PATH,title=TITLE::MESSAGE`, one line per finding (docs.github.com, "Workflow
commands for GitHub Actions"). The runner splits the command on `::` and its properties on
`,` and `=`, so the message escapes `%`, CR and LF and every property value also escapes `:`
and `,` (the same escaping as @actions/core's `escapeData` / `escapeProperty`). Before that,
undecodable bytes and control characters other than CR and LF are written visibly
(`\\xNN`, docs/output-encoding.md): an ESC in a name would otherwise colour or hide the log.
"""

from __future__ import annotations

from scratchprobe.check.engine import CheckResult
from scratchprobe.check.formats import FormatOptions, relative_path
from scratchprobe.check.rules import Severity
from scratchprobe.render.names import visible_text

_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def escape_data(text: str) -> str:
    text = visible_text(text, keep="\r\n")
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **properties: str) -> str:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{kind} {props}::{escape_data(message)}"


def render(result: CheckResult, options: FormatOptions) -> str:
    lines: list[str] = []
    for check in result.binaries:
        path = relative_path(check.file, options.base_dir)
        for outcome in check.failed:
            rule = outcome.rule
            for finding in outcome.findings:
                lines.append(
                    command(
                        _COMMAND[outcome.severity],
                        f"{finding.message}. Fix: {rule.fix} ({rule.help_uri})",
                        file=path,
                        title=f"{rule.code} {rule.title}",
                    )
                )
    for problem in result.problems:
        lines.append(
            command(
                "error",
                problem.message,
                file=relative_path(problem.path, options.base_dir),
                title="scratchprobe: unreadable input",
            )
        )
    failed = sum(not b.passed for b in result.binaries)
    count = len(result.binaries)
    # A plain line (not a command) so the log says what happened even with no findings.
    lines.append(
        f"scratchprobe check: {count} binar{'y' if count == 1 else 'ies'} checked, "
        f"{failed} failed, {len(result.problems)} unreadable"
    )
    return "\n".join(lines) + "\n"
