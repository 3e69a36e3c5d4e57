"""ELF numbers scratchprobe reads, named as in glibc's elf/elf.h (the System V gABI)."""

from __future__ import annotations

from enum import Enum, IntEnum

ELF_MAGIC = b"\x7fELF"


class ElfClass(IntEnum):
    """EI_CLASS: the word size of the file."""

    ELF32 = 1
    ELF64 = 2

    @property
    def bits(self) -> int:
        return 32 if self is ElfClass.ELF32 else 64


class ByteOrder(Enum):
    """EI_DATA: the byte order of every multi-byte field in the file."""

    LITTLE = "little"
    BIG = "big"

    @property
    def struct_prefix(self) -> str:
        return "<" if self is ByteOrder.LITTLE else ">"


class ElfType(IntEnum):
    """e_type."""

    NONE = 0
    REL = 1
    EXEC = 2
    DYN = 3
    CORE = 4


class SegmentType(IntEnum):
    """p_type values the loader acts on."""

    LOAD = 1
    DYNAMIC = 2
    INTERP = 3
    NOTE = 4


class DynamicTag(IntEnum):
    """d_tag values of the dynamic section that decide library resolution."""

    NULL = 0
    NEEDED = 1
    STRTAB = 5
    STRSZ = 10
    SONAME = 14
    RPATH = 15
    FLAGS = 30
    RUNPATH = 29
    FLAGS_1 = 0x6FFFFFFB
    VERDEF = 0x6FFFFFFC
    VERDEFNUM = 0x6FFFFFFD
    VERNEED = 0x6FFFFFFE
    VERNEEDNUM = 0x6FFFFFFF


# DT_FLAGS_1 bits (elf.h).
DF_1_NODEFLIB = 0x00000800
DF_1_PIE = 0x08000000

# Verdef flag marking the entry that names the object itself rather than a version it provides.
VER_FLG_BASE = 0x1

# e_machine numbers. Names follow the Debian/uname spelling users see in image platforms.
EM_386 = 3
EM_68K = 4
EM_SPARC = 2
EM_MIPS = 8
EM_PARISC = 15
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_SH = 42
EM_SPARCV9 = 43
EM_IA_64 = 50
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

# ARM EABI hard-float marker in e_flags (glibc picks ld-linux-armhf.so.3 on it).
EF_ARM_ABI_FLOAT_HARD = 0x400
