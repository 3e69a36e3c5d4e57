"""The why-trail stays inside the repository: every comment, docstring and document cites a
file of this repository (docs/, README.md) or an upstream source, never a document that a
clone does not have (the founding design notes and the runtime-dependency notes lived
outside it; their facts are in docs/runtime-facts.md now)."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

# The two documents the code once cited; spelled in pieces so this file does not match.
OUTSIDE = re.compile("DESIGN" + r"\.md|runtime" + r"-deps(\.md)?")


def tracked_text_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "*.py", "*.md", "*.toml", "*.sh", "*.go", "*.rs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = tracked_text_files()
    assert len(files) > 100  # the listing worked: the package, tests and docs are in it
    hits = []
    for name in files:
        path = REPO / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{name}:{number}: {line.strip()}")
    assert hits == []


def test_the_pattern_finds_a_citation() -> None:
    assert OUTSIDE.search("see " + "DESIGN" + ".md, section 3")
    assert OUTSIDE.search("(runtime" + "-deps.md §6)")
