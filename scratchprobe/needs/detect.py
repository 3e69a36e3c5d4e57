"""Run every runtime-need detector and choose which needs go into the plan.

One detector module per concern; `detect_needs` runs them all and `select` applies the
user's choice (certain + likely by default, `--strict` adds possible, `--with` / `--without`
override by kind).
"""

from __future__ import annotations

from scratchprobe.needs import certs, datadirs, modules, nameservice, tmp, users, zoneinfo
from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeedKind, RuntimeNeed

DETECTORS = (
    certs.detect,
    zoneinfo.detect,
    users.detect,
    nameservice.detect,
    tmp.detect,
    modules.detect,
    datadirs.detect,
)


def detect_needs(subject: Subject, ctx: Context) -> tuple[RuntimeNeed, ...]:
    found: list[RuntimeNeed] = []
    for detector in DETECTORS:
        found += detector(subject, ctx)
    return tuple(found)


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
