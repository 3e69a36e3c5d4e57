"""Time zones: programs that convert to local time read zone files by name.

glibc and musl read $TZ, else /etc/localtime, and zone names under /usr/share/zoneinfo
(musl also /share/zoneinfo and /etc/zoneinfo); a missing zone silently becomes UTC, which
is why this is found in production, not in tests. Go's time.LoadLocation reads
/usr/share/zoneinfo unless time/tzdata is linked. docs/runtime-facts.md, "Zone files".
"""

from __future__ import annotations

import functools
import posixpath
import re

from scratchprobe.elf.classify import Libc
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.toolchain.signs import LOAD_LOCATION

ZONEINFO = "/usr/share/zoneinfo"


@functools.cache
def _zone_name() -> re.Pattern[str]:
    """Compiled on first use: only a zone name given or found is checked with it."""
    return re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+.-]+)*$")


_LOCAL_TIME = ("localtime", "localtime_r", "tzset", "mktime", "ctime", "ctime_r", "timelocal")
_MAYBE = ("strftime", "strftime_l", "wcsftime", "asctime")


def is_zone_name(zone: str) -> bool:
    """A zone is a name under the zoneinfo directory, never a way out of it."""
    return bool(_zone_name().match(zone)) and ".." not in zone.split("/")


def zone_files(
    ctx: Context,
) -> tuple[tuple[NeededFile, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    if not ctx.is_dir(ZONEINFO):
        return (), (), ("the root has no /usr/share/zoneinfo: install tzdata in the builder stage",)
    zones = ctx.options.tz
    if not zones:
        return (NeededFile(ZONEINFO, "directory", source=ZONEINFO),), (), ()
    files: list[NeededFile] = []
    problems: list[str] = []
    valid: list[str] = []
    for zone in zones:
        if not is_zone_name(zone):
            problems.append(f"{zone!r} is not a time zone name (like Europe/Paris)")
            continue
        path = posixpath.join(ZONEINFO, zone)
        try:
            if not ctx.root.resolve(path).is_file:
                raise FileNotFoundError(path)
        except OSError:
            problems.append(f"zone {zone} is not in the root's {ZONEINFO}")
            continue
        valid.append(zone)
        files.append(NeededFile(path, "file", source=path, note=f"--tz {zone}"))
    if not valid:
        return tuple(files), (), tuple(problems)
    first = posixpath.join(ZONEINFO, valid[0])
    files.append(NeededFile("/etc/localtime", "symlink", target=first, note="the default zone"))
    return tuple(files), (("TZ", valid[0]),), tuple(problems)


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    evidence: list[str] = []
    confidence = Confidence.LIKELY
    go = subject.go
    rust = None
    if subject.rust is not None:
        # The Rust view loads only for a Rust program.
        from scratchprobe.needs.rust import rust_view

        rust = rust_view(subject)
    if go is not None:
        if go.embeds_tzdata:
            return []
        if go.loads_locations:
            evidence += go.evidence("loads zones by name", LOAD_LOCATION)
        elif go.local_time:
            evidence += go.evidence("local time honours TZ=Zone/Name", LOAD_LOCATION)
            confidence = Confidence.POSSIBLE
        else:
            return []
    elif rust is not None and rust.zone_crates:
        if rust.bundled_tz:
            return []
        evidence.append("crates " + ", ".join(sorted(rust.zone_crates)))
    else:
        used = subject.uses(*_LOCAL_TIME)
        if used:
            evidence.append("calls " + ", ".join(used))
        elif subject.uses(*_MAYBE):
            evidence.append(
                "calls " + ", ".join(subject.uses(*_MAYBE)) + " (local time only with %Z/%z)"
            )
            confidence = Confidence.POSSIBLE
        elif subject.static_strings("/usr/share/zoneinfo") and (
            subject.libc is not Libc.GLIBC or subject.static_strings("/etc/localtime")
        ):
            evidence.append('static libc with the zoneinfo path "/usr/share/zoneinfo" linked in')
        else:
            return []
    files, env, problems = zone_files(ctx)
    summary = (
        "converts times to named zones: without zone files it silently uses UTC; the image "
        f"needs {ZONEINFO}"
    )
    if ctx.options.tz:
        summary += " (only the zones given with --tz, TZ and /etc/localtime set)"
    else:
        summary += " (or only the zones you need: --tz ZONE)"
    return [
        RuntimeNeed(
            kind=NeedKind.ZONEINFO,
            confidence=confidence,
            summary=summary,
            evidence=tuple(evidence),
            files=files,
            env=env,
            problems=problems,
        )
    ]
