"""One read-only image of an ELF file, shared by every scanner of that file.

Why not mmap: a mapped file that shrinks while it is scanned (another process truncates or
rewrites it) kills the process with SIGBUS (mmap(2), "Errors"), which Python cannot catch.
Here every byte comes from pread(2) on a descriptor opened once, checked to be a regular file
(a FIFO would block); a read that comes back short is an ELFError for that file alone.

What is scanned: literal searches run over the file bytes of the PT_LOAD segments, the only
bytes the loader maps (System V gABI, "Program Loading"), clamped to the real file size, each
segment read once and shared by every search. A section-less or sparse file whose segments
claim more than SCAN_BUDGET bytes is scanned up to the budget, and `skipped` says what was
left out, instead of reading gigabytes of holes.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import overload

from scratchprobe.elf.constants import SegmentType
from scratchprobe.elf.reader import ElfFile, Segment
from scratchprobe.errors import ELFError
from scratchprobe.root import open_regular

SCAN_BUDGET = 256 << 20
"""Bytes of one file that literal searches may load (the largest real read-only data we
know, a 100 MB Go program's, is well under it)."""

# Images kept open between scanners: the binary and its libraries of one analysis, while
# the bytes they hold stay under two budgets.
_KEEP_IMAGES = 8
_KEEP_BYTES = 2 * SCAN_BUDGET


class FileImage:
    """Bounded reads and literal searches over one file, by file offset."""

    def __init__(self, path: str, loads: tuple[Segment, ...], budget: int = SCAN_BUDGET) -> None:
        self.path = path
        self.fd = open_regular(path)
        st = os.fstat(self.fd)
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self.size = st.st_size
        # File ranges the loader maps, clamped to the bytes the file really has.
        self.loads = tuple(
            (s.offset, min(s.offset + s.filesz, self.size))
            for s in loads
            if s.filesz and 0 <= s.offset < self.size
        )
        self.budget = budget
        self.loaded = 0
        self.users = 0
        """Scanners inside `file_image` with it now (an image in use is never closed)."""
        self._spans: list[tuple[int, int, bytes]] = []
        self._unscanned: set[tuple[int, int]] = set()

    @property
    def skipped(self) -> int:
        """Bytes inside searched ranges that were not searched (budget exhausted)."""
        total = reach = 0
        for first, end in sorted(self._unscanned):
            begin = max(first, reach)
            if end > begin:
                total += end - begin
                reach = end
        return total

    def close(self) -> None:
        os.close(self.fd)

    def __len__(self) -> int:
        return self.size

    # ----- reads ------------------------------------------------------------------------

    def _pread(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as exc:
            raise ELFError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if len(data) != length:
            raise ELFError(f"{self.path} changed while it was read (now shorter)")
        return data

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly `length` bytes at `offset`; ELFError when they are not all in the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ELFError(f"{what} lies outside the file")
        span = self._covering(offset, offset + length)
        if span is not None:
            base, _end, data = span
            return data[offset - base : offset - base + length]
        return self._pread(offset, length)

    @overload
    def __getitem__(self, item: int) -> int: ...
    @overload
    def __getitem__(self, item: slice) -> bytes: ...
    def __getitem__(self, item: int | slice) -> int | bytes:
        """`image[a:b]` as for bytes: clamped to the file, never an error for the range;
        `image[i]` the byte at i (IndexError outside the file, as for bytes)."""
        if isinstance(item, int):
            at = item + self.size if item < 0 else item
            if not 0 <= at < self.size:
                raise IndexError("image index out of range")
            return self.read(at, 1, "byte")[0]
        start, stop, _step = item.indices(self.size)
        return self.read(start, max(0, stop - start), "slice")

    # ----- searches ---------------------------------------------------------------------

    def find(self, needle: bytes, start: int = 0, end: int | None = None) -> int:
        """Offset of the first `needle` inside [start, end), or -1 (as bytes.find)."""
        start, end = self._clamp(start, end)
        if end - start < len(needle):
            return -1
        base, stop, data = self._span(start, end)
        at = data.find(needle, start - base, min(end, stop) - base)
        return at + base if at >= 0 else -1

    def rfind(self, needle: bytes, start: int = 0, end: int | None = None) -> int:
        """Offset of the last `needle` inside [start, end), or -1 (as bytes.rfind)."""
        start, end = self._clamp(start, end)
        if end - start < len(needle):
            return -1
        base, stop, data = self._span(start, end)
        at = data.rfind(needle, start - base, min(end, stop) - base)
        return at + base if at >= 0 else -1

    def _clamp(self, start: int, end: int | None) -> tuple[int, int]:
        end = self.size if end is None else min(end, self.size)
        return max(start, 0), max(end, 0)

    def _covering(self, start: int, end: int) -> tuple[int, int, bytes] | None:
        for span in self._spans:
            if span[0] <= start and end <= span[1]:
                return span
        return None

    def _span(self, start: int, end: int) -> tuple[int, int, bytes]:
        """Loaded bytes that begin at or before `start`, reaching `end` unless the budget
        ran out (then `skipped` counts what is missing)."""
        found = self._covering(start, end)
        if found is not None:
            return found
        for span in self._spans:
            if span[0] <= start < span[1] and self.loaded >= self.budget:
                return span
        lo, hi = start, end
        for seg_start, seg_end in self.loads:
            if seg_start <= start and end <= seg_end:
                # The whole segment at once: the next search of it costs no read.
                lo, hi = seg_start, seg_end
                break
        allowed = max(0, min(hi - lo, self.budget - self.loaded))
        if lo + allowed < end:
            self._unscanned.add((max(lo + allowed, start), end))
        if allowed == 0:
            return lo, lo, b""
        data = self._pread(lo, allowed)
        self.loaded += allowed
        span = (lo, lo + allowed, data)
        self._spans.append(span)
        return span


def mapped_ranges(elf: ElfFile) -> list[tuple[int, int]]:
    """The file ranges PT_LOAD maps, clamped to the file: what a scan of a file without
    section headers covers (never the whole file: a sparse file's holes past them)."""
    return [
        (s.offset, min(s.offset + s.filesz, elf.size))
        for s in elf.segments
        if s.type == SegmentType.LOAD and s.filesz and 0 <= s.offset < elf.size
    ]


_OPEN: OrderedDict[str, FileImage] = OrderedDict()


@contextmanager
def file_image(elf: ElfFile) -> Iterator[FileImage]:
    """The shared image of `elf`'s file (opened once, kept for the next scanner of it).
    ELFError when it cannot be opened; a file replaced since is opened again."""
    image = _OPEN.get(elf.path)
    if image is not None:
        try:
            st = os.stat(elf.path)
            same = image.identity == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            same = False
        if not same:
            _OPEN.pop(elf.path).close()
            image = None
    if image is None:
        try:
            image = FileImage(
                elf.path, tuple(s for s in elf.segments if s.type == SegmentType.LOAD)
            )
        except OSError as exc:
            raise ELFError(f"cannot read {elf.path}: {exc.strerror or exc}") from None
        _OPEN[elf.path] = image
    _OPEN.move_to_end(elf.path)
    _evict()
    image.users += 1
    try:
        yield image
    finally:
        image.users -= 1


def _evict() -> None:
    """Close the least recently used images that no scanner is using, over the bounds."""
    for path, image in list(_OPEN.items())[:-1]:
        over = len(_OPEN) > _KEEP_IMAGES or sum(i.loaded for i in _OPEN.values()) > _KEEP_BYTES
        if not over:
            return
        if image.users == 0:
            del _OPEN[path]
            image.close()


def skipped_bytes(elf: ElfFile) -> int:
    """Bytes of `elf`'s mapped data its scans left out so far (0 when all were read)."""
    image = _OPEN.get(elf.path)
    return image.skipped if image is not None else 0
