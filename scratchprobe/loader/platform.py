"""Per-architecture loader facts: default directories, interpreters, cache flags, musl names.

Sources: glibc's sysdeps/unix/sysv/linux/*/configure (slibdir/rtlddir), shlib-versions (ld=),
sysdeps/generic/ldconfig.h (FLAG_*), GCC's GLIBC_DYNAMIC_LINKER specs, Debian's multiarch
tuples, musl's arch/*/reloc.h (LDSO_ARCH). Where a root's own loader carries its search path
(`scratchprobe.loader.systemdirs`), that wins over these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from scratchprobe.elf.arch import Architecture


@dataclass(frozen=True)
class PlatformFacts:
    """What glibc and musl do differently on one architecture."""

    multiarch: str | None
    """Debian's multiarch tuple (`x86_64-linux-gnu`), the name of its library directories."""
    lib_suffix: str
    """Upstream glibc's slibdir suffix: `64` for /lib64 layouts, `` for /lib."""
    glibc_interpreter: str | None
    """The PT_INTERP GCC writes for this architecture (used when a library has none)."""
    cache_flags: frozenset[int]
    """ld.so.cache entry flags this loader accepts (_dl_cache_check_flags)."""
    musl_arch: str | None
    """LDSO_ARCH of musl: /lib/ld-musl-<this>.so.1 and /etc/ld-musl-<this>.path."""
    platform: str
    """A typical AT_PLATFORM value, for $PLATFORM in search paths."""


# ldconfig.h: FLAG_ELF_LIBC6 (0x3) combined with the per-ABI "required" bits.
_LIBC6 = 0x0003


def _flags(*required: int) -> frozenset[int]:
    return frozenset({_LIBC6 | r for r in required} | {0x0001})


_TABLE: dict[str, PlatformFacts] = {
    "x86_64": PlatformFacts(
        "x86_64-linux-gnu", "64", "/lib64/ld-linux-x86-64.so.2", _flags(0x0300), "x86_64", "x86_64"
    ),
    "i386": PlatformFacts(
        "i386-linux-gnu", "", "/lib/ld-linux.so.2", _flags(0x0000), "i386", "i686"
    ),
    "aarch64": PlatformFacts(
        "aarch64-linux-gnu",
        "64",
        "/lib/ld-linux-aarch64.so.1",
        _flags(0x0A00),
        "aarch64",
        "aarch64",
    ),
    "aarch64_be": PlatformFacts(
        "aarch64_be-linux-gnu",
        "64",
        "/lib/ld-linux-aarch64_be.so.1",
        _flags(0x0A00),
        "aarch64_be",
        "aarch64_be",
    ),
    "armhf": PlatformFacts(
        "arm-linux-gnueabihf",
        "",
        "/lib/ld-linux-armhf.so.3",
        _flags(0x0900, 0x0000),
        "armhf",
        "v7l",
    ),
    "arm": PlatformFacts(
        "arm-linux-gnueabi", "", "/lib/ld-linux.so.3", _flags(0x0B00, 0x0000), "arm", "v7l"
    ),
    "riscv64": PlatformFacts(
        "riscv64-linux-gnu",
        "64/lp64d",
        "/lib/ld-linux-riscv64-lp64d.so.1",
        _flags(0x1000),
        "riscv64",
        "riscv64",
    ),
    "ppc64le": PlatformFacts(
        "powerpc64le-linux-gnu", "64", "/lib64/ld64.so.2", _flags(0x0500), "powerpc64le", "power8"
    ),
    "ppc64": PlatformFacts(
        "powerpc64-linux-gnu", "64", "/lib64/ld64.so.1", _flags(0x0500), "powerpc64", "power8"
    ),
    "ppc": PlatformFacts("powerpc-linux-gnu", "", "/lib/ld.so.1", _flags(0x0000), "powerpc", "ppc"),
    "s390x": PlatformFacts(
        "s390x-linux-gnu", "64", "/lib/ld64.so.1", _flags(0x0400), "s390x", "z13"
    ),
    "mips64el": PlatformFacts(
        "mips64el-linux-gnuabi64",
        "64",
        "/lib64/ld.so.1",
        _flags(0x0700, 0x0E00),
        "mips64el",
        "mips64el",
    ),
    "mips64": PlatformFacts(
        "mips64-linux-gnuabi64", "64", "/lib64/ld.so.1", _flags(0x0700, 0x0E00), "mips64", "mips64"
    ),
    "mipsel": PlatformFacts(
        "mipsel-linux-gnu", "", "/lib/ld.so.1", _flags(0x0000, 0x0C00), "mipsel", "mipsel"
    ),
    "mips": PlatformFacts(
        "mips-linux-gnu", "", "/lib/ld.so.1", _flags(0x0000, 0x0C00), "mips", "mips"
    ),
    "loongarch64": PlatformFacts(
        "loongarch64-linux-gnu",
        "64",
        "/lib64/ld-linux-loongarch-lp64d.so.1",
        _flags(0x1200),
        "loongarch64",
        "loongarch",
    ),
    "sparc64": PlatformFacts(
        "sparc64-linux-gnu", "64", "/lib64/ld-linux.so.2", _flags(0x0100), "sparc64", "sparc64"
    ),
    "m68k": PlatformFacts("m68k-linux-gnu", "", "/lib/ld.so.1", _flags(0x0000), "m68k", "m68k"),
}

_UNKNOWN = PlatformFacts(None, "", None, frozenset(), None, "unknown")


def platform_facts(arch: Architecture) -> PlatformFacts:
    """Facts for `arch`; an unknown architecture gets empty tables, never a guess."""
    return _TABLE.get(arch.name, _UNKNOWN)


def upstream_default_dirs(facts: PlatformFacts) -> tuple[str, ...]:
    """glibc's built-in search path when its loader does not tell: $(slibdir):$(libdir)."""
    suffix = facts.lib_suffix
    return (f"/lib{suffix}", f"/usr/lib{suffix}")


def debian_default_dirs(facts: PlatformFacts) -> tuple[str, ...]:
    """Debian's patched rtld search path: multiarch directories first, then /lib, /usr/lib."""
    if facts.multiarch is None:
        return ("/lib", "/usr/lib")
    return (f"/lib/{facts.multiarch}", f"/usr/lib/{facts.multiarch}", "/lib", "/usr/lib")


MUSL_DEFAULT_PATH = ("/lib", "/usr/local/lib", "/usr/lib")
"""musl's ldso/dynlink.c fallback when /etc/ld-musl-ARCH.path does not exist."""
