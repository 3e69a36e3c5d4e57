"""The whole `image` job: from the inspections (one per builder root) to a written image.

Per root: the plan is expanded by the rootfs writer's `layout` (the same safety rules and
entries as `scratchprobe rootfs`), split into layers (scratchprobe.image.layers), and given a
config and a manifest whose descriptor carries the platform read from the binaries. One
root gives an image manifest; several give an image index with one manifest per platform
(image-spec image-index.md), the same platform twice being refused.

`--sbom` adds, per platform, the CycloneDX SBOM as an OCI 1.1 artifact: a manifest with
`artifactType` application/vnd.cyclonedx+json, the empty config, the SBOM as its one layer
and `subject` the image manifest it describes (image-spec manifest.md "subject",
"Guidelines for Artifact Usage"); it is listed in the layout's index.json, where tools that
look for referrers in a layout find it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

from scratchprobe.errors import UsageError
from scratchprobe.image.config import (
    MEDIA_TYPE_CONFIG,
    RunConfig,
    config_json,
    merged_env,
    rfc3339,
)
from scratchprobe.image.docker_archive import MANIFEST_FILE, manifest_file
from scratchprobe.image.layers import LayerBlob, LayerRole, split, write_layer
from scratchprobe.image.layout import (
    CREATED,
    EMPTY_JSON,
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    REF_NAME,
    BlobDirectory,
    Descriptor,
    index_json,
    manifest_json,
    publish_archive,
    publish_layout,
    staging_directory,
    write_layout_files,
)
from scratchprobe.image.platform import Platform, common_platform
from scratchprobe.model import Inspection
from scratchprobe.render.formats import ImageFormat
from scratchprobe.rootfs import layout

MEDIA_TYPE_CYCLONEDX = "application/vnd.cyclonedx+json"


def format_for(path: str, explicit: str | None) -> ImageFormat:
    """`--format` when given, else from the path: `*.tar` an OCI archive, else a layout."""
    if explicit is not None:
        return ImageFormat(explicit)
    return ImageFormat.OCI_ARCHIVE if path.endswith(".tar") else ImageFormat.OCI_LAYOUT


@dataclass(frozen=True)
class ImageOptions:
    destination: str
    format: ImageFormat
    tag: str | None = None
    entrypoint: tuple[str, ...] | None = None
    """None: the first binary."""
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    sbom: bool = False
    package_metadata: bool = False
    mtime: int = 0
    """SOURCE_DATE_EPOCH: every mtime and timestamp of the image."""
    exposed_ports: tuple[str, ...] = ()
    """`80/tcp`, ...: carried over from a --from-image source."""
    stop_signal: str | None = None


@dataclass(frozen=True)
class PlatformImage:
    """One platform's image as written."""

    platform: Platform
    root: str
    manifest: Descriptor
    config: Descriptor
    layers: tuple[LayerBlob, ...]
    sbom: Descriptor | None = None
    packages: tuple[str, ...] = ()
    """Names of the packages whose database entries the image holds."""


@dataclass(frozen=True)
class ImageResult:
    destination: str
    format: ImageFormat
    images: tuple[PlatformImage, ...]
    top: Descriptor
    """What the tag names: the manifest, or the index of a multi-platform image."""
    warnings: tuple[str, ...]


def _entrypoint(inspections: tuple[Inspection, ...], options: ImageOptions) -> tuple[str, ...]:
    if options.entrypoint is not None:
        return options.entrypoint
    firsts = {i.binaries[0].path for i in inspections if i.binaries}
    if len(firsts) != 1:
        raise UsageError(
            "the first binary has a different image path in each --root "
            f"({', '.join(sorted(firsts))}); give --entrypoint"
        )
    return (firsts.pop(),)


def _sbom_text(inspection: Inspection) -> bytes:
    from scratchprobe.annotate import annotate
    from scratchprobe.render import RenderOptions
    from scratchprobe.render.cyclonedx import render

    return render(inspection, RenderOptions(), annotate(inspection, sbom=True)).encode()


def _platform_image(
    inspection: Inspection,
    platform: Platform,
    blobs: BlobDirectory,
    run: RunConfig,
    options: ImageOptions,
    warnings: list[str],
) -> PlatformImage:
    tree = layout(inspection.plan, inspection.fs)
    warnings += tree.warnings
    parts = split(inspection.plan, tree)
    packages: tuple[str, ...] = ()
    if options.package_metadata:
        from scratchprobe.image.packages import package_metadata

        metadata = package_metadata(inspection, tree)
        warnings += metadata.warnings
        packages = tuple(p.name for p in metadata.packages)
        if metadata.entries:
            parts[LayerRole.PACKAGES] = metadata.entries
    compress = options.format is not ImageFormat.DOCKER_ARCHIVE
    layers = tuple(
        write_layer(role, entries, options.mtime, blobs.blobs, compress)
        for role, entries in parts.items()
    )
    if not layers:
        raise UsageError(f"{inspection.root}: the plan is empty, there is nothing to write")
    run = replace(run, user=inspection.user)
    config = blobs.put(config_json(run, platform, layers, options.mtime), MEDIA_TYPE_CONFIG)
    annotations = ((CREATED, rfc3339(options.mtime)), *options.annotations)
    layer_descriptors = tuple(Descriptor(b.media_type, b.digest, b.size) for b in layers)
    manifest = blobs.put(
        manifest_json(config, layer_descriptors, annotations),
        MEDIA_TYPE_MANIFEST,
        platform=platform,
    )
    sbom: Descriptor | None = None
    if options.sbom:
        document = blobs.put(_sbom_text(inspection), MEDIA_TYPE_CYCLONEDX)
        empty = blobs.put(EMPTY_JSON, MEDIA_TYPE_EMPTY, data=EMPTY_JSON)
        subject = replace(manifest, platform=None)
        artifact = manifest_json(
            empty,
            (document,),
            ((CREATED, rfc3339(options.mtime)),),
            subject=subject,
            artifact_type=MEDIA_TYPE_CYCLONEDX,
        )
        sbom = blobs.put(artifact, MEDIA_TYPE_MANIFEST, artifact_type=MEDIA_TYPE_CYCLONEDX)
    return PlatformImage(platform, inspection.root, manifest, config, layers, sbom, packages)


def build_image(inspections: tuple[Inspection, ...], options: ImageOptions) -> ImageResult:
    """Write the image of `inspections` (one per builder root) to the destination."""
    if not inspections:
        raise UsageError("no builder root given")
    platforms: dict[Platform, str] = {}
    for inspection in inspections:
        platform = common_platform((b.label, b.elf) for b in inspection.binaries)
        if platform in platforms:
            raise UsageError(
                f"--root {platforms[platform]} and --root {inspection.root} both give "
                f"{platform}: one image per platform"
            )
        platforms[platform] = inspection.root
    if options.format is ImageFormat.DOCKER_ARCHIVE and len(inspections) > 1:
        raise UsageError(
            "a docker-archive holds one image and no index: give one --root, or write "
            "--format oci-archive for a multi-platform image"
        )
    run = RunConfig(
        entrypoint=_entrypoint(inspections, options),
        cmd=options.cmd,
        env=options.env,
        workdir=options.workdir,
        labels=options.labels,
        exposed_ports=options.exposed_ports,
        stop_signal=options.stop_signal,
    )
    warnings: list[str] = []
    staging = staging_directory(options.destination)
    try:
        blobs = BlobDirectory(staging)
        images = tuple(
            _platform_image(
                inspection,
                platform,
                blobs,
                replace(run, env=merged_env(inspection.env, options.env)),
                options,
                warnings,
            )
            for inspection, platform in zip(inspections, platforms, strict=True)
        )
        ref = ((REF_NAME, options.tag),) if options.tag else ()
        if len(images) == 1:
            top = replace(images[0].manifest, annotations=ref)
        else:
            nested = index_json(
                tuple(i.manifest for i in images), ((CREATED, rfc3339(options.mtime)),)
            )
            top = blobs.put(nested, MEDIA_TYPE_INDEX, annotations=ref)
        referrers = tuple(i.sbom for i in images if i.sbom is not None)
        write_layout_files(blobs, index_json((top, *referrers)))
        if options.format is ImageFormat.DOCKER_ARCHIVE:
            image = images[0]
            layers = tuple(Descriptor(b.media_type, b.digest, b.size) for b in image.layers)
            with open(f"{staging}/{MANIFEST_FILE}", "wb") as out:
                out.write(manifest_file(image.config, layers, options.tag))
        if options.format is ImageFormat.OCI_LAYOUT:
            publish_layout(staging, options.destination, options.tag)
        else:
            publish_archive(staging, options.destination, options.mtime)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImageResult(
        options.destination, options.format, images, top, tuple(dict.fromkeys(warnings))
    )
