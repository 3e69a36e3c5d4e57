"""A crafted ld.so.cache cannot make the parse hold more than a bound of strings
(docs/security-inputs.md, "Bounds"): entries that each name their own 4 KiB string held
350 times the cache's size in memory; past 16 MiB of strings the cache is refused."""

from __future__ import annotations

import struct

import pytest

from scratchprobe.loader.ldcache import LdCacheError, parse_ld_cache


def _cache(entries: int, distinct: bool) -> bytes:
    """A new-format cache over runs of 4095 bytes and a NUL; each entry's key and value
    start at their own offset in the runs (`distinct`) or all at the first run's start."""
    header = 48
    table = header + entries * 24
    run = b"x" * 4095 + b"\0"
    strings = run * (entries * 2 // 4000 + 1)
    raw = bytearray(b"glibc-ld.so.cache1.1")
    raw += struct.pack("<II", entries, len(strings)) + bytes(header - len(raw) - 8)
    for index in range(entries):
        at = 2 * index if distinct else 0
        offset = table + (at // 4000) * 4096 + at % 4000
        raw += struct.pack("<iIIIQ", 0x0303, offset, offset + (1 if distinct else 0), 0, 0)
    return bytes(raw) + strings


def test_strings_past_the_bound_refuse_the_cache() -> None:
    data = _cache(20_000, distinct=True)
    assert len(data) < 1 << 20
    with pytest.raises(LdCacheError, match="strings add up to more than 16 MiB"):
        parse_ld_cache(data)


def test_shared_strings_count_once() -> None:
    """The same 20,000 entries naming one string are 4 KiB of strings: a valid cache."""
    cache = parse_ld_cache(_cache(20_000, distinct=False))
    assert len(cache.rows) == 20_000
    assert len(cache.lookup("x" * 4095, frozenset())) == 20_000
