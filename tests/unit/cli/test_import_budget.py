"""What a command imports: a single-binary run pays only for its command and its format.

Not a timing test: each case runs the real command in a fresh interpreter and lists
`sys.modules` afterwards. A heavy module outside the case's `loads` must be absent, and each
module in `loads` must be present, so that a case whose format stopped using a module (or a
probe that loads nothing) fails as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scratchprobe.packages.rpm import DB_DIRS, SQLITE_NAME
from tests.conftest import REPO, TESTBINS, RootBuilder, glibc_base

DYNAMIC = str(TESTBINS / "c-glibc-dynamic")
# The package owners of a json run come from the host's databases: sqlite3 only with an rpmdb.
RPMDB = {"sqlite3"} if any(Path(d, SQLITE_NAME).exists() for d in DB_DIRS) else set()

# Imported only by the command or format that uses it (the oracles never).
HEAVY = (
    "rich",
    "cyclonedx",
    "jsonschema",
    "elftools",
    "lief",
    "tomllib",
    "sqlite3",
    "hashlib",
    "multiprocessing",
    "concurrent",
    "scratchprobe.annotate",
    "scratchprobe.annotations",
    "scratchprobe.boundedjson",
    "scratchprobe.packages",
    "scratchprobe.check",
    "scratchprobe.image",
    "scratchprobe.rootfs",
    "scratchprobe.sandbox",
    "scratchprobe.source",
    "scratchprobe.trace",
    "scratchprobe.verify",
    "scratchprobe.render.text",
    "scratchprobe.render.manifest",
    "scratchprobe.render.cyclonedx",
    "scratchprobe.render.trace",
    "scratchprobe.render.verify",
)

# Runs the command as `scratchprobe` does, then writes the names in sys.modules to argv[1];
# nothing is imported before the command that the command itself does not import.
PROBE = """
import sys
from scratchprobe.cli import main
try:
    main(sys.argv[2:], prog_name="scratchprobe")
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as handle:
    handle.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def loaded(tmp_path: Path, *args: str, terminal: bool = False) -> set[str]:
    """The modules after the command, run with stderr in a pipe, or on a pseudo-terminal
    (where a batch shows its progress bar)."""
    listing = tmp_path / "modules.txt"
    # Run in tmp_path: the checkout's pyproject.toml would be check's policy file.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    master, slave = os.openpty() if terminal else (-1, -1)
    if terminal:
        # Drained while it runs: a full terminal buffer would block the progress bar.
        threading.Thread(target=_drain, args=(master,), daemon=True).start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(listing), *args],
            stdout=subprocess.DEVNULL,
            stderr=slave if terminal else subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": path, "COLUMNS": "120"},
            check=False,
            timeout=300,
        )
    finally:
        if terminal:
            os.close(slave)
    assert proc.returncode in (0, 1), proc.stderr
    return set(listing.read_text().split("\n"))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # EIO: the other side closed
        pass
    finally:
        os.close(fd)


def heavy_in(modules: set[str]) -> set[str]:
    return {h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)}


def check_budget(tmp_path: Path, loads: set[str], *args: str, terminal: bool = False) -> None:
    assert loads <= set(HEAVY)
    assert heavy_in(loaded(tmp_path, *args, terminal=terminal)) == loads


def test_inspect_copy_loads_nothing_heavy(tmp_path: Path) -> None:
    check_budget(tmp_path, set(), "inspect", "--format", "copy", DYNAMIC)


@pytest.mark.slow
def test_rich_on_a_terminal_only_for_a_batch(tmp_path: Path) -> None:
    # One file shows no progress bar, so it does not import rich; a batch shows one.
    check_budget(tmp_path, set(), "inspect", "--format", "copy", DYNAMIC, terminal=True)
    batch = str(TESTBINS / "runtime")
    # The batch holds Rust programs with cargo-auditable data: their JSON parser loads too.
    loads = {"rich", "scratchprobe.boundedjson"}
    check_budget(tmp_path, loads, "inspect", "--format", "copy", batch, terminal=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "loads"),
    [
        (("inspect", "--format", "dockerfile"), set()),
        (("inspect", "--format", "text"), {"rich", "scratchprobe.render.text"}),
        (("check", "--format", "sarif"), {"scratchprobe.check", "hashlib"}),
        (("check", "--format", "text"), {"scratchprobe.check", "rich"}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_each_format_loads_what_it_uses(
    tmp_path: Path, args: tuple[str, ...], loads: set[str]
) -> None:
    check_budget(tmp_path, loads, *args, DYNAMIC)


@pytest.mark.slow
def test_json_loads_hashlib_only_for_digests_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_root: RootBuilder
) -> None:
    # The first run takes the digests (and stores them, scratchprobe/digeststore.py); the
    # next finds every one stored and never loads hashlib (nor OpenSSL with it). A root of
    # its own: a digest is stored only for a file whose ctime is over 2 s older than the
    # read, and a host library's ctime moves whenever something links it (cp -al).
    root = make_root({**glibc_base(), "/app": DYNAMIC})
    time.sleep(2.5)  # the racy-clean rule's 2 s, for the files just copied
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SCRATCHPROBE_NO_CACHE", raising=False)
    loads = {
        "scratchprobe.annotate",
        "scratchprobe.annotations",
        "scratchprobe.packages",
        "scratchprobe.render.manifest",
    }
    args = ("inspect", "--format", "json", "--root", str(root), "/app")
    check_budget(tmp_path, loads | {"hashlib"}, *args)
    check_budget(tmp_path, loads, *args)


@pytest.mark.slow
def test_the_toml_parser_only_with_a_policy_file(tmp_path: Path) -> None:
    (tmp_path / "scratchprobe.toml").write_text("require-static = false\n")
    check_budget(tmp_path, {"scratchprobe.check", "rich", "tomllib"}, "check", DYNAMIC)


@pytest.mark.slow
def test_the_toml_parser_only_with_an_include_file(tmp_path: Path) -> None:
    include = tmp_path / "include.toml"
    include.write_text('[[include]]\npath = "/etc/hostname"\n')
    check_budget(
        tmp_path,
        {"tomllib", "scratchprobe.trace"},
        "inspect",
        "--format",
        "copy",
        "--include-from",
        str(include),
        DYNAMIC,
    )


# What only runtime-needs detection uses: the detectors and the toolchain readers (Go, Rust)
# they ask; the --tz/--user checks (needs/choices.py) import some of the detectors' tables.
DETECTORS = ("scratchprobe.needs.detect", "scratchprobe.toolchain")
CHOICES = ("scratchprobe.needs.choices", "scratchprobe.needs.users", "scratchprobe.needs.zoneinfo")


@pytest.mark.parametrize(
    ("args", "loads"),
    [
        (("--no-runtime",), set()),
        # needs/users.py imports a table of toolchain/go.py.
        (("--no-runtime", "--tz", "UTC"), {*CHOICES, "scratchprobe.toolchain"}),
        ((), {*DETECTORS, "scratchprobe.needs.users", "scratchprobe.needs.zoneinfo"}),
        (("--tz", "UTC"), {*DETECTORS, *CHOICES}),
    ],
    ids=["no-runtime", "no-runtime with --tz", "runtime needs", "runtime needs with --tz"],
)
def test_a_closure_only_run_loads_no_detector(
    tmp_path: Path, args: tuple[str, ...], loads: set[str]
) -> None:
    """`--format copy --no-runtime` is lddtree's job: it loads no detector and no toolchain
    reader; a --tz is checked against the root (needs/choices.py) without running them, and
    without a --tz or --user nothing loads that check."""
    modules = loaded(tmp_path, "inspect", "--format", "copy", *args, DYNAMIC)
    names = (*DETECTORS, *CHOICES)
    assert {d for d in names if any(m == d or m.startswith(d + ".") for m in modules)} == loads


# The toolchain readers and what only their files use: a file loads the ones whose signs it
# shows (toolchain/signs.py), and a C program none.
READERS = ("scratchprobe.toolchain.go", "scratchprobe.toolchain.rust", "scratchprobe.needs.rust")


@pytest.mark.parametrize(
    ("binary", "fmt", "loads"),
    [
        (DYNAMIC, "copy", set()),
        (DYNAMIC, "json", set()),
        (str(TESTBINS / "go-static"), "copy", {"scratchprobe.toolchain.go"}),
        (
            str(TESTBINS / "rust-hello"),
            "copy",
            {"scratchprobe.toolchain.rust", "scratchprobe.needs.rust"},
        ),
    ],
    ids=["C copy", "C json", "Go copy", "Rust copy"],
)
def test_a_toolchain_reader_only_for_its_files(
    tmp_path: Path, binary: str, fmt: str, loads: set[str]
) -> None:
    modules = loaded(tmp_path, "inspect", "--format", fmt, binary)
    assert "scratchprobe.toolchain.signs" in modules  # the toolchain step ran
    assert {r for r in READERS if r in modules} == loads


# Modules a fresh interpreter loads only if something imports them: shutil with its archive
# support (bz2, lzma) costs a run ~5 ms, fnmatch is for ld.so.conf globs (a root without
# ld.so.cache): a copy run on this machine needs none of them. Nor does one binary need a
# batch's workers (scratchprobe/parallel.py) or the pickle module they send results with,
# nor the dockerfile renderer (with shlex).
ARCHIVES = (
    "shutil",
    "bz2",
    "lzma",
    "fnmatch",
    "pickle",
    "scratchprobe.parallel",
    "scratchprobe.render.dockerfile",
    "shlex",
)

# The probe without `site` (-S): a .pth file of the environment may preload modules and
# hide a load; the site-packages directories (click) are put on the path by hand.
PROBE_WITHOUT_SITE = (
    """
import sys
sys.path.extend(sys.argv.pop(1).split("\\0"))
"""
    + PROBE
)


def loaded_without_site(tmp_path: Path, *args: str) -> set[str]:
    import site

    listing = tmp_path / "modules.txt"
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            PROBE_WITHOUT_SITE,
            "\0".join(site.getsitepackages()),
            str(listing),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return set(listing.read_text().split("\n"))


def test_a_copy_run_loads_no_archive_module(tmp_path: Path) -> None:
    modules = loaded_without_site(tmp_path, "inspect", "--format", "copy", DYNAMIC)
    assert "scratchprobe.render.copy" in modules  # the probe ran the command
    assert modules.isdisjoint(ARCHIVES), modules & set(ARCHIVES)


def test_a_json_run_loads_no_url_parser(tmp_path: Path) -> None:
    """The package URLs are quoted without urllib.parse, which imports ipaddress (~2 ms)."""
    modules = loaded_without_site(tmp_path, "inspect", "--format", "json", DYNAMIC)
    assert "scratchprobe.packages.interface" in modules  # the owners were looked up
    assert modules.isdisjoint({"urllib", "urllib.parse", "ipaddress"})
