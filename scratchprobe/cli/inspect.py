"""`scratchprobe inspect`: the main job."""

from __future__ import annotations

import sys

import click

from scratchprobe.cli.options import error, library_path_option, root_option
from scratchprobe.errors import ScratchprobeError


@click.command("inspect")
@click.argument("binaries", nargs=-1, required=True, metavar="BINARY...")
@root_option
@library_path_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "copy", "dockerfile"]),
    default="text",
    show_default=True,
    help="text: the report; json: the manifest; copy: COPY lines; dockerfile: a scratch stage.",
)
@click.option(
    "--from",
    "stage",
    default="builder",
    show_default=True,
    metavar="STAGE",
    help="Builder stage the COPY lines copy from.",
)
def command(
    binaries: tuple[str, ...],
    root: str,
    library_path: tuple[str, ...],
    output_format: str,
    stage: str,
) -> None:
    """Report the loader, libraries and files each BINARY needs in a scratch image.

    A directory argument is walked for ELF files. Exit 0 when everything resolved, 1 when a
    library, version or interpreter is missing, 2 for unusable input.
    """
    from scratchprobe.inspect import InspectOptions, inspect
    from scratchprobe.render import OutputFormat, RenderOptions, renderer

    try:
        result = inspect(binaries, InspectOptions(root=root, library_path=library_path))
    except ScratchprobeError as exc:
        error(str(exc))
        sys.exit(2)
    fmt = OutputFormat(output_format)
    options = RenderOptions(stage=stage, color=fmt is OutputFormat.TEXT and sys.stdout.isatty())
    click.echo(renderer(fmt)(result, options), nl=False)
    for problem in result.problems:
        error(f"{problem.path}: {problem.message}")
    sys.exit(result.exit_code)
