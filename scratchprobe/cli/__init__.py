"""Command-line shell: parse options, call one core function, render, map errors to exit codes.

Each command lives in its own module and is imported only when it runs, so that
`scratchprobe inspect` never pays for the imports of `verify` or `check`.

Exit codes (README, "Exit codes"): 0 success; 1 a check failed or a binary could not be fully
resolved; 2 usage error or unreadable input. Errors are one line each on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from scratchprobe import __version__

# command name -> module defining `command`, a click.Command
COMMANDS: dict[str, str] = {
    "inspect": "scratchprobe.cli.inspect",
    "check": "scratchprobe.cli.check",
    "rootfs": "scratchprobe.cli.rootfs",
    "verify": "scratchprobe.cli.verify",
    "image": "scratchprobe.cli.image",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's whole first sentence, wrapped to the terminal: click's default
        cuts a summary at 45 columns with '...'."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


def _terminal_width() -> int:
    """COLUMNS first, then the terminal, else 80: shutil.get_terminal_size's rule, without
    importing shutil (its archive modules, bz2 and lzma, cost every run ~5 ms in a fresh
    interpreter); click alone stops at 80 columns even on a wide terminal."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    stdout = sys.__stdout__
    if columns <= 0 and stdout is not None:
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


@click.group(
    cls=_LazyGroup,
    invoke_without_command=True,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": _terminal_width(),
    },
)
@click.version_option(__version__, "-V", "--version", prog_name="scratchprobe")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Find exactly which files a FROM scratch container image needs for ELF binaries,
    without running them."""
    if ctx.invoked_subcommand is None:
        # A bare `scratchprobe` is a request for help, not a usage error.
        click.echo(ctx.get_help())
        ctx.exit(0)
