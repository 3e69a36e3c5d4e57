"""Typed errors. The core raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class ScratchprobeError(Exception):
    """Base class of every error scratchprobe reports to the user as one line."""


class InputError(ScratchprobeError):
    """An input file cannot be used: not an ELF, truncated, unreadable, a loop, ..."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ELFError(ValueError):
    """The bytes are not a well-formed ELF file (raised by the reader, wrapped into InputError)."""


class RootError(ScratchprobeError):
    """The --root directory is unusable, or a path tried to leave it."""


class UsageError(ScratchprobeError):
    """The options given do not make sense together."""
