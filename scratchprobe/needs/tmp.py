"""/tmp: a scratch image has none, and mkstemp("/tmp/...") or os.CreateTemp fail without it."""

from __future__ import annotations

from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.toolchain.signs import TEMP

_TEMP_CALLS = (
    "mkstemp", "mkstemp64", "mkstemps", "mkostemp", "mkostemps", "mkdtemp", "tmpfile",
    "tmpfile64", "tmpnam", "tmpnam_r", "tempnam",
)  # fmt: skip
TMP = NeededFile("/tmp", "directory", mode="1777", note="empty, sticky and world-writable")


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    evidence: list[str] = []
    go = subject.go
    calls = subject.uses(*_TEMP_CALLS)
    if calls:
        evidence.append("calls " + ", ".join(calls))
    elif go is not None and go.found(TEMP):
        evidence += go.evidence("temporary files", TEMP)
    elif subject.dynamic and "TMPDIR" in subject.binary.strings:
        # In a static file TMPDIR is libc's own (tmpfile, tempnam): no evidence of use.
        evidence.append('reads TMPDIR (a temporary directory, "/tmp" by default)')
    elif go is None and "/tmp/" in subject.binary.strings:
        evidence.append('has a "/tmp/..." path')
    if not evidence:
        return []
    return [
        RuntimeNeed(
            kind=NeedKind.TMP,
            confidence=Confidence.LIKELY,
            summary="creates temporary files: the image needs an empty /tmp with mode 1777",
            evidence=tuple(evidence),
            files=(TMP,),
        )
    ]
