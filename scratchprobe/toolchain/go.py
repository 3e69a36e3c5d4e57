"""Go binaries: the build-info blob and the function-name table, read without running anything.

Two structures carry what a FROM-scratch image needs to know about a Go program
(docs/runtime-facts.md, "Go"):

* the build info (`go version -m`): Go version, modules, and build settings such as
  CGO_ENABLED and -tags. Its layout is the one `debug/buildinfo.readRawBuildInfo` reads
  (golang/go src/debug/buildinfo/buildinfo.go) and its text the one
  `runtime/debug.ParseBuildInfo` parses (src/runtime/debug/mod.go);
* the pcln table (`.gopclntab`), whose function-name table survives `-ldflags=-s -w` and
  `strip` because the runtime needs it for tracebacks (src/runtime/symtab.go `pcHeader`,
  src/debug/gosym/pclntab.go). Which functions are linked tells which standard-library code
  paths exist: `time/tzdata` embedded, the cgo resolver, pure-Go os/user, system CA roots.

Standard-library packages never appear in the build info (only modules do), which is why
both are needed. Both readers search literals in the file's image (`elf/image.py`)
instead of decoding every name: a 100 MB Go binary has a multi-megabyte name table.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from scratchprobe.elf.constants import SegmentType
from scratchprobe.elf.image import ElfImage, opened
from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError

# What every run needs without this reader: the signs of a Go file and the detectors'
# function-name groups (toolchain/signs.py).
from scratchprobe.toolchain.signs import (
    CGO_RUNTIME,
    EXECUTABLE,
    FALLBACK_ROOTS,
    LOAD_LOCATION,
    MIME,
    NET_CGO,
    NET_LOOKUP,
    PF_X,
    SYSTEM_ROOTS,
    TEMP,
    TZDATA,
    USER_CGO,
    USER_PURE,
    X509ROOTS_FALLBACK_PREFIX,
)
from scratchprobe.toolchain.signs import find_buildinfo as _find_buildinfo
from scratchprobe.toolchain.signs import is_go as _is_go
from scratchprobe.toolchain.signs import section_range as _section_range

_BUILDINFO_HEADER_SIZE = 32
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE_STRINGS = 0x2
"""Go 1.18+ writes version and modinfo inline after the header (cmd/link data.go buildinfo)."""

# modinfo is framed by two 16-byte sentinels (cmd/go/internal/modload/build.go infoStart /
# infoEnd); debug/buildinfo strips them when the text is long enough and ends in a newline.
_MODINFO_SENTINEL_SIZE = 16

# Bounds no real binary reaches; a hostile length is refused instead of read.
_MAX_VERSION_LENGTH = 1 << 10
_MAX_MODINFO_LENGTH = 16 << 20
_MAX_NAME_LENGTH = 1 << 16
_MAX_FUNCTIONS = 1 << 24


class PclntabVersion(Enum):
    """The pcln table layouts, named by the first Go release that wrote each magic.

    The magics come from internal/abi/symtab.go (Go12PCLnTabMagic ... Go120PCLnTabMagic);
    they are chosen so that reading one with the wrong byte order never matches another.
    """

    GO12 = 0xFFFFFFFB
    """Go 1.2 - 1.15: names are reached through the functab, anywhere in the table."""
    GO116 = 0xFFFFFFFA
    """Go 1.16 - 1.17: pcHeader word 2 is funcnameOffset, word 3 cuOffset."""
    GO118 = 0xFFFFFFF0
    """Go 1.18 - 1.19: word 2 is textStart, word 3 funcnameOffset, word 4 cuOffset."""
    GO120 = 0xFFFFFFF1
    """Go 1.20 and later: same header words as 1.18."""


@dataclass(frozen=True)
class GoModule:
    """One `mod`, `dep` or `=>` line of the build info (runtime/debug.Module)."""

    path: str
    version: str
    """A semantic version, or `(devel)` for the main module built from a work tree."""
    sum: str
    """The go.sum hash, empty for the main module and for replaced modules."""
    replace: GoModule | None = None
    """The module this one was replaced by (`replace` in go.mod), if any."""


@dataclass(frozen=True)
class GoBuildSetting:
    """One `build` line: a key such as CGO_ENABLED, -tags or vcs.revision, and its value."""

    key: str
    value: str


@dataclass(frozen=True)
class GoBuildInfo:
    """What `go version -m` prints, read from the binary's build-info blob."""

    go_version: str
    """runtime.buildVersion, e.g. `go1.21.13` (or `devel ...` for an unreleased toolchain)."""
    path: str | None
    """The `path` line: the main package's import path."""
    main: GoModule | None
    """The `mod` line: the main module."""
    deps: tuple[GoModule, ...]
    """The `dep` lines in file order, each with its replacement."""
    settings: tuple[GoBuildSetting, ...]
    """The `build` lines in file order (recorded by Go 1.18 and later only)."""
    pointer_format: bool
    """True for the Go 1.13 - 1.17 header that points at Go string headers."""

    def setting(self, key: str) -> str | None:
        """Value of the first build setting named `key` (Go writes each key once)."""
        for item in self.settings:
            if item.key == key:
                return item.value
        return None

    @property
    def tags(self) -> frozenset[str]:
        """The -tags build setting as a set (comma separated; old toolchains used spaces)."""
        value = self.setting("-tags")
        if not value:
            return frozenset()
        return frozenset(t for t in re.split(r"[,\s]+", value) if t)

    @property
    def cgo_enabled(self) -> bool | None:
        """The CGO_ENABLED setting, None when the toolchain did not record it (Go < 1.18)."""
        value = self.setting("CGO_ENABLED")
        if value is None:
            return None
        return value == "1"

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        """`go1.21.13` -> (1, 21, 13); `go1.22rc1` -> (1, 22); None for devel builds."""
        return go_version_tuple(self.go_version)


def go_version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


# ---------------------------------------------------------------------------- file access


def _offset_of(image: ElfImage, vaddr: int, length: int, what: str) -> int:
    """File offset of [vaddr, vaddr+length), which must lie in one PT_LOAD's file bytes."""
    offset = image.offset_of(vaddr, length)
    if offset is None:
        raise ELFError(f"{what} (address {vaddr:#x}) is not mapped by any PT_LOAD")
    return offset


# ---------------------------------------------------------------------------- build info


def read_go_buildinfo(source: ElfImage | ElfFile) -> GoBuildInfo | None:
    """The build info of a Go binary; None when there is none (not Go, or Go < 1.13).

    Raises ELFError when the blob is present but malformed: a header with an impossible
    pointer size, strings that point outside the file, or modinfo lines that
    runtime/debug.ParseBuildInfo would reject.
    """
    with opened(source) as image:
        return _read_buildinfo(image.elf, image)


def _read_buildinfo(elf: ElfFile, image: ElfImage) -> GoBuildInfo | None:
    found = _find_buildinfo(elf, image)
    if found is None:
        return None
    start, limit = found
    header = image.read(start, _BUILDINFO_HEADER_SIZE, "Go build-info header")
    ptr_size = header[14]
    flags = header[15]
    if flags & _FLAG_INLINE_STRINGS:
        version_raw, after = _read_varint_string(
            image, start + _BUILDINFO_HEADER_SIZE, limit, _MAX_VERSION_LENGTH, "Go version"
        )
        modinfo_raw, _ = _read_varint_string(image, after, limit, _MAX_MODINFO_LENGTH, "Go modinfo")
        pointer_format = False
    else:
        # Go 1.13 - 1.17: two pointers to Go string headers, in the byte order and pointer
        # size the header states (debug/buildinfo readRawBuildInfo, old-format branch).
        if ptr_size not in (4, 8):
            raise ELFError(f"Go build info has an invalid pointer size {ptr_size}")
        order = ">" if flags & _FLAG_BIG_ENDIAN else "<"
        fmt = order + ("I" if ptr_size == 4 else "Q")
        version_ptr = struct.unpack_from(fmt, header, 16)[0]
        modinfo_ptr = struct.unpack_from(fmt, header, 16 + ptr_size)[0]
        version_raw = _read_go_string(image, fmt, ptr_size, version_ptr, "Go version")
        modinfo_raw = _read_go_string(image, fmt, ptr_size, modinfo_ptr, "Go modinfo")
        pointer_format = True
    if not version_raw:
        # debug/buildinfo: an empty version means "not a Go executable".
        raise ELFError("Go build info has an empty Go version")
    version = version_raw.decode("utf-8", "replace")
    if len(modinfo_raw) >= 2 * _MODINFO_SENTINEL_SIZE + 1 and modinfo_raw[-17:-16] == b"\n":
        modinfo = modinfo_raw[_MODINFO_SENTINEL_SIZE:-_MODINFO_SENTINEL_SIZE]
    else:
        modinfo = b""
    return parse_modinfo(version, modinfo.decode("utf-8", "replace"), pointer_format)


def _read_varint_string(
    image: ElfImage, offset: int, limit: int, max_length: int, what: str
) -> tuple[bytes, int]:
    """A uvarint length then that many bytes (cmd/link appendString); returns (bytes, end)."""
    length = 0
    shift = 0
    position = offset
    while True:
        if position >= limit or shift > 63:
            raise ELFError(f"{what} length in the Go build info is truncated")
        byte = image.read(position, 1, what)[0]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if length > max_length or position + length > limit:
        raise ELFError(f"{what} in the Go build info runs past its segment ({length} bytes)")
    return image.read(position, length, what), position + length


def _read_go_string(image: ElfImage, fmt: str, ptr_size: int, vaddr: int, what: str) -> bytes:
    """Follow a pointer to a Go string header {data *byte; len int} (pre-1.18 build info)."""
    header_at = _offset_of(image, vaddr, 2 * ptr_size, f"{what} string header")
    raw = image.read(header_at, 2 * ptr_size, f"{what} string header")
    data_ptr = struct.unpack_from(fmt, raw, 0)[0]
    length = struct.unpack_from(fmt, raw, ptr_size)[0]
    if length > _MAX_MODINFO_LENGTH:
        raise ELFError(f"{what} in the Go build info is implausibly long ({length} bytes)")
    if length == 0:
        return b""
    data_at = _offset_of(image, data_ptr, length, what)
    return image.read(data_at, length, what)


def parse_modinfo(go_version: str, text: str, pointer_format: bool = False) -> GoBuildInfo:
    """Parse modinfo text as runtime/debug.ParseBuildInfo does (its reverse of String()).

    Unknown lines are skipped, as Go skips them (the go command writes an empty line after
    each replacement). Malformed known lines raise ELFError, as Go returns an error.
    """
    path: str | None = None
    main: GoModule | None = None
    deps: list[GoModule] = []
    settings: list[GoBuildSetting] = []
    # Index into deps (or -1 for main) of the module a following `=>` line replaces.
    last: int | None = None
    for number, line in enumerate(text.split("\n")[:-1] if text else [], start=1):
        word, tab, rest = line.partition("\t")
        try:
            if word == "path" and tab:
                path = rest
            elif word == "mod" and tab:
                main = _module(rest.split("\t"))
                last = -1
            elif word == "dep" and tab:
                deps.append(_module(rest.split("\t")))
                last = len(deps) - 1
            elif word == "=>" and tab:
                columns = rest.split("\t")
                if len(columns) != 3:
                    raise ValueError(f"expected 3 columns for replacement; got {len(columns)}")
                if last is None:
                    raise ValueError("replacement with no module on previous line")
                replacement = GoModule(columns[0], columns[1], columns[2])
                if last == -1 and main is not None:
                    main = GoModule(main.path, main.version, main.sum, replacement)
                else:
                    old = deps[last]
                    deps[last] = GoModule(old.path, old.version, old.sum, replacement)
                last = None
            elif word == "build" and tab:
                settings.append(_build_setting(rest))
        except ValueError as exc:
            raise ELFError(f"Go build info line {number}: {exc}") from None
    return GoBuildInfo(
        go_version=go_version,
        path=path,
        main=main,
        deps=tuple(deps),
        settings=tuple(settings),
        pointer_format=pointer_format,
    )


def _module(columns: list[str]) -> GoModule:
    if len(columns) not in (2, 3):
        raise ValueError(f"expected 2 or 3 columns; got {len(columns)}")
    return GoModule(columns[0], columns[1], columns[2] if len(columns) == 3 else "")


_QUOTE_IN_KEY = re.compile(r"[= \t\r\n\"`]")
_QUOTE_IN_VALUE = re.compile(r"[ \t\r\n\"`]")


def _build_setting(kv: str) -> GoBuildSetting:
    """`key=value`, where either side may be a Go quoted string (mod.go quoteKey/quoteValue)."""
    if not kv:
        raise ValueError("build line missing '='")
    if kv[0] == "=":
        raise ValueError("build line with missing key")
    if kv[0] in '"`':
        raw_key = _quoted_prefix(kv)
        if len(raw_key) == len(kv) or kv[len(raw_key)] != "=":
            raise ValueError("build line missing '=' after quoted key")
        key = _unquote(raw_key)
        raw_value = kv[len(raw_key) + 1 :]
    else:
        key, sep, raw_value = kv.partition("=")
        if not sep:
            raise ValueError("build line missing '=' after key")
        if _QUOTE_IN_KEY.search(key):
            raise ValueError(f"unquoted key {key!r} must be quoted")
    if raw_value and raw_value[0] in '"`':
        value = _unquote(raw_value)
    else:
        value = raw_value
        if _QUOTE_IN_VALUE.search(value):
            raise ValueError(f"unquoted value {value!r} must be quoted")
    return GoBuildSetting(key, value)


_SIMPLE_ESCAPES = {
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
    '"': b'"',
}


def _quoted_prefix(text: str) -> str:
    """The Go string literal at the start of `text` (strconv.QuotedPrefix)."""
    quote = text[0]
    index = 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return text[: index + 1]
        if quote == '"' and char == "\\":
            index += 1
        elif quote == '"' and char == "\n":
            break
        index += 1
    raise ValueError("invalid quoted key in build line")


def _unquote(literal: str) -> str:
    """Decode a Go interpreted ("...") or raw (`...`) string literal (strconv.Unquote)."""
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in '"`':
        raise ValueError(f"invalid quoted string {literal!r}")
    body = literal[1:-1]
    if literal[0] == "`":
        if "`" in body:
            raise ValueError(f"invalid raw string {literal!r}")
        return body.replace("\r", "")
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char in {'"', "\n"}:
            raise ValueError(f"invalid quoted string {literal!r}")
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            index += 1
            continue
        if index + 1 >= len(body):
            raise ValueError(f"invalid escape in {literal!r}")
        esc = body[index + 1]
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc]
            index += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[index + 2 : index + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"invalid escape in {literal!r}")
            number = int(digits, 16)
            if esc == "x":
                out.append(number)
            else:
                if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
                    raise ValueError(f"invalid code point in {literal!r}")
                out += chr(number).encode("utf-8")
            index += 2 + width
        elif esc in "01234567":
            digits = body[index + 1 : index + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise ValueError(f"invalid escape in {literal!r}")
            number = int(digits, 8)
            if number > 255:
                raise ValueError(f"invalid escape in {literal!r}")
            out.append(number)
            index += 4
        else:
            raise ValueError(f"invalid escape in {literal!r}")
    return out.decode("utf-8", "replace")


# ---------------------------------------------------------------------------- pclntab


@dataclass(frozen=True)
class PclntabLocation:
    """Where a pcln table and its function-name bytes are in the file."""

    version: PclntabVersion
    offset: int
    """File offset of the pcHeader (the magic)."""
    ptr_size: int
    big_endian: bool
    names_start: int
    """File offset of the first byte of the function-name table."""
    names_end: int
    """File offset just past it."""
    names_exact: bool
    """True when [names_start, names_end) is exactly funcnametab (Go 1.16+), False when
    it is the whole table (Go 1.2 - 1.15 keep names among other data)."""
    nfunc: int


_PCLNTAB_SECTIONS = (".gopclntab", ".data.rel.ro.gopclntab")
"""Some PIE builds name the section after RELRO (cmd/internal/objfile/elf.go)."""


def _pclntab_at(image: ElfImage, offset: int, end: int) -> PclntabLocation | None:
    """Validate a pcHeader at `offset` as debug/gosym.parsePclnTab does; None if it is not one.

    Header: 4-byte magic, two zero bytes, PC quantum 1/2/4, pointer size 4/8, then
    pointer-sized words (runtime/symtab.go pcHeader).
    """
    if offset + 8 > min(end, image.size):
        return None
    head = image.read(offset, 8, "pcln table header")
    if head[4] != 0 or head[5] != 0 or head[6] not in (1, 2, 4) or head[7] not in (4, 8):
        return None
    version = None
    big_endian = False
    for big in (False, True):
        magic = struct.unpack_from(">I" if big else "<I", head)[0]
        try:
            version = PclntabVersion(magic)
        except ValueError:
            continue
        big_endian = big
        break
    if version is None:
        return None
    ptr_size = head[7]
    fmt = (">" if big_endian else "<") + ("I" if ptr_size == 4 else "Q")
    words_needed = 8 if version in (PclntabVersion.GO118, PclntabVersion.GO120) else 7
    if version is PclntabVersion.GO12:
        words_needed = 1
    if offset + 8 + words_needed * ptr_size > min(end, image.size):
        return None
    words = image.read(offset + 8, words_needed * ptr_size, "pcln table header")

    def word(index: int) -> int:
        value: int = struct.unpack_from(fmt, words, index * ptr_size)[0]
        return value

    nfunc = word(0)
    if not 0 < nfunc < _MAX_FUNCTIONS:
        return None
    if version is PclntabVersion.GO12:
        return PclntabLocation(version, offset, ptr_size, big_endian, offset, end, False, nfunc)
    first = 2 if version is PclntabVersion.GO116 else 3
    names_off, next_off = word(first), word(first + 1)
    header_size = 8 + words_needed * ptr_size
    if not header_size <= names_off < next_off or offset + next_off > min(end, image.size):
        return None
    return PclntabLocation(
        version,
        offset,
        ptr_size,
        big_endian,
        offset + names_off,
        offset + next_off,
        True,
        nfunc,
    )


def locate_pclntab(source: ElfImage | ElfFile) -> PclntabLocation | None:
    """Find the pcln table: its section, else its magic in the read-only segments.

    Raises ELFError when a `.gopclntab` section exists but does not hold a valid header.
    """
    with opened(source) as image:
        return _locate_pclntab(image.elf, image)


def _locate_pclntab(elf: ElfFile, image: ElfImage) -> PclntabLocation | None:
    for name in _PCLNTAB_SECTIONS:
        where = _section_range(elf, name)
        if where is not None:
            offset, size, _addr = where
            found = _pclntab_at(image, offset, offset + size)
            if found is None:
                raise ELFError(f"section {name} does not start with a valid Go pcln header")
            return found
    if elf.sections and any(s.name for s in elf.sections):
        # Section headers are intact and name no pcln table. An external linker may have
        # merged Go's .gopclntab input section into the read-only data it writes (ld.bfd for
        # -buildmode=pie puts it in .data.rel.ro; lld does for the docker CLI), so the table
        # is searched for by its header inside those sections only, each bounding the read.
        return _scan_sections_for_pclntab(elf, image)
    return _scan_for_pclntab(image)


_PCLNTAB_HOSTS = (".data.rel.ro", ".rodata", ".data.rel.ro.local")
"""Output sections an external linker merges Go's read-only runtime tables into."""


def _pclntab_magics(prefix: str) -> list[bytes]:
    """The magics followed by the header's two zero bytes, in the file's byte order
    (`prefix`, "<" or ">"), newest layout first.

    The Go linker writes the pcHeader in the target's byte order (cmd/link/internal/ld
    pcln.go, generatePCHeader: `header.SetUint32(ctxt.Arch, ...)`), so the other order is
    never searched. Each magic costs a pass over the searched sections (tens of MB in a
    large program): newest first finds a current toolchain's table in the first pass, where
    both orders of the three older magics cost a Go 1.20+ program six passes before its own
    (the docker CLI's table, merged into .data.rel.ro by lld: 83 ms of its run)."""
    return [
        struct.pack(prefix + "I", version.value) + b"\x00\x00"
        for version in reversed(PclntabVersion)
    ]


def _scan_sections_for_pclntab(elf: ElfFile, image: ElfImage) -> PclntabLocation | None:
    ranges: list[tuple[int, int]] = []
    for name in _PCLNTAB_HOSTS:
        where = _section_range(elf, name)
        if where is not None:
            ranges.append((where[0], where[0] + where[1]))
    return _scan_ranges(image, ranges)


def _scan_ranges(image: ElfImage, ranges: list[tuple[int, int]]) -> PclntabLocation | None:
    """The first valid pcHeader in `ranges` whose name table starts with a name; the table
    must end inside the range that holds its header (`_pclntab_at` checks the offsets)."""
    magics = _pclntab_magics(image.elf.arch.byte_order.struct_prefix)
    for start, stop in ranges:
        end = min(stop, image.size)
        for magic in magics:
            position = start
            while True:
                hit = image.find(magic, position, end)
                if hit < 0:
                    break
                # The linker aligns the table (runtime.pclntab is pointer-aligned).
                if hit % 4 == 0:
                    found = _pclntab_at(image, hit, end)
                    if found is not None and _plausible_names(image, found):
                        return found
                position = hit + 1
    return None


def _scan_for_pclntab(image: ElfImage) -> PclntabLocation | None:
    """Section headers are gone (sstrip, some packers): search the segments for the magic,
    read-only ones first (Go puts the table with .rodata, or in RELRO for some PIEs)."""
    loads = [s for s in image.elf.segments if s.type == SegmentType.LOAD]
    candidates = sorted(loads, key=lambda s: bool(s.flags & PF_X))
    return _scan_ranges(image, [(s.offset, s.offset + s.filesz) for s in candidates])


def _plausible_names(image: ElfImage, where: PclntabLocation) -> bool:
    """A random match of the magic is rejected unless the name table starts with a name."""
    if not where.names_exact:
        return True
    head = image.read(where.names_start, min(256, where.names_end - where.names_start), "names")
    end = head.find(b"\x00")
    return end > 0 and all(0x20 < c < 0x7F for c in head[:end])


def go_functions(source: ElfImage | ElfFile, names: Iterable[str]) -> frozenset[str]:
    """Which of the fully qualified function `names` are in the binary's pcln table.

    Each name is looked up as a NUL-delimited literal in the name table, so a name never
    matches a longer one (`os.TempDir` does not match `os.TempDirX`). For the Go 1.2 - 1.15
    layout the whole table is searched. An empty set when there is no pcln table.
    """
    with opened(source) as image:
        where = _locate_pclntab(image.elf, image)
        if where is None:
            return frozenset()
        return frozenset(name for name in names if _has_name(image, where, name.encode()))


def go_function_prefixes(source: ElfImage | ElfFile, prefixes: Iterable[str]) -> frozenset[str]:
    """Which `prefixes` begin at least one function name (a package: `pkg/path.`)."""
    with opened(source) as image:
        where = _locate_pclntab(image.elf, image)
        if where is None:
            return frozenset()
        return frozenset(p for p in prefixes if _has_prefix(image, where, p.encode()))


def _has_prefix(image: ElfImage, where: PclntabLocation, prefix: bytes) -> bool:
    if not prefix or b"\x00" in prefix:
        return False
    start, end = where.names_start, where.names_end
    if where.names_exact and image.read(start, min(len(prefix), end - start), "names") == prefix:
        return True
    return image.find(b"\x00" + prefix, start, end) >= 0


def _has_name(image: ElfImage, where: PclntabLocation, name: bytes) -> bool:
    if not name or b"\x00" in name:
        return False
    start, end = where.names_start, where.names_end
    # The first name of funcnametab has no NUL before it.
    if where.names_exact and image.read(start, min(len(name) + 1, end - start), "names") == (
        name + b"\x00"
    ):
        return True
    return image.find(b"\x00" + name + b"\x00", start, end) >= 0


def go_function_names(source: ElfImage | ElfFile) -> tuple[str, ...]:
    """Every function name in table order, duplicates kept (for debugging and tests)."""
    with opened(source) as image:
        where = _locate_pclntab(image.elf, image)
        if where is None:
            return ()
        if where.names_exact:
            table = image.read(where.names_start, where.names_end - where.names_start, "names")
            # Empty entries are padding (externally linked tables end in NULs), not names.
            return tuple(p.decode("utf-8", "replace") for p in table.split(b"\x00") if p)
        return tuple(_go12_names(image, where))


def _go12_names(image: ElfImage, where: PclntabLocation) -> Iterator[str]:
    """Go 1.2 - 1.15: functab is nfunc (pc, funcoff) pairs after the nfunc word; each _func
    starts with the entry PC then int32 nameoff, both relative to the table (gosym go12Funcs).
    """
    ptr = where.ptr_size
    order = ">" if where.big_endian else "<"
    fmt = order + ("I" if ptr == 4 else "Q")
    functab = where.offset + 8 + ptr
    table_end = where.names_end
    for index in range(where.nfunc):
        entry_at = functab + (2 * index + 1) * ptr
        if entry_at + ptr > table_end:
            raise ELFError("Go pcln functab runs past the table")
        funcoff = struct.unpack(fmt, image.read(entry_at, ptr, "functab"))[0]
        name_field = where.offset + funcoff + ptr
        if name_field + 4 > table_end:
            raise ELFError("Go pcln _func entry runs past the table")
        nameoff = struct.unpack(order + "I", image.read(name_field, 4, "_func"))[0]
        name_at = where.offset + nameoff
        if name_at >= table_end:
            raise ELFError("Go function name offset runs past the table")
        chunk = image.read(name_at, min(_MAX_NAME_LENGTH, table_end - name_at), "name")
        stop = chunk.find(b"\x00")
        if stop < 0:
            raise ELFError("Go function name is not NUL-terminated")
        yield chunk[:stop].decode("utf-8", "replace")


# ---------------------------------------------------------------------------- facts

GO_MARKER_FUNCTIONS: tuple[str, ...] = (
    *SYSTEM_ROOTS,
    *FALLBACK_ROOTS,
    *LOAD_LOCATION,
    *TZDATA,
    *USER_PURE,
    *USER_CGO,
    *NET_LOOKUP,
    *NET_CGO,
    *TEMP,
    *MIME,
    *EXECUTABLE,
    *CGO_RUNTIME,
)
"""The names go_facts looks up; `GoFacts.functions` is the subset found."""

_LIBC_SONAMES = ("libc.so.6", "libc.so", "libc.musl-")


@dataclass(frozen=True)
class GoFacts:
    """What a Go binary's build info and function table say about its run-time needs: the
    one set of Go facts every detector reads."""

    buildinfo: GoBuildInfo | None
    """None when absent (Go < 1.13) or unreadable (see `warnings`)."""
    go_version: str | None
    cgo_enabled: bool | None
    """The CGO_ENABLED build setting; None when not recorded. It does NOT mean libc is
    used: `CGO_ENABLED=1 -tags netgo,osusergo` builds are static (docs/runtime-facts.md, "Go")."""
    cgo_linked: bool
    """runtime/cgo is really linked: its functions are in the table, or the file asks the
    loader for libc. Decide "uses libc" from this, not from `cgo_enabled`."""
    tags: frozenset[str]
    functions: frozenset[str]
    """The GO_MARKER_FUNCTIONS found in the pcln table."""
    pclntab: PclntabLocation | None
    fallback_package: bool = False
    """A function of golang.org/x/crypto/x509roots/fallback is in the table."""
    warnings: tuple[str, ...] = field(default=())
    """Problems met while reading (a corrupt build info, an unreadable table)."""
    buildinfo_error: str | None = None
    """Why the build info could not be read (None when it was, or is absent)."""

    @property
    def cgo(self) -> bool:
        """CGO_ENABLED=1 was set, or cgo is linked (either is "a cgo build")."""
        return bool(self.cgo_enabled) or self.cgo_linked

    @property
    def netgo(self) -> bool:
        return "netgo" in self.tags

    @property
    def osusergo(self) -> bool:
        return "osusergo" in self.tags

    @property
    def timetzdata(self) -> bool:
        return "timetzdata" in self.tags

    def has_function(self, name: str) -> bool:
        """Whether marker `name` (one of GO_MARKER_FUNCTIONS) was found."""
        return name in self.functions

    def found(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The markers of a group that were found, in the group's order."""
        return tuple(n for n in names if n in self.functions)

    @property
    def version(self) -> str | None:
        """The Go version without its `go` prefix (`1.21.13`), None when unknown."""
        return self.go_version.removeprefix("go") if self.go_version else None

    @property
    def uses_system_roots(self) -> bool:
        """crypto/x509 linked with its system-root loader: CA files are read at run time."""
        return bool(self.found(SYSTEM_ROOTS))

    @property
    def has_x509roots_fallback(self) -> bool:
        """Fallback roots are installed (x/crypto/x509roots/fallback or SetFallbackRoots)."""
        return self.fallback_package or bool(self.found(FALLBACK_ROOTS))

    @property
    def embeds_tzdata(self) -> bool:
        """time/tzdata is linked (a marker, or the timetzdata tag when the table is
        unreadable): LoadLocation works without zoneinfo files. With a table, the linked
        function is the truth (a tag alone links nothing)."""
        return bool(self.found(TZDATA)) or (self.pclntab is None and self.timetzdata)

    @property
    def loads_locations(self) -> bool:
        """time.LoadLocation itself: the program asks for zones by name. (time.loadLocation
        alone comes with every use of time.Local, which reads TZ or /etc/localtime and
        falls back to UTC.)"""
        return LOAD_LOCATION[0] in self.functions

    @property
    def local_time(self) -> bool:
        return LOAD_LOCATION[1] in self.functions

    @property
    def pure_go_user(self) -> bool:
        """os/user in pure Go (reads /etc/passwd itself): no cgo linked, or the osusergo tag."""
        return bool(self.found(USER_PURE)) and (not self.cgo_linked or self.osusergo)

    def evidence(self, what: str, names: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A detector's two evidence lines: what was found (with the markers of `names`
        that are), and the build facts, as the toolchain line states them."""
        found = self.found(names)
        settings = [f"Go {self.version}"] if self.version else ["Go"]
        # The CGO_ENABLED setting as recorded (the toolchain line's); Go < 1.18 recorded
        # none, and then what is linked stands for it.
        enabled = self.cgo_linked if self.cgo_enabled is None else self.cgo_enabled
        settings.append(f"CGO_ENABLED={int(enabled)}")
        if self.tags:
            settings.append("tags " + ",".join(sorted(self.tags)))
        if enabled and not self.cgo_linked:
            # CGO_ENABLED=1 with netgo/osusergo may link no cgo at all: say so, as the
            # toolchain line says "cgo linked" when it is.
            settings.append("no cgo linked")
        return (f"{what}: " + ", ".join(found) if found else what, "; ".join(settings))


def go_facts(source: ElfImage | ElfFile) -> GoFacts | None:
    """Facts of a Go binary; None for anything else. `source` is the run's image of the
    file (or an ElfFile, read on its own).

    A corrupt build info or pcln table does not fail the whole file: what could be read is
    returned and the problem is named in `warnings`. ELFError only when the file itself
    cannot be read.
    """
    with opened(source) as image:
        if not _is_go(image.elf, image):
            return None
        return go_facts_of(image)


def go_facts_of(image: ElfImage) -> GoFacts:
    """`go_facts` of the run's image of a file that `signs.is_go` has already found to be
    Go (the toolchain step asks that first, to load this reader only for Go)."""
    elf = image.elf
    warnings: list[str] = []
    buildinfo: GoBuildInfo | None = None
    buildinfo_error: str | None = None
    try:
        buildinfo = _read_buildinfo(elf, image)
    except ELFError as exc:
        buildinfo_error = str(exc)
        warnings.append(f"Go build info unreadable: {exc}")
    functions: frozenset[str] = frozenset()
    fallback_package = False
    pclntab: PclntabLocation | None = None
    try:
        pclntab = _locate_pclntab(elf, image)
        if pclntab is None:
            warnings.append("no Go pcln table found: function markers unavailable")
        else:
            where = pclntab
            functions = frozenset(
                n for n in GO_MARKER_FUNCTIONS if _has_name(image, where, n.encode())
            )
            fallback_package = _has_prefix(image, where, X509ROOTS_FALLBACK_PREFIX.encode())
    except ELFError as exc:
        warnings.append(f"Go pcln table unreadable: {exc}")

    libc_needed = any(n.startswith(_LIBC_SONAMES) for n in elf.needed)
    return GoFacts(
        buildinfo=buildinfo,
        go_version=buildinfo.go_version if buildinfo is not None else None,
        cgo_enabled=buildinfo.cgo_enabled if buildinfo is not None else None,
        cgo_linked=libc_needed or any(n in functions for n in CGO_RUNTIME),
        tags=buildinfo.tags if buildinfo is not None else frozenset(),
        functions=functions,
        pclntab=pclntab,
        fallback_package=fallback_package,
        warnings=tuple(warnings),
        buildinfo_error=buildinfo_error,
    )
