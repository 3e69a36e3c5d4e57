"""The one pass (scratchprobe/elf/image.py, "One pass"; elf/markers.py): every position of
every expected marker in a searched range, found window by window, answers each `find` as a
search of that literal alone would, and reads each window of the range once.

The windows are made small here (WINDOW, _OVERLAP and the hit bounds patched), so that
random files of a few hundred bytes cross many window boundaries; the rules do not depend
on the sizes (tests/unit/elf/test_image_windows.py checks the real ones on 24 and 48 MiB).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchprobe.elf import image as image_module
from scratchprobe.elf.constants import SegmentType
from scratchprobe.elf.image import FileImage, open_image
from scratchprobe.elf.markers import PROGRAM, RUST, MarkerSet
from scratchprobe.elf.reader import Segment, read_elf
from scratchprobe.needs.evidence import EvidenceCache
from scratchprobe.toolchain import detect_toolchain

TESTBINS = Path(__file__).resolve().parents[3] / "testbins" / "built"

_WINDOW = 64
_OVERLAP = 16


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module, "WINDOW", _WINDOW)
    monkeypatch.setattr(image_module, "_OVERLAP", _OVERLAP)
    monkeypatch.setattr(image_module, "_MAX_HITS", 3)
    monkeypatch.setattr(image_module, "_MAX_PREFIX_HITS", 7)


def _image(data: bytes, segment: tuple[int, int]) -> tuple[FileImage, str]:
    with tempfile.NamedTemporaryFile(delete=False) as handle:
        handle.write(data)
    offset, size = segment
    load = Segment(SegmentType.LOAD, offset, offset, size, size, 4)
    return FileImage(handle.name, (load,)), handle.name


def _positions(
    find: Callable[[bytes, int, int], int], needle: bytes, start: int, end: int
) -> list[int]:
    """Every position of `needle` in [start, end) by a loop of `find` from each hit: with
    bytes.find on the file's bytes, the oracle; with an image's find, what a reader sees."""
    out = []
    at = find(needle, start, end)
    while at >= 0:
        out.append(at)
        at = find(needle, at + 1, end)
    return out


_Case = tuple[bytes, tuple[int, int], list[bytes], list[tuple[int, int]]]

# Markers over a three-letter alphabet: prefixes, substrings and overlaps of each other.
_MARKER = st.binary(min_size=1, max_size=_OVERLAP + 1).map(
    lambda b: bytes(b"ab/"[c % 3] for c in b)
)


@st.composite
def _case(draw: st.DrawFn) -> _Case:
    markers = draw(st.lists(_MARKER, min_size=1, max_size=6, unique=True))
    size = draw(st.integers(0, 6 * _WINDOW))
    data = bytearray(bytes(b"ab/\0"[c % 4] for c in draw(st.binary(min_size=size, max_size=size))))
    # Plant markers, some across a window boundary (of the segment's aligned pieces).
    for _ in range(draw(st.integers(0, 12))):
        marker = draw(st.sampled_from(markers))
        if size < len(marker):
            break
        across = [k * _WINDOW - len(marker) // 2 for k in range(1, 7)]
        where = draw(st.one_of(st.integers(0, size - len(marker)), st.sampled_from(across)))
        if 0 <= where <= size - len(marker):
            data[where : where + len(marker)] = marker
    first = draw(st.integers(0, max(0, size // 4)))
    segment = (first, size - first)
    ranges = draw(
        st.lists(
            st.tuples(st.integers(-4, size + 4), st.integers(-4, size + 4)), min_size=1, max_size=4
        )
    )
    return bytes(data), segment, markers, ranges


_PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def _expecting(case: _Case, every: bool) -> Iterator[tuple[FileImage, FileImage]]:
    """(an image expecting the case's markers, one of the same file that does not)."""
    data, segment, markers, _ranges = case
    declared = MarkerSet("property")
    declared.declare(*markers, every=every)
    image, path = _image(data, segment)
    plain = FileImage(path, image._segments)
    try:
        image.expect(declared)
        yield image, plain
    finally:
        image.close()
        plain.close()
        os.unlink(path)


@_PROPERTY
@given(case=_case())
def test_one_pass_equals_a_search_of_each_literal(small_windows: None, case: _Case) -> None:
    data, _segment, markers, ranges = case
    with _expecting(case, every=True) as (image, plain):
        for start, end in ranges:
            low, high = max(start, 0), max(min(end, len(data)), 0)
            for marker in markers:
                expected = _positions(data.find, marker, low, high)
                assert _positions(image.find, marker, start, end) == expected, (marker, start, end)
                assert _positions(plain.find, marker, start, end) == expected, (marker, start, end)
        assert image.find_literals(ranges, tuple(markers)) == plain.find_literals(
            ranges, tuple(markers)
        )
        assert (image.loaded, image.skipped) == (plain.loaded, plain.skipped)


@_PROPERTY
@given(case=_case())
def test_presence_markers_answer_as_a_search(small_windows: None, case: _Case) -> None:
    """A marker only asked whether it occurs stops at its first hit; later finds of it still
    answer as a search would."""
    data, _segment, markers, ranges = case
    with _expecting(case, every=False) as (image, _plain):
        for start, end in ranges:
            low, high = max(start, 0), max(min(end, len(data)), 0)
            for marker in markers:
                assert _positions(image.find, marker, start, end) == _positions(
                    data.find, marker, low, high
                )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    reads: list[tuple[int, int]] = []
    original = FileImage._pread

    def pread(self: FileImage, offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return original(self, offset, length)

    monkeypatch.setattr(FileImage, "_pread", pread)
    return reads


def test_each_window_is_read_once_whatever_the_order(
    small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers asking for markers in a bad order (one marker after another over the whole
    range, loops from each hit, then parts of the range from its end) read each window of
    the searched range once: the bytes read are the range plus each window's overlap."""
    monkeypatch.setattr(image_module, "_MAX_HITS", 1024)
    size = 20 * _WINDOW + 13
    data = bytearray(b"." * size)
    markers = (b"/etc/x", b"/tmp/", b"TMPDIR", b"/proc/self")
    for k, marker in enumerate(markers * 5):
        at = (k * 3 + 1) * _WINDOW - 2
        if at + len(marker) <= size:
            data[at : at + len(marker)] = marker
    declared = MarkerSet("order")
    declared.declare(*markers)
    image, path = _image(bytes(data), (0, size))
    reads = _counting(monkeypatch)
    try:
        image.expect(declared)
        for marker in reversed(markers):
            assert _positions(image.find, marker, 0, size) == _positions(
                bytes(data).find, marker, 0, size
            )
        assert image.find_literals([(0, size)], markers) == set(markers)
        for marker in markers:
            _positions(image.find, marker, size - _WINDOW, size)
            _positions(image.find, marker, 5 * _WINDOW, 9 * _WINDOW)
    finally:
        image.close()
        os.unlink(path)
    # Each aligned piece with its overlap, but for a last piece the one before holds whole.
    windows = [
        (piece, min(size, piece + _WINDOW + _OVERLAP))
        for piece in range(0, size, _WINDOW)
        if piece == 0 or min(size, piece + _WINDOW) > piece + _OVERLAP
    ]
    assert sorted(reads) == [(first, stop - first) for first, stop in windows]
    assert sum(length for _offset, length in reads) <= size + _OVERLAP * len(windows)


@pytest.mark.parametrize("name", ["c-glibc-dynamic", "c-glibc-static", "cpp-dynamic", "rust-hello"])
def test_a_programs_readers_read_each_window_once(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolchain readers and the program's evidence, on a real file: no window of a
    searched range is read twice (reads of a few bytes around a hit aside)."""
    elf = read_elf(str(TESTBINS / name))
    reads = _counting(monkeypatch)
    cache = EvidenceCache()
    try:
        with cache.images.use(elf) as image:
            detect_toolchain(image)
            cache.of(elf, elf.path, elf.soname)
            assert set(PROGRAM.literals) | set(RUST.literals) <= image.markers
    finally:
        cache.images.close()
    windows = [read for read in reads if read[1] > 64]
    assert windows
    assert len(windows) == len(set(windows)), windows


@pytest.mark.parametrize(
    "name", sorted(p.name for p in TESTBINS.iterdir() if p.is_file() and p.name != "MANIFEST.json")
)
def test_declared_markers_on_every_testbin(name: str) -> None:
    """Every declared marker, answered by the one pass on a real file's sections, equals a
    search of the section's bytes for that literal alone."""
    try:
        elf = read_elf(str(TESTBINS / name))
    except Exception:
        pytest.skip("not an ELF file the reader accepts")
    image = open_image(elf)
    data = (TESTBINS / name).read_bytes()
    try:
        for markers in (PROGRAM, RUST):
            image.expect(markers)
        spans = image.section_ranges((".rodata", ".data.rel.ro", ".data", ".dynstr"))
        spans = spans or image.mapped_ranges()
        for start, end in spans:
            for marker in sorted(image.markers):
                assert _positions(image.find, marker, start, end) == _positions(
                    data.find, marker, start, end
                )
    finally:
        image.close()


def test_a_thousand_ranges_keep_a_bounded_number_of_passes(small_windows: None) -> None:
    """A crafted file's thousands of sections: at most _MAX_SCANS ranges get a pass (each
    later range is searched alone), and every answer is still a search's."""
    data = b"ab/" * 1000
    declared = MarkerSet("many")
    declared.declare(b"b/a", b"/ab")
    image, path = _image(data, (0, len(data)))
    try:
        image.expect(declared)
        for start in range(0, len(data) - 10, 3):
            for marker in (b"b/a", b"/ab"):
                expected = _positions(data.find, marker, start, start + 10)
                assert _positions(image.find, marker, start, start + 10) == expected
        assert len(image._scans) == image_module._MAX_SCANS
    finally:
        image.close()
        os.unlink(path)
