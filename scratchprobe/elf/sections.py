"""The adapter to pyelftools: symbol tables and section contents, read only when needed.

The closure never needs these; the runtime-needs detectors and the policy check do, and only
for the binaries themselves, never for every library. pyelftools is the right tool here: it
knows every symbol-table and note layout on every architecture, and its cost (tens of ms per
binary) is paid only by the commands that ask. The rest of the code imports this module,
never `elftools` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from scratchprobe.elf.reader import ElfFile
from scratchprobe.errors import ELFError


@dataclass(frozen=True)
class Symbols:
    """Dynamic symbols of one object: what it imports and what it defines."""

    imported: frozenset[str]
    """Undefined dynamic symbols: functions and data taken from libraries."""
    defined: frozenset[str]
    """Defined symbols (dynamic, plus .symtab when the file is not stripped)."""


def read_symbols(elf: ElfFile) -> Symbols:
    """Symbols of `elf`; ELFError when pyelftools cannot make sense of the tables."""
    from elftools.common.exceptions import ELFError as PyElfError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    imported: set[str] = set()
    defined: set[str] = set()
    try:
        with open(elf.path, "rb") as handle:
            parsed = ELFFile(handle)
            for section in parsed.iter_sections():
                if not isinstance(section, SymbolTableSection):
                    continue
                dynamic = section.name == ".dynsym"
                for symbol in section.iter_symbols():
                    name = symbol.name
                    if not name:
                        continue
                    # Versioned names in .symtab look like "getpwnam@GLIBC_2.2.5".
                    name = name.split("@", 1)[0]
                    if symbol["st_shndx"] == "SHN_UNDEF":
                        if dynamic:
                            imported.add(name)
                    else:
                        defined.add(name)
    except (PyElfError, ValueError, KeyError, IndexError, OSError) as exc:
        raise ELFError(f"cannot read the symbol tables: {exc}") from None
    return Symbols(frozenset(imported), frozenset(defined))


def read_section(elf: ElfFile, name: str, limit: int = 64 << 20) -> bytes | None:
    """Raw bytes of the named section (None when absent, empty or NOBITS)."""
    section = elf.section(name)
    if section is None or section.type == 8 or section.size == 0:
        return None
    if section.offset + section.size > elf.size or section.size > limit:
        raise ELFError(f"section {name} lies outside the file")
    with open(elf.path, "rb") as handle:
        handle.seek(section.offset)
        return handle.read(section.size)
