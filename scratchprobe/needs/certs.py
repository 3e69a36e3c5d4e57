"""CA certificates: who reads a trust store, and at which exact path.

- Go crypto/x509 (root_linux.go): the first existing file of certFiles, else the certDirectories;
  nothing when golang.org/x/crypto/x509roots/fallback is linked (embedded roots).
- OpenSSL: X509_get_default_cert_file() = OPENSSLDIR "/cert.pem" (Debian: /usr/lib/ssl, a link
  to /etc/ssl/certs/ca-certificates.crt); OPENSSLDIR is read from the root's libcrypto.
- GnuTLS, libcurl and others: their compiled-in bundle path, found as a known string.
- Rust openssl-probe / rustls-native-certs: their probe lists start with the Debian bundle.
  Without crate metadata, the probe is recognised by its directory and file-name literals
  (openssl-probe src/lib.rs): it keeps the directories that exist, in its order, and takes
  the first of its file names that exists in one of them, so any (directory, file name)
  pair of the lists is found in a scratch image; the Debian bundle's pair is preferred.
- Embedded roots (webpki-roots, NSS's libnssckbi): no file.
docs/runtime-facts.md, "CA bundles"; OpenSSL's own rules are in needs/openssl.py.
"""

from __future__ import annotations

import posixpath

from scratchprobe.elf.strings import literals_in
from scratchprobe.needs import openssl
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import (
    CA_BUNDLE_PATHS,
    PROBE_DIRS,
    PROBE_FILES,
    PROBE_SENTINELS,
    STRING_SECTIONS,
    Subject,
)
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.toolchain.signs import SYSTEM_ROOTS

GO_DEFAULT = "/etc/ssl/certs/ca-certificates.crt"


def bundle_file(path: str, source: str, note: str) -> NeededFile:
    return NeededFile(path=path, type="file", source=source, note=note)


def missing_bundle() -> tuple[str, ...]:
    return (
        "the root has no CA bundle (" + ", ".join(CA_BUNDLE_PATHS[:2]) + ", ...): install "
        "ca-certificates in the builder stage",
    )


def ca_need(
    path: str,
    bundle: str | None,
    summary: str,
    evidence: tuple[str, ...],
    confidence: Confidence = Confidence.LIKELY,
    note: str = "",
    env: tuple[tuple[str, str], ...] = (),
) -> RuntimeNeed:
    """The root's CA bundle at `path` in the image, or the problem that the root has none."""
    return RuntimeNeed(
        kind=NeedKind.CA_CERTIFICATES,
        confidence=confidence,
        summary=summary,
        evidence=evidence,
        files=(bundle_file(path, bundle, note),) if bundle else (),
        env=env if bundle else (),
        problems=() if bundle else missing_bundle(),
    )


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    bundle = ctx.ca_bundle()
    go = subject.go
    if go is not None and go.uses_system_roots:
        if go.has_x509roots_fallback:
            return []
        return [
            ca_need(
                GO_DEFAULT,
                bundle,
                "Go's crypto/x509 loads the system roots from the first of its certFiles "
                f"that exists: the image needs a CA bundle at {GO_DEFAULT}",
                go.evidence("crypto/x509 system roots", SYSTEM_ROOTS),
                note="Go's first certFiles entry",
            )
        ]

    needs: list[RuntimeNeed] = []
    rust = None
    if subject.rust is not None:
        # The Rust view loads only for a Rust program.
        from scratchprobe.needs.rust import rust_view

        rust = rust_view(subject)
    if rust is not None and rust.embedded_roots:
        return needs
    if rust is not None and rust.native_roots:
        # openssl-probe (used by rustls-native-certs and native-tls) joins its directory
        # list with its file list at run time, so no whole path is in the file; on every
        # distribution its first hit is a file Go's list also names.
        needs.append(
            ca_need(
                GO_DEFAULT,
                bundle,
                "loads the system's CA roots through openssl-probe's search: the image "
                f"needs a CA bundle at {GO_DEFAULT}",
                ("crates " + ", ".join(sorted(rust.native_root_crates)),),
                note="openssl-probe: /etc/ssl + certs/ca-certificates.crt",
            )
        )
    else:
        needs += _path_probe(subject, bundle)

    default = openssl.default_verify_file(subject)
    if default is not None:
        cert_file, evidence, confidence = default.path, default.evidence, default.confidence
        if cert_file is not None:
            needs.append(
                ca_need(
                    cert_file,
                    bundle,
                    "OpenSSL's default verify paths read its compiled-in certificate file: "
                    f"the image needs the CA bundle at {cert_file}",
                    evidence,
                    confidence,
                    note="OpenSSL's default cert file",
                )
            )
        else:
            # OpenSSL without a readable default path: SSL_CERT_FILE is the honest fix.
            needs.append(
                ca_need(
                    GO_DEFAULT,
                    bundle,
                    "OpenSSL's compiled-in certificate path could not be read: the image "
                    f"gets the CA bundle at {GO_DEFAULT} and SSL_CERT_FILE naming it",
                    evidence,
                    confidence,
                    note="named by SSL_CERT_FILE",
                    env=((openssl.CERT_FILE_ENV, GO_DEFAULT),),
                )
            )

    # Compiled-in bundle paths anywhere in the program or its libraries (GnuTLS, libcurl,
    # openssl-probe, ...). OpenSSL's own is handled above.
    claimed = {f.path for n in needs for f in n.files}
    for obj in subject.objects():
        for path in CA_BUNDLE_PATHS:
            if path in obj.strings and path not in claimed:
                claimed.add(path)
                needs.append(
                    ca_need(
                        path,
                        bundle,
                        f"{obj.name} has the CA bundle path {path} compiled in: the image "
                        "needs the bundle there to verify TLS peers",
                        (f'string "{path}" in {obj.name}',),
                        note="compiled-in bundle path",
                    )
                )
    return needs


_MIN_PROBE_DIRS = 5
"""Distinct probe directories a program must name: a static OpenSSL alone names two or three
(its OPENSSLDIR, /etc/ssl inside a bundle path), openssl-probe names thirteen or more."""
_MIN_PROBE_FILES = 2


def _path_probe(subject: Subject, bundle: str | None) -> list[RuntimeNeed]:
    """A program that searches OpenSSL's conventional directories itself."""
    if not any(s in subject.binary.strings for s in PROBE_SENTINELS):
        return []
    literals = tuple(x.encode() for x in PROBE_DIRS + PROBE_FILES)
    image = subject.image
    found_literals = literals_in(image, STRING_SECTIONS, literals) if image else set()
    strings = {x.decode() for x in found_literals}
    dirs = [d for d in PROBE_DIRS if d in strings]
    found = [f for f in PROBE_FILES if f in strings]
    # "ca-bundle.pem" is found inside "tls-ca-bundle.pem": only the names seen on their own.
    names = [f for f in found if not any(f != g and f in g for g in found)]
    if len(dirs) < _MIN_PROBE_DIRS or len(names) < _MIN_PROBE_FILES:
        return []
    pairs = [posixpath.join(d, f) for d in dirs for f in names]
    path = GO_DEFAULT if GO_DEFAULT in pairs else pairs[0]
    return [
        ca_need(
            path,
            bundle,
            f"searches {len(dirs)} of OpenSSL's conventional directories for a CA bundle "
            f"itself (openssl-probe's list): the image gets the bundle at {path}, a pair "
            "of its directory and file-name lists, which the search finds",
            (
                "probe directories in the program: " + ", ".join(dirs),
                "probe file names in the program: " + ", ".join(names),
            ),
            note="found by the program's own path search",
        )
    ]
