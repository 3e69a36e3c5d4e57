"""NSS modules: glibc before 2.34 loads even the `files` and `dns` services with dlopen.

glibc looks every NSS database up through the services nsswitch.conf names, each a module
libnss_<service>.so.2 loaded on first use (glibc nss/nss_module.c, nss/nsswitch.c before
2.33). Since glibc 2.34 `files` and `dns` are built into libc.so.6 (glibc NEWS, 2.34), so
only an older libc needs libnss_files.so.2, and for host lookups libnss_dns.so.2 with the
libresolv.so.2 it links. The lookups that go through NSS are the families of
needs/nss.py. docs/runtime-facts.md, "NSS".
"""

from __future__ import annotations

from scratchprobe.elf.classify import Libc
from scratchprobe.elf.reader import format_version
from scratchprobe.needs import nss
from scratchprobe.needs.context import Context
from scratchprobe.needs.dlopen import library_file
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeedKind, RuntimeNeed


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    version = subject.root_glibc
    if subject.libc is not Libc.GLIBC or not subject.dynamic or version is None:
        return []
    if version >= (2, 34):
        return []  # files and dns are inside libc.so.6 since 2.34
    users = subject.uses(*nss.USER_LOOKUPS)
    hosts = subject.uses(*nss.HOST_LOOKUPS)
    names = (["libnss_files.so.2"] if users or hosts else []) + (
        ["libnss_dns.so.2", "libresolv.so.2"] if hosts else []
    )
    files = []
    problems = []
    for name in names:
        located = ctx.locate_library(name, subject.elf, subject.closure)
        if located:
            files.append(library_file(located.path, located.real_path, "NSS module"))
        else:
            problems.append(f"the root has no {name}")
    if not names:
        return []
    return [
        RuntimeNeed(
            kind=NeedKind.NSS_MODULES,
            confidence=Confidence.CERTAIN,
            summary=(
                f"glibc {format_version(version)} loads even the files and dns NSS services "
                "from modules (built in only since 2.34)"
            ),
            evidence=(
                "calls " + ", ".join(users + hosts),
                f"libc.so.6 is glibc {format_version(version)}",
            ),
            files=tuple(files),
            problems=tuple(problems),
        )
    ]
