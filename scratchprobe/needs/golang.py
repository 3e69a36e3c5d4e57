"""Go programs: which runtime files the linked standard-library packages open.

Buildinfo does not list standard-library packages; the function names in .gopclntab do, and
they survive `-s -w` and strip. Each marker below is a function that only exists when the
package feature that opens the file is linked (checked against Go 1.19, 1.21 and 1.27 output).
Sources: golang/go src/crypto/x509/root_linux.go, src/time/zoneinfo_unix.go,
src/os/user/lookup_unix.go, src/net/conf.go, src/os/tempfile.go, src/mime/type_unix.go.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scratchprobe.needs.evidence import Subject

# marker -> what it means
SYSTEM_ROOTS = ("crypto/x509.loadSystemRoots", "crypto/x509.initSystemRoots")
FALLBACK_ROOTS = ("golang.org/x/crypto/x509roots/fallback.init.0",)
LOAD_LOCATION = ("time.LoadLocation", "time.loadLocation")
TZDATA = ("time/tzdata.init.0", "time/tzdata.loadFromEmbeddedTZData")
USER_PURE = ("os/user.readColonFile", "os/user.lookupUser", "os/user.current")
USER_CGO = ("os/user._Cfunc_mygetpwnam_r", "os/user._Cfunc_mygetpwuid_r")
NET_LOOKUP = (
    "net.(*Resolver).lookupHost",
    "net.(*Resolver).lookupIP",
    "net.(*Resolver).goLookupIPCNAMEOrder",
    "net.(*Resolver).goLookupHostOrder",
)
NET_CGO = ("net._C2func_getaddrinfo", "net._Cfunc_getaddrinfo", "net.cgoLookupHost")
TEMP = ("os.TempDir", "os.CreateTemp", "os.MkdirTemp", "io/ioutil.TempFile", "io/ioutil.TempDir")
MIME = ("mime.initMimeUnix", "mime.loadMimeFile")
EXECUTABLE = ("os.Executable",)
"""os.Executable reads /proc/self/exe (os/executable_procfs.go): the program locates itself."""

ALL_MARKERS = (
    SYSTEM_ROOTS
    + FALLBACK_ROOTS
    + LOAD_LOCATION
    + TZDATA
    + USER_PURE
    + USER_CGO
    + NET_LOOKUP
    + NET_CGO
    + TEMP
    + MIME
    + EXECUTABLE
)


@dataclass(frozen=True)
class GoView:
    """The Go facts the detectors act on."""

    version: str | None
    cgo: bool
    tags: frozenset[str]
    markers: frozenset[str]

    def has(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if n in self.markers)

    def evidence(self, what: str, names: tuple[str, ...] = ()) -> tuple[str, ...]:
        found = [n for n in names if n in self.markers]
        settings = [f"Go {self.version}"] if self.version else ["Go"]
        settings.append("CGO_ENABLED=1" if self.cgo else "CGO_ENABLED=0")
        if self.tags:
            settings.append("tags " + ",".join(sorted(self.tags)))
        return (f"{what}: " + ", ".join(found) if found else what, "; ".join(settings))

    @property
    def uses_system_roots(self) -> bool:
        return bool(self.has(SYSTEM_ROOTS))

    @property
    def fallback_roots(self) -> bool:
        return bool(self.has(FALLBACK_ROOTS))

    @property
    def loads_locations(self) -> bool:
        """time.LoadLocation itself: the program asks for zones by name. (time.loadLocation
        alone comes with every use of time.Local, which reads TZ or /etc/localtime and
        falls back to UTC.)"""
        return "time.LoadLocation" in self.markers

    @property
    def local_time(self) -> bool:
        return "time.loadLocation" in self.markers

    @property
    def embeds_tzdata(self) -> bool:
        return bool(self.has(TZDATA)) or "timetzdata" in self.tags

    @property
    def pure_user(self) -> bool:
        """os/user in pure Go (reads /etc/passwd itself): no cgo, or the osusergo tag."""
        return bool(self.has(USER_PURE)) and (not self.cgo or "osusergo" in self.tags)

    @property
    def pure_resolver_only(self) -> bool:
        return not self.cgo or "netgo" in self.tags


@lru_cache(maxsize=4096)
def _markers(path: str, size: int) -> frozenset[str]:
    from scratchprobe.elf.reader import read_elf
    from scratchprobe.toolchain.go import go_functions

    return go_functions(read_elf(path), ALL_MARKERS)


def go_view(subject: Subject) -> GoView | None:
    """Go facts of the binary, or None when it is not a Go program."""
    toolchain = subject.toolchain
    if toolchain is None or toolchain.go is None:
        return None
    facts = toolchain.go
    try:
        markers = _markers(subject.elf.path, subject.elf.size)
    except (OSError, ValueError):
        markers = facts.functions
    return GoView(
        version=facts.go_version.removeprefix("go") if facts.go_version else None,
        # "Uses libc" is decided by what is linked, not by the CGO_ENABLED setting:
        # CGO_ENABLED=1 with netgo,osusergo links no libc at all.
        cgo=facts.cgo_linked,
        tags=facts.tags,
        markers=markers,
    )
