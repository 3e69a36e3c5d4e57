"""The layout's dangling-symlink check walks the layout with root.follow_links, the same
chroot-style walk Root.resolve uses: the kernel's limit of MAX_SYMLINKS links included."""

from __future__ import annotations

from pathlib import Path

import pytest

from scratchprobe.plan import FileKind, FileType, ImageFile, Plan
from scratchprobe.root import MAX_SYMLINKS, Root
from scratchprobe.rootfs import layout


def chain(length: int) -> Plan:
    """/l0 -> /l1 -> ... -> /l{length-1} -> /target: `length` links to one file."""
    files = [ImageFile("/target", FileType.FILE, FileKind.INCLUDED, "x", content="x\n")]
    files += [
        ImageFile(f"/l{i}", FileType.SYMLINK, FileKind.INCLUDED, "x", target=f"l{i + 1}")
        for i in range(length - 1)
    ]
    files.append(
        ImageFile(f"/l{length - 1}", FileType.SYMLINK, FileKind.INCLUDED, "x", target="/target")
    )
    return Plan(tuple(files), ())


def dangling(plan: Plan, tmp_path: Path) -> list[str]:
    return [w for w in layout(plan, Root(str(tmp_path))).warnings if "dangling" in w]


def test_a_chain_of_max_symlinks_resolves(tmp_path: Path) -> None:
    assert dangling(chain(MAX_SYMLINKS), tmp_path) == []


def test_one_link_more_is_a_loop_the_image_cannot_resolve(tmp_path: Path) -> None:
    warnings = dangling(chain(MAX_SYMLINKS + 1), tmp_path)
    assert warnings[0].startswith("/l0 -> l1: the target is not in the image")


@pytest.mark.parametrize(
    ("target", "resolves"),
    [
        ("/etc/file", True),
        ("etc/../etc/file", True),
        ("/etc/file/../file", False),
        ("/nope", False),
    ],
)
def test_links_resolve_as_the_kernel_would_in_the_image(
    tmp_path: Path, target: str, resolves: bool
) -> None:
    plan = Plan(
        (
            ImageFile("/etc/file", FileType.FILE, FileKind.INCLUDED, "x", content="x\n"),
            ImageFile("/link", FileType.SYMLINK, FileKind.INCLUDED, "x", target=target),
        ),
        (),
    )
    # A regular file followed by `..` is ENOTDIR (path_resolution(7)), not its directory.
    assert (dangling(plan, tmp_path) == []) is resolves
