#!/usr/bin/env python3
"""Write MANIFEST.json for testbins/built from binutils readelf output.

Usage: record.py BUILT_DIR > MANIFEST.json

readelf (binutils) is the independent oracle: every ELF property below is
parsed from `readelf -hldVW FILE` (never from scratchprobe).  The only other
inputs are the first 4 bytes of each file (to decide whether it is ELF at all)
and e_machine read straight from the header to cross-check the name->number
table, plus BUILD_INFO (libc / toolchain), which is knowledge about how build.sh
produced each file and cannot be read from the binary.

Every regular, non-symlink ELF file under BUILT_DIR is recorded, except the
deliberately broken ones in broken/.  Output: a JSON object keyed by path
relative to BUILT_DIR (sorted), each value having exactly the keys
class, endian, machine, type, linkage, interpreter, needed, rpath, runpath,
soname, nodeflib, max_glibc, libc, toolchain.

Python 3.11 standard library only.  The environment variable READELF may name
the readelf binary (default "readelf").
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import struct
import subprocess
import sys

READELF = os.environ.get("READELF", "readelf")

# How each file was built (see build.sh): (glob relative to built/, libc, toolchain).
# First match wins.
BUILD_INFO: list[tuple[str, str | None, str]] = [
    # runtime-needs cases (build-runtime-c.sh, build-runtime-go-rust.sh)
    ("runtime/c-*-musl*", "musl", "c"),
    ("runtime/c-*", "glibc", "c"),
    ("runtime/go*-cgo", "glibc", "go"),
    ("runtime/go*", None, "go"),
    ("runtime/rust-*", "glibc", "rust"),
    ("c-musl-*", "musl", "c"),
    ("cpp-*", "glibc", "c++"),
    ("go-static", None, "go"),
    ("go-cgo", "glibc", "go"),
    ("rust-*", "glibc", "rust"),
    ("foreign/*", "glibc", "c"),  # zig cc, -target <arch>-linux-gnu.2.36
    ("c-*", "glibc", "c"),  # gcc: c-glibc-*, c-nodeflib, c-runpath-origin/*, c-lib-only/*
    ("rpath-inherit/*", "glibc", "c"),
    ("runpath-not-inherited/*", "glibc", "c"),
]

# readelf's "Machine:" text -> e_machine number (elf/common.h).  Cross-checked
# against the raw header; unknown names fall back to the raw value only if
# readelf printed "<unknown>: 0x..".
MACHINE_NUMBERS = {
    "Intel 80386": 3,
    "MIPS R3000": 8,
    "PowerPC": 20,
    "PowerPC64": 21,
    "IBM S/390": 22,
    "ARM": 40,
    "Sparc v9": 43,
    "Advanced Micro Devices X86-64": 62,
    "AArch64": 183,
    "RISC-V": 243,
    "LoongArch": 258,
}

GLIBC_RE = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")


def readelf(path: str) -> str:
    res = subprocess.run(
        [READELF, "-hldVW", path],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    return res.stdout


def header_field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}:\s+(.*?)\s*$", text, re.M)
    if not m:
        raise ValueError(f"readelf output has no '{name}:' line")
    return m.group(1)


def raw_e_machine(path: str, endian: str) -> int:
    with open(path, "rb") as f:
        hdr = f.read(20)
    return struct.unpack_from("<H" if endian == "little" else ">H", hdr, 18)[0]


def dyn_entries(text: str, dtype: str) -> list[str]:
    """Values of lines like ' 0x... (NEEDED)  Shared library: [libc.so.6]'."""
    pat = re.compile(rf"^\s*0x[0-9a-f]+\s+\({re.escape(dtype)}\)\s+[^\[]*\[(.*)\]\s*$", re.M)
    return pat.findall(text)


def one_or_none(values: list[str], what: str, path: str) -> str | None:
    if len(values) > 1:
        raise ValueError(f"{path}: more than one {what}: {values}")
    return values[0] if values else None


def version_needs_glibc(text: str) -> str | None:
    """Highest GLIBC_x.y[.z] named in the 'Version needs section'."""
    best: tuple[int, ...] | None = None
    best_name = None
    in_needs = False
    for line in text.splitlines():
        if line.startswith("Version needs section"):
            in_needs = True
            continue
        if in_needs and line and not line.startswith(" "):
            in_needs = False  # next top-level readelf section
        if not in_needs:
            continue
        m = re.search(r"Name:\s+(\S+)", line)
        if not m:
            continue
        g = GLIBC_RE.match(m.group(1))
        if g:
            key = tuple(int(x) for x in g.group(1).split("."))
            if best is None or key > best:
                best, best_name = key, m.group(1)
    return best_name


def build_info(rel: str) -> tuple[str | None, str]:
    for pattern, libc, tool in BUILD_INFO:
        if fnmatch.fnmatchcase(rel, pattern):
            return libc, tool
    raise ValueError(f"{rel}: no BUILD_INFO entry; add one to record.py")


def record(path: str, rel: str) -> dict:
    text = readelf(path)

    cls = header_field(text, "Class")
    klass = {"ELF32": 32, "ELF64": 64}[cls]
    data = header_field(text, "Data")
    endian = "little" if "little endian" in data else "big" if "big endian" in data else None
    if endian is None:
        raise ValueError(f"{rel}: unknown Data '{data}'")

    mname = header_field(text, "Machine")
    raw = raw_e_machine(path, endian)
    if mname in MACHINE_NUMBERS:
        machine = MACHINE_NUMBERS[mname]
        if machine != raw:
            raise ValueError(f"{rel}: readelf says {mname!r}={machine} but header has {raw}")
    else:
        m = re.match(r"<unknown>:\s*0x([0-9a-f]+)", mname)
        if not m:
            raise ValueError(
                f"{rel}: unmapped machine {mname!r} (raw {raw}); extend MACHINE_NUMBERS"
            )
        machine = int(m.group(1), 16)

    etype = header_field(text, "Type").split()[0]
    if etype not in ("EXEC", "DYN"):
        raise ValueError(f"{rel}: unexpected type {etype}")

    interps = re.findall(r"\[Requesting program interpreter: (.*)\]", text)
    interpreter = one_or_none(interps, "interpreter", rel)

    flags_1 = []
    for line in re.findall(r"^\s*0x[0-9a-f]+\s+\(FLAGS_1\)\s+Flags:(.*)$", text, re.M):
        flags_1 += line.split()

    if interpreter is not None:
        linkage = "dynamic"
    elif etype == "DYN" and "PIE" in flags_1:
        linkage = "static-pie"
    elif etype == "DYN":
        linkage = "shared-library"
    else:
        linkage = "static"

    libc, toolchain = build_info(rel)
    return {
        "class": klass,
        "endian": endian,
        "machine": machine,
        "type": etype,
        "linkage": linkage,
        "interpreter": interpreter,
        "needed": dyn_entries(text, "NEEDED"),
        "rpath": one_or_none(dyn_entries(text, "RPATH"), "RPATH", rel),
        "runpath": one_or_none(dyn_entries(text, "RUNPATH"), "RUNPATH", rel),
        "soname": one_or_none(dyn_entries(text, "SONAME"), "SONAME", rel),
        "nodeflib": "NODEFLIB" in flags_1,
        "max_glibc": version_needs_glibc(text),
        "libc": libc,
        "toolchain": toolchain,
    }


def main() -> None:
    built = os.path.abspath(sys.argv[1])
    manifest: dict[str, dict] = {}
    for dirpath, dirnames, filenames in os.walk(built):
        rel_dir = os.path.relpath(dirpath, built)
        if rel_dir == "broken" or rel_dir.startswith("broken" + os.sep):
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            rel = os.path.relpath(path, built).replace(os.sep, "/")
            manifest[rel] = record(path, rel)
    json.dump(dict(sorted(manifest.items())), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
