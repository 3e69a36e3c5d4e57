"""Command-line shell: parse options, call one core function, render, map errors to exit codes.

Each command lives in its own module and is imported only when it runs, so that
`scratchprobe inspect` never pays for the imports of `verify` or `check`.

Exit codes (DESIGN.md): 0 success; 1 a check failed or a binary could not be fully
resolved; 2 usage error or unreadable input. Errors are one line each on stderr.
"""

from __future__ import annotations

import importlib

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

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scratchprobe")
def main() -> None:
    """Find exactly which files a FROM scratch container image needs for ELF binaries,
    without running them."""
