"""The last resort for one input: an unexpected exception becomes one problem line for it."""

from __future__ import annotations

import os

from scratchprobe.discover import InputProblem

DEBUG_INTERNAL_ENV = "SCRATCHPROBE_DEBUG_INTERNAL"
"""Set to 1, an unexpected exception is raised with its traceback instead of reported (the
test suite sets it, so any input that reaches the last-resort handler fails a test)."""


def internal_problem(label: str, exc: Exception) -> InputProblem:
    """The last resort for one input: a bug met on it (RecursionError, MemoryError, ...)
    becomes one `internal error` line for that input, and every other input is still
    reported. Every cause found so far is fixed where it arises; this only keeps an unknown
    one from losing the whole batch's report."""
    if os.environ.get(DEBUG_INTERNAL_ENV) == "1":
        raise exc
    text = " ".join(str(exc).split())[:200] or "no message"
    return InputProblem(label, f"internal error: {type(exc).__name__}: {text}")
