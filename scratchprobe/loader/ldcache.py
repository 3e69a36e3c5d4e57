"""Parse /etc/ld.so.cache directly (never by running ldconfig).

Format (glibc sysdeps/generic/dl-cache.h):
- old: magic "ld.so-1.7.0", nlibs, then nlibs {int flags; uint key, value} whose string
  offsets count from the end of that table; a new-format cache may follow, aligned.
- new: magic "glibc-ld.so.cache" "1.1", nlibs, len_strings, flags (byte order), 3 pad bytes,
  extension_offset, 3 unused words, then nlibs {int32 flags; uint32 key, value;
  uint32 osversion; uint64 hwcap} whose string offsets count from the new header.
ldconfig writes only the new format since glibc 2.32; both are read here.
The cache's byte order is the target's, so it is tried in both orders and validated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"

_OLD_HEADER = 16  # 11 magic bytes padded to 12, then uint32 nlibs
_OLD_ENTRY = 12
_NEW_HEADER = 48
_NEW_ENTRY = 24


@dataclass(frozen=True)
class CacheEntry:
    """One library the cache maps: `name` (a soname) to an absolute path."""

    name: str
    path: str
    flags: int
    hwcap: int
    """Non-zero for glibc-hwcaps or legacy hwcap subdirectory entries."""


# (name, path, flags, hwcap) of one entry, as parsed: a CacheEntry is made only for the
# names a search asks (a cache has ~700 entries, a closure asks for ~30).
_Row = tuple[str, str, int, int]


@dataclass(frozen=True)
class LdCache:
    rows: tuple[_Row, ...]
    """Every entry in cache order, as (name, path, flags, hwcap)."""
    format: str
    """`new`, `old` or `old+new`."""
    by_name: dict[str, tuple[_Row, ...]] = field(init=False, repr=False, compare=False)
    """Entries per name in cache order: a batch looks names up thousands of times."""

    def __post_init__(self) -> None:
        index: dict[str, list[_Row]] = {}
        for row in self.rows:
            index.setdefault(row[0], []).append(row)
        object.__setattr__(self, "by_name", {k: tuple(v) for k, v in index.items()})

    @property
    def entries(self) -> tuple[CacheEntry, ...]:
        return tuple(CacheEntry(*row) for row in self.rows)

    def lookup(self, name: str, accepted_flags: frozenset[int]) -> tuple[CacheEntry, ...]:
        """Entries for `name` in cache order whose flags this loader accepts.

        An empty `accepted_flags` (unknown architecture) accepts every entry; the caller then
        checks the file's ELF class and machine, as the loader's open_verify does.
        """
        return tuple(
            CacheEntry(*row)
            for row in self.by_name.get(name, ())
            if not accepted_flags or row[2] in accepted_flags
        )


class LdCacheError(ValueError):
    """The cache file is malformed."""


def parse_ld_cache(data: bytes) -> LdCache:
    if data.startswith(NEW_MAGIC):
        return LdCache(_parse_new(data, 0), "new")
    if data.startswith(OLD_MAGIC):
        old, end = _parse_old(data)
        # A combined cache puts the new format after the old table, 8-byte aligned.
        new_start = (end + 7) & ~7
        new_at = data.find(NEW_MAGIC, end)
        if new_at >= 0 and new_at <= new_start + 8:
            return LdCache(_parse_new(data, new_at), "old+new")
        return LdCache(old, "old")
    raise LdCacheError("not an ld.so.cache file (unknown magic)")


# A cache entry names a soname and an absolute path; neither can be longer than PATH_MAX
# (4096, linux/limits.h) for the loader to open it.
_MAX_STRING = 4096


# What all the decoded strings of one cache may add up to: this machine's 665 entries are
# ~50 KiB, and a crafted cache whose entries each name their own 4 KiB string held 350
# times its size in memory (1 MiB of cache, 368 MB).
_MAX_STRINGS_TOTAL = 16 << 20


class _Strings:
    """The cache's strings, decoded once per offset: ldconfig shares one string between
    entries (a soname is often its own key), and a crafted cache can point 200,000 entries
    at one long string. Each search for the NUL stops after PATH_MAX bytes, and all of
    them together stop at _MAX_STRINGS_TOTAL."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.decoded: dict[int, str] = {}
        self.total = 0

    def __call__(self, offset: int) -> str:
        found = self.decoded.get(offset)
        if found is not None:
            return found
        data = self.data
        if not 0 <= offset < len(data):
            raise LdCacheError("string offset outside the cache")
        end = data.find(b"\0", offset, offset + _MAX_STRING + 1)
        if end < 0:
            if len(data) - offset > _MAX_STRING:
                raise LdCacheError(f"a string in the cache is longer than {_MAX_STRING} bytes")
            raise LdCacheError("unterminated string in the cache")
        self.total += end - offset
        if self.total > _MAX_STRINGS_TOTAL:
            raise LdCacheError(
                f"the cache's strings add up to more than {_MAX_STRINGS_TOTAL >> 20} MiB"
            )
        found = data[offset:end].decode("utf-8", "surrogateescape")
        self.decoded[offset] = found
        return found


def _parse_new(data: bytes, base: int) -> tuple[_Row, ...]:
    if len(data) < base + _NEW_HEADER:
        raise LdCacheError("truncated cache header")
    for order in ("<", ">"):
        (nlibs,) = struct.unpack_from(order + "I", data, base + 20)
        if base + _NEW_HEADER + nlibs * _NEW_ENTRY <= len(data):
            break
    else:
        raise LdCacheError("cache entry table lies past the end of the file")
    string = _Strings(data)
    table = base + _NEW_HEADER
    return tuple(
        (string(base + key), string(base + value), flags, hwcap)
        for flags, key, value, _osv, hwcap in struct.iter_unpack(
            order + "iIIIQ", data[table : table + nlibs * _NEW_ENTRY]
        )
    )


def _parse_old(data: bytes) -> tuple[tuple[_Row, ...], int]:
    if len(data) < _OLD_HEADER:
        raise LdCacheError("truncated cache header")
    for order in ("<", ">"):
        (nlibs,) = struct.unpack_from(order + "I", data, 12)
        if _OLD_HEADER + nlibs * _OLD_ENTRY <= len(data):
            break
    else:
        raise LdCacheError("cache entry table lies past the end of the file")
    strings = _OLD_HEADER + nlibs * _OLD_ENTRY
    string = _Strings(data)
    rows = tuple(
        (string(strings + key), string(strings + value), flags, 0)
        for flags, key, value in struct.iter_unpack(order + "iII", data[_OLD_HEADER:strings])
    )
    return rows, strings
