"""The struct reader against LIEF on every ELF file of the machine's /usr/bin (the corpus half
is tests/unit/elf/test_reader_vs_lief.py)."""

from __future__ import annotations

import pytest

from scratchprobe.discover import walk_elf_files
from tests.unit.elf.test_reader_vs_lief import lief, lief_facts, our_facts


@pytest.mark.host
def test_usr_bin_agrees_with_lief() -> None:
    lief.logging.disable()
    files = walk_elf_files("/usr/bin")
    assert files
    disagreements = [p for p in files if our_facts(p) != lief_facts(p)]
    assert not disagreements, disagreements[:5]
