"""Run every runtime-need detector and choose which needs go into the plan.

One detector module per concern; `detect_needs` runs them all and `included` applies the
user's choice (certain + likely by default, `--strict` adds possible, `--with` / `--without`
override by kind).
"""

from __future__ import annotations

from scratchprobe.needs import (
    certs,
    datadirs,
    dlopen,
    gconv,
    helpers,
    locale,
    mime,
    nameservice,
    nssmodules,
    openssl,
    tmp,
    unwinder,
    users,
    zoneinfo,
)
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

DETECTORS = (
    certs.detect,
    zoneinfo.detect,
    users.detect,
    nameservice.detect,
    tmp.detect,
    unwinder.detect,
    nssmodules.detect,
    gconv.detect,
    openssl.detect,
    dlopen.detect,
    mime.detect,
    datadirs.detect,
    locale.detect,
    helpers.detect,
)


def detect_needs(
    subject: Subject, ctx: Context, requested: frozenset[NeedKind] = frozenset()
) -> tuple[RuntimeNeed, ...]:
    """Every need the evidence shows, plus the `requested` kinds (--with) that nothing
    showed: some uses leave no trace in an optimised file (Rust's temp_dir keeps "/tmp" as
    an instruction operand), and the user knows better."""
    found: list[RuntimeNeed] = []
    for detector in DETECTORS:
        found += detector(subject, ctx)
    shown = {need.kind for need in found}
    for kind in sorted(requested - shown, key=lambda k: k.value):
        need = _requested(kind, ctx)
        if need is not None:
            found.append(need)
    return tuple(found)


def _requested(kind: NeedKind, ctx: Context) -> RuntimeNeed | None:
    """The files of a kind asked for with --with, for the kinds whose files do not depend
    on the program (gconv modules or OpenSSL providers do: those need evidence)."""
    evidence = (f"--with {kind.value}",)
    files: tuple[NeededFile, ...]
    problems: tuple[str, ...]
    if kind is NeedKind.TMP:
        files, problems = (tmp.TMP,), ()
    elif kind is NeedKind.ZONEINFO:
        files, env, problems = zoneinfo.zone_files(ctx)
        return RuntimeNeed(kind, Confidence.CERTAIN, "zone files, as requested", evidence,
                           files, env=env, problems=problems)  # fmt: skip
    elif kind is NeedKind.LOCALE:
        name = ctx.options.locale or locale.DEFAULT_LOCALE
        files, problems = locale.locale_files(ctx, locale.DEFAULT_LOCALEDIR, name)
        return RuntimeNeed(kind, Confidence.CERTAIN, f"the locale {name}, as requested",
                           evidence, files, env=(("LANG", name),) if files else (),
                           problems=problems)  # fmt: skip
    elif kind is NeedKind.USERS:
        files, problems = users.user_files(ctx)
    elif kind is NeedKind.NAME_SERVICE:
        files, problems = nameservice.lookup_files(ctx)[0], ()
    elif kind is NeedKind.CA_CERTIFICATES:
        bundle = ctx.ca_bundle()
        files = (certs.bundle_file(certs.GO_DEFAULT, bundle, "requested"),) if bundle else ()
        problems = () if bundle else certs.missing_bundle()
    else:
        return None
    return RuntimeNeed(
        kind, Confidence.CERTAIN, f"{kind.value} files, as requested", evidence, files,
        problems=problems,
    )  # fmt: skip


def included(
    need: RuntimeNeed,
    strict: bool,
    with_kinds: frozenset[NeedKind],
    without_kinds: frozenset[NeedKind],
) -> bool:
    """Whether a need's files go into the plan."""
    if need.kind in without_kinds:
        return False
    if need.kind in with_kinds:
        return True
    return need.confidence is not Confidence.POSSIBLE or strict
