"""Recognise the toolchain that built a binary: Go, Rust, C++ or C.

The runtime-needs detectors ask different questions per toolchain: a Go program reads CA
files and zoneinfo itself (and libc only when cgo is linked), a Rust program's crates decide
its TLS roots, a C or C++ program goes through libc (docs/runtime-facts.md: "ELF triage",
"Go", "Rust"). The order of the checks matters: Go and Rust programs link libc too, so the
generic C/C++ rules apply only when neither is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from scratchprobe.elf.classify import Libc, libc_from_names, static_libc
from scratchprobe.elf.image import ElfImage, opened
from scratchprobe.elf.markers import PROGRAM, RUST, MarkerSet
from scratchprobe.elf.reader import ElfFile
from scratchprobe.toolchain.signs import comment_section, is_go, may_be_rust

if TYPE_CHECKING:
    # The readers load only for a file that shows their sign (toolchain/signs.py).
    from scratchprobe.toolchain.go import GoFacts
    from scratchprobe.toolchain.rust import RustFacts

__all__ = [
    "CxxRuntime",
    "Toolchain",
    "ToolchainFacts",
    "detect_toolchain",
]


class Toolchain(Enum):
    GO = "go"
    RUST = "rust"
    C = "c"
    CXX = "c++"
    UNKNOWN = "unknown"


class CxxRuntime(Enum):
    """The C++ standard library a C++ program was built against."""

    LIBSTDCXX = "libstdc++"
    LIBCXX = "libc++"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ToolchainFacts:
    """Which toolchain built a file, with the toolchain-specific facts."""

    kind: Toolchain
    go: GoFacts | None
    """Set when kind is GO."""
    rust: RustFacts | None
    """Set when kind is RUST."""
    cxx_runtime: CxxRuntime | None
    """Set when kind is CXX."""
    libc: Libc | None
    """glibc or musl when the file names or contains one (None for pure Go, or unknown)."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """Problems met reading the Go or Rust metadata (a corrupt build info, pcln table or
        audit data): the facts hold what could be read."""
        go = self.go.warnings if self.go is not None else ()
        return go + (self.rust.warnings if self.rust is not None else ())

    @property
    def description(self) -> str:
        """One line for reports: `Go 1.21.13, CGO_ENABLED=0, tags netgo`, `Rust 1.95.0`,
        `C++ (libstdc++)`, `C (glibc)`."""
        if self.go is not None:
            return describe_go(self.go)
        if self.rust is not None:
            return describe_rust(self.rust)
        if self.cxx_runtime is not None:
            cxx = self.cxx_runtime
            return "C++" if cxx is CxxRuntime.UNKNOWN else f"C++ ({cxx.value})"
        if self.kind is Toolchain.C:
            return f"C ({self.libc.value})" if self.libc is not None else "C"
        return "unknown toolchain"


# DT_NEEDED sonames of the C++ runtimes.
_CXX_SONAMES = {
    "libstdc++.so.6": CxxRuntime.LIBSTDCXX,
    "libc++.so.1": CxxRuntime.LIBCXX,
}
# Strings that only a C++ runtime leaves behind: the typeinfo name of std::exception
# (`St9exception`, written by both runtimes' libsupc++/libc++abi), the exception ABI entry
# point, and mangled std:: names. libc++ mangles its inline namespace as `NSt3__1`.
_CXX_MARKERS = (b"St9exception", b"__cxa_throw", b"_ZSt", b"_ZNSt")
_LIBCXX_MARKERS = (b"NSt3__1", b"_ZNSt3__1")
_CXX_SCAN_SECTIONS = (".dynstr", ".rodata")
# Searched only in a program that loads no C++ runtime library (`_cxx_runtime`), for whether
# each occurs.
_CXX_SCAN = MarkerSet("C++ runtime", _CXX_SCAN_SECTIONS)
_CXX_SCAN.declare(*_CXX_MARKERS, *_LIBCXX_MARKERS, every=False)
_MAX_SCAN = 256 << 20


def detect_toolchain(source: ElfImage | ElfFile, known_libc: Libc | None = None) -> ToolchainFacts:
    """Go, then Rust, then C++, then C; UNKNOWN for a file with no libc and no other sign.
    `source` is the run's image of the file (or an ElfFile, read on its own).

    Raises ELFError only when the file cannot be read; malformed Go or Rust metadata is
    reported in the facts' warnings instead.
    """
    with opened(source) as image:
        return _detect(image, known_libc)


def _detect(image: ElfImage, known_libc: Libc | None) -> ToolchainFacts:
    elf = image.elf
    # `known_libc`: what the caller already found (inspect classifies every file first), so a
    # static file's data is not scanned for libc markers a second time.
    libc = known_libc or libc_from_names(elf.interpreter, elf.needed)
    if is_go(elf, image):
        from scratchprobe.toolchain.go import go_facts_of

        return ToolchainFacts(Toolchain.GO, go_facts_of(image), None, None, libc)
    # Every reader of a program that is not Go searches it for the declared literals: the
    # first search of each range finds all of them in one pass (elf/markers.py).
    image.expect(PROGRAM)
    image.expect(RUST)
    if not any(soname in _CXX_SONAMES for soname in elf.needed):
        image.expect(_CXX_SCAN)
    rust = None
    comment = comment_section(image)
    if may_be_rust(image, comment):
        from scratchprobe.toolchain.rust import rust_facts_of

        rust = rust_facts_of(image, comment)
    if rust is not None:
        if libc is None and not elf.needed:
            libc = static_libc(image)
        return ToolchainFacts(Toolchain.RUST, None, rust, None, libc)
    if libc is None and not elf.needed:
        libc = static_libc(image)
    cxx = _cxx_runtime(image)
    if cxx is not None:
        return ToolchainFacts(Toolchain.CXX, None, None, cxx, libc)
    if libc is not None or elf.needed or _c_compiler(image):
        return ToolchainFacts(Toolchain.C, None, None, None, libc)
    return ToolchainFacts(Toolchain.UNKNOWN, None, None, None, None)


def describe_go(go: GoFacts) -> str:
    version = go.go_version.removeprefix("go") if go.go_version else "(version unknown)"
    parts = [f"Go {version}"]
    if go.cgo_enabled is not None:
        parts.append(f"CGO_ENABLED={int(go.cgo_enabled)}")
    if go.tags:
        parts.append("tags " + ",".join(sorted(go.tags)))
    if go.cgo_linked:
        parts.append("cgo linked")
    if go.embeds_tzdata:
        parts.append("embedded tzdata")
    return ", ".join(parts)


def describe_rust(rust: RustFacts) -> str:
    if rust.rustc_version:
        text = f"Rust {rust.rustc_version}"
    elif rust.rustc_commit:
        text = f"Rust (rustc {rust.rustc_commit[:9]})"
    elif rust.rustc_source_versions:
        # A distribution's build: its standard library's remapped source path names it.
        text = f"Rust {rust.rustc_source_versions[0]} (distribution build)"
    else:
        text = "Rust"
    if rust.auditable:
        text += f", {len(rust.crates)} crates (cargo-auditable)"
    return text


def _c_compiler(image: ElfImage) -> bool:
    """A C compiler's `.comment` entry: the only sign a tiny static musl program may keep."""
    comment = image.section(".comment", limit=1 << 20) or b""
    return b"GCC: (" in comment or b"clang version" in comment


def _cxx_runtime(image: ElfImage) -> CxxRuntime | None:
    for soname in image.elf.needed:
        if soname in _CXX_SONAMES:
            return _CXX_SONAMES[soname]
    found = _scan(image, _CXX_MARKERS + _LIBCXX_MARKERS)
    if found & set(_LIBCXX_MARKERS):
        return CxxRuntime.LIBCXX
    if found & set(_CXX_MARKERS):
        # Statically linked libstdc++ is by far the common case (g++ -static, or
        # -static-libstdc++); say so only when libc++'s namespace is absent.
        return CxxRuntime.LIBSTDCXX if b"St9exception" in found else CxxRuntime.UNKNOWN
    return None


def _scan(image: ElfImage, needles: tuple[bytes, ...]) -> set[bytes]:
    """Which needles occur in .dynstr/.rodata (the read-only segments without sections)."""
    ranges = [r for name in _CXX_SCAN_SECTIONS if (r := image.section_range(name, _MAX_SCAN))]
    if not ranges and not image.elf.sections:
        # Neither writable nor executable segments: where string literals live.
        ranges = image.readonly_ranges(limit=_MAX_SCAN)
        if not ranges or image.elf.size == 0:
            return set()
        return {n for n in needles if any(image.find(n, a, b) >= 0 for a, b in ranges)}
    # The program's one pass answers (they are declared: elf/markers.py).
    return image.find_literals(ranges, needles)
