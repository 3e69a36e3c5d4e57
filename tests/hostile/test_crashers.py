"""The crasher corpus: every input that ever crashed, hung or blew up scratchprobe, replayed
through the whole pipeline (tests/fuzz/pipeline.py: inspect, annotate, every format).

tests/data/crashers/*.elf are single files, analysed as /bin/<name> in a small root;
tests/data/crashers/roots/<case>/ are overlays on that root, every file under bin/ an
input. Recipes and provenance: tests/data/crashers/README.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fuzz.pipeline import base_root, run_pipeline

CORPUS = Path(__file__).resolve().parents[1] / "data" / "crashers"
FILES = sorted(CORPUS.glob("*.elf"))
ROOTS = sorted(p for p in (CORPUS / "roots").iterdir() if p.is_dir())


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 6
    assert ROOTS


@pytest.mark.parametrize("crasher", FILES, ids=lambda p: p.name)
def test_crasher_file(crasher: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    base_root(root)
    (root / "bin").mkdir()
    shutil.copyfile(crasher, root / "bin" / crasher.name)
    result = run_pipeline((f"/bin/{crasher.name}",), root=str(root))
    assert result.binaries or result.problems


@pytest.mark.parametrize("overlay", ROOTS, ids=lambda p: p.name)
def test_crasher_root(overlay: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    base_root(root)
    shutil.copytree(overlay, root, dirs_exist_ok=True, symlinks=True)
    inputs = tuple(sorted(f"/bin/{p.name}" for p in (overlay / "bin").iterdir()))
    result = run_pipeline(inputs, root=str(root))
    assert result.binaries or result.problems
