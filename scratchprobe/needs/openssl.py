"""OpenSSL: the files libcrypto finds through the directories compiled into it.

Everything scratchprobe knows about OpenSSL is here (docs/runtime-facts.md, "OpenSSL"):
- the sonames that make a program an OpenSSL user (libcrypto.so.N, libssl.so.N);
- OPENSSLDIR, MODULESDIR and ENGINESDIR, compiled into libcrypto as the strings
  OpenSSL_version(OPENSSL_DIR / OPENSSL_MODULES_DIR / OPENSSL_ENGINES_DIR) returns,
  `OPENSSLDIR: "<dir>"` (crypto/cversion.c);
- the default CA bundle, X509_get_default_cert_file() = OPENSSLDIR "/cert.pem"
  (crypto/x509/x509_def.c, include/internal/cryptlib.h X509_CERT_FILE), which the
  environment variable SSL_CERT_FILE overrides (X509_get_default_cert_file_env);
- the configuration, OPENSSLDIR "/openssl.cnf" (crypto/conf/conf_mod.c
  CONF_get1_default_config_file), read at initialisation when present;
- providers from MODULESDIR (crypto/provider_core.c) and engines from ENGINESDIR
  (crypto/engine/eng_list.c, ENGINE_by_id), loaded by name.
The CA need itself is built in certs.py; evidence.py reads the directories out of the file.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scratchprobe.elf.markers import LIBCRYPTO, PROGRAM
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

if TYPE_CHECKING:
    # Typing only: evidence.py imports this module for the patterns below.
    from scratchprobe.elf.image import ElfImage
    from scratchprobe.needs.context import Context
    from scratchprobe.needs.evidence import Subject

SONAMES = ("libcrypto.so", "libssl.so")
"""Sonames (prefixes: the number is the ABI) of OpenSSL's two libraries."""
COMPILED_DIRS = re.compile(rb'(OPENSSLDIR|MODULESDIR|ENGINESDIR): "([^"\x00]{1,200})"')
"""The directory strings compiled into libcrypto (crypto/cversion.c)."""
COMPILED_DIR_MARKER = b'DIR: "'
_CERT_FILE_VARIABLE = b"SSL_CERT_FILE\0"
_CERT_FILE_NAME = b"/cert.pem\0"
# Searched in a program and in a libcrypto (needs/evidence.py).
# (_CERT_FILE_NAME is searched only where the variable's name is: alone.)
for _markers in (PROGRAM, LIBCRYPTO):
    _markers.declare(COMPILED_DIR_MARKER)
    _markers.declare(_CERT_FILE_VARIABLE, every=False)
"""What every COMPILED_DIRS match contains: a literal to find before the regex runs."""
CERT_FILE_ENV = "SSL_CERT_FILE"
LOADERS = ("OSSL_PROVIDER_load", "OSSL_PROVIDER_try_load", "ENGINE_by_id",
           "ENGINE_load_builtin_engines", "OPENSSL_config", "CONF_modules_load_file",
           "OSSL_LIB_CTX_load_config", "OPENSSL_init_crypto")  # fmt: skip
"""Calls that load the configuration, a provider or an engine."""


def default_cert_file(view: ElfImage, ranges: list[tuple[int, int]]) -> str | None:
    """OpenSSL's X509_get_default_cert_file(), compiled in beside the name of the variable
    that overrides it (SSL_CERT_FILE). It is there whenever libcrypto's verify-path code is
    linked, also in a static program, where the OPENSSLDIR version string often is not."""
    if not any(view.find(_CERT_FILE_VARIABLE, start, end) >= 0 for start, end in ranges):
        return None
    for start, end in ranges:
        at = view.find(_CERT_FILE_NAME, start, end)
        while at >= 0:
            begin = view.rfind(b"\0", max(start, at - 256), at) + 1
            path = view[begin : at + len(b"/cert.pem")]
            if path.startswith(b"/") and all(0x21 <= c < 0x7F for c in path):
                return path.decode("ascii")
            at = view.find(_CERT_FILE_NAME, at + 1, end)
    return None


@dataclass(frozen=True)
class DefaultVerifyFile:
    """Where OpenSSL's default verify paths read a program's CA bundle."""

    path: str | None
    """The compiled-in certificate file; None when it could not be read."""
    evidence: tuple[str, ...]
    confidence: Confidence
    """Likely with libssl in the closure (TLS) or OpenSSL linked in; possible for
    libcrypto alone (it may hash, never verify a peer)."""


def default_verify_file(subject: Subject) -> DefaultVerifyFile | None:
    """The default verify file of the root's libcrypto or of an OpenSSL linked into the
    program; None for a program that does not use OpenSSL."""
    openssl = subject.library("libcrypto.so")
    carrier = openssl if openssl is not None else subject.binary
    dirs = dict(carrier.openssl_dirs)
    opensslldir = dirs.get("OPENSSLDIR")
    cert_file = posixpath.join(opensslldir, "cert.pem") if opensslldir else dirs.get("CERTFILE")
    if openssl is None and cert_file is None:
        return None
    # libssl in the closure, or OpenSSL's verify-path code linked into the program.
    uses_tls = subject.library("libssl.so") is not None or openssl is None
    confidence = Confidence.LIKELY if uses_tls else Confidence.POSSIBLE
    evidence = [f"{carrier.name} in the closure" if openssl else "OpenSSL linked in"]
    if subject.library("libssl.so") is not None:
        evidence.append("libssl in the closure (TLS)")
    if opensslldir:
        evidence.append(f'{carrier.name} has OPENSSLDIR "{opensslldir}"')
    elif cert_file:
        evidence.append(f'the default certificate file "{cert_file}" is compiled in')
    return DefaultVerifyFile(cert_file, tuple(evidence), confidence)


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    crypto = subject.library("libcrypto.so")
    if crypto is None:
        return []
    dirs = dict(crypto.openssl_dirs)
    needs = []
    opensslldir = dirs.get("OPENSSLDIR")
    if opensslldir:
        config = posixpath.join(opensslldir, "openssl.cnf")
        loaders = [s for o in subject.objects() for s in o.imports if s in LOADERS]
        if ctx.exists(config):
            needs.append(
                RuntimeNeed(
                    kind=NeedKind.OPENSSL_CONFIG,
                    confidence=Confidence.POSSIBLE,
                    summary=(
                        f"OpenSSL reads {config} at initialisation when present; without it "
                        "the built-in defaults apply (add with --with openssl-config)"
                    ),
                    evidence=(f'{crypto.name} has OPENSSLDIR "{opensslldir}"',),
                    files=(NeededFile(config, "file", source=config),),
                )
            )
        explicit = sorted({s for s in loaders if s != "OPENSSL_init_crypto"})
        modules = [dirs[k] for k in ("MODULESDIR", "ENGINESDIR") if k in dirs]
        existing = [d for d in modules if ctx.is_dir(d)]
        if explicit and existing:
            # Loading a provider by name needs its module; engine and config calls only
            # load modules when a user or a config file asks for one.
            by_name = any(s.startswith("OSSL_PROVIDER_") for s in explicit)
            needs.append(
                RuntimeNeed(
                    kind=NeedKind.OPENSSL_MODULES,
                    confidence=Confidence.LIKELY if by_name else Confidence.POSSIBLE,
                    summary=(
                        "loads OpenSSL providers or engines by name, which live in "
                        + " and ".join(existing)
                        + ("" if by_name else " (add with --with openssl-modules)")
                    ),
                    evidence=("calls " + ", ".join(explicit),),
                    files=tuple(NeededFile(d, "directory", source=d) for d in existing),
                )
            )
    return needs
