"""Evidence the detectors read: imported symbols, known path strings, linked symbols.

Strings are matched against a dictionary of known literals with `FileImage.find` over the
read-only data only (a literal search runs near memory speed, a regex alternation of many
words ten times slower: docs/architecture.md, "Scanning bytes"). Go strings are not
NUL-terminated, so nothing here ever reports a path it cut out of the bytes: only
dictionary entries can be found, never `/etc/passwdtls`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scratchprobe.elf.classify import Libc, Linkage
from scratchprobe.elf.dynsym import imported_symbols
from scratchprobe.elf.image import ElfImage, Images
from scratchprobe.elf.markers import LIBCRYPTO, LIBRARY, PROGRAM, STATIC
from scratchprobe.elf.reader import ElfFile, parse_glibc_version
from scratchprobe.errors import ELFError
from scratchprobe.loader.closure import Closure, LoadedObject
from scratchprobe.needs.openssl import COMPILED_DIR_MARKER, COMPILED_DIRS, default_cert_file
from scratchprobe.needs.openssl import SONAMES as OPENSSL_SONAMES

if TYPE_CHECKING:
    from collections.abc import Container

    # Typing only: importing the toolchain readers costs ~15 ms a run that skips needs.
    from scratchprobe.toolchain import ToolchainFacts
    from scratchprobe.toolchain.go import GoFacts
    from scratchprobe.toolchain.rust import RustFacts

CA_BUNDLE_PATHS = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # CentOS, RHEL 7+
    "/etc/ssl/cert.pem",  # Alpine, macOS-style
)
"""Go's crypto/x509 root_linux.go certFiles, in its order; most other consumers use one of
these as a compiled-in path too."""

PROBE_DIRS = (
    "/var/ssl", "/usr/share/ssl", "/usr/local/ssl", "/usr/local/openssl",
    "/usr/local/etc/openssl", "/usr/local/share", "/usr/lib/ssl", "/usr/ssl", "/etc/openssl",
    "/etc/pki/ca-trust/extracted/pem", "/etc/pki/tls", "/etc/ssl", "/etc/certs", "/opt/etc/ssl",
    "/data/data/com.termux/files/usr/etc/tls", "/boot/system/data/ssl",
)  # fmt: skip
"""The directories the Rust crate openssl-probe (src/lib.rs `cert_dirs_iter`, 0.1.2 to 0.1.6)
probes in this order, keeping those that exist; other programs copy the list."""
PROBE_FILES = (
    "cert.pem", "certs.pem", "ca-bundle.pem", "cacert.pem", "ca-certificates.crt",
    "certs/ca-certificates.crt", "certs/ca-root-nss.crt", "certs/ca-bundle.crt",
    "CARootCertificates.pem", "tls-ca-bundle.pem",
)  # fmt: skip
"""The file names it tries in each existing directory, in order (`probe`); the first that
exists becomes SSL_CERT_FILE."""

PROBE_SENTINELS = ("/etc/pki/tls", "/etc/openssl")
"""Two of the probe directories, searched with every program's strings (they share the
"/etc/" pass of the bundle paths); only a program holding one is searched for the rest."""

SELF_EXE = "/proc/self/exe"
"""The link to the running program (proc(5)): a program that reads it locates its own data."""

PROGRAM_STRINGS = (*CA_BUNDLE_PATHS, "/tmp/", "TMPDIR", *PROBE_SENTINELS, SELF_EXE)
"""Literals the detectors read in any program's own data (each costs a pass over it)."""

STATIC_STRINGS = (
    # In a static file the libc is linked in, so its strings stand for the libc functions
    # that were linked: zoneinfo and resolver paths (musl, glibc's tz code), /etc/passwd
    # (musl reads it itself), gconv (glibc's iconv), and glibc's per-database NSS entry
    # points: a static glibc keeps the name of each database it looks up
    # (getpwnam -> __nss_passwd_lookup2), whereas the NSS file paths come along for any use.
    "/usr/share/zoneinfo",
    "/etc/localtime",
    "/etc/resolv.conf",
    "/etc/passwd",
    "gconv-modules",
    "__nss_passwd_lookup2",
    "__nss_group_lookup2",
    "__nss_shadow_lookup2",
    "__nss_hosts_lookup2",
    "__nss_services_lookup2",
    "__nss_protocols_lookup2",
)
"""Literals read only in static files (never looked for in a dynamic one)."""

# Objects whose strings say nothing about what the program does: the C library itself
# carries every NSS and time-zone path whether or not the program calls those functions.
_LIBC_FAMILY = re.compile(
    r"^(libc|libm|libpthread|libdl|librt|libutil|libanl|libresolv|ld-linux.*|ld64|ld)\.so"
)
STRING_SECTIONS = (".rodata", ".rodata1", ".data.rel.ro", ".data", ".go.buildinfo")
# Whether each occurs is all `_scan` asks (find_literals).
PROGRAM.declare(*(literal.encode() for literal in PROGRAM_STRINGS), every=False)
STATIC.declare(*(literal.encode() for literal in STATIC_STRINGS), every=False)
LIBRARY.declare(*(literal.encode() for literal in CA_BUNDLE_PATHS), every=False)


@dataclass(frozen=True)
class ObjectEvidence:
    """What one object (the binary or a library of its closure) shows."""

    path: str
    soname: str | None
    imports: frozenset[str]
    strings: frozenset[str]
    """Entries of PROGRAM_STRINGS (and, for a static file, STATIC_STRINGS) found in its
    read-only data."""
    openssl_dirs: tuple[tuple[str, str], ...] = ()
    """OPENSSLDIR / MODULESDIR / ENGINESDIR compiled into a libcrypto."""

    @property
    def name(self) -> str:
        return self.soname or self.path


@dataclass(frozen=True)
class Subject:
    """Everything the detectors know about one binary."""

    path: str
    elf: ElfFile
    linkage: Linkage
    libc: Libc | None
    closure: Closure | None
    binary: ObjectEvidence
    libraries: tuple[ObjectEvidence, ...]
    linked: Container[str]
    """Symbols defined in a static file's .symtab (empty when stripped): what was linked.
    A lookup (`elf.sections.DefinedNames`), never decoded whole: `name in linked`."""
    root_glibc: tuple[int, ...] | None
    """Version of the glibc the closure loads (from libc.so.6's version definitions)."""
    toolchain: ToolchainFacts | None = None
    """The toolchain recognised (Go and Rust facts for their detectors)."""
    image: ElfImage | None = None
    """The run's image of the binary, for the detectors that read its data."""

    @property
    def go(self) -> GoFacts | None:
        """The Go facts, when the binary is a Go program."""
        return self.toolchain.go if self.toolchain is not None else None

    @property
    def rust(self) -> RustFacts | None:
        """The Rust facts, when the binary is a Rust program."""
        return self.toolchain.rust if self.toolchain is not None else None

    @property
    def dynamic(self) -> bool:
        return self.linkage is Linkage.DYNAMIC

    @property
    def static_glibc(self) -> bool:
        return not self.dynamic and self.libc is Libc.GLIBC

    def static_strings(self, *literals: str) -> tuple[str, ...]:
        """Which `literals` a static file's own bytes hold (its libc is linked in, so these
        stand for the libc functions that were linked)."""
        if self.dynamic:
            return ()
        return tuple(s for s in literals if s in self.binary.strings)

    def uses(self, *symbols: str) -> tuple[str, ...]:
        """Which of `symbols` the binary itself imports or (static) links."""
        imports, linked = self.binary.imports, self.linked
        return tuple(s for s in symbols if s in imports or s in linked)

    def library(self, prefix: str) -> ObjectEvidence | None:
        for lib in self.libraries:
            if lib.soname and lib.soname.startswith(prefix):
                return lib
        return None

    def objects(self) -> tuple[ObjectEvidence, ...]:
        return (self.binary, *self.libraries)


@dataclass
class EvidenceCache:
    """Per-run cache: every library's evidence is read once for all binaries, from the
    run's images (`images`)."""

    images: Images = field(default_factory=Images)
    _objects: dict[tuple[str, bool], ObjectEvidence] = field(default_factory=dict)

    def of(
        self,
        elf: ElfFile,
        path: str,
        soname: str | None,
        library: bool = False,
        go: bool = False,
    ) -> ObjectEvidence:
        key = (elf.path, library)
        cached = self._objects.get(key)
        if cached is None:
            try:
                with self.images.use(elf) as image:
                    cached = _read_object(image, path, soname, library, go)
            except ELFError:
                # The file cannot be opened any more: it shows nothing.
                cached = ObjectEvidence(path, soname, frozenset(), frozenset())
            self._objects[key] = cached
        return cached


def _read_object(
    image: ElfImage, path: str, soname: str | None, library: bool, go: bool
) -> ObjectEvidence:
    """A library is asked less than the program: the detectors read a library only for
    compiled-in CA bundle paths, OpenSSL's directories, and (for the direct users of
    OpenSSL) the provider-loading calls; reading no more keeps a 30-library closure cheap."""
    elf = image.elf
    is_libc = bool(soname and _LIBC_FAMILY.match(soname))
    wants_imports = not library or any(n.startswith(OPENSSL_SONAMES) for n in elf.needed)
    imports: frozenset[str] = frozenset()
    if wants_imports and not is_libc:
        try:
            imports = imported_symbols(image)
        except ELFError:
            imports = frozenset()
    if is_libc:
        return ObjectEvidence(path, soname, imports, frozenset())
    static = not elf.interpreter and not elf.needed
    literals: tuple[str, ...] = (
        () if go else CA_BUNDLE_PATHS if library else PROGRAM_STRINGS + STATIC_STRINGS * static
    )
    libcrypto = bool(soname and soname.startswith("libcrypto.so"))
    openssl = not go and (not library or libcrypto)
    if not go:
        # What this object's one pass looks for (elf/markers.py).
        image.expect(LIBRARY if library else PROGRAM)
        if library and libcrypto:
            image.expect(LIBCRYPTO)
        elif static and not library:
            image.expect(STATIC)
    strings, dirs = _scan(image, literals, openssl)
    return ObjectEvidence(path, soname, imports, strings, dirs)


def _scan(
    view: ElfImage, literals: tuple[str, ...], openssl_dirs: bool
) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    ranges = view.section_ranges(STRING_SECTIONS)
    found: set[str] = set()
    dirs: list[tuple[str, str]] = []
    if view.elf.size == 0:
        return frozenset(), ()
    try:
        if not ranges:
            ranges = view.mapped_ranges()
        hits = view.find_literals(ranges, tuple(lit.encode() for lit in literals))
        found = {hit.decode() for hit in hits}
        marker = COMPILED_DIR_MARKER
        for start, end in ranges if openssl_dirs else ():
            at = view.find(marker, start, end)
            while 0 <= at < end:
                window = view[max(at - 12, start) : min(at + 210, end)]
                match = COMPILED_DIRS.search(window)
                if match:
                    pair = (match.group(1).decode(), match.group(2).decode("utf-8", "replace"))
                    if pair not in dirs:
                        dirs.append(pair)
                at = view.find(marker, at + 1, end)
        if openssl_dirs:
            cert_file = default_cert_file(view, ranges)
            if cert_file is not None:
                dirs.append(("CERTFILE", cert_file))
    except (OSError, ValueError):
        return frozenset(found), tuple(dirs)
    return frozenset(found), tuple(dirs)


def gather(
    path: str,
    image: ElfImage,
    linkage: Linkage,
    libc: Libc | None,
    closure: Closure | None,
    cache: EvidenceCache,
    toolchain: ToolchainFacts | None = None,
) -> Subject:
    """The evidence of the binary whose image is `image` (the run's, from `cache.images`)."""
    elf = image.elf
    # A Go program's own strings are never read: its detectors use the function table, and
    # scanning tens of MB of Go read-only data would cost more than everything else.
    binary = cache.of(elf, path, elf.soname, go=toolchain is not None and toolchain.go is not None)
    libraries: list[ObjectEvidence] = []
    root_glibc = None
    if closure is not None:
        objects: list[LoadedObject] = list(closure.libraries)
        for obj in objects:
            libraries.append(cache.of(obj.elf, obj.path, obj.soname or obj.name, library=True))
            if obj.name == "libc.so.6":
                versions = [parse_glibc_version(v) for v in obj.elf.version_defs]
                known = [v for v in versions if v is not None]
                root_glibc = max(known) if known else None
    linked: Container[str] = frozenset()
    if linkage is not Linkage.DYNAMIC and ".symtab" in elf.section_names:
        from scratchprobe.elf.sections import read_defined

        try:
            linked = read_defined(image)
        except ELFError:
            linked = frozenset()
    return Subject(
        path=path,
        elf=elf,
        linkage=linkage,
        libc=libc,
        closure=closure,
        binary=binary,
        libraries=tuple(libraries),
        linked=linked,
        root_glibc=root_glibc,
        toolchain=toolchain,
        image=image,
    )
