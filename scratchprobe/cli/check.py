"""`scratchprobe check`: the CI gate. Exit 0 pass, 1 a rule broken at error level, 2 bad input."""

from __future__ import annotations

import os
import sys

import click

from scratchprobe.cli.options import (
    PlanningFlags,
    batch_progress,
    color_wanted,
    emit,
    error,
    exits_on_error,
    inspect_options,
    note,
    output_option,
    planning_options,
)
from scratchprobe.errors import UsageError
from scratchprobe.render.formats import CheckFormat, names


def _explain(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Print a rule's documentation from the package and stop, like --help."""
    if value is None or ctx.resilient_parsing:
        return
    from scratchprobe.check.rules import RULES, explain

    text = explain(value)
    if text is None:
        codes = ", ".join(rule.code for rule in RULES)
        error(f"--explain: unknown rule {value!r} (one of {codes}, a rule name, or all)")
        ctx.exit(2)
    click.echo(text, nl=False)
    ctx.exit(0)


@click.command("check")
@click.argument("binaries", nargs=-1, required=False, metavar="BINARY...")
@click.option(
    "--explain",
    metavar="CODE",
    callback=_explain,
    expose_value=False,
    is_eager=True,
    help="Print what rule CODE (e.g. SP008) means and how to fix it, or 'all' for every "
    "rule, policy key and format; then exit.",
)
@planning_options()
@click.option(
    "--require-static/--no-require-static",
    "require_static",
    default=None,
    help="Fail binaries that need a loader or shared libraries (SP001).",
)
@click.option(
    "--allow-library",
    "allow_library",
    multiple=True,
    metavar="SONAME",
    help="Allow this library (an fnmatch glob such as 'libc.so.*'); any other fails (SP003). "
    "Repeatable; replaces the policy's list.",
)
@click.option(
    "--max-glibc",
    metavar="X.Y",
    help="Fail binaries needing a GLIBC_x.y symbol version above X.Y (SP004).",
)
@click.option(
    "--deny-runtime",
    "deny_runtime",
    multiple=True,
    metavar="KIND",
    help="Fail binaries needing a file of this kind (library, interpreter, ...) (SP007). "
    "Repeatable; replaces the policy's list.",
)
@click.option(
    "--arch",
    metavar="ARCH",
    help="The image's architecture (x86_64, aarch64, amd64, arm64, ...); any other fails "
    "(SP009). Default: compare with this machine, as a warning.",
)
@click.option(
    "--severity",
    "severity",
    multiple=True,
    metavar="CODE=LEVEL",
    help="Set a rule's severity: error, warning, note or off (e.g. SP008=error). Repeatable.",
)
@click.option(
    "--policy",
    "policy_file",
    metavar="FILE",
    help="Policy TOML file. Default: ./scratchprobe.toml, else [tool.scratchprobe] in the "
    "nearest pyproject.toml. Flags win over the file.",
)
@click.option(
    "-f",
    "--format",
    "output_format",
    type=click.Choice(names(CheckFormat)),
    default="text",
    show_default=True,
    help="text: report; json: for programs; sarif: code scanning; junit: CI test report; "
    "github: workflow annotations.",
)
@output_option
def command(
    binaries: tuple[str, ...],
    planning: PlanningFlags,
    require_static: bool | None,
    allow_library: tuple[str, ...],
    max_glibc: str | None,
    deny_runtime: tuple[str, ...],
    arch: str | None,
    severity: tuple[str, ...],
    policy_file: str | None,
    output_format: str,
    output: str | None,
) -> None:
    """Check each BINARY against the policy: static linkage, libraries, glibc floor, ...

    Every binary is checked even when one fails. Exit 0 when all pass (warnings allowed),
    1 when a rule at error level is broken, 2 for a usage error or unreadable input.
    Rules: scratchprobe check --explain all.
    """
    from scratchprobe.check.engine import run_check
    from scratchprobe.check.formats import FormatOptions, formatter
    from scratchprobe.check.policy import (
        PolicyOverrides,
        load_policy,
        merge,
        normalize_arch,
        parse_glibc_version,
        parse_rule_code,
        parse_severity,
    )
    from scratchprobe.pipeline import inspect

    with exits_on_error():
        severities = []
        for item in severity:
            code, sep, level = item.partition("=")
            if not sep:
                raise UsageError(f"--severity: {item!r} is not CODE=LEVEL")
            severities.append(
                (parse_rule_code(code, "--severity"), parse_severity(level, "--severity"))
            )
        overrides = PolicyOverrides(
            require_static=require_static,
            allow_libraries=allow_library or None,
            max_glibc=parse_glibc_version(max_glibc, "--max-glibc") if max_glibc else None,
            deny_runtime=deny_runtime or None,
            arch=normalize_arch(arch, "--arch") if arch else None,
            severity=tuple(severities),
        )
        cwd = os.getcwd()
        policy = merge(load_policy(policy_file, cwd), overrides)
        with batch_progress() as progress:
            inspection = inspect(binaries, inspect_options(planning), progress=progress)
    result = run_check(inspection, policy)
    fmt = CheckFormat(output_format)
    options = FormatOptions(base_dir=cwd, color=fmt is CheckFormat.TEXT and color_wanted(output))
    emit(formatter(fmt)(result, options), output)
    for line in inspection.notes:
        note(line)
    for problem in result.problems:
        error(f"{problem.path}: {problem.message}")
    sys.exit(result.exit_code)
