"""`scratchprobe rootfs`: write the plan as a directory or a reproducible tar."""

from __future__ import annotations

import os
import sys

import click

from scratchprobe.cli.options import (
    PlanningFlags,
    cannot,
    error,
    exits_on_error,
    fail,
    inspect_options,
    planning_options,
    warning,
)


@click.command("rootfs")
@click.argument("binaries", nargs=-1, required=False, metavar="BINARY...")
@click.option(
    "--output",
    "-o",
    "output_dir",
    metavar="DIR",
    help="Write the root filesystem as the directory DIR (replaced atomically).",
)
@click.option(
    "--tar",
    "output_tar",
    metavar="FILE",
    help="Write it as a reproducible tar, for `ADD FILE /` (SOURCE_DATE_EPOCH sets mtimes); "
    "`-` streams it to stdout.",
)
@planning_options()
@click.option(
    "--install",
    metavar="PATH",
    help="Put the (single) binary at PATH in the image; its closure is resolved for PATH.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a non-empty directory that scratchprobe did not write.",
)
def command(
    binaries: tuple[str, ...],
    output_dir: str | None,
    output_tar: str | None,
    planning: PlanningFlags,
    install: str | None,
    force: bool,
) -> None:
    """Write exactly the files the image needs (the plan of `inspect`) as a directory or tar.

    Nothing is published unless complete: a failed run leaves the previous output as it was.
    Exit 0 when written, 1 when written but some library stayed unresolved, 2 for unusable
    input or a refused destination.
    """
    from scratchprobe.pipeline import inspect_for_image
    from scratchprobe.render.names import visible_text
    from scratchprobe.rootfs import (
        Destination,
        OutputKind,
        RootfsResult,
        source_date_epoch,
        stream_rootfs,
        write_rootfs,
    )

    if (output_dir is None) == (output_tar is None):
        fail("give exactly one of --output DIR and --tar FILE")
    stream = output_tar == "-"
    if stream and sys.stdout.isatty():
        fail("--tar -: refusing to write a tar archive to a terminal; redirect stdout")
    destination = (
        Destination(output_dir, OutputKind.DIRECTORY)
        if output_dir is not None
        else Destination(str(output_tar), OutputKind.TAR)
    )
    with exits_on_error(cannot(destination.path, "cannot write")):
        mtime = source_date_epoch(os.environ)
        inspection = inspect_for_image(binaries, inspect_options(planning), install)
        if inspection.problems:
            for problem in inspection.problems:
                error(f"{problem.path}: {problem.message}")
            fail(f"{destination.path}: nothing written")
        if stream:
            # Not a file named `-`: the archive goes to stdout, so the summary goes to stderr.
            tree = stream_rootfs(inspection.plan, inspection.fs, sys.stdout.buffer, mtime=mtime)
            sys.stdout.buffer.flush()
            result = RootfsResult(destination, tree)
        else:
            result = write_rootfs(
                inspection.plan, inspection.fs, destination, force=force, mtime=mtime
            )
    # Names in the warnings visibly escaped (docs/output-encoding.md): one line each.
    for message in inspection.warnings + result.layout.warnings:
        warning(visible_text(message))
    for report in inspection.binaries:
        closure = report.closure
        if closure is None or not report.unresolved:
            continue
        missing = [m.name for m in closure.missing]
        missing += [f"{v.library} ({v.version})" for v in closure.missing_versions]
        if closure.interpreter_missing:
            missing.insert(0, f"interpreter {report.elf.interpreter}")
        warning(
            visible_text(
                f"{report.label}: unresolved, will not run from this image: {', '.join(missing)}"
            )
        )
    click.echo(
        f"wrote {'the tar archive to stdout' if stream else visible_text(destination.path)}: "
        f"{result.file_count} files, {result.directory_count} "
        f"directories, {result.symlink_count} symlinks, {result.total_bytes} bytes",
        err=stream,
    )
    sys.exit(inspection.exit_code)
