"""The unwinder: glibc loads libgcc_s.so.1 with dlopen, which no DT_NEEDED shows.

glibc unwinds the stack through libgcc_s's _Unwind_* functions, loaded on first use
(glibc misc/unwind-link.c since 2.34, sysdeps/nptl/unwind-forcedunwind.c before): at
pthread_cancel and pthread_exit (forced unwinding) and for backtrace (debug/backtrace.c).
Without the library the program aborts ("libgcc_s.so.1 must be installed for
pthread_cancel to work"). docs/runtime-facts.md, "Unwinder".
"""

from __future__ import annotations

from scratchprobe.elf.classify import Libc
from scratchprobe.needs.context import Context
from scratchprobe.needs.dlopen import library_file
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeedKind, RuntimeNeed


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    if subject.libc is not Libc.GLIBC or not subject.dynamic or subject.closure is None:
        return []
    if any(o.name == "libgcc_s.so.1" for o in subject.closure.libraries):
        return []
    calls = {
        "pthread_cancel": Confidence.CERTAIN,
        "pthread_exit": Confidence.LIKELY,
        "backtrace": Confidence.LIKELY,
    }
    found = [(name, conf) for name, conf in calls.items() if name in subject.binary.imports]
    if not found:
        return []
    confidence = min((c for _n, c in found), key=list(Confidence).index)
    located = ctx.locate_library("libgcc_s.so.1", subject.elf, subject.closure)
    return [
        RuntimeNeed(
            kind=NeedKind.UNWINDER,
            confidence=confidence,
            summary=(
                "glibc loads libgcc_s.so.1 with dlopen to unwind the stack at thread "
                "cancellation or exit (or for backtrace); without it the program aborts"
            ),
            evidence=("calls " + ", ".join(n for n, _c in found),),
            files=(library_file(located.path, located.real_path, "dlopen'd by glibc"),)
            if located
            else (),
            problems=() if located else ("the root has no libgcc_s.so.1 (install libgcc-s1)",),
        )
    ]
