"""What the stored indexes share (packages/stored.py): the bucketed table answers every name
it holds and no other, whatever the names look like, and a damaged one is an error, never
another name's answer; reads are bounded by the limit whatever the file's size says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scratchprobe.packages.stored import Table, pack_table, read_at_most, storable

NAMES = [
    b"libc.so.6",
    b"__init__.py",
    b"x",
    b"with\ttab",
    b"with",  # a prefix of the name above, up to its tab
    b"\xff\xfe not utf-8",
    b"",
] + [b"name-%d" % i for i in range(500)]


def test_every_name_gives_its_payload_and_no_other() -> None:
    entries = {name: b"%d.%d" % (i, i * 7) for i, name in enumerate(NAMES)}
    assert all(storable(name, payload) for name, payload in entries.items())
    table = Table(pack_table(entries))
    for name, payload in entries.items():
        assert table.get(name) == payload, name
    for absent in (b"name-500", b"libc.so", b"with\t", b"tab", b"name-1\t1"):
        assert table.get(absent) is None, absent
    assert dict(table.items()) == entries


def test_a_small_or_empty_table() -> None:
    assert Table(pack_table({})).get(b"a") is None
    assert dict(Table(pack_table({b"a": b"1"})).items()) == {b"a": b"1"}


def test_what_a_line_cannot_hold_is_refused() -> None:
    assert not storable(b"new\nline", b"1")
    assert not storable(b"a", b"tab\tin payload")
    assert not storable(b"a", b"new\nline")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: b"no count" + data,
        lambda data: b"999999\n" + data.partition(b"\n")[2],  # a table longer than the data
        lambda data: data.replace(b"0000000000", b"9999999999", 1),
        lambda data: data.replace(b"0000000000", b"-000000001", 1),
    ],
)
def test_a_damaged_table_is_an_error(damage: object) -> None:
    data = pack_table({b"name-%d" % i: b"%d" % i for i in range(64)})
    assert callable(damage)
    damaged = damage(data)
    with pytest.raises(ValueError, match=r"out of the data|invalid literal|no bucket count"):
        _read_all(damaged)


def _read_all(data: bytes) -> None:
    table = Table(data)
    for i in range(64):
        table.get(b"name-%d" % i)


def test_reads_are_bounded_by_the_limit_not_the_stated_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb") as handle:
        assert read_at_most(handle, 10_000) == b"x" * 1000
    with open(path, "rb") as handle:
        assert read_at_most(handle, 100) == b"x" * 100
    with open(path, "rb") as handle:
        assert read_at_most(handle, 1000) == b"x" * 1000
    # A pipe states size 0 (as procfs files do): it is read on, up to the limit.
    reader, writer = os.pipe()
    os.write(writer, b"y" * 5000)
    os.close(writer)
    with os.fdopen(reader, "rb") as handle:
        assert read_at_most(handle, 4096) == b"y" * 4096
