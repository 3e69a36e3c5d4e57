"""Output formats of `inspect`. Each format is one module with a `render` function; adding a
format touches that module and `OutputFormat` (render/formats.py) only (a test loops over
every member)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scratchprobe.render.formats import OutputFormat

if TYPE_CHECKING:
    from scratchprobe.annotations import FileAnnotations
    from scratchprobe.model import Inspection

__all__ = ["OutputFormat", "RenderOptions", "Renderer", "renderer"]


@dataclass(frozen=True)
class RenderOptions:
    stage: str = "builder"
    """The builder stage COPY lines copy from (--from)."""
    color: bool = False
    width: int | None = None
    """Columns for the text report; None: the terminal's width, or unlimited when piped."""
    full: bool = False
    """`text` only: also the library tree of each binary and the COPY lines (--full); the
    default report is the verdict, the problems and the runtime needs, which fit a
    terminal."""
    rootfs_stage: tuple[str, ...] | None = None
    """`dockerfile` only. None: COPY lines. A tuple: a stage that runs `scratchprobe rootfs`
    in the builder and one COPY of its output; the tuple holds the planning options to pass
    to it (--library-path, --tz, --user, ...), so that it plans what this run planned."""


class Renderer(Protocol):
    def __call__(
        self,
        inspection: Inspection,
        options: RenderOptions,
        annotations: FileAnnotations | None = None,
    ) -> str: ...


class _PlainRenderer(Protocol):
    def __call__(self, inspection: Inspection, options: RenderOptions) -> str: ...


ANNOTATED: dict[OutputFormat, bool] = {OutputFormat.JSON: False, OutputFormat.CYCLONEDX: True}
"""The formats that show the annotate step's facts (digests, owning packages, modules), and
whether each needs what only the SBOM shows (licences, digests of the files inside copied
directories): scratchprobe.annotate.annotate's `sbom`. The other formats never pay for it."""


SIZED = frozenset(set(OutputFormat) - {OutputFormat.COPY, OutputFormat.DOCKERFILE})
"""The formats that may show the plan's sizes (`InspectOptions.sizes`): COPY lines and a
Dockerfile never do, and their runs do not measure the runtime directories."""


_MODULES: dict[OutputFormat, str] = {
    OutputFormat.TEXT: "scratchprobe.render.text",
    OutputFormat.JSON: "scratchprobe.render.manifest",
    OutputFormat.COPY: "scratchprobe.render.copy",
    OutputFormat.DOCKERFILE: "scratchprobe.render.dockerfile",
    OutputFormat.CYCLONEDX: "scratchprobe.render.cyclonedx",
}


def renderer(fmt: OutputFormat) -> Renderer:
    """The renderer of `fmt`, imported on demand so that `--format json` never loads rich."""
    module = importlib.import_module(_MODULES[fmt])
    if fmt in ANNOTATED:
        render: Renderer = module.render
        return render
    plain: _PlainRenderer = module.render

    def without_annotations(
        inspection: Inspection, options: RenderOptions, annotations: FileAnnotations | None = None
    ) -> str:
        return plain(inspection, options)

    return without_annotations
