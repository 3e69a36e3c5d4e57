"""One test per loader rule, on small root filesystems built in tmp_path from real testbins."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.loader.closure import FoundVia
from scratchprobe.model import BinaryReport, InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.root import PathLoopError, Root
from tests.conftest import TESTBINS, RootBuilder, glibc_base


def only(root: Path, binary: str, library_path: tuple[str, ...] = ()) -> BinaryReport:
    result = inspect((binary,), InspectOptions(root=str(root), library_path=library_path))
    assert not result.problems, result.problems
    (report,) = result.binaries
    return report


def found(report: BinaryReport) -> dict[str, tuple[str, FoundVia]]:
    assert report.closure is not None
    return {o.name: (o.path, o.via) for o in report.closure.libraries}


def missing(report: BinaryReport) -> list[str]:
    assert report.closure is not None
    return [m.name for m in report.closure.missing]


def test_system_dirs_are_read_from_the_roots_loader(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/app": TESTBINS / "c-glibc-dynamic"})
    report = only(root, "/app")
    assert report.closure is not None
    assert report.closure.system_dirs[:2] == ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
    assert report.closure.system_dirs_source.startswith("read from ")
    assert found(report) == {"libc.so.6": ("/lib/x86_64-linux-gnu/libc.so.6", FoundVia.SYSTEM_DIRS)}
    assert report.closure.interpreter is not None
    assert report.closure.interpreter.real_path == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


def test_never_falls_back_to_the_host(make_root: RootBuilder) -> None:
    """A root without libc reports it missing even though the host has one."""
    root = make_root({"/app": TESTBINS / "c-glibc-dynamic"})
    report = only(root, "/app")
    assert report.closure is not None
    assert report.closure.interpreter_missing
    assert missing(report) == ["libc.so.6"]


def test_runpath_origin(make_root: RootBuilder) -> None:
    root = make_root(
        {
            **glibc_base(),
            "/opt/greet/bin/app": TESTBINS / "c-runpath-origin/bin/app",
            "/opt/greet/lib/libgreet.so.1": TESTBINS / "c-runpath-origin/lib/libgreet.so.1",
        }
    )
    report = only(root, "/opt/greet/bin/app")
    assert found(report)["libgreet.so.1"] == ("/opt/greet/lib/libgreet.so.1", FoundVia.RUNPATH)


def test_rpath_is_inherited_by_libraries(make_root: RootBuilder) -> None:
    src = TESTBINS / "rpath-inherit"
    root = make_root(
        {
            **glibc_base(),
            "/srv/app": src / "app",
            "/srv/libs/libA.so.1": src / "libs/libA.so.1",
            "/srv/libs/libB.so.1": src / "libs/libB.so.1",
        }
    )
    report = only(root, "/srv/app")
    libs = found(report)
    assert libs["libA.so.1"] == ("/srv/libs/libA.so.1", FoundVia.RPATH)
    # libA has no search path of its own: glibc uses the executable's DT_RPATH for it.
    assert libs["libB.so.1"] == ("/srv/libs/libB.so.1", FoundVia.RPATH)
    assert not missing(report)


def test_runpath_is_not_inherited(make_root: RootBuilder) -> None:
    src = TESTBINS / "runpath-not-inherited"
    root = make_root(
        {
            **glibc_base(),
            "/srv/app": src / "app",
            "/srv/libs/libA.so.1": src / "libs/libA.so.1",
            "/srv/libs/libB.so.1": src / "libs/libB.so.1",
        }
    )
    report = only(root, "/srv/app")
    assert found(report)["libA.so.1"] == ("/srv/libs/libA.so.1", FoundVia.RUNPATH)
    assert missing(report) == ["libB.so.1"]
    assert report.closure is not None
    (miss,) = report.closure.missing
    assert miss.needed_by == "/srv/libs/libA.so.1"
    assert "/srv/libs" not in miss.searched


def test_library_path_and_placement(make_root: RootBuilder) -> None:
    """--library-path is searched (as LD_LIBRARY_PATH); the image gets the library in a
    default directory because it will not have the variable."""
    src = TESTBINS / "runpath-not-inherited"
    root = make_root(
        {
            **glibc_base(),
            "/srv/app": src / "app",
            "/srv/libs/libA.so.1": src / "libs/libA.so.1",
            "/opt/extra/libB.so.1": src / "libs/libB.so.1",
        }
    )
    report = only(root, "/srv/app", library_path=("/opt/extra",))
    assert found(report)["libB.so.1"] == ("/opt/extra/libB.so.1", FoundVia.LIBRARY_PATH)
    result = inspect(("/srv/app",), InspectOptions(root=str(root), library_path=("/opt/extra",)))
    planned = {f.path: f for f in result.plan.files}
    assert planned["/lib/x86_64-linux-gnu/libB.so.1"].source == "/opt/extra/libB.so.1"
    assert "placed in /lib/x86_64-linux-gnu" in planned["/lib/x86_64-linux-gnu/libB.so.1"].reason


def _ldconfig(root: Path, fmt: str = "new") -> None:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(ldconfig):
        pytest.skip("ldconfig is not installed")
    subprocess.run([ldconfig, "-X", "-c", fmt, "-r", str(root)], check=True)


@pytest.mark.parametrize("fmt", ["new", "old", "compat"])
def test_ld_so_cache_formats_and_placement(make_root: RootBuilder, fmt: str) -> None:
    """A library only the cache knows (like /usr/local/lib) is found, and placed in a
    default directory in the image, which has no cache."""
    src = TESTBINS / "rpath-inherit/libs"
    root = make_root(
        {
            **glibc_base(),
            "/app": TESTBINS / "c-lib-only/libplain.so.1",
            "/usr/local/lib/libB.so.1": src / "libB.so.1",
            "/usr/local/lib/libA.so.1": src / "libA.so.1",
            "/bin/app": TESTBINS / "rpath-inherit/app",
        }
    )
    # An app with the rpath stripped would do; here the binary's $ORIGIN/libs does not
    # exist in this root, so the cache is the only way to libA and libB.
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d").mkdir()
    (root / "etc/ld.so.conf.d/local.conf").write_text("/usr/local/lib\n")
    _ldconfig(root, fmt)
    report = only(root, "/bin/app")
    assert found(report)["libA.so.1"] == ("/usr/local/lib/libA.so.1", FoundVia.LD_CACHE)
    assert found(report)["libB.so.1"] == ("/usr/local/lib/libB.so.1", FoundVia.LD_CACHE)
    result = inspect(("/bin/app",), InspectOptions(root=str(root)))
    paths = {f.path: f.source for f in result.plan.files}
    assert paths["/lib/x86_64-linux-gnu/libA.so.1"] == "/usr/local/lib/libA.so.1"
    assert "/usr/local/lib/libA.so.1" not in paths


def test_ld_so_conf_used_when_there_is_no_cache(make_root: RootBuilder) -> None:
    src = TESTBINS / "rpath-inherit/libs"
    root = make_root(
        {
            **glibc_base(),
            "/opt/x/lib/libA.so.1": src / "libA.so.1",
            "/opt/x/lib/libB.so.1": src / "libB.so.1",
            "/bin/app": TESTBINS / "rpath-inherit/app",
            "/etc/ld.so.conf": "/dev/null",
        }
    )
    (root / "etc/ld.so.conf").write_text("# comment\ninclude ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d").mkdir()
    (root / "etc/ld.so.conf.d/x.conf").write_text("/opt/x/lib\n")
    (root / "etc/ld.so.conf.d/ignored.txt").write_text("/nowhere\n")
    report = only(root, "/bin/app")
    assert found(report)["libA.so.1"] == ("/opt/x/lib/libA.so.1", FoundVia.LD_CONF)


def test_wrong_class_candidate_is_skipped(make_root: RootBuilder) -> None:
    i386_libc = "/usr/i686-linux-gnu/lib/libc.so.6"
    if not os.path.exists(i386_libc):
        pytest.skip("libc6-i386-cross is not installed")
    root = make_root(
        {
            **glibc_base(),
            "/opt/rt/libc.so.6": i386_libc,
            "/app": TESTBINS / "c-glibc-dynamic",
        }
    )
    report = only(root, "/app", library_path=("/opt/rt",))
    assert found(report)["libc.so.6"] == ("/lib/x86_64-linux-gnu/libc.so.6", FoundVia.SYSTEM_DIRS)


def test_nodeflib_skips_default_directories(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/app": TESTBINS / "c-nodeflib"})
    report = only(root, "/app")
    assert missing(report) == ["libc.so.6"]


def test_glibc_hwcaps_variant_is_planned(make_root: RootBuilder) -> None:
    """A glibc-hwcaps copy is what a capable CPU loads: the image needs it beside the base."""
    libs = TESTBINS / "rpath-inherit/libs"
    hwcaps = "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libA.so.1"
    root = make_root(
        {
            **glibc_base(),
            "/app": TESTBINS / "rpath-inherit/app",
            "/lib/x86_64-linux-gnu/libA.so.1": libs / "libA.so.1",
            "/lib/x86_64-linux-gnu/libB.so.1": libs / "libB.so.1",
            hwcaps: libs / "libA.so.1",
        }
    )
    report = only(root, "/app")
    assert report.closure is not None
    (lib_a,) = [o for o in report.closure.libraries if o.name == "libA.so.1"]
    assert lib_a.path == "/lib/x86_64-linux-gnu/libA.so.1"
    assert [v.path for v in lib_a.hwcaps_variants] == [hwcaps]
    result = inspect(("/app",), InspectOptions(root=str(root)))
    assert hwcaps in {f.path for f in result.plan.files}


def test_dollar_lib_and_platform(make_root: RootBuilder) -> None:
    """$LIB expands to Debian's multiarch directory when the root's loader uses it."""
    from scratchprobe.elf.reader import read_elf
    from scratchprobe.loader.closure import Resolver

    root = make_root({**glibc_base(), "/app": TESTBINS / "c-glibc-dynamic"})
    resolver = Resolver(Root(str(root)))
    closure = resolver.resolve("/app", read_elf(str(root / "app")))
    assert closure.system_dirs[0] == "/lib/x86_64-linux-gnu"
    from scratchprobe.loader import closure as closure_module

    walk = closure_module._Walk(resolver, "/app", read_elf(str(root / "app")))
    walk.system_dirs = closure.system_dirs
    assert walk._expand("/opt/$LIB/x", "/o") == "/opt/lib/x86_64-linux-gnu/x"
    assert walk._expand("${ORIGIN}/../$PLATFORM", "/o/bin") == "/o/x86_64"


def test_missing_symbol_version() -> None:
    """A binary needing GLIBC_2.38 against glibc 2.36: the loader would refuse it."""
    result = inspect((str(TESTBINS / "c-glibc-2.38"),), InspectOptions())
    (report,) = result.binaries
    assert report.closure is not None
    versions = [(v.version, v.library) for v in report.closure.missing_versions]
    assert versions == [("GLIBC_2.38", "libc.so.6")]
    assert result.exit_code == 1


def test_musl_path_file(make_root: RootBuilder) -> None:
    musl = "/usr/lib/x86_64-linux-musl/libc.so"
    if not os.path.exists(musl):
        pytest.skip("musl is not installed")
    root = make_root(
        {
            "/lib/ld-musl-x86_64.so.1": musl,
            "/app": TESTBINS / "c-musl-dynamic",
        }
    )
    report = only(root, "/app")
    assert report.libc is not None
    assert report.libc.value == "musl"
    assert report.closure is not None
    # libc.so is the loader itself in musl (dynlink.c reserved names).
    assert report.closure.libraries == ()
    assert not report.closure.missing
    assert report.closure.system_dirs == ("/lib", "/usr/local/lib", "/usr/lib")
    (root / "etc").mkdir()
    (root / "etc/ld-musl-x86_64.path").write_text("/opt/musl/lib\n/usr/lib\n")
    report = only(root, "/app")
    assert report.closure is not None
    assert report.closure.system_dirs == ("/opt/musl/lib", "/usr/lib")


def test_root_symlinks_never_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "lib").mkdir(parents=True)
    (root / "real").write_text("inside")
    os.symlink("/real", root / "lib" / "abs")  # absolute: re-rooted
    os.symlink("../../../../../../../real", root / "lib" / "dots")  # .. stops at the root
    os.symlink("/etc/passwd", root / "lib" / "host")  # would be the host's file outside
    os.symlink("loop2", root / "lib" / "loop1")
    os.symlink("loop1", root / "lib" / "loop2")
    r = Root(str(root))
    assert r.resolve("/lib/abs").path == "/real"
    assert r.resolve("/lib/dots").host_path == str(root / "real")
    with pytest.raises(FileNotFoundError):
        r.resolve("/lib/host")
    with pytest.raises(PathLoopError):
        r.resolve("/lib/loop1")


def test_binary_named_by_host_path_inside_root(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/usr/bin/app": TESTBINS / "c-glibc-dynamic"})
    by_host = inspect((str(root / "usr/bin/app"),), InspectOptions(root=str(root)))
    by_inner = inspect(("/usr/bin/app",), InspectOptions(root=str(root)))
    assert [b.path for b in by_host.binaries] == ["/usr/bin/app"]
    assert by_host.plan == by_inner.plan


def test_binary_from_outside_the_root_is_copied_from_the_context(make_root: RootBuilder) -> None:
    root = make_root(glibc_base())
    result = inspect((str(TESTBINS / "c-glibc-dynamic"),), InspectOptions(root=str(root)))
    (binary,) = [f for f in result.plan.files if f.kind.value == "binary"]
    assert binary.path == "/c-glibc-dynamic"
    assert binary.from_context
    assert result.exit_code == 0
