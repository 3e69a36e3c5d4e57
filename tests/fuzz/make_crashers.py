"""Write the hand-made part of the crasher corpus (tests/data/crashers/) from its recipes.

    python3 -m tests.fuzz.make_crashers

Each recipe is a scaled-down copy of a case of tests/hostile/test_hostile_inputs.py small enough to
commit (the sparse and 16 MiB shapes stay generated there). Inputs the fuzzers found are
committed as they were found, next to these, and listed in tests/data/crashers/README.md.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.hostile_elf import (
    BASE,
    DT_NEEDED,
    DT_STRSZ,
    DT_STRTAB,
    ET_EXEC,
    PF_R,
    PF_W,
    PT_INTERP,
    PT_LOAD,
    PT_NOTE,
    ElfBuilder,
    dynamic_library,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "crashers"
LOADER = b"/lib64/ld-linux-x86-64.so.2"


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _note(owner: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % 4)

    return struct.pack("<III", len(owner) + 1, len(desc), ntype) + pad(owner + b"\0") + pad(desc)


def writable_load_past_2_63() -> bytes:
    """OverflowError in the Go build-info search (json, cyclonedx)."""
    builder = ElfBuilder(e_type=ET_EXEC)
    builder.phdr(PT_LOAD, (1 << 63) + 16, 4096, flags=PF_R | PF_W, vaddr=0x800000)
    return builder.build()


def deep_dep_v0() -> bytes:
    """RecursionError parsing cargo-auditable's .dep-v0 JSON."""
    builder = ElfBuilder(e_type=ET_EXEC)
    builder.section(b".dep-v0", zlib.compress(b'{"packages":' + _deep(20_000) + b"}"))
    builder.section(b".comment", b"rustc version 1.80.0 (051478957 2024-07-21)\0")
    return builder.build()


def deep_note_dlopen() -> bytes:
    """RecursionError parsing systemd's .note.dlopen JSON."""
    builder = ElfBuilder()
    interp = builder.add(LOADER + b"\0")
    builder.phdr(PT_INTERP, interp, len(LOADER) + 1)
    names = b"\0libc.so.6\0"
    str_at = builder.add(names)
    builder.dynamic([(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(names)), (DT_NEEDED, 1)])
    note = _note(b"FDO", 0x407C0C0A, _deep(5_000))
    builder.phdr(PT_NOTE, builder.section(b".note.dlopen", note, 7), len(note))
    return builder.build()


def needed_share_long_string() -> bytes:
    """4000 DT_NEEDED naming one string longer than PATH_MAX (copied per reference)."""
    builder = ElfBuilder()
    names = b"\0" + b"a" * 8192 + b"\0"
    str_at = builder.add(names)
    entries = [(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(names))]
    builder.dynamic(entries + [(DT_NEEDED, 1)] * 4000)
    return builder.build()


def interp_past_path_max() -> bytes:
    """A PT_INTERP longer than PATH_MAX (read whole before: 50 GiB when sparse)."""
    builder = ElfBuilder(e_type=ET_EXEC)
    at = builder.add(b"/" * 8192)
    builder.phdr(PT_INTERP, at, 8192)
    return builder.build()


def needed_not_utf8() -> bytes:
    """A DT_NEEDED that is not UTF-8 (UnicodeEncodeError in SARIF)."""
    return dynamic_library([b"lib\xff\xfe.so"], e_type=ET_EXEC)


def ld_cache_shared_long_string() -> bytes:
    """ld.so.cache whose 2000 entries name one 8 KiB string (200,000 x 100 KiB before)."""
    entries, string = 2000, b"x" * 8192
    table = 48 + entries * 24
    raw = bytearray(b"glibc-ld.so.cache1.1")
    raw += struct.pack("<II", entries, len(string) + 1) + bytes(48 - len(raw) - 8)
    for _ in range(entries):
        raw += struct.pack("<iIIIQ", 0x0303, table, table, 0, 0)
    return bytes(raw) + string + b"\0"


def main() -> None:
    files = {
        "writable-load-past-2-63.elf": writable_load_past_2_63(),
        "deep-dep-v0.elf": deep_dep_v0(),
        "deep-note-dlopen.elf": deep_note_dlopen(),
        "needed-share-long-string.elf": needed_share_long_string(),
        "interp-past-path-max.elf": interp_past_path_max(),
        "needed-not-utf8.elf": needed_not_utf8(),
        "roots/ld-cache-shared-long-string/etc/ld.so.cache": ld_cache_shared_long_string(),
        "roots/ld-cache-shared-long-string/bin/app": dynamic_library(
            [b"libfoo.so"], e_type=ET_EXEC
        ),
    }
    for name, data in files.items():
        dest = CORPUS / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


if __name__ == "__main__":
    main()
