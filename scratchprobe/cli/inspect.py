"""`scratchprobe inspect`: the main job."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from scratchprobe.cli.options import (
    error,
    forwarded_args,
    inspect_options,
    library_path_option,
    needs_options,
    root_option,
)
from scratchprobe.errors import ScratchprobeError

_STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")


def _check_stage(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A stage name or image reference goes into FROM and COPY --from lines as it is."""
    if not _STAGE.match(value):
        raise click.BadParameter(f"{value!r} is not a stage name or image reference")
    return value


@click.command("inspect")
@click.argument("binaries", nargs=-1, required=False, metavar="BINARY...")
@root_option
@library_path_option
@needs_options
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "copy", "dockerfile", "cyclonedx"]),
    default="text",
    show_default=True,
    help="text: the report; json: the manifest; copy: COPY lines; dockerfile: a scratch "
    "stage; cyclonedx: a CycloneDX 1.6 SBOM (files with SHA-256 and owning packages, Go "
    "modules, Rust crates).",
)
@click.option(
    "--from",
    "stage",
    default="builder",
    show_default=True,
    metavar="STAGE",
    callback=_check_stage,
    help="Builder stage the COPY lines copy from.",
)
@click.option(
    "--rootfs-stage",
    is_flag=True,
    help="With --format dockerfile: run `scratchprobe rootfs` in a stage based on the "
    "builder and COPY its output whole (keeps symlinks and empty directories).",
)
def command(
    binaries: tuple[str, ...],
    root: str,
    library_path: tuple[str, ...],
    output_format: str,
    stage: str,
    rootfs_stage: bool,
    **needs: Any,
) -> None:
    """Report the loader, libraries and files each BINARY needs in a scratch image.

    A directory argument is walked for ELF files. Exit 0 when everything resolved, 1 when a
    library, version or interpreter is missing, 2 for unusable input.
    """
    from scratchprobe.inspect import inspect
    from scratchprobe.render import OutputFormat, RenderOptions, renderer

    try:
        result = inspect(binaries, inspect_options(root, library_path, **needs))
    except ScratchprobeError as exc:
        error(str(exc))
        sys.exit(2)
    fmt = OutputFormat(output_format)
    if fmt in (OutputFormat.JSON, OutputFormat.CYCLONEDX):
        # Digests and package owners cost a read of every file and of the package
        # database: only the outputs that show them pay for them.
        from scratchprobe.annotate import annotate

        result = annotate(result, sbom=fmt is OutputFormat.CYCLONEDX)
    options = RenderOptions(
        stage=stage,
        color=fmt is OutputFormat.TEXT and sys.stdout.isatty(),
        rootfs_stage=forwarded_args(library_path, **needs) if rootfs_stage else None,
    )
    click.echo(renderer(fmt)(result, options), nl=False)
    for problem in result.problems:
        error(f"{problem.path}: {problem.message}")
    sys.exit(result.exit_code)
