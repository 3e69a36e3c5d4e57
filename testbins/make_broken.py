#!/usr/bin/env python3
"""Derive deliberately broken ELF files from a good x86_64 ELF64 LE binary.

Usage: make_broken.py SOURCE_ELF OUT_DIR

SOURCE_ELF is testbins/built/c-glibc-dynamic (ELF64, little endian, ET_DYN PIE
with PT_INTERP and PT_DYNAMIC).  Each output has exactly one defect (except
where noted), created by byte patching with `struct`.  The symlinks
(symlink-loop-a/b, dangling-link) are made by build.sh with `ln -sfn`.

Python 3.11 standard library only.  Output is deterministic.
"""

from __future__ import annotations

import os
import struct
import sys

# ELF64 header field offsets (System V gABI).
EI_CLASS = 4  # 1 byte: 1 = ELFCLASS32, 2 = ELFCLASS64
EI_DATA = 5  # 1 byte: 1 = ELFDATA2LSB, 2 = ELFDATA2MSB
E_PHOFF = 0x20  # Elf64_Off  (Q)
E_SHOFF = 0x28  # Elf64_Off  (Q)
E_PHENTSIZE = 0x36  # Elf64_Half (H)
E_PHNUM = 0x38  # Elf64_Half (H)
E_SHENTSIZE = 0x3A  # Elf64_Half (H)
E_SHNUM = 0x3C  # Elf64_Half (H)

PT_DYNAMIC = 2
PT_INTERP = 3
SHT_DYNAMIC = 6
DT_NULL = 0
DT_STRTAB = 5

# Elf64_Phdr: p_type(I) p_flags(I) p_offset(Q) p_vaddr(Q) p_paddr(Q)
#             p_filesz(Q) p_memsz(Q) p_align(Q)
PHDR = struct.Struct("<IIQQQQQQ")
# Elf64_Shdr: sh_name(I) sh_type(I) sh_flags(Q) sh_addr(Q) sh_offset(Q)
#             sh_size(Q) sh_link(I) sh_info(I) sh_addralign(Q) sh_entsize(Q)
SHDR = struct.Struct("<IIQQQQIIQQ")
DYN = struct.Struct("<qQ")  # Elf64_Dyn: d_tag, d_un


def u16(buf: bytes, off: int) -> int:
    return struct.unpack_from("<H", buf, off)[0]


def u64(buf: bytes, off: int) -> int:
    return struct.unpack_from("<Q", buf, off)[0]


def phdrs(buf: bytes):
    """Yield (offset_of_phdr_entry, unpacked tuple) for every program header."""
    phoff, phentsize, phnum = u64(buf, E_PHOFF), u16(buf, E_PHENTSIZE), u16(buf, E_PHNUM)
    for i in range(phnum):
        off = phoff + i * phentsize
        yield off, PHDR.unpack_from(buf, off)


def find_phdr(buf: bytes, p_type: int):
    for off, ph in phdrs(buf):
        if ph[0] == p_type:
            return off, ph
    raise SystemExit(f"source has no program header of type {p_type}")


def shdrs(buf: bytes):
    shoff, shentsize, shnum = u64(buf, E_SHOFF), u16(buf, E_SHENTSIZE), u16(buf, E_SHNUM)
    for i in range(shnum):
        off = shoff + i * shentsize
        yield off, SHDR.unpack_from(buf, off)


def main() -> None:
    src, outdir = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        good = f.read()
    if good[:4] != b"\x7fELF" or good[EI_CLASS] != 2 or good[EI_DATA] != 1:
        raise SystemExit("source must be an ELF64 little-endian file")
    size = len(good)
    beyond = size + 0x10000  # a file offset well past EOF
    out: dict[str, bytes] = {}

    # empty: zero-length file.
    out["empty"] = b""

    # not-elf.txt: plain text, no ELF magic at all.
    out["not-elf.txt"] = b"This is not an ELF file.\nJust text for scratchprobe tests.\n"

    # bad-magic: e_ident[0..3] "\x7fELF" -> "\x7fELV" (last magic byte wrong);
    # everything else is the intact binary.
    b = bytearray(good)
    b[3:4] = b"V"
    out["bad-magic"] = bytes(b)

    # truncated-header: only the first 20 bytes (the ELF64 header is 64 bytes):
    # e_ident is complete, e_type/e_machine present, the rest missing.
    out["truncated-header"] = good[:20]

    # truncated-phdrs: full ELF header, then cut in the middle of the 2nd
    # program header entry (e_phoff + 1.5 * e_phentsize).
    phoff, phentsize = u64(good, E_PHOFF), u16(good, E_PHENTSIZE)
    out["truncated-phdrs"] = good[: phoff + phentsize + phentsize // 2]

    # bad-class: e_ident[EI_CLASS] = 7 (only 1 and 2 are valid).
    b = bytearray(good)
    b[EI_CLASS] = 7
    out["bad-class"] = bytes(b)

    # bad-data: e_ident[EI_DATA] = 9 (only 1 and 2 are valid).
    b = bytearray(good)
    b[EI_DATA] = 9
    out["bad-data"] = bytes(b)

    # shdrs-past-eof: e_shoff = file size + 0x10000 (section header table
    # entirely beyond EOF); program headers are intact so a phdr-based reader
    # can still succeed.
    b = bytearray(good)
    struct.pack_into("<Q", b, E_SHOFF, beyond)
    out["shdrs-past-eof"] = bytes(b)

    # phdrs-past-eof: e_phoff = file size + 0x10000 (program header table
    # entirely beyond EOF).
    b = bytearray(good)
    struct.pack_into("<Q", b, E_PHOFF, beyond)
    out["phdrs-past-eof"] = bytes(b)

    # dynamic-outside-file: PT_DYNAMIC p_offset = file size + 0x10000 (p_filesz
    # unchanged), AND the SHT_DYNAMIC (.dynamic) section header's sh_offset is
    # moved to the same place, so a reader using either view finds the dynamic
    # table outside the file.  (p_vaddr is left alone.)
    b = bytearray(good)
    off, ph = find_phdr(good, PT_DYNAMIC)
    struct.pack_into("<Q", b, off + 8, beyond)  # p_offset
    for soff, sh in shdrs(good):
        if sh[1] == SHT_DYNAMIC:
            struct.pack_into("<Q", b, soff + 24, beyond)  # sh_offset
    out["dynamic-outside-file"] = bytes(b)

    # interp-unterminated: every byte of the PT_INTERP segment (p_filesz bytes,
    # normally "/lib64/ld-linux-x86-64.so.2\0") is overwritten with 'A', so the
    # interpreter path has no NUL terminator inside the segment (the next byte
    # in the file belongs to the following section).
    b = bytearray(good)
    off, ph = find_phdr(good, PT_INTERP)
    p_offset, p_filesz = ph[2], ph[5]
    b[p_offset : p_offset + p_filesz] = b"A" * p_filesz
    out["interp-unterminated"] = bytes(b)

    # interp-past-eof (extra): PT_INTERP p_offset = file size - 4 with the
    # original p_filesz (28), so the interpreter string runs past EOF.
    b = bytearray(good)
    struct.pack_into("<Q", b, off + 8, size - 4)  # p_offset
    out["interp-past-eof"] = bytes(b)

    # dynstr-outside: the DT_STRTAB entry in the dynamic table gets
    # d_ptr = 0xdead0000, a virtual address no PT_LOAD segment maps, so the
    # DT_NEEDED/DT_SONAME string offsets cannot be resolved via the dynamic
    # table.  (The .dynstr section header is left intact.)
    b = bytearray(good)
    _, dph = find_phdr(good, PT_DYNAMIC)
    d_off, d_size = dph[2], dph[5]
    patched = False
    for e in range(d_off, d_off + d_size, DYN.size):
        tag, _val = DYN.unpack_from(good, e)
        if tag == DT_NULL:
            break
        if tag == DT_STRTAB:
            struct.pack_into("<Q", b, e + 8, 0xDEAD0000)
            patched = True
    if not patched:
        raise SystemExit("source has no DT_STRTAB")
    out["dynstr-outside"] = bytes(b)

    # huge-phnum: e_phnum = 0xffff (65535 * 56 bytes = ~3.6 MB of program
    # headers claimed, far more than the file holds).  Note 0xffff is also
    # PN_XNUM in the gABI: a strictly conforming reader then takes the real
    # count from section header 0's sh_info, which is 0 here -- so a reader
    # must either honour PN_XNUM (0 phdrs) or bounds-check; never read 3.6 MB.
    b = bytearray(good)
    struct.pack_into("<H", b, E_PHNUM, 0xFFFF)
    out["huge-phnum"] = bytes(b)

    os.makedirs(outdir, exist_ok=True)
    for name, data in sorted(out.items()):
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644 if name == "not-elf.txt" else 0o755)
        print(f"  broken/{name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
