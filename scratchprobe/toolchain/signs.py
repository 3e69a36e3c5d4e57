"""The signs that a file is Go or Rust, and the Go function names the detectors ask about:
what every run needs of the toolchain step, without the readers.

The Go and Rust readers (go.py, rust.py: their dataclasses, regexes and the JSON parser of
cargo-auditable data) cost a run ~6 ms to import, and most programs are neither. So
`toolchain.detect_toolchain` first asks the cheap questions here, exactly the ones the
readers would answer "no" from (`go_facts` returns None unless `is_go`; `rust_facts` unless
`may_be_rust`), and imports a reader only for a file that shows its sign. The detectors'
function-name groups live here too, so that importing a detector loads no reader.
"""

from __future__ import annotations

from scratchprobe.elf.constants import SegmentType
from scratchprobe.elf.image import ElfImage
from scratchprobe.elf.markers import RUST
from scratchprobe.elf.reader import ElfFile, Segment
from scratchprobe.errors import ELFError

GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"
"""buildInfoMagic in debug/buildinfo: 14 bytes, then pointer size and flags."""

_BUILDINFO_ALIGN = 16

PF_X = 0x1
PF_W = 0x2
SHT_NOBITS = 8


# ---------------------------------------------------------------------------- Go


def file_end_of(image: ElfImage, offset: int) -> int:
    """End of the PT_LOAD file bytes that hold `offset` (the file end when none does)."""
    for seg in image.elf.segments:
        if seg.type == SegmentType.LOAD and seg.offset <= offset < seg.offset + seg.filesz:
            return min(seg.offset + seg.filesz, image.size)
    return image.size


def section_range(elf: ElfFile, name: str) -> tuple[int, int, int] | None:
    """(file offset, size, address) of a section with file bytes, else None."""
    section = elf.section(name)
    if section is None or section.type == SHT_NOBITS or section.size == 0:
        return None
    if section.offset + section.size > elf.size:
        raise ELFError(f"section {name} lies outside the file")
    return section.offset, section.size, section.addr


def data_segment(elf: ElfFile) -> Segment | None:
    """The first writable, non-executable PT_LOAD: where the Go linker puts .go.buildinfo.

    debug/buildinfo of go1.19.8 and go1.21.13 searches there when the section headers are
    missing (`elfExe.DataStart`); go1.27.3's gives up. We keep the older, more useful rule.
    """
    for seg in elf.segments:
        if seg.type == SegmentType.LOAD and seg.flags & (PF_W | PF_X) == PF_W and seg.filesz:
            return seg
    return None


def find_buildinfo(elf: ElfFile, image: ElfImage) -> tuple[int, int] | None:
    """(file offset, end of search range) of the 16-byte-aligned build-info header, or None."""
    where = section_range(elf, ".go.buildinfo")
    if where is not None:
        offset, size, addr = where
    else:
        seg = data_segment(elf)
        if seg is None:
            return None
        if seg.offset >= image.size:
            return None  # the segment's bytes lie past the end of the file: nothing to search
        offset, size, addr = seg.offset, min(seg.filesz, image.size - seg.offset), seg.vaddr
    end = offset + size
    position = offset
    while True:
        hit = image.find(GO_BUILDINFO_MAGIC, position, end)
        if hit < 0:
            return None
        # Alignment is of the address, as in debug/buildinfo.searchMagic.
        if (addr + hit - offset) % _BUILDINFO_ALIGN == 0:
            return hit, file_end_of(image, hit)
        position = hit + 1


def is_go(elf: ElfFile, image: ElfImage) -> bool:
    """Go's own sections, or the build-info magic where the linker puts it."""
    if elf.section_names & {".go.buildinfo", ".gopclntab", ".note.go.buildid"}:
        return True
    return find_buildinfo(elf, image) is not None


# The one marker table: function names whose presence means a standard-library (or
# x/crypto) code path is linked, in groups by what the path does; every detector asks
# `GoFacts` about these groups and names the ones found in its evidence, in this order.
# Each was checked in binaries built by go1.19.8 and go1.27.3
# (tests/unit/toolchain/test_toolchain_go.py).
# Sources: golang/go src/crypto/x509/root_linux.go, root_unix.go, src/time/zoneinfo_unix.go,
# src/time/tzdata/tzdata.go, src/os/user/lookup_unix.go, cgo_lookup_cgo.go, src/net/conf.go,
# cgo_unix_cgo.go, src/os/tempfile.go, src/mime/type_unix.go, src/os/executable_procfs.go.
SYSTEM_ROOTS = ("crypto/x509.loadSystemRoots", "crypto/x509.initSystemRoots")
"""crypto/x509 root_unix.go: reads the CA files and directories of root_linux.go."""
FALLBACK_ROOTS = ("golang.org/x/crypto/x509roots/fallback.init.0", "crypto/x509.SetFallbackRoots")
"""Go 1.20+: fallback roots are installed (x/crypto/x509roots/fallback, whose init calls
SetFallbackRoots, or the program itself), used when the system has none."""
X509ROOTS_FALLBACK_PREFIX = "golang.org/x/crypto/x509roots/fallback."
"""Any function of the x/crypto fallback-roots package."""
LOAD_LOCATION = ("time.LoadLocation", "time.loadLocation")
"""time.LoadLocation: zones by name; time.loadLocation alone comes with time.Local."""
TZDATA = ("time/tzdata.init.0", "time/tzdata.loadFromEmbeddedTZData")
"""time/tzdata: the zone database is compiled in (import _ "time/tzdata" or -tags timetzdata)."""
USER_PURE = ("os/user.readColonFile", "os/user.lookupUser", "os/user.current")
"""os/user is linked; readColonFile (lookup_unix.go) only in the pure-Go reader of
/etc/passwd and /etc/group."""
USER_CGO = ("os/user._Cfunc_mygetpwnam_r", "os/user._Cfunc_mygetpwuid_r")
"""os/user cgo_lookup_cgo.go: lookups through libc's getpw*_r, so NSS."""
NET_LOOKUP = (
    "net.(*Resolver).lookupHost",
    "net.(*Resolver).lookupIP",
    "net.(*Resolver).goLookupIPCNAMEOrder",
    "net.(*Resolver).goLookupHostOrder",
)
"""net: name lookups (the pure-Go resolver reads resolv.conf, hosts and nsswitch.conf)."""
NET_CGO = ("net._C2func_getaddrinfo", "net._Cfunc_getaddrinfo", "net.cgoLookupHost")
"""net cgo_unix_cgo.go: the cgo resolver (getaddrinfo through libc, so NSS)."""
TEMP = ("os.TempDir", "os.CreateTemp", "os.MkdirTemp", "io/ioutil.TempFile", "io/ioutil.TempDir")
MIME = ("mime.initMimeUnix", "mime.loadMimeFile")
EXECUTABLE = ("os.Executable",)
"""os.Executable reads /proc/self/exe (os/executable_procfs.go): the program locates itself."""
CGO_RUNTIME = ("x_cgo_init", "_cgo_topofstack", "_cgo_panic", "runtime.cgocallback")
"""runtime/cgo is linked. x_cgo_init is C (gcc_linux_amd64.c) and is in the table only when
the Go linker linked it itself (internal linking); after external linking only the Go and
assembly parts (_cgo_topofstack, _cgo_panic, runtime.cgocallback) are listed."""
CGO_RESOLVER = NET_CGO[0]
"""The cgo resolver proper (Go 1.21+ also keeps a cgoLookupHost stub in netgo builds)."""


# ---------------------------------------------------------------------------- Rust

DEP_V0_SECTION = ".dep-v0"
"""cargo-auditable's section: zlib-compressed JSON naming the crates."""
RUSTC_COMMENT = b"rustc version "
"""What `.comment` holds before the version in a rustc-built file (rust.py's regex)."""
# Searched in every program that is not Go (`may_be_rust`, then rust.py), so in each one's
# one pass.
RUSTC_COMMIT_PATH = b"/rustc/"
RUSTC_SOURCE_PATH = b"/rustc-"
RUST.declare(RUSTC_COMMIT_PATH, RUSTC_SOURCE_PATH)

# Read-only data sections where rustc puts string literals (LLD and GNU ld spellings).
_RODATA_PREFIXES = (".rodata", ".lrodata")


def rodata_ranges(image: ElfImage) -> list[tuple[int, int]]:
    """File ranges of read-only data: the .rodata sections, else the read-only segments."""
    elf = image.elf
    ranges = [
        (s.offset, s.offset + s.size)
        for s in elf.sections
        if s.name.startswith(_RODATA_PREFIXES) and s.type != SHT_NOBITS and s.size
    ]
    if not ranges:
        # No section headers (sstrip): scan the segments that are neither written nor run.
        ranges = image.readonly_ranges(limit=elf.size)
    return [(start, min(end, elf.size)) for start, end in ranges if start < elf.size]


def comment_section(image: ElfImage) -> bytes | None:
    """The `.comment` bytes rust.py reads its rustc entry from (ELFError for a broken one)."""
    return image.section(".comment", limit=1 << 20)


def may_be_rust(image: ElfImage, comment: bytes | None) -> bool:
    """False only where `rust_facts` finds nothing: no audit section, no rustc entry in
    `comment` (the file's `comment_section`), no `/rustc/` or `/rustc-` path in the
    read-only data (each a match that rust.py's patterns then check)."""
    if image.elf.section(DEP_V0_SECTION) is not None:
        return True
    if comment and RUSTC_COMMENT in comment:
        return True
    return any(
        image.find(literal, start, end) >= 0
        for start, end in rodata_ranges(image)
        for literal in (RUSTC_COMMIT_PATH, RUSTC_SOURCE_PATH)
    )
