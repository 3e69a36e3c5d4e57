"""One read-only image of an ELF file per run, shared by every reader of that file.

Why not mmap: a mapped file that shrinks while it is scanned (another process truncates or
rewrites it) kills the process with SIGBUS (mmap(2), "Errors"), which Python cannot catch.
Here every byte comes from pread(2) on a descriptor opened once, checked to be a regular file
(a FIFO would block); a read that comes back short is an ELFError for that file alone.

What is scanned: literal searches run over the file bytes of the PT_LOAD segments, the only
bytes the loader maps (System V gABI, "Program Loading"), clamped to the real file size. The
budget admits each segment once for every search of it: a section-less or sparse file whose
segments claim more than SCAN_BUDGET bytes is scanned up to the budget, and `skipped` says
what was left out, instead of reading gigabytes of holes.

How it is read: in windows, never a whole segment. A window is the WINDOW-aligned piece,
plus the _OVERLAP bytes after it, of the range the budget admitted (a segment, for a search
inside one) that holds the search's position; an image keeps its last windows, at most
_KEEP_SMALL_WINDOWS and no more bytes than _KEEP_WINDOWS full ones, so a scan of a 100 MB
segment holds at most 2 x (8 MiB + 4 KiB), a segment of up to WINDOW bytes is still one
read for all its searches, and a small file's few segments are each read once. No match
is lost at a boundary: a search for a needle of length L tests, in a window ending at q,
every start up to q - L, then goes on from q - L + 1, so each start is tested in a window
that holds the whole match (for L up to _OVERLAP + 1 the next aligned window; a longer
needle gets a window of its own from its position). Slices, `read` and short searches in a
large range return just the bytes asked, from a kept window when one holds them, else by
their own pread.

One pass: a file's readers declare the literals they look for (elf/markers.py) and the
image is told which to expect (`expect`); the first search of a range (a section a reader
asked for) for one of them searches that range, window by window, for every expected
literal its readers look for there, and keeps every position: each window is read once,
and every later `find` of one of them is a lookup. The budget admits exactly as before
(every `find` still admits its range first), so `loaded` and `skipped` do not change.

`ElfImage` adds what every reader of an ELF file asks besides bytes: the reader's address
mapping (`elf/reader.py` vaddr_to_offset), section contents, the read-only data ranges,
literal search and notes. `Images` holds the images of one run (a `needs.context.Context`
owns it): a file is opened once per run, not once per reader, and nothing stays open after.
The run's ELF parse reads through the image too (`Images.parse`, `elf/reader.py` parse_elf),
so the parse and every later reader share the one open.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import overload

from scratchprobe.elf.constants import SegmentType
from scratchprobe.elf.markers import MarkerSet
from scratchprobe.elf.reader import ElfFile, Segment, parse_elf, vaddr_to_offset
from scratchprobe.errors import ELFError
from scratchprobe.root import open_regular

SCAN_BUDGET = 256 << 20
"""Bytes of one file that literal searches may load (the largest real read-only data we
know, a 100 MB Go program's, is well under it)."""

WINDOW = 8 << 20
"""Bytes of the aligned piece of one window of a scan (each read is at most this plus
_OVERLAP)."""

# Bytes a window reads past its WINDOW-aligned end: a needle of up to _OVERLAP + 1 bytes that
# starts inside the aligned piece lies wholly in the window.
_OVERLAP = 4096

# Full windows' worth of bytes an image keeps between searches (windows of small segments
# are kept by the same bytes, many at once): a loop of searches from each hit onwards reads
# a window once, and a backward search at a window's start finds the previous one kept.
_KEEP_WINDOWS = 2
# Windows an image keeps at most, however small (a program's segments: headers with .dynstr,
# .rodata, the data; and a whole-file search).
_KEEP_SMALL_WINDOWS = 4
# An admitted range of at most this many bytes is read as one window even for a short search
# (a small segment: kept for the searches after it).
_SMALL_RANGE = 64 * _OVERLAP

# Positions of one marker a scan keeps per admitted range (`FileImage.expect`): more than any
# reader looks at, and a bound on what a file full of one marker makes a scan hold.
_MAX_HITS = 1024
# Hits of one prefix a scan looks at per admitted range (each compared with its markers).
_MAX_PREFIX_HITS = 16 * _MAX_HITS
# Ranges an image keeps the one pass's positions of (a program's string sections are a few;
# a crafted file's thousands of sections are searched one literal at a time, as before).
_MAX_SCANS = 64

# Images a run keeps open between readers: the binary and the libraries of a large closure
# (ffmpeg's is ~200 files, a descriptor each), well under the usual limit of 1024 open
# files; the bytes they hold stay under the second budget (older images drop their bytes
# first, keeping the descriptor). A few windows: a library's evidence is read once per run
# (needs/evidence.py, EvidenceCache), so bytes kept past their reader are seldom read
# again, and a batch's memory must not grow with its binaries (a larger bound held up to
# ~200 MB of windows per worker over /usr/lib/x86_64-linux-gnu for no fewer reads).
_KEEP_IMAGES = 256
_KEEP_BYTES = 4 * WINDOW


class FileImage:
    """Bounded reads and literal searches over one file, by file offset."""

    def __init__(
        self,
        path: str,
        loads: tuple[Segment, ...],
        budget: int = SCAN_BUDGET,
        lazy: bool = False,
    ) -> None:
        """OSError when the file cannot be opened; with `lazy` it is opened at the first
        read instead (an image nobody reads costs no open), and then ELFError."""
        self.path = path
        self._segments = loads
        self._fd: int | None = None
        self._size = 0
        self._loads: tuple[tuple[int, int], ...] = ()
        if not lazy:
            self._open()
        self.budget = budget
        self.loaded = 0
        self.users = 0
        """Readers inside `Images.use` with it now (an image in use is never closed)."""
        self.accounted = 0
        """The part of `loaded` its `Images` has counted (updated when the last reader
        leaves, so the run's total is kept without summing every image)."""
        self._admitted: list[tuple[int, int]] = []
        """File ranges the budget has let searches read, in the order admitted."""
        self._windows: list[tuple[int, bytes]] = []
        """(offset, bytes) of the windows read last, the most recent last."""
        self._unscanned: set[tuple[int, int]] = set()
        self.markers: frozenset[bytes] = frozenset()
        """Literals the readers of this file will search for (`expect`): the first search of
        an admitted range for one of them finds every one in one pass ("One pass")."""
        self._where: dict[bytes, tuple[str, ...] | None] = {}
        """Expected marker -> the sections its readers search it in (None: anywhere)."""
        self._every: frozenset[bytes] = frozenset()
        self._first_only: frozenset[bytes] = frozenset()
        """Markers whose readers only ask whether they occur: a pass stops at the first."""
        self._scans: list[tuple[int, int, dict[bytes, _Hits]]] = []
        """(start, end, marker -> where it occurs there) of each range the one pass read."""

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

    def _open(self) -> int:
        if self._fd is None:
            fd = open_regular(self.path)
            self._set_descriptor(fd, os.fstat(fd).st_size)
        assert self._fd is not None
        return self._fd

    def _set_descriptor(self, fd: int, size: int) -> None:
        self._size = size
        # File ranges the loader maps, clamped to the bytes the file really has.
        self._loads = tuple(
            (s.offset, min(s.offset + s.filesz, size))
            for s in self._segments
            if s.filesz and 0 <= s.offset < size
        )
        self._fd = fd

    def _adopt(self, other: FileImage) -> None:
        """Take over the open descriptor of `other`, the image the file was parsed through
        (left without one): the file is not opened again."""
        if other._fd is not None:
            fd, other._fd = other._fd, None
            self._set_descriptor(fd, other._size)

    def _opened(self) -> int:
        """The descriptor, opened now if it was not yet (ELFError when it cannot be)."""
        if self._fd is not None:
            return self._fd
        try:
            return self._open()
        except OSError as exc:
            raise ELFError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    @property
    def size(self) -> int:
        self._opened()
        return self._size

    @property
    def loads(self) -> tuple[tuple[int, int], ...]:
        self._opened()
        return self._loads

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the bytes loaded so far and the budget they took (they are read again, and
        count again, when asked for)."""
        self._admitted.clear()
        self._windows.clear()
        self._scans.clear()
        self.loaded = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._windows.clear()
        self._scans.clear()

    def __len__(self) -> int:
        return self.size

    # ----- reads ------------------------------------------------------------------------

    def _pread(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self._opened(), length, offset)
        except OSError as exc:
            raise ELFError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if len(data) != length:
            raise ELFError(f"{self.path} changed while it was read (now shorter)")
        return data

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly `length` bytes at `offset`; ELFError when they are not all in the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ELFError(f"{what} lies outside the file")
        for base, data in self._windows:
            if base <= offset and offset + length <= base + len(data):
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
        admitted = self._admit(start, end)
        end = min(end, admitted[1])
        width = len(needle)
        position = start
        hits = self._hits(needle, start, end, admitted) if end - start >= width else None
        if hits is not None:
            at = hits.first(start)
            if at >= 0 or hits.upto >= end - width + 1:
                return at if 0 <= at <= end - width else -1
            # Past the positions the pass kept (a marker found more than _MAX_HITS times):
            # searched as any other needle from there.
            position = max(start, hits.upto)
        if self._reads_alone(position, end, admitted):
            # A short search (a string's end, a byte before a hit) in a large range reads its
            # own bytes, never a whole window that would push out the ones a scan keeps.
            at = self.read(position, end - position, "search").find(needle)
            return at + position if at >= 0 else -1
        while end - position >= width:
            base, data = self._window(position, position + width, admitted, end)
            stop = min(end, base + len(data))
            at = data.find(needle, position - base, stop - base)
            if at >= 0:
                return at + base
            if stop >= end:
                break
            # The next window starts where a match not wholly in this one may begin.
            position = stop - width + 1
        return -1

    def rfind(self, needle: bytes, start: int = 0, end: int | None = None) -> int:
        """Offset of the last `needle` inside [start, end), or -1 (as bytes.rfind)."""
        start, end = self._clamp(start, end)
        if end - start < len(needle):
            return -1
        admitted = self._admit(start, end)
        end = min(end, admitted[1])
        width = len(needle)
        position = end
        if self._reads_alone(start, end, admitted):
            # A short search reads its own bytes (as in `find`).
            at = self.read(start, max(0, end - start), "search").rfind(needle)
            return at + start if at >= 0 else -1
        while position - start >= width:
            base, data = self._window(position - width, position, admitted, end)
            first = max(start, base)
            at = data.rfind(needle, first - base, position - base)
            if at >= 0:
                return at + base
            if first <= start:
                break
            # The next window ends where a match not wholly in this one may end.
            position = first + width - 1
        return -1

    def expect(self, markers: MarkerSet) -> None:
        """Literals this file's readers will search for (a declared set, elf/markers.py):
        each range searched is then searched for all of them that its readers look for
        there in one pass (its windows read once), and every `find` of one is answered from
        that pass."""
        for literal in markers.literals:
            if 0 < len(literal) <= _OVERLAP + 1:
                where = self._where.get(literal, ())
                self._where[literal] = (
                    None
                    if where is None or markers.sections is None
                    else (*where, *markers.sections)
                )
        self.markers = frozenset(self._where)
        # A literal some reader wants every position of is never first-only again.
        wanted = set(markers.literals) - set(markers.presence)
        self._first_only = (self._first_only | set(markers.presence)) - wanted - self._every
        self._every = self._every | wanted

    def _span_sections(self, start: int, end: int) -> tuple[str, ...] | None:
        """Names of the sections holding [start, end); None when it is no section's."""
        return None

    def _needles(self, start: int, end: int, asked: bytes, scanned: set[bytes]) -> list[bytes]:
        """The markers a pass over [start, end) looks for: those its readers search there
        (`asked` among them), and none searched already."""
        names = self._span_sections(start, end)
        return sorted(
            marker
            for marker, where in self._where.items()
            if marker not in scanned
            and (
                marker == asked
                or names is None
                or where is None
                or any(name.startswith(where) for name in names)
            )
        )

    def _reads_alone(self, first: int, last: int, admitted: tuple[int, int]) -> bool:
        """A search of [first, last) reads just those bytes: it is short, its range is
        larger than a window of a small segment would be, and no kept window holds it."""
        return (
            last - first <= _OVERLAP
            and admitted[1] - admitted[0] > _SMALL_RANGE
            and not any(base <= first and last <= base + len(data) for base, data in self._windows)
        )

    def _hits(self, needle: bytes, start: int, end: int, admitted: tuple[int, int]) -> _Hits | None:
        """Where `needle`, an expected marker, occurs in a searched range holding [start,
        end), the admitted range's part a reader asked for (a section); the first search of
        a range runs the one pass for every marker, a marker expected later one more pass
        for the markers it adds. None for any other needle."""
        if needle not in self.markers:
            return None
        for first, stop, scan in self._scans:
            if first <= start and end <= stop:
                if needle not in scan:
                    needles = self._needles(first, stop, needle, set(scan))
                    self._one_pass(first, stop, admitted, needles, scan)
                return scan[needle]
        if len(self._scans) >= _MAX_SCANS:
            return None  # a file of thousands of small sections: searched as before
        scan = {}
        self._one_pass(start, end, admitted, self._needles(start, end, needle, set()), scan)
        self._scans.append((start, end, scan))
        return scan[needle]

    def _one_pass(
        self,
        low: int,
        high: int,
        admitted: tuple[int, int],
        needles: list[bytes],
        scan: dict[bytes, _Hits],
    ) -> None:
        """Every position of every needle in [low, high), inside the admitted range, window
        by window: each WINDOW-aligned piece of the admitted range is read once (with its
        _OVERLAP, as `find` reads it) and every needle is searched in it before the next is
        read. A match is taken in the piece where it starts, so one straddling two pieces
        is found once, in the window that holds it whole (needles are at most _OVERLAP + 1
        bytes: `expect`). Needles sharing their first five bytes are searched as one
        ("/etc/": a search of the prefix they all share, then a comparison of each member
        at each of its hits), as `find_literals` does.

        A needle stops at its first occurrence when its readers only ask whether it occurs
        (`expect`), at _MAX_HITS occurrences, or when its prefix was hit _MAX_PREFIX_HITS
        times (`upto`), so what a hostile file makes a scan hold and do is bounded; `find`
        searches past `upto` as for any other needle."""
        groups = _prefix_groups(needles)
        first_only = self._first_only
        found: dict[bytes, list[int]] = {needle: [] for needle in needles}
        upto: dict[bytes, int] = {}
        hits = dict.fromkeys(groups, 0)
        piece = admitted[0] + (low - admitted[0]) // WINDOW * WINDOW
        while piece < high and groups:
            first = max(low, piece)
            base, data = self._window(first, min(high, piece + WINDOW + _OVERLAP), admitted, high)
            for prefix, members in list(groups.items()):
                # Starts inside this piece only; the window holds every member from there.
                stop = min(high, piece + WINDOW + len(prefix) - 1) - base
                at = data.find(prefix, first - base, stop)
                while at >= 0 and members:
                    room = high - base - at
                    for member in [m for m in members if len(m) <= room and data.startswith(m, at)]:
                        found[member].append(at + base)
                        if len(found[member]) >= _MAX_HITS or member in first_only:
                            upto[member] = at + base + 1
                            members.remove(member)
                    hits[prefix] += 1
                    if hits[prefix] >= _MAX_PREFIX_HITS:
                        upto.update(dict.fromkeys(members, at + base + 1))
                        members.clear()
                    at = data.find(prefix, at + 1, stop)
                if not members:
                    del groups[prefix]
            piece += WINDOW
        for needle in needles:
            scan[needle] = _Hits(found[needle], upto.get(needle, high))

    def find_literals(
        self, ranges: list[tuple[int, int]], literals: tuple[bytes, ...]
    ) -> set[bytes]:
        """Which literals occur inside `ranges`. Literals are grouped by their first five
        bytes ("/etc/", "__nss"), so the data is searched once per group, not per literal;
        every group is searched in one window before the next is read (a range is read
        once, not once per group)."""
        groups: dict[bytes, list[bytes]] = {}
        for literal in literals:
            groups.setdefault(literal[:5], []).append(literal)
        found: set[bytes] = set()
        shortest = min(map(len, groups), default=0)
        spans = [self._clamp(start, end) for start, end in ranges]
        needed = sum(self._admission(low, high) for low, high in spans if high - low >= shortest)
        if shortest < 2 or self.loaded + needed >= self.budget:
            # Where the budget may run out, which bytes each search gets depends on the
            # order of the searches (and a one-byte prefix can end at an exhausted budget's
            # last byte, the search from the next one counting the rest as skipped): group
            # by group, as that accounting always was.
            for prefix, members in groups.items():
                for start, end in ranges:
                    at = self.find(prefix, start, end)
                    while at >= 0 and len(found) < len(literals):
                        found.update(self._members_at(at, end, members))
                        at = self.find(prefix, at + 1, end)
            return found
        # The budget admits every range whole: in the order a search per group and range
        # would (ranges may overlap, and the first admitted decides what the others cost).
        for prefix in groups:
            for low, high in spans:
                if high - low >= len(prefix):
                    self._admit(low, high)
        if self.markers.issuperset(literals):
            # Every literal is an expected marker: the answers of the one pass.
            return {
                literal
                for literal in literals
                if any(self.find(literal, low, high) >= 0 for low, high in spans)
            }
        for (low, high), (_start, end) in zip(spans, ranges, strict=True):
            if high - low < shortest:
                continue  # as `find`: too short a range admits nothing
            admitted = self._admit(low, high)
            stop = min(high, admitted[1])
            # The WINDOW-aligned pieces of the admitted range: a match is looked for in the
            # piece where it starts, inside the window that holds that piece.
            piece = admitted[0] + (low - admitted[0]) // WINDOW * WINDOW
            while piece < stop and len(found) < len(literals):
                first, piece = max(low, piece), piece + WINDOW
                for prefix, members in groups.items():
                    limit = min(stop, piece + len(prefix) - 1)
                    at = self.find(prefix, first, limit)
                    while at >= 0 and len(found) < len(literals):
                        found.update(self._members_at(at, end, members))
                        at = self.find(prefix, at + 1, limit)
        return found

    def _members_at(self, at: int, end: int, members: list[bytes]) -> set[bytes]:
        """The `members` that occur at `at`, wholly before `end`."""
        return {m for m in members if at + len(m) <= end and self[at : at + len(m)] == m}

    def _clamp(self, start: int, end: int | None) -> tuple[int, int]:
        end = self.size if end is None else min(end, self.size)
        return max(start, 0), max(end, 0)

    def _window(
        self, first: int, last: int, admitted: tuple[int, int], end: int
    ) -> tuple[int, bytes]:
        """Bytes holding at least [first, last) (one more place to test): a kept window, or
        one read now and kept, the oldest dropped first. A window is the WINDOW-aligned
        piece of the admitted range that holds `first`, plus _OVERLAP bytes, so a segment
        of up to WINDOW bytes is one read for all its searches; a needle longer than the
        overlap gets a window of its own from `first` (up to `end`)."""
        for index, (base, data) in enumerate(self._windows):
            if base <= first and last <= base + len(data):
                if index != len(self._windows) - 1:
                    self._windows.append(self._windows.pop(index))
                return base, data
        low, high = admitted
        start = low + (first - low) // WINDOW * WINDOW
        stop = min(high, start + WINDOW + _OVERLAP)
        if stop < last:
            start, stop = first, min(end, first + max(WINDOW, last - first))
        # The oldest go before the read, so the windows held never take more than
        # _KEEP_WINDOWS full ones would (small segments' windows all stay: each is read once).
        held = sum(len(data) for _base, data in self._windows)
        while self._windows and (
            held + (stop - start) > _KEEP_WINDOWS * (WINDOW + _OVERLAP)
            or len(self._windows) >= _KEEP_SMALL_WINDOWS
        ):
            held -= len(self._windows.pop(0)[1])
        data = self._pread(start, stop - start)
        self._windows.append((start, data))
        return start, data

    def _admission(self, start: int, end: int) -> int:
        """The most a first search of [start, end) may admit (its segment, or itself)."""
        for seg_start, seg_end in self.loads:
            if seg_start <= start and end <= seg_end:
                return seg_end - seg_start
        return end - start

    def _admit(self, start: int, end: int) -> tuple[int, int]:
        """The admitted range that searches from `start` read, ending at `end` unless the
        budget ran out (then `skipped` counts what is missing). A search inside one segment
        admits the whole segment, so the next search of it costs no budget."""
        for first, stop in self._admitted:
            if first <= start and end <= stop:
                return first, stop
        for first, stop in self._admitted:
            if first <= start < stop and self.loaded >= self.budget:
                return first, stop
        lo, hi = start, end
        for seg_start, seg_end in self.loads:
            if seg_start <= start and end <= seg_end:
                lo, hi = seg_start, seg_end
                break
        allowed = max(0, min(hi - lo, self.budget - self.loaded))
        if lo + allowed < end:
            self._unscanned.add((max(lo + allowed, start), end))
        if allowed == 0:
            return start, start
        self.loaded += allowed
        self._admitted.append((lo, lo + allowed))
        return lo, lo + allowed


def _prefix_groups(needles: list[bytes]) -> dict[bytes, list[bytes]]:
    """Needles sharing their first five bytes, by the longest prefix they all share (a needle
    alone is its own prefix): bytes.find skips further the longer its needle is."""
    shared: dict[bytes, list[bytes]] = {}
    for needle in needles:
        shared.setdefault(needle[:5], []).append(needle)
    groups: dict[bytes, list[bytes]] = {}
    for members in shared.values():
        prefix = min(members)
        last = max(members)
        while not last.startswith(prefix):
            prefix = prefix[:-1]
        groups[prefix] = members
    return groups


class _Hits:
    """The positions of one marker in one admitted range, ascending: every one below `upto`
    (the range's end, unless the marker was found _MAX_HITS times)."""

    __slots__ = ("positions", "upto")

    def __init__(self, positions: list[int], upto: int) -> None:
        self.positions = positions
        self.upto = upto

    def first(self, start: int) -> int:
        """The first kept position at or after `start`, or -1."""
        index = bisect_left(self.positions, start)
        return self.positions[index] if index < len(self.positions) else -1


# sh_type SHT_NOBITS (gABI "Section Header"): a section that occupies no file bytes.
_SHT_NOBITS = 8
# p_flags (gABI "Program Header"): PF_X 0x1, PF_W 0x2.
_PF_X_OR_W = 0x3


class ElfImage(FileImage):
    """The image of one parsed ELF file: bounded reads by offset or by address, its
    sections, its read-only data, literal search and notes."""

    def __init__(
        self,
        elf: ElfFile,
        budget: int = SCAN_BUDGET,
        lazy: bool = False,
        parsed_from: FileImage | None = None,
    ) -> None:
        """With `parsed_from` (the image `elf` was parsed through) its descriptor is taken
        over instead of opening the file again."""
        super().__init__(
            elf.path,
            tuple(s for s in elf.segments if s.type == SegmentType.LOAD),
            budget,
            lazy or parsed_from is not None,
        )
        self.elf = elf
        if parsed_from is not None:
            self._adopt(parsed_from)

    def offset_of(self, vaddr: int, length: int) -> int | None:
        """File offset of [vaddr, vaddr+length) through PT_LOAD (the reader's mapping), or
        None when no segment's file bytes hold it all."""
        return vaddr_to_offset(self.elf.segments, vaddr, length)

    def section(self, name: str, limit: int = 64 << 20) -> bytes | None:
        """Raw bytes of the named section (None when absent, empty or NOBITS); ELFError
        when it lies outside the file or is larger than `limit`."""
        where = self.section_range(name, limit)
        if where is None:
            return None
        return self.read(where[0], where[1] - where[0], f"section {name}")

    def section_range(self, name: str, limit: int = 64 << 20) -> tuple[int, int] | None:
        """(start, end) of the named section's bytes, as `section` checks them: None when
        absent, empty or NOBITS; ELFError when outside the file or larger than `limit`."""
        section = self.elf.section(name)
        if section is None or section.type == _SHT_NOBITS or section.size == 0:
            return None
        if section.offset + section.size > self.size or section.size > limit:
            raise ELFError(f"section {name} lies outside the file")
        return section.offset, section.offset + section.size

    def section_ranges(self, names: tuple[str, ...]) -> list[tuple[int, int]]:
        """(start, end) of the named sections present in the file; NOBITS ones hold no bytes."""
        return [
            (s.offset, s.offset + s.size)
            for s in self.elf.sections
            if s.name in names and s.type != _SHT_NOBITS and s.offset + s.size <= self.elf.size
        ]

    def _span_sections(self, start: int, end: int) -> tuple[str, ...] | None:
        names = tuple(
            s.name
            for s in self.elf.sections
            if s.type != _SHT_NOBITS and s.offset <= start and end <= s.offset + s.size
        )
        return names or None

    def mapped_ranges(self) -> list[tuple[int, int]]:
        """The file ranges PT_LOAD maps, clamped to the file: what a scan of a file without
        section headers covers (never the whole file: a sparse file's holes past them)."""
        return mapped_ranges(self.elf)

    def readonly_ranges(self, limit: int = SCAN_BUDGET) -> list[tuple[int, int]]:
        """PT_LOAD ranges neither writable nor executable, where string literals live,
        each at most `limit` bytes."""
        return [
            (s.offset, min(s.offset + s.filesz, s.offset + limit))
            for s in self.elf.segments
            if s.type == SegmentType.LOAD and not s.flags & _PF_X_OR_W and s.filesz
        ]

    def notes(self, name: str, limit: int = 1 << 20) -> list[tuple[bytes, int, bytes]]:
        """(owner, type, descriptor) of each note of the named SHT_NOTE section, in order
        (gABI "Note Section": namesz, descsz, type, then name and desc, 4-byte aligned); the
        first `limit` bytes are read, and a note running past them ends the list."""
        section = self.elf.section(name)
        if section is None or section.type == _SHT_NOBITS:
            return []
        data = self[section.offset : section.offset + min(section.size, limit)]
        e = self.elf.arch.byte_order.struct_prefix
        out: list[tuple[bytes, int, bytes]] = []
        at = 0
        while at + 12 <= len(data):
            namesz, descsz, ntype = struct.unpack_from(e + "III", data, at)
            name_at = at + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            end = desc_at + ((descsz + 3) & ~3)
            if end > len(data):
                break
            out.append(
                (
                    data[name_at : name_at + namesz].rstrip(b"\0"),
                    ntype,
                    data[desc_at : desc_at + descsz],
                )
            )
            at = end
        return out


def mapped_ranges(elf: ElfFile) -> list[tuple[int, int]]:
    """The file ranges PT_LOAD maps, clamped to the file."""
    return [
        (s.offset, min(s.offset + s.filesz, elf.size))
        for s in elf.segments
        if s.type == SegmentType.LOAD and s.filesz and 0 <= s.offset < elf.size
    ]


def open_image(elf: ElfFile, lazy: bool = False) -> ElfImage:
    """A new image of `elf`'s file; ELFError when it cannot be opened (with `lazy`, at its
    first read)."""
    try:
        return ElfImage(elf, lazy=lazy)
    except OSError as exc:
        raise ELFError(f"cannot read {elf.path}: {exc.strerror or exc}") from None


@contextmanager
def opened(source: ElfImage | ElfFile) -> Iterator[ElfImage]:
    """`source` itself when it is an image (a run's, kept open by its owner), else a new
    image of the file, closed on exit: for callers outside a run (one-off readers, tests)."""
    if isinstance(source, ElfImage):
        yield source
        return
    image = open_image(source)
    try:
        yield image
    finally:
        image.close()


class Images:
    """The open images of one run, by path: every reader of a file gets the same image.

    A file is opened when the run parses it (`parse`, the image kept for its readers), or
    else at its first read (an ElfFile parsed elsewhere gets an image at `use`). At
    most `keep` images stay open while no reader uses them, the least recently used closed
    first; the bytes they hold stay under `keep_bytes`, the least recently used dropping
    theirs first; `close` closes all."""

    def __init__(self, keep: int = _KEEP_IMAGES, keep_bytes: int = _KEEP_BYTES) -> None:
        self._open: OrderedDict[str, ElfImage] = OrderedDict()
        self._keep = keep
        self._keep_bytes = keep_bytes
        self._loaded = 0
        """Bytes the open images held when their last reader left."""

    def parse(self, host_path: str) -> ElfFile:
        """The facts of the file at `host_path`, parsed through the image every later
        reader of it gets: the parse opens the file, and no reader opens it again. OSError
        when it cannot be opened (not a regular file included), ELFError when malformed."""
        raw = FileImage(host_path, ())
        try:
            elf = parse_elf(host_path, raw)
        except BaseException:
            raw.close()
            raise
        image = ElfImage(elf, parsed_from=raw)
        held = self._open.get(host_path)
        if held is not None:
            if held.users:
                image.close()  # its readers keep theirs; a reader of `elf` opens anew
                return elf
            self._loaded -= held.accounted
            self._open.pop(host_path).close()
        self._open[host_path] = image
        self._evict()
        return elf

    @contextmanager
    def use(self, elf: ElfFile) -> Iterator[ElfImage]:
        """The image of `elf` (its file opened at the first read); ELFError when it cannot be
        opened."""
        image = self._open.get(elf.path)
        if image is not None and image.elf is not elf:
            # Parsed again (another ElfCache): the file may have changed, open it anew.
            if image.users == 0:
                self._loaded -= image.accounted
                self._open.pop(elf.path).close()
            image = None
        if image is None:
            image = open_image(elf, lazy=True)
            if elf.path not in self._open:
                self._open[elf.path] = image
        owned = self._open.get(elf.path) is image
        if owned:
            self._open.move_to_end(elf.path)
            self._evict()
        image.users += 1
        try:
            yield image
        finally:
            image.users -= 1
            if not owned:
                image.close()
            elif image.users == 0:
                self._loaded += image.loaded - image.accounted
                image.accounted = image.loaded

    def skipped(self, elf: ElfFile) -> int:
        """Bytes of `elf`'s mapped data its scans left out so far (0 when all were read)."""
        image = self._open.get(elf.path)
        return image.skipped if image is not None else 0

    def _evict(self) -> None:
        """Over the bounds, close (or drop the bytes of) the least recently used images
        that no reader is using."""
        if len(self._open) <= self._keep and self._loaded <= self._keep_bytes:
            return
        # Walked from the least recently used only as far as the bounds need (a parse adds
        # an image per file: a batch evicts one at a time), never the newest.
        newest = next(reversed(self._open))
        count = len(self._open)
        closing: list[str] = []
        for path, image in self._open.items():
            if path == newest or (count <= self._keep and self._loaded <= self._keep_bytes):
                break
            if image.users:
                continue
            self._loaded -= image.accounted
            image.accounted = 0
            if count > self._keep:
                closing.append(path)
                count -= 1
            else:
                image.release()
        for path in closing:
            self._open.pop(path).close()

    def close(self) -> None:
        for image in self._open.values():
            image.close()
        self._open.clear()
        self._loaded = 0
