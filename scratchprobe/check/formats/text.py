"""`--format text`: the human report (rich), like `inspect`'s. Colour only on a terminal.

Only what needs attention is listed per binary (broken rules with their fix); passed and
skipped rules are counted, not listed, so a batch of 500 passing binaries stays readable.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape as markup_escape

from scratchprobe.check.engine import BinaryCheck, CheckResult, Status
from scratchprobe.check.formats import FormatOptions, relative_path
from scratchprobe.check.rules import Severity
from scratchprobe.render.console import report_console
from scratchprobe.render.names import visible_text


def escape(text: str) -> str:
    """Names shown visibly escaped (docs/output-encoding.md), then rich markup escaped."""
    return markup_escape(visible_text(text))


_MARK = {
    Severity.ERROR: "[red]✗ error[/red]",
    Severity.WARNING: "[yellow]! warning[/yellow]",
    Severity.NOTE: "[blue]i note[/blue]",
}


def _binary(console: Console, check: BinaryCheck, options: FormatOptions) -> None:
    verdict = "[green]PASS[/green]" if check.passed else "[red bold]FAIL[/red bold]"
    console.print(
        f"[bold]{escape(relative_path(check.file, options.base_dir))}[/bold]: {verdict} "
        f"[dim]({escape(check.linkage)} {escape(check.arch)})[/dim]"
    )
    for outcome in check.failed:
        rule = outcome.rule
        console.print(f"  {_MARK.get(outcome.severity, '')} {rule.code} {escape(rule.title)}")
        for finding in outcome.findings:
            console.print(f"      {escape(finding.message)}")
        console.print(f"      [dim]fix:[/dim] {escape(rule.fix)}")
        console.print(f"      [dim]see {escape(rule.help_uri)}[/dim]")
    passed = sum(o.status is Status.PASSED for o in check.outcomes)
    skipped = sum(o.status is Status.SKIPPED for o in check.outcomes)
    console.print(f"  [dim]{passed} rules passed, {skipped} not enabled by the policy[/dim]")


def render(result: CheckResult, options: FormatOptions) -> str:
    buffer = io.StringIO()
    console = report_console(buffer, options.color, options.width)
    for check in result.binaries:
        _binary(console, check, options)
    failed = sum(not b.passed for b in result.binaries)
    count = len(result.binaries)
    summary = (
        f"{count} binar{'y' if count == 1 else 'ies'} checked: {count - failed} passed, "
        f"{failed} failed"
    )
    if result.problems:
        summary += f"; {len(result.problems)} input{'s' if len(result.problems) != 1 else ''} "
        summary += "could not be read"
    source = result.policy.source or "defaults and command-line flags"
    console.print(f"{escape(summary)} [dim](policy: {escape(source)})[/dim]")
    return buffer.getvalue()
