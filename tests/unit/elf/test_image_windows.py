"""A scan of a file keeps at most a few windows resident, whatever the file's size, and
loses no match at a window's boundary (scratchprobe/elf/image.py, "How it is read")."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from scratchprobe.elf import image as image_module
from scratchprobe.elf.image import WINDOW, open_image
from scratchprobe.elf.reader import read_elf
from tests.hostile_elf import PT_LOAD, ElfBuilder

_DATA_AT = 4096
_CHUNK = 1 << 20
# What a scan may hold besides its windows: the needles, the found set, Python's frames.
_SLACK = 1 << 20
_OVERLAP = image_module._OVERLAP
_BOUND = image_module._KEEP_WINDOWS * (WINDOW + _OVERLAP) + _SLACK
_LAST = b"/etc/at-the-very-end"
# Literals over the boundaries of the first window (the aligned one, and the end of the
# bytes it reads past it), and one longer than the overlap over the second's.
_ACROSS = {
    b"/etc/across-the-aligned-boundary": WINDOW,
    b"/etc/across-the-end-of-a-window": WINDOW + _OVERLAP,
    b"/etc/longer-than-the-overlap-" + b"L" * _OVERLAP: 2 * WINDOW,
}


def _big_elf(tmp_path: Path, size: int) -> Path:
    """An ELF whose one read-only PT_LOAD holds `size` real bytes (written in chunks, never
    held whole), with each of `_ACROSS` over its boundary and `_LAST` at the end."""
    builder = ElfBuilder(map_all=False)
    builder.phdr(PT_LOAD, _DATA_AT, size)
    head = builder.build()
    path = tmp_path / f"big-{size}"
    with path.open("wb") as out:
        out.write(head + bytes(_DATA_AT - len(head)))
        filler = b"scratchprobe-filler-".ljust(64, b".") * (_CHUNK // 64)
        for at in range(0, size, _CHUNK):
            out.write(filler[: min(_CHUNK, size - at)])
        for literal, boundary in _ACROSS.items():
            out.seek(_DATA_AT + boundary - len(literal) // 2)
            out.write(literal)
        out.seek(_DATA_AT + size - len(_LAST))
        out.write(_LAST)
    return path


def _scan_peak(path: Path) -> tuple[int, set[bytes], dict[bytes, tuple[int, int]]]:
    """(traced peak of the scan, literals found, first and last offset of each `_ACROSS`)."""
    elf = read_elf(str(path))
    image = open_image(elf)
    try:
        ranges = image.mapped_ranges()
        tracemalloc.start()
        try:
            found = image.find_literals(ranges, (*_ACROSS, _LAST, b"/etc/not-in-the-file"))
            offsets = {
                literal: (image.find(literal, *ranges[0]), image.rfind(literal, *ranges[0]))
                for literal in _ACROSS
            }
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        image.close()
    return peak, found, offsets


@pytest.mark.parametrize("windows", [3, 6])
def test_a_scan_keeps_its_windows_not_the_segment(tmp_path: Path, windows: int) -> None:
    size = windows * WINDOW
    assert size > _BOUND  # a scan that held the segment would break the bound
    peak, found, offsets = _scan_peak(_big_elf(tmp_path, size))
    assert found == {*_ACROSS, _LAST}
    for literal, boundary in _ACROSS.items():
        at = _DATA_AT + boundary - len(literal) // 2
        assert offsets[literal] == (at, at), literal[:40]
    assert peak <= _BOUND, f"{peak} bytes traced for a {size}-byte segment"
