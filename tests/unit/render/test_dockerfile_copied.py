"""Which entries the Dockerfile copies is ImageFile.copied, not a COPY line rendered to be
thrown away: a name only the single-layer form's shell can spell no longer stops that form,
while the per-file form, which must write it in a COPY line, still refuses it."""

from __future__ import annotations

import pytest

from scratchprobe.model import Inspection
from scratchprobe.plan import FileKind, FileType, ImageFile, Plan
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from scratchprobe.render.copy import MAX_COPY_LAYERS, UnexpressibleName
from scratchprobe.render.dockerfile import FILES_DIR

GLOB_NAME = "/data/file[1].txt"
"""COPY would read it as a pattern (names.copy_refusal); `cp` given it quoted copies it."""


def inspection(count: int) -> Inspection:
    files = [
        ImageFile(f"/data/f{i:03}", FileType.FILE, FileKind.INCLUDED, "x", source=f"/src/f{i:03}")
        for i in range(count - 1)
    ]
    files.append(ImageFile(GLOB_NAME, FileType.FILE, FileKind.INCLUDED, "x", source=GLOB_NAME))
    files.append(ImageFile("/tmp", FileType.DIRECTORY, FileKind.INCLUDED, "x", mode="1777"))
    return Inspection(root="/", binaries=(), problems=(), plan=Plan(tuple(files), ()), warnings=())


def test_single_layer_form_copies_a_name_copy_cannot_express() -> None:
    text = renderer(OutputFormat.DOCKERFILE)(inspection(MAX_COPY_LAYERS + 1), RenderOptions())
    assert f"cp -pL '{GLOB_NAME}' '{FILES_DIR}{GLOB_NAME}'" in text
    assert f"mkdir -p {FILES_DIR}/tmp && chmod 1777 {FILES_DIR}/tmp" in text
    assert text.count("\nCOPY ") == 1


def test_per_file_form_still_refuses_it() -> None:
    with pytest.raises(UnexpressibleName, match="as a pattern"):
        renderer(OutputFormat.DOCKERFILE)(inspection(3), RenderOptions())
