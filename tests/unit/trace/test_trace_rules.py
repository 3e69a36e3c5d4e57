"""The rules that turn a trace into misses and include entries, one test per rule, on
crafted builder roots (real ELF files from the corpus) and the path events a run gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from scratchprobe.plan import FileKind, FileType, ImageFile, Plan
from scratchprobe.root import Root
from scratchprobe.rootfs import layout
from scratchprobe.trace.analyse import MissKind, TraceReport, analyse
from scratchprobe.trace.includes import Include
from scratchprobe.trace.learn import minimal
from scratchprobe.trace.strace import PathEvent
from tests.conftest import TESTBINS, RootBuilder, glibc_base

PROGRAM = "/usr/bin/app"


def _event(
    path: str,
    errno: str | None = "ENOENT",
    syscall: str = "openat",
    directory: bool = False,
) -> PathEvent:
    result = "-1 ENOENT (No such file or directory)" if errno else "3"
    opened = syscall in ("openat", "execve", "getdents64")
    return PathEvent(7, syscall, path, result, errno, directory, opened, syscall == "execve")


@pytest.fixture
def builder(make_root: RootBuilder) -> Path:
    root = make_root(
        {
            **glibc_base(),
            PROGRAM: TESTBINS / "c-glibc-dynamic",
            "/usr/lib/x86_64-linux-gnu/libplugin.so": TESTBINS / "c-lib-only" / "libplain.so.1",
            "/usr/bin/helper": TESTBINS / "c-glibc-dynamic",
            "/usr/lib/x86_64-linux-gnu/libplugin.so.1": "->libplugin.so",
        }
    )
    for path, text in {
        "usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so": "x",
        "usr/lib/locale/C.utf8/LC_CTYPE": "x",
        "usr/lib/locale/C.utf8/LC_NUMERIC": "x",
        "etc/ssl/certs/ca-certificates.crt": "x",
        "etc/app.conf": "x",
        "etc/ld.so.cache": "x",
        "usr/lib/python3.11/os.py": "x",
        "usr/lib/python3.11/json/__init__.py": "x",
        "usr/share/app/data/a.dat": "x",
        "usr/share/app/data/b.dat": "x",
        "usr/share/app/other.dat": "x",
        "usr/share/listed-only/x.pth": "x",
        "etc/hosts": "builder hosts",
    }.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return root


def _run(builder: Path, events: list[PathEvent], extra: tuple[ImageFile, ...] = ()) -> TraceReport:
    """The analysis of `events` against an image holding the program, its loader and libc."""
    root = Root(str(builder))
    plan = Plan(
        (
            ImageFile(PROGRAM, FileType.FILE, FileKind.BINARY, "the binary", source=PROGRAM),
            ImageFile(
                "/lib64/ld-linux-x86-64.so.2",
                FileType.FILE,
                FileKind.INTERPRETER,
                "PT_INTERP",
                source="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ),
            ImageFile(
                "/lib/x86_64-linux-gnu/libc.so.6",
                FileType.FILE,
                FileKind.LIBRARY,
                "libc",
                source="/lib/x86_64-linux-gnu/libc.so.6",
            ),
            *extra,
        ),
        (),
    )
    start = _event(PROGRAM, errno=None, syscall="execve")
    return analyse((start, *events), True, False, plan, layout(plan, root), root)


def _kinds(report: TraceReport) -> dict[str, MissKind]:
    return {m.path: m.kind for m in report.misses}


def test_each_kind_is_classified(builder: Path) -> None:
    report = _run(
        builder,
        [
            _event("/usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so"),
            _event("/etc/ssl/certs/ca-certificates.crt"),
            _event("/etc/app.conf"),
            _event("/usr/lib/x86_64-linux-gnu/libplugin.so"),
            _event("/usr/bin/helper", syscall="newfstatat"),
            _event("/usr/lib/python3.11/os.py", syscall="newfstatat"),
            _event("/usr/share/app/other.dat"),
        ],
    )
    assert _kinds(report) == {
        "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so": MissKind.GCONV,
        "/etc/ssl/certs/ca-certificates.crt": MissKind.CERTIFICATES,
        "/etc/app.conf": MissKind.CONFIG,
        "/usr/lib/x86_64-linux-gnu/libplugin.so": MissKind.LIBRARY,
        # A PIE program is ET_DYN like a library: no SONAME tells it apart.
        "/usr/bin/helper": MissKind.PROGRAM,
        "/usr/lib/python3.11/os.py": MissKind.MODULE,
        "/usr/share/app/other.dat": MissKind.DATA_FILE,
    }
    miss = next(m for m in report.misses if m.path == "/etc/app.conf")
    assert miss.evidence == "openat(/etc/app.conf) = -1 ENOENT (No such file or directory) (pid 7)"
    reason = "seen by verify --trace: openat(/etc/app.conf) = ENOENT in the image"
    assert miss.include.reason == reason


def test_a_missing_path_absent_from_the_builder_is_no_miss(builder: Path) -> None:
    report = _run(builder, [_event("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libc.so.6")])
    assert report.misses == ()


def test_a_locale_is_learned_as_its_directory(builder: Path) -> None:
    report = _run(builder, [_event("/usr/lib/locale/C.utf8/LC_CTYPE")])
    (miss,) = report.misses
    assert (miss.path, miss.kind, miss.directory, miss.include.tree) == (
        "/usr/lib/locale/C.utf8",
        MissKind.LOCALE,
        True,
        True,
    )


def test_a_directory_it_lists_is_whole_one_it_checks_is_empty(builder: Path) -> None:
    report = _run(
        builder,
        [
            _event("/usr/share/app/data", directory=True),
            _event("/usr/share/listed-only", syscall="newfstatat"),
        ],
    )
    found = {m.path: m for m in report.misses}
    assert found["/usr/share/app/data"].include.tree
    assert found["/usr/share/app/data"].kind is MissKind.DATA_DIRECTORY
    assert not found["/usr/share/listed-only"].include.tree
    assert found["/usr/share/listed-only"].kind is MissKind.DIRECTORY


def test_checked_then_listed_in_one_run_is_whole(builder: Path) -> None:
    report = _run(
        builder,
        [
            _event("/usr/share/app/data", syscall="newfstatat"),
            _event("/usr/share/app/data", directory=True),
        ],
    )
    (miss,) = report.misses
    assert miss.include.tree


def test_a_listing_in_the_image_learns_only_when_it_looks_inside(builder: Path) -> None:
    empty = (
        ImageFile("/usr/share/listed-only", FileType.DIRECTORY, FileKind.INCLUDED, "checked"),
        ImageFile("/usr/share/app/data", FileType.DIRECTORY, FileKind.INCLUDED, "checked"),
    )
    report = _run(
        builder,
        [
            _event("/usr/share/listed-only", errno=None, syscall="getdents64", directory=True),
            _event("/usr/share/app/data", errno=None, syscall="getdents64", directory=True),
            _event("/usr/share/app/data/a.dat", syscall="newfstatat"),
        ],
        empty,
    )
    found = {m.path: m for m in report.misses}
    assert "/usr/share/listed-only" not in found
    assert found["/usr/share/app/data"].include.tree


def test_a_library_directory_is_never_learned_whole(builder: Path) -> None:
    report = _run(
        builder,
        [_event("/lib/x86_64-linux-gnu", errno=None, syscall="getdents64", directory=True)],
    )
    assert report.misses == ()
    assert any("the analysis places files in it" in note for note in report.notes)


def test_runtime_provided_and_the_loader_cache_are_never_learned(builder: Path) -> None:
    report = _run(
        builder,
        [_event("/etc/hosts"), _event("/etc/ld.so.cache"), _event("/proc/self/maps", None)],
    )
    assert report.misses == ()
    assert [s.path for s in report.runtime_provided] == ["/etc/hosts", "/proc/self/maps"]


def test_the_first_name_of_a_file_wins(builder: Path) -> None:
    # Both names lead to the same file of the builder: the program stopped at the first.
    first = "/usr/lib/x86_64-linux-gnu/libplugin.so.1"
    report = _run(builder, [_event(first), _event("/usr/lib/x86_64-linux-gnu/libplugin.so")])
    assert [m.path for m in report.misses] == [first]


def test_confirmed_and_untouched(builder: Path) -> None:
    report = _run(builder, [_event("/lib/x86_64-linux-gnu/libc.so.6", errno=None)])
    confirmed = {s.path: s.evidence for s in report.confirmed}
    assert confirmed[PROGRAM].startswith(f"execve({PROGRAM}) = 3")
    assert "the kernel loads PT_INTERP" in confirmed["/lib64/ld-linux-x86-64.so.2"]
    assert "/lib/x86_64-linux-gnu/libc.so.6" in confirmed
    assert report.untouched == ()
    nothing = _run(builder, [])
    assert nothing.untouched == ("/lib/x86_64-linux-gnu/libc.so.6",)


def test_minimal_drops_what_a_whole_directory_covers(builder: Path) -> None:
    root = Root(str(builder))
    entries = (
        Include("/usr/share/app/data/a.dat"),
        Include("/usr/share/app", tree=False),
        Include("/usr/share/app"),
        Include("/usr/share/app/data/a.dat"),
        Include("/etc/app.conf"),
    )
    assert minimal(entries, root) == (Include("/usr/share/app"), Include("/etc/app.conf"))
