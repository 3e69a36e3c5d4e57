"""The literals readers search for in a file's bytes, by the kind of file they read.

A file's image searches each admitted range once for every literal its readers said they
would ask for (`FileImage.expect`, elf/image.py "One pass"), and answers each `find` of one
from that pass. So a reader that searches a file for a new literal declares it in one of
these sets, beside the constant it comes from (`PROGRAM.declare(*_PREFIXES)` in
needs/helpers.py), and never adds a search of its own: a literal nobody declared is
searched alone, reading the file's windows again (docs/architecture.md, "Scanning bytes").

Declare a literal in the set of the files that are asked for it: every program (`PROGRAM`,
expected by the first reader of a program, toolchain detection), a static program besides
(`STATIC`), a library of a closure (`LIBRARY`), a libcrypto besides (`LIBCRYPTO`); each
literal of a set costs a search of every file of its kind. A reader asked of some programs
only expects its literals itself before its first search (needs/helpers.py, for the programs
that start others): one more pass, for those literals. A literal of one reader only (a Rust
binary's `/src/` paths, a Go program's function names) stays out: it is searched alone.
"""

from __future__ import annotations


class MarkerSet:
    """Literals declared by the modules that search for them (filled as they are imported;
    read by `FileImage.expect` when a file is first searched)."""

    def __init__(self, name: str, sections: tuple[str, ...] | None = None) -> None:
        self.name = name
        self.sections = sections
        """The sections its readers search them in, by name prefix (".rodata" holds
        ".rodata1"); a range that is one of no section's (a file without section headers)
        is searched for them all. None: every range."""
        self._literals: dict[bytes, bool] = {}

    def declare(self, *literals: bytes, every: bool = True) -> tuple[bytes, ...]:
        """Add `literals` (returned, so a module can declare its constant where it defines it).
        `every=False`: its readers only ask whether each occurs (`find_literals`), so the
        pass stops looking for one at its first occurrence."""
        for literal in literals:
            self._literals[literal] = self._literals.get(literal, False) or every
        return literals

    @property
    def literals(self) -> tuple[bytes, ...]:
        return tuple(self._literals)

    @property
    def presence(self) -> tuple[bytes, ...]:
        """The literals declared with every=False only."""
        return tuple(literal for literal, every in self._literals.items() if not every)


# The sections the string readers of needs/evidence.py search (its STRING_SECTIONS).
_STRING_SECTIONS = (".rodata", ".data.rel.ro", ".data", ".go.buildinfo")

PROGRAM = MarkerSet("program", _STRING_SECTIONS)
STATIC = MarkerSet("static program", _STRING_SECTIONS)
LIBRARY = MarkerSet("library", _STRING_SECTIONS)
LIBCRYPTO = MarkerSet("libcrypto", _STRING_SECTIONS)
RUST = MarkerSet("Rust paths", (".rodata", ".lrodata"))
"""Read in every program that is not Go (toolchain/signs.py `rodata_ranges`)."""
