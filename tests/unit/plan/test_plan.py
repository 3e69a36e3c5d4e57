"""The plan's merge and placement rules on plain data (no file is read): one entry per image
path, the first source kept with a warning, entries ordered by kind, included entries last,
and runtime directories that would copy the builder refused."""

from __future__ import annotations

from pathlib import Path

from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed
from scratchprobe.plan import (
    FileKind,
    FileType,
    ImageFile,
    PlannedBinary,
    build_plan,
    checked_directories,
    directory_refusal,
    with_included,
)
from scratchprobe.root import Root


def _binary(path: str, *needs: RuntimeNeed) -> PlannedBinary:
    return PlannedBinary(path, path, False, 10, None, needs)


def _need(kind: NeedKind, *files: NeededFile) -> RuntimeNeed:
    return RuntimeNeed(kind, Confidence.LIKELY, f"{kind.value} files", ("evidence",), files)


def test_a_path_two_binaries_need_is_one_entry() -> None:
    tmp = NeededFile("/tmp", "directory", mode="1777")
    plan = build_plan(
        (_binary("/bin/a", _need(NeedKind.TMP, tmp)), _binary("/bin/b", _need(NeedKind.TMP, tmp)))
    )
    assert [f.path for f in plan.files] == ["/bin/a", "/bin/b", "/tmp"]
    assert plan.warnings == ()


def test_a_second_source_for_the_same_path_is_a_warning_and_the_first_is_kept() -> None:
    first = NeededFile("/etc/ssl/certs/ca.crt", "file", source="/etc/ssl/certs/ca.crt")
    second = NeededFile("/etc/ssl/certs/ca.crt", "file", source="/opt/ca.crt")
    plan = build_plan(
        (
            _binary("/bin/a", _need(NeedKind.CA_CERTIFICATES, first)),
            _binary("/bin/b", _need(NeedKind.CA_CERTIFICATES, second)),
        )
    )
    (entry,) = (f for f in plan.files if f.path == "/etc/ssl/certs/ca.crt")
    assert entry.source == "/etc/ssl/certs/ca.crt"
    assert plan.warnings == (
        "/etc/ssl/certs/ca.crt: /bin/b needs it from /opt/ca.crt but /bin/a from "
        "/etc/ssl/certs/ca.crt; keeping the first",
    )


def test_entries_are_ordered_by_kind_then_path_with_the_need_note_in_the_reason() -> None:
    zone = NeededFile("/usr/share/zoneinfo", "directory", source="/usr/share/zoneinfo")
    tmp = NeededFile("/tmp", "directory", mode="1777", note="mode 1777")
    plan = build_plan(
        (_binary("/z/prog", _need(NeedKind.TMP, tmp), _need(NeedKind.ZONEINFO, zone)),)
    )
    # The binary first, then the needs in NeedKind's order (zoneinfo before tmp), whatever
    # order the binary listed them in.
    assert [(f.kind, f.path) for f in plan.files] == [
        (FileKind.BINARY, "/z/prog"),
        (NeedKind.ZONEINFO, "/usr/share/zoneinfo"),
        (NeedKind.TMP, "/tmp"),
    ]
    (tmp_entry,) = (f for f in plan.files if f.path == "/tmp")
    assert tmp_entry.reason == "tmp files (mode 1777)"
    assert tmp_entry.type is FileType.DIRECTORY


def test_included_entries_come_last_and_never_replace_a_planned_one() -> None:
    plan = build_plan((_binary("/bin/a"),))
    extra = ImageFile(
        "/etc/app.toml", FileType.FILE, FileKind.INCLUDED, "--include", "/etc/app.toml"
    )
    clash = ImageFile("/bin/a", FileType.FILE, FileKind.INCLUDED, "--include", "/other/a")
    merged = with_included(plan, (extra, clash))
    assert [f.path for f in merged.files] == ["/bin/a", "/etc/app.toml"]
    assert merged.files[0].kind is FileKind.BINARY
    assert merged.warnings == (
        "/bin/a: included from /other/a but already planned from /bin/a; keeping the planned entry",
    )


def test_directories_that_would_copy_the_builder_are_refused() -> None:
    assert directory_refusal("/") == "it resolves to the root of the builder itself"
    assert (
        directory_refusal("/proc/self") == "it resolves to /proc/self, a kernel pseudo-filesystem"
    )
    assert directory_refusal("/usr/share/zoneinfo") is None


def test_a_runtime_directory_linked_to_the_root_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "usr" / "share").mkdir(parents=True)
    (tmp_path / "usr" / "share" / "zoneinfo").symlink_to("/")
    zone = NeededFile("/usr/share/zoneinfo", "directory", source="/usr/share/zoneinfo")
    plan = build_plan((_binary("/bin/a", _need(NeedKind.ZONEINFO, zone)),))
    checked = checked_directories(plan, Root(str(tmp_path)))
    assert [f.path for f in checked.files] == ["/bin/a"]
    assert checked.warnings == (
        "/usr/share/zoneinfo: not copied, it resolves to the root of the builder itself; the "
        "image gets no zoneinfo directory",
    )
