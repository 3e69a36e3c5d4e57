"""Name service: host, service and protocol lookups.

glibc reads /etc/nsswitch.conf (without it, glibc >= 2.33 defaults hosts to "files dns":
nss/nss_database.c, measured in docs/runtime-facts.md, "NSS"); Go's resolver reads its hosts
line too. The image gets a generated minimal one (only `files` and `dns`, built into
glibc >= 2.34), never the builder's, which may name modules the image lacks (systemd, mdns,
sss).
/etc/hosts and /etc/resolv.conf are bind-mounted by Docker, Podman and Kubernetes: listed as
runtime-provided, not copied. musl and Go's pure resolver read the files directly.
With `--runtime bare` (runc bundle, systemd-nspawn, chroot) nothing is mounted: the image gets
a generated /etc/hosts with localhost. No /etc/resolv.conf is generated, since no name server
can be known: without one glibc (resolv/res_init.c), musl (src/network/resolvconf.c) and Go
(net/dnsconfig_unix.go defaultNS) all ask 127.0.0.1:53.
"""

from __future__ import annotations

from scratchprobe.elf.classify import Libc
from scratchprobe.needs import nss
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import (
    Confidence,
    ContainerRuntime,
    NeededFile,
    NeedKind,
    RuntimeNeed,
)
from scratchprobe.toolchain.signs import NET_CGO, NET_LOOKUP

NSSWITCH = (
    "# Written by scratchprobe: only the services built into glibc >= 2.34.\n"
    "passwd:    files\n"
    "group:     files\n"
    "shadow:    files\n"
    "hosts:     files dns\n"
    "networks:  files\n"
    "protocols: files\n"
    "services:  files\n"
    "ethers:    files\n"
    "rpc:       files\n"
)
RUNTIME_PROVIDED = ("/etc/hosts", "/etc/resolv.conf")
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
"""The /etc/hosts Docker writes into every container (and `--runtime bare` into the image)."""

_HOSTS = nss.HOSTS + nss.RESOLVER
_SERVICES = nss.SERVICES
_PROTOCOLS = nss.PROTOCOLS


def nsswitch_file() -> NeededFile:
    return NeededFile(
        "/etc/nsswitch.conf",
        "file",
        content=NSSWITCH,
        mode="0644",
        note="generated: hosts: files dns, every other database files",
    )


def hosts_file() -> NeededFile:
    return NeededFile(
        "/etc/hosts",
        "file",
        content=HOSTS,
        mode="0644",
        note="generated for --runtime bare: localhost, as Docker writes it",
    )


def lookup_files(
    ctx: Context, reads_nsswitch: bool = True
) -> tuple[tuple[NeededFile, ...], tuple[str, ...]]:
    """(files, runtime-provided paths) of a host-name lookup under the chosen runtime."""
    files = (nsswitch_file(),) if reads_nsswitch else ()
    if ctx.options.runtime is ContainerRuntime.BARE:
        return (*files, hosts_file()), ()
    return files, RUNTIME_PROVIDED


def _copy(ctx: Context, path: str) -> tuple[tuple[NeededFile, ...], tuple[str, ...]]:
    if ctx.exists(path):
        return (NeededFile(path, "file", source=path),), ()
    return (), (f"the root has no {path} (install netbase in the builder stage)",)


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    needs: list[RuntimeNeed] = []
    go = subject.go
    evidence: list[str] = []
    hosts = subject.uses(*_HOSTS)
    if hosts:
        evidence.append("calls " + ", ".join(hosts))
    elif go is not None and go.found(NET_LOOKUP + NET_CGO):
        evidence += go.evidence("net name lookups", NET_LOOKUP + NET_CGO)
    elif go is None and subject.static_glibc and subject.static_strings(nss.static_lookup("hosts")):
        evidence.append("static glibc with host lookups linked in (__nss_hosts_lookup2)")
    elif go is None and not subject.static_glibc and subject.static_strings("/etc/resolv.conf"):
        evidence.append('static libc with its resolver linked in ("/etc/resolv.conf")')
    # glibc and Go's resolver read nsswitch.conf for the order of hosts sources; musl never.
    reads_nsswitch = subject.libc is Libc.GLIBC or go is not None
    bare = ctx.options.runtime is ContainerRuntime.BARE
    if evidence:
        files, provided = lookup_files(ctx, reads_nsswitch)
        needs.append(
            RuntimeNeed(
                kind=NeedKind.NAME_SERVICE,
                confidence=Confidence.LIKELY,
                summary=(
                    (
                        "resolves host names: a bare runtime mounts no /etc/hosts, so the "
                        "image gets one with localhost (and no /etc/resolv.conf: DNS then "
                        "asks 127.0.0.1)"
                        if bare
                        else "resolves host names: /etc/hosts and /etc/resolv.conf come "
                        "from the container runtime"
                    )
                    + (
                        "; a generated /etc/nsswitch.conf pins 'hosts: files dns' (the "
                        "builder's may name NSS modules the image lacks)"
                        if reads_nsswitch
                        else ""
                    )
                ),
                evidence=tuple(evidence),
                files=files,
                runtime_provided=provided,
            )
        )
    for calls, path, what in (
        (_SERVICES, "/etc/services", "services by name or port"),
        (_PROTOCOLS, "/etc/protocols", "protocols by name or number"),
    ):
        used = subject.uses(*calls)
        if not used:
            continue
        files, problems = _copy(ctx, path)
        needs.append(
            RuntimeNeed(
                kind=NeedKind.NAME_SERVICE,
                confidence=Confidence.LIKELY,
                summary=f"looks up {what}: the image needs {path}",
                evidence=("calls " + ", ".join(used),),
                files=files,
                problems=problems,
            )
        )
    return needs
