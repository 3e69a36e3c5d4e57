"""`scratchprobe inspect`: the main job."""

from __future__ import annotations

import re
import sys
from dataclasses import replace

import click

from scratchprobe.cli.options import (
    PlanningFlags,
    batch_progress,
    color_wanted,
    emit,
    error,
    exits_on_error,
    forwarded_args,
    inspect_options,
    note,
    output_option,
    planning_options,
    warning,
)
from scratchprobe.render.formats import OutputFormat, names

# Matched with fullmatch: `$` would also match before a trailing newline ("builder\n").
_STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]*")


def _check_stage(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A stage name or image reference goes into FROM and COPY --from lines as it is."""
    if not _STAGE.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a stage name or image reference")
    return value


@click.command("inspect")
@click.argument("binaries", nargs=-1, required=False, metavar="BINARY...")
@planning_options()
@click.option(
    "-f",
    "--format",
    "output_format",
    type=click.Choice(names(OutputFormat)),
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
@click.option(
    "--install",
    metavar="PATH",
    help="Put the (single) binary at PATH in the image, as `rootfs --install` does; its "
    "closure is resolved for PATH. Default: its path in the root, or /NAME for a file "
    "from the build context.",
)
@click.option(
    "--full",
    is_flag=True,
    help="With --format text: also each binary's library tree (who needs what, and which "
    "loader rule found it) and the COPY lines, after the summary.",
)
@output_option
def command(
    binaries: tuple[str, ...],
    planning: PlanningFlags,
    output_format: str,
    stage: str,
    rootfs_stage: bool,
    install: str | None,
    full: bool,
    output: str | None,
) -> None:
    """Report the loader, libraries and files each BINARY needs in a scratch image.

    A directory argument is walked for ELF files. Exit 0 when everything resolved, 1 when a
    library, version or interpreter is missing, 2 for unusable input.
    """
    from scratchprobe.model import all_warnings
    from scratchprobe.pipeline import inspect
    from scratchprobe.render import ANNOTATED, SIZED, OutputFormat, RenderOptions, renderer

    fmt = OutputFormat(output_format)
    with exits_on_error():
        options = replace(inspect_options(planning), sizes=fmt in SIZED)
        if install is None:
            with batch_progress() as progress:
                result = inspect(binaries, options, progress=progress)
        else:
            from scratchprobe.pipeline import inspect_for_image

            result = inspect_for_image(binaries, options, install)
    annotations = None
    if fmt in ANNOTATED:
        # Digests and package owners cost a read of every file and of the package
        # database: only the outputs that show them pay for them.
        from scratchprobe.annotate import annotate

        annotations = annotate(result, sbom=ANNOTATED[fmt])
    render_options = RenderOptions(
        stage=stage,
        color=fmt is OutputFormat.TEXT and color_wanted(output),
        full=full,
        rootfs_stage=(
            forwarded_args(planning) + (("--install", install) if install else ())
            if rootfs_stage
            else None
        ),
    )
    # A name no Dockerfile can express: nothing on stdout, one line on stderr.
    with exits_on_error():
        rendered = renderer(fmt)(result, render_options, annotations)
    emit(rendered, output)
    for line in result.notes:
        note(line)
    # Every problem is one line on stderr in every format, also where the output carries it
    # too (the text report, JSON `missing`/`warnings`, comments in copy and dockerfile).
    for problem in result.problems:
        error(f"{problem.path}: {problem.message}")
    for unresolved in result.unresolved:
        error(unresolved)
    for message in all_warnings(result, annotations):
        warning(message)
    sys.exit(result.exit_code)
