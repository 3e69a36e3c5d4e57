#!/usr/bin/env python3
"""Build scratchprobe as one executable file, `scratchprobe.pyz`, for a builder stage.

scratchprobe is not on PyPI. A builder stage that runs `scratchprobe rootfs` (the
`--rootfs-stage` Dockerfile) needs it on PATH; this file is all it needs besides a
`python3` >= 3.11 (the Python standard library's zipapp format, PEP 441: a zip archive with
a `#!` line and a `__main__.py`, which Python runs from the archive).

It holds the package from this checkout and its pure-Python run-time dependencies, copied
from the Python environment running this script (where `pip install -e .` put them):
click, rich (with markdown-it-py, mdurl, Pygments) and packageurl-python. Left
out on purpose: LIEF (a compiled library that no scratchprobe command imports: it is the
tests' oracle) and cyclonedx-python-lib (only `--format cyclonedx` imports it; use a wheel
install for that).

    python3 tools/build_zipapp.py                # writes dist/scratchprobe.pyz
    python3 tools/build_zipapp.py -o /tmp/sp.pyz

and in the Dockerfile that defines the builder stage:

    COPY scratchprobe.pyz /usr/local/bin/scratchprobe

The archive is the same bytes for the same inputs: members are sorted and dated
SOURCE_DATE_EPOCH (default 1980-01-01, the earliest date a zip member can carry).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import stat
import sys
import time
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE = "scratchprobe"
DEPENDENCIES = ("click", "rich", "markdown-it-py", "mdurl", "pygments", "packageurl-python")
"""Distributions whose importable files go into the archive (the run-time closure of
pyproject's dependencies, minus LIEF and cyclonedx-python-lib: see the module text)."""
INTERPRETER = "/usr/bin/env python3"
MAIN = "import sys\nfrom scratchprobe.cli import main\nsys.exit(main())\n"


def _members() -> dict[str, Path]:
    """Archive name -> file to store, for the package and every dependency."""
    members: dict[str, Path] = {}
    for path in sorted((CHECKOUT / PACKAGE).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            members[path.relative_to(CHECKOUT).as_posix()] = path
    for name in DEPENDENCIES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(
                f"build_zipapp: {name} is not installed in {sys.executable}: pip install -e . first"
            ) from None
        for file in dist.files or ():
            parts = file.parts
            # The importable files only: not the .dist-info, not scripts, not bytecode.
            if (
                parts[0].endswith((".dist-info", ".egg-info"))
                or parts[0] in ("..", "bin")
                or "__pycache__" in parts
                or file.suffix == ".pyc"
            ):
                continue
            located = Path(str(file.locate()))
            if located.is_file():
                members.setdefault(file.as_posix(), located)
    return members


def build(output: Path) -> int:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    date = time.gmtime(max(epoch, 315532800))[:6]
    buffer = io.BytesIO()
    members = _members()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = {**members, "__main__.py": None}
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=date)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            source = entries[name]
            data = MAIN.encode() if source is None else source.read_bytes()
            archive.writestr(info, data)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(f"#!{INTERPRETER}\n".encode() + buffer.getvalue())
    partial.chmod(0o755)
    partial.replace(output)
    return len(members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=CHECKOUT / "dist" / "scratchprobe.pyz")
    args = parser.parse_args()
    count = build(args.output)
    print(f"wrote {args.output}: {count} files, {args.output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
