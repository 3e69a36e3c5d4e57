"""Runtime needs: files a program opens at run time, each found from evidence in the file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NeedKind(Enum):
    """What a runtime need is about; also the `kind` of the files it adds to the plan."""

    CA_CERTIFICATES = "ca-certificates"
    ZONEINFO = "zoneinfo"
    USERS = "users"
    NAME_SERVICE = "name-service"
    NSS_MODULES = "nss-modules"
    GCONV = "gconv"
    UNWINDER = "unwinder"
    OPENSSL_CONFIG = "openssl-config"
    OPENSSL_MODULES = "openssl-modules"
    DLOPEN = "dlopen"
    TMP = "tmp"
    MIME = "mime"
    PYTHON = "python-stdlib"
    DATA_DIRECTORY = "data-directory"
    LOCALE = "locale"
    HELPERS = "helpers"


class ContainerRuntime(Enum):
    """What will run the image, which decides the files it mounts itself (--runtime)."""

    DOCKER = "docker"
    """Docker, Podman, Kubernetes (CRI): they bind-mount /etc/hosts and /etc/resolv.conf."""
    BARE = "bare"
    """A plain runc bundle, systemd-nspawn without --resolv-conf, a chroot: nothing mounted."""


class Confidence(Enum):
    """How sure the evidence makes us. The plan takes certain and likely by default."""

    CERTAIN = "certain"
    LIKELY = "likely"
    POSSIBLE = "possible"


@dataclass(frozen=True)
class NeededFile:
    """One image entry a need adds."""

    path: str
    """Absolute path in the image."""
    type: str
    """`file`, `directory` or `symlink` (the plan's FileType values)."""
    source: str | None = None
    """In-root path to copy from; None for generated entries."""
    content: str | None = None
    target: str | None = None
    mode: str | None = None
    note: str = ""
    """Why this exact path, when it is not obvious (e.g. OpenSSL's OPENSSLDIR)."""


@dataclass(frozen=True)
class RuntimeNeed:
    """A file dependency the program has at run time, with the evidence for it."""

    kind: NeedKind
    confidence: Confidence
    summary: str
    """One sentence a user can act on."""
    evidence: tuple[str, ...]
    """What in the file shows it: symbols, strings, build settings, libraries."""
    files: tuple[NeededFile, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """Environment the image should set (ENV lines), e.g. TZ or SSL_CERT_FILE."""
    runtime_provided: tuple[str, ...] = ()
    """Paths a container runtime mounts itself (/etc/hosts, /etc/resolv.conf): not copied."""
    problems: tuple[str, ...] = ()
    """Why the need cannot be met from the root (e.g. no CA bundle in the builder)."""
