"""MIME types: Go's mime package reads the system's type tables for what it does not know.

Go's mime package answers from a small built-in table (src/mime/type.go), then loads the
shared-mime-info globs2 files or, when there are none (a scratch image), every one of
/etc/mime.types, /etc/apache2/mime.types, /etc/apache/mime.types and
/etc/httpd/conf/mime.types that exists (src/mime/type_unix.go, mimeGlobs, typeFiles).
docs/runtime-facts.md, "MIME".
"""

from __future__ import annotations

from scratchprobe.needs.context import Context
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.toolchain.signs import MIME


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    go = subject.go
    if go is None or not go.found(MIME):
        return []
    files = tuple(
        NeededFile(p, "file", source=p)
        for p in ("/etc/mime.types", "/etc/apache2/mime.types", "/etc/apache/mime.types")
        if ctx.exists(p)
    )
    return [
        RuntimeNeed(
            kind=NeedKind.MIME,
            confidence=Confidence.POSSIBLE,
            summary=(
                "Go's mime package reads /etc/mime.types for extensions beyond its small "
                "built-in table (add with --with mime)"
            ),
            evidence=go.evidence("mime types", MIME),
            files=files[:1],
        )
    ]
