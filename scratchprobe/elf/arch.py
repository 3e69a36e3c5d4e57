"""Architecture names and the compatibility rule the loader uses to skip wrong candidates."""

from __future__ import annotations

from dataclasses import dataclass

from scratchprobe.elf.constants import (
    EF_ARM_ABI_FLOAT_HARD,
    EM_68K,
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_IA_64,
    EM_LOONGARCH,
    EM_MIPS,
    EM_PARISC,
    EM_PPC,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_SH,
    EM_SPARC,
    EM_SPARCV9,
    EM_X86_64,
    ByteOrder,
    ElfClass,
)


@dataclass(frozen=True)
class Architecture:
    """Who can load whom: glibc's elf_machine_matches_host plus class and byte order."""

    machine: int
    """e_machine."""
    elf_class: ElfClass
    byte_order: ByteOrder
    flags: int
    """e_flags, which split ABIs sharing one e_machine (armhf vs armel)."""

    @property
    def name(self) -> str:
        return arch_name(self.machine, self.elf_class, self.byte_order, self.flags)

    def can_load(self, other: Architecture) -> bool:
        """Whether a loader for `self` accepts `other` as a library (dl-load.c open_verify)."""
        if (self.machine, self.elf_class, self.byte_order) != (
            other.machine,
            other.elf_class,
            other.byte_order,
        ):
            return False
        if self.machine == EM_ARM:
            # A hard-float process cannot use soft-float libraries (glibc arm dl-machine.h).
            return (self.flags & EF_ARM_ABI_FLOAT_HARD) == (other.flags & EF_ARM_ABI_FLOAT_HARD)
        return True


def arch_name(machine: int, elf_class: ElfClass, byte_order: ByteOrder, flags: int = 0) -> str:
    """Human architecture name; unknown machines are named by number (`em-1234`)."""
    big = byte_order is ByteOrder.BIG
    is64 = elf_class is ElfClass.ELF64
    simple = {
        EM_386: "i386",
        EM_X86_64: "x86_64",
        EM_AARCH64: "aarch64_be" if big else "aarch64",
        EM_68K: "m68k",
        EM_IA_64: "ia64",
        EM_SH: "sh4",
        EM_LOONGARCH: "loongarch64" if is64 else "loongarch32",
        EM_SPARCV9: "sparc64",
        EM_SPARC: "sparc",
        EM_PARISC: "hppa",
    }
    if machine in simple:
        return simple[machine]
    if machine == EM_ARM:
        if big:
            return "armeb"
        return "armhf" if flags & EF_ARM_ABI_FLOAT_HARD else "arm"
    if machine == EM_RISCV:
        return "riscv64" if is64 else "riscv32"
    if machine == EM_PPC64:
        return "ppc64" if big else "ppc64le"
    if machine == EM_PPC:
        return "ppc" if big else "ppcle"
    if machine == EM_S390:
        return "s390x" if is64 else "s390"
    if machine == EM_MIPS:
        base = "mips64" if is64 else "mips"
        return base if big else base + "el"
    return f"em-{machine}"
