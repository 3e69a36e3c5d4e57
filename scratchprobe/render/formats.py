"""The format names each command's `--format` offers: one enum per command, the only list.

Importing this module costs two enums: a command builds its `--format` choice from it
before it knows which format runs, so nothing here may import a renderer (those are loaded
on demand by `render.renderer`, `check.formats.formatter` and `image.build`).
"""

from __future__ import annotations

from enum import Enum


class OutputFormat(Enum):
    """`inspect --format`: the plan as a report, manifest, COPY lines, stage or SBOM."""

    TEXT = "text"
    JSON = "json"
    COPY = "copy"
    DOCKERFILE = "dockerfile"
    CYCLONEDX = "cyclonedx"


class CheckFormat(Enum):
    """`check --format`: the verdict for people, programs, code scanning and CI."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    GITHUB = "github"


class VerifyFormat(Enum):
    """`verify --format`: the runs (and the trace rounds) as a report or JSON."""

    TEXT = "text"
    JSON = "json"


class ImageFormat(Enum):
    """`image --format`: how the image is written (docs/image.md)."""

    OCI_ARCHIVE = "oci-archive"
    OCI_LAYOUT = "oci-layout"
    DOCKER_ARCHIVE = "docker-archive"


def names(formats: type[Enum]) -> list[str]:
    """The names a `--format` option accepts, in the enum's order (which help shows)."""
    return [str(member.value) for member in formats]
