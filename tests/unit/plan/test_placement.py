"""plan.py on small closures: where each object lands in the image (placement) and which
files each binary needs (membership), recorded once by build_plan and read by every output."""

from __future__ import annotations

from pathlib import Path

import pytest

from scratchprobe.loader.closure import Closure, ElfCache, Resolver
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.plan import (
    FileKind,
    FileType,
    ImageFile,
    Plan,
    PlannedBinary,
    build_plan,
    checked_directories,
    image_path_problem,
    with_included,
)
from scratchprobe.root import Root
from tests.conftest import TESTBINS, RootBuilder, glibc_base

LIBDIR = "/lib/x86_64-linux-gnu"
SPLIT = TESTBINS / "runpath-not-inherited"
"""app (RUNPATH /srv/libs) -> libA.so.1 -> libB.so.1; libA has no search path of its own."""


def planned(
    root: Path,
    binary: str,
    library_path: tuple[str, ...] = (),
    needs: tuple[RuntimeNeed, ...] = (),
) -> PlannedBinary:
    cache = ElfCache()
    root_dir = Root(str(root))
    elf = cache.get(root_dir.resolve(binary).host_path)
    closure: Closure = Resolver(root_dir, library_path, cache).resolve(binary, elf)
    return PlannedBinary(binary, binary, False, elf.size, closure, needs)


def split_root(make_root: RootBuilder, lib_b_dir: str) -> Path:
    return make_root(
        {
            **glibc_base(),
            "/srv/app": SPLIT / "app",
            "/srv/libs/libA.so.1": SPLIT / "libs/libA.so.1",
            f"{lib_b_dir}/libB.so.1": SPLIT / "libs/libB.so.1",
        }
    )


def test_library_found_through_library_path_is_placed_in_a_default_directory(
    make_root: RootBuilder,
) -> None:
    root = split_root(make_root, "/opt/extra")
    plan = build_plan((planned(root, "/srv/app", ("/opt/extra",)),))
    files = plan.binary("/srv/app")
    # The image has no --library-path: libB goes to the loader's first default directory.
    assert files.loaded["/opt/extra/libB.so.1"] == (f"{LIBDIR}/libB.so.1",)
    entries = {f.path: f for f in plan.files}
    assert entries[f"{LIBDIR}/libB.so.1"].source == "/opt/extra/libB.so.1"
    assert "/opt/extra/libB.so.1" not in entries
    # Found through the binary's RUNPATH, which the image keeps: libA stays where it is.
    assert files.loaded["/srv/libs/libA.so.1"] == ("/srv/libs/libA.so.1",)
    assert entries["/srv/libs/libA.so.1"].kind is FileKind.LIBRARY


def test_membership_is_in_load_order_with_the_runtime_files_last(
    make_root: RootBuilder,
) -> None:
    root = split_root(make_root, LIBDIR)
    passwd = NeededFile("/etc/passwd", "file", content="root:x:0:0::/:/sbin/nologin\n")
    need = RuntimeNeed(NeedKind.USERS, Confidence.CERTAIN, "looks up users", (), (passwd,))
    plan = build_plan((planned(root, "/srv/app", needs=(need,)),))
    files = plan.binary("/srv/app")
    assert files.files == (
        "/srv/app",
        "/lib64/ld-linux-x86-64.so.2",
        "/srv/libs/libA.so.1",
        f"{LIBDIR}/libc.so.6",
        f"{LIBDIR}/libB.so.1",
        "/etc/passwd",
    )
    assert [p.loaded for p in files.placements][-1] is None
    # The plan itself is sorted by kind, then path; it holds each of those files once.
    assert sorted(f.path for f in plan.files) == sorted(files.files)
    assert plan.files[0].path == "/srv/app"
    assert plan.files[-1].path == "/etc/passwd"


def test_a_file_two_binaries_need_is_one_entry_in_both_memberships(
    make_root: RootBuilder,
) -> None:
    root = make_root(
        {
            **glibc_base(),
            "/bin/one": TESTBINS / "c-glibc-dynamic",
            "/bin/two": TESTBINS / "c-glibc-dynamic",
        }
    )
    plan = build_plan((planned(root, "/bin/one"), planned(root, "/bin/two")))
    libc = f"{LIBDIR}/libc.so.6"
    assert [f.path for f in plan.files].count(libc) == 1
    assert libc in plan.binary("/bin/one").files
    assert libc in plan.binary("/bin/two").files
    assert [b.binary for b in plan.binaries] == ["/bin/one", "/bin/two"]
    sizes = {f.path: f.size for f in plan.files}
    assert plan.size_of("/bin/one") == sum(sizes[p] for p in plan.binary("/bin/one").files)
    assert plan.size_of("/bin/one") > sizes[libc] > 0
    with pytest.raises(KeyError):
        plan.binary("/bin/three")


def test_hwcaps_copies_stand_in_for_their_library(make_root: RootBuilder) -> None:
    libs = TESTBINS / "rpath-inherit/libs"
    hwcaps = f"{LIBDIR}/glibc-hwcaps/x86-64-v3/libA.so.1"
    root = make_root(
        {
            **glibc_base(),
            "/app": TESTBINS / "rpath-inherit/app",
            f"{LIBDIR}/libA.so.1": libs / "libA.so.1",
            f"{LIBDIR}/libB.so.1": libs / "libB.so.1",
            hwcaps: libs / "libA.so.1",
        }
    )
    plan = build_plan((planned(root, "/app"),))
    assert plan.binary("/app").loaded[f"{LIBDIR}/libA.so.1"] == (f"{LIBDIR}/libA.so.1", hwcaps)
    assert hwcaps in {f.path for f in plan.files}


def test_a_refused_directory_stays_needed_but_adds_nothing(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/app": TESTBINS / "c-glibc-dynamic", "/zone": "->/"})
    zoneinfo = NeededFile("/usr/share/zoneinfo", "directory", source="/zone")
    need = RuntimeNeed(NeedKind.ZONEINFO, Confidence.CERTAIN, "reads zoneinfo", (), (zoneinfo,))
    plan = checked_directories(build_plan((planned(root, "/app", needs=(need,)),)), Root(str(root)))
    assert "/usr/share/zoneinfo" not in {f.path for f in plan.files}
    assert any("resolves to the root of the builder" in w for w in plan.warnings)
    # The binary still needs it (the JSON lists it); it weighs nothing in the image.
    assert plan.binary("/app").files[-1] == "/usr/share/zoneinfo"
    assert plan.size_of("/app") == sum(f.size for f in plan.files)


def test_the_same_path_from_two_sources_keeps_the_first(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/a": TESTBINS / "c-glibc-dynamic"})
    first = NeededFile("/etc/app.conf", "file", source="/etc/one.conf")
    second = NeededFile("/etc/app.conf", "file", source="/etc/two.conf")
    one = RuntimeNeed(NeedKind.DATA_DIRECTORY, Confidence.CERTAIN, "one", (), (first,))
    two = RuntimeNeed(NeedKind.DATA_DIRECTORY, Confidence.CERTAIN, "two", (), (second,))
    plan = build_plan((planned(root, "/a", needs=(one, two)),))
    (entry,) = [f for f in plan.files if f.path == "/etc/app.conf"]
    assert entry.source == "/etc/one.conf"
    assert plan.warnings == (
        "/etc/app.conf: /a needs it from /etc/two.conf but /a from /etc/one.conf; keeping the "
        "first",
    )


def test_included_entries_keep_the_membership() -> None:
    binary = PlannedBinary("/app", "/app", False, 10, None)
    plan = build_plan((binary,))
    extra = ImageFile("/etc/extra", FileType.FILE, FileKind.INCLUDED, "by hand", source="/x")
    included = with_included(plan, (extra,))
    assert [f.path for f in included.files] == ["/app", "/etc/extra"]
    assert included.binary("/app").files == ("/app",)
    assert included.size_of("/app") == 10


@pytest.mark.parametrize(
    ("entry", "copied"),
    [
        (ImageFile("/a", FileType.FILE, FileKind.BINARY, "r", source="/a"), True),
        (ImageFile("/d", FileType.DIRECTORY, NeedKind.ZONEINFO, "r", source="/d"), True),
        (ImageFile("/g", FileType.FILE, NeedKind.USERS, "r", content="x\n"), False),
        (ImageFile("/tmp", FileType.DIRECTORY, NeedKind.TMP, "r", mode="1777"), False),
        (ImageFile("/l", FileType.SYMLINK, NeedKind.ZONEINFO, "r", source="/l", target="x"), False),
    ],
)
def test_copied_is_whether_the_bytes_come_from_a_source(entry: ImageFile, copied: bool) -> None:
    assert entry.copied is copied


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/usr/bin/app", None),
        ("usr/bin/app", "not an absolute path below /"),
        ("/", "not an absolute path below /"),
        ("/usr//app", "has an empty, '.' or '..' component"),
        ("/usr/../etc/shadow", "has an empty, '.' or '..' component"),
        ("/usr/bin/", "has an empty, '.' or '..' component"),
        ("/usr/\0app", "contains a NUL byte"),
    ],
)
def test_image_path_problem(path: str, problem: str | None) -> None:
    assert image_path_problem(path) == problem


def test_plan_without_binaries_has_no_membership() -> None:
    plan = Plan((), ())
    assert plan.binaries == ()
    with pytest.raises(KeyError):
        plan.size_of("/app")
