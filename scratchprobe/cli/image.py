"""`scratchprobe image`: write the plan as an OCI image layout, OCI archive or docker-archive."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

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
from scratchprobe.render.formats import ImageFormat, names

if TYPE_CHECKING:
    from scratchprobe.source.reference import SourceImage

# distribution/reference's grammar, reduced: [host[:port]/]path[:tag]; path components
# lowercase alphanumerics joined by '.', '_', '__' or '-'.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$"
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


def _check_tag(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _TAG.match(value):
        raise click.BadParameter(f"{value!r} is not NAME[:TAG] (lowercase name)")
    return value


def _pairs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not _KEY.match(key):
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        pairs.append((key, rest))
    return tuple(pairs)


def _entrypoint(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    if value.startswith("["):
        try:
            words = json.loads(value)
        except ValueError:
            words = None
        if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
            raise click.BadParameter(f"{value!r} is not a JSON array of strings") from None
        return tuple(words)
    return (value,)


@click.command("image")
@click.argument("binaries", nargs=-1, required=False, metavar="BINARY...")
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    metavar="PATH",
    help="PATH ending in .tar: an OCI archive; else an OCI image layout directory (new, "
    "empty, or an existing layout to add the image to).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(names(ImageFormat)),
    help="Choose the format instead of going by PATH; docker-archive is what `docker load` "
    "and `podman load` read.",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(file_okay=False),
    help="The builder's filesystem (default /). Give it once per platform (the binaries at "
    "the same paths in each) for a multi-platform image index.",
)
@planning_options(root=False)
@click.option("--tag", metavar="NAME[:TAG]", callback=_check_tag, help="The image's name.")
@click.option(
    "--entrypoint",
    metavar="PATH|JSON",
    callback=_entrypoint,
    help='ENTRYPOINT: a path, or a JSON array ["/app", "--flag"] (default: the first binary).',
)
@click.option("--cmd", "cmd", multiple=True, metavar="ARG", help="One CMD word. Repeatable.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_pairs,
    help="ENV beside the variables the plan sets (wins over them). Repeatable.",
)
@click.option("--workdir", metavar="DIR", help="WORKDIR of the container.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_pairs,
    help="A config label (org.opencontainers.image.title=...). Repeatable.",
)
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_pairs,
    help="An OCI manifest annotation (org.opencontainers.image.source=...). Repeatable.",
)
@click.option(
    "--sbom",
    is_flag=True,
    help="Attach the CycloneDX SBOM as an OCI artifact referring to the image.",
)
@click.option(
    "--package-metadata",
    "package_metadata",
    is_flag=True,
    help="Add the package-database entries (dpkg status.d, apk installed) of the packages "
    "whose files the image holds, for vulnerability scanners.",
)
def command(
    binaries: tuple[str, ...],
    output: str,
    output_format: str | None,
    roots: tuple[str, ...],
    planning: PlanningFlags,
    tag: str | None,
    entrypoint: tuple[str, ...] | None,
    cmd: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    workdir: str | None,
    labels: tuple[tuple[str, str], ...],
    annotations: tuple[tuple[str, str], ...],
    sbom: bool,
    package_metadata: bool,
    source: SourceImage | None = None,
) -> None:
    """Write the files the image needs (the plan of `inspect`) as a runnable image, without
    a daemon. The same inputs and SOURCE_DATE_EPOCH give the same bytes and digests.

    Exit 0 when written, 1 when written but some library stayed unresolved, 2 for unusable
    input or a refused destination.
    """
    from scratchprobe.image.build import ImageOptions, build_image, format_for
    from scratchprobe.pipeline import inspect_for_image
    from scratchprobe.rootfs import source_date_epoch

    exposed_ports: tuple[str, ...] = ()
    stop_signal = None
    if source is not None:
        # The image config carries over (docs/slim.md): the options win, as a later
        # Dockerfile instruction would; --env and --label add to the image's.
        config = source.config
        if entrypoint is None and config.argv:
            # Both kept as they are, so that `podman run IMAGE ARGS` replaces CMD as before.
            entrypoint = config.entrypoint
            cmd = cmd or config.cmd
        env = tuple(config.env) + env
        workdir = workdir or config.workdir
        labels = tuple(config.labels) + labels
        exposed_ports = config.exposed_ports
        stop_signal = config.stop_signal
    if workdir is not None and not workdir.startswith("/"):
        fail(f"--workdir {workdir}: not an absolute path")
    with exits_on_error(cannot(output, "cannot write")):
        options = ImageOptions(
            destination=output,
            format=format_for(output, output_format),
            tag=tag,
            entrypoint=entrypoint,
            cmd=cmd or None,
            env=env,
            workdir=workdir,
            labels=labels,
            annotations=annotations,
            sbom=sbom,
            package_metadata=package_metadata,
            mtime=source_date_epoch(os.environ),
            exposed_ports=exposed_ports,
            stop_signal=stop_signal,
        )
        inspections = tuple(
            inspect_for_image(binaries, inspect_options(replace(planning, root=root)))
            for root in roots or ("/",)
        )
        problems = [p for i in inspections for p in i.problems]
        if problems:
            for problem in dict.fromkeys(problems):
                error(f"{problem.path}: {problem.message}")
            fail(f"{output}: nothing written")
        result = build_image(inspections, options)
    warnings = [w for i in inspections for w in i.warnings] + list(result.warnings)
    for message in dict.fromkeys(warnings):
        warning(message)
    exit_code = 0
    for inspection in inspections:
        for report in inspection.binaries:
            if report.unresolved:
                warning(f"{report.label}: unresolved in {inspection.root}, will not run")
                exit_code = 1
    click.echo(f"wrote {result.destination} ({result.format.value})")
    for image in result.images:
        size = sum(layer.size for layer in image.layers)
        packed = "gzip" if image.layers[0].media_type.endswith("+gzip") else "uncompressed"
        click.echo(
            f"  {image.platform}: manifest {image.manifest.digest}, "
            f"{len(image.layers)} layers ({', '.join(b.role.value for b in image.layers)}), "
            f"{size} bytes ({packed})"
        )
        if image.sbom is not None:
            click.echo(f"    sbom: {image.sbom.digest}")
        if image.packages:
            click.echo(f"    packages: {', '.join(image.packages)}")
    if len(result.images) > 1:
        click.echo(f"  index {result.top.digest}")
    if source is not None:
        from scratchprobe.source.slim import render_slim, slim_report

        image = result.images[0]
        slim = slim_report(source, inspections[0], sum(b.size for b in image.layers))
        click.echo(render_slim(slim), nl=False)
    sys.exit(exit_code)
