"""The OCI platform (os, architecture, variant) of an image, read from its binaries.

Architecture names are Go's GOARCH values, which the OCI image index uses
(image-spec image-index.md, `platform.architecture`: "values SHOULD conform to the list of
GOOS/GOARCH values"). The ARM variant follows the same document's table of variants
(arm64 is `v8`; 32-bit ARM is `v5`, `v6`, `v7` or `v8`), and is read from the build
attributes the toolchain recorded, never guessed from the host.

32-bit ARM: `.ARM.attributes` (section type SHT_ARM_ATTRIBUTES) holds the "aeabi" build
attributes (ARM IHI 0045, "Addenda to, and Errata in, the ABI for the Arm Architecture",
section "Build attributes"):

    'A' (format version) then sections: uint32 length (counting itself), vendor name
    (NUL-terminated), then sub-sections: uint8 tag (1 = the whole file), uint32 length
    (counting the tag), then attributes: ULEB128 tag, and a ULEB128 or NUL-terminated value.

Which tags carry strings: Tag_CPU_raw_name (4), Tag_CPU_name (5) and Tag_also_compatible_with
(65) are strings, Tag_compatibility (32) is a ULEB128 then a string; of the other tags,
those below 32 are ULEB128 and, above 32, odd tags are strings and even ones ULEB128 (the
document's rule for tags unknown to a reader). Tag_CPU_arch (6) gives the architecture
version; its values map to the OCI variants as `_ARM_VARIANTS` says.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from scratchprobe.elf.constants import EM_AARCH64, EM_ARM, ByteOrder
from scratchprobe.elf.reader import ElfFile
from scratchprobe.elf.sections import read_section
from scratchprobe.errors import ELFError, UsageError

OS_LINUX = "linux"

# scratchprobe.elf.arch names -> GOARCH (Go's cmd/dist list of GOARCH values).
_GOARCH = {
    "x86_64": "amd64",
    "i386": "386",
    "aarch64": "arm64",
    "aarch64_be": "arm64be",
    "arm": "arm",
    "armhf": "arm",
    "armeb": "armbe",
    "riscv64": "riscv64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "ppc": "ppc",
    "s390x": "s390x",
    "s390": "s390",
    "mips": "mips",
    "mipsel": "mipsle",
    "mips64": "mips64",
    "mips64el": "mips64le",
    "loongarch64": "loong64",
    "sparc64": "sparc64",
    "m68k": "m68k",
}

_TAG_CPU_ARCH = 6
_STRING_TAGS = frozenset({4, 5, 65, 67})
_TAG_COMPATIBILITY = 32
_TAG_FILE = 1

# Tag_CPU_arch values (ARM IHI 0045) -> OCI variant. v4 and older have no OCI variant of
# their own: v5 is the oldest one defined, and what Debian's armel baseline is called.
_ARM_VARIANTS = {
    0: "v5",  # Pre-v4
    1: "v5",  # v4
    2: "v5",  # v4T
    3: "v5",  # v5T
    4: "v5",  # v5TE
    5: "v5",  # v5TEJ
    6: "v6",  # v6
    7: "v6",  # v6KZ
    8: "v6",  # v6T2
    9: "v6",  # v6K
    10: "v7",  # v7
    11: "v6",  # v6-M
    12: "v6",  # v6S-M
    13: "v7",  # v7E-M
}
_ARM_V8_FROM = 14  # v8-A and everything later (v8-R, v8-M, v8.x-A, v9-A)


@dataclass(frozen=True, order=True)
class Platform:
    """An image index `platform`."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def as_json(self) -> dict[str, str]:
        data = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            data["variant"] = self.variant
        return data


def _uleb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ELFError(".ARM.attributes: truncated ULEB128 number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 63:
            raise ELFError(".ARM.attributes: ULEB128 number too long")


def _skip_string(data: bytes, pos: int) -> int:
    end = data.find(b"\0", pos)
    if end < 0:
        raise ELFError(".ARM.attributes: unterminated string")
    return end + 1


def arm_cpu_arch(data: bytes, byte_order: ByteOrder) -> int | None:
    """Tag_CPU_arch of the "aeabi" file attributes, None when they do not state it."""
    if not data or data[0] != ord("A"):
        raise ELFError(".ARM.attributes: not format version 'A'")
    fmt = byte_order.struct_prefix + "I"
    pos = 1
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from(fmt, data, pos)
        end = pos + length
        if length < 5 or end > len(data):
            raise ELFError(".ARM.attributes: section length out of bounds")
        name_end = _skip_string(data, pos + 4)
        vendor = data[pos + 4 : name_end - 1]
        sub = name_end
        while vendor == b"aeabi" and sub + 5 <= end:
            tag = data[sub]
            (sub_length,) = struct.unpack_from(fmt, data, sub + 1)
            sub_end = sub + sub_length
            if sub_length < 5 or sub_end > end:
                raise ELFError(".ARM.attributes: sub-section length out of bounds")
            if tag == _TAG_FILE:
                attr = sub + 5
                while attr < sub_end:
                    key, attr = _uleb128(data, attr)
                    if key == _TAG_CPU_ARCH:
                        return _uleb128(data, attr)[0]
                    if key in _STRING_TAGS:
                        attr = _skip_string(data, attr)
                    elif key == _TAG_COMPATIBILITY:
                        attr = _skip_string(data, _uleb128(data, attr)[1])
                    elif key < 32 or key % 2 == 0:
                        attr = _uleb128(data, attr)[1]
                    else:
                        attr = _skip_string(data, attr)
            sub = sub_end
        pos = end
    return None


def arm_variant(cpu_arch: int) -> str:
    if cpu_arch >= _ARM_V8_FROM:
        return "v8"
    return _ARM_VARIANTS[cpu_arch]


def platform_of(elf: ElfFile) -> Platform:
    """The platform that runs `elf` (always linux: scratchprobe reads Linux loaders)."""
    name = elf.arch.name
    architecture = _GOARCH.get(name)
    if architecture is None:
        raise UsageError(f"{elf.path}: no OCI architecture name for {name}")
    variant: str | None = None
    if elf.arch.machine == EM_AARCH64:
        variant = "v8"
    elif elf.arch.machine == EM_ARM:
        data = read_section(elf, ".ARM.attributes")
        cpu_arch = arm_cpu_arch(data, elf.arch.byte_order) if data else None
        variant = arm_variant(cpu_arch) if cpu_arch is not None else None
    return Platform(OS_LINUX, architecture, variant)


def common_platform(binaries: Iterable[tuple[str, ElfFile]]) -> Platform:
    """The one platform of every (label, ELF) pair; a mix of architectures is refused (the
    kernel starts every binary of an image natively or not at all). ARM variants of one
    architecture combine to the highest: a v7 binary beside a v6 one needs a v7 CPU."""
    found: dict[tuple[str, str], str] = {}
    variants: list[str] = []
    for label, elf in binaries:
        try:
            platform = platform_of(elf)
        except (ELFError, OSError) as exc:
            # A corrupt attributes section is bad input like any other: one line, exit 2.
            raise UsageError(f"{label}: {exc}") from None
        found.setdefault((platform.os, platform.architecture), label)
        if platform.variant:
            variants.append(platform.variant)
    if not found:
        raise UsageError("no binary to take the platform from")
    if len(found) > 1:
        described = ", ".join(f"{label} is {os}/{arch}" for (os, arch), label in found.items())
        raise UsageError(f"one image cannot mix architectures: {described}")
    ((os_name, architecture),) = found
    # "v5" < "v6" < "v7" < "v8" as strings.
    return Platform(os_name, architecture, max(variants) if variants else None)
