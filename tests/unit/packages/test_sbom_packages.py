"""The package-database readers (dpkg, apk, rpm) and os-release, on small roots built here.

The real databases of the test machine are exercised in test_sbom.py (dpkg, against
`dpkg -S`); these tests pin each reader's format rules: merged-/usr paths, Multi-Arch list
names, package states, DEP-5 licences, apk records, rpm header blobs, and damaged input.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from scratchprobe.packages import PackageManager, find_owners
from scratchprobe.packages.apk import parse_installed
from scratchprobe.packages.dpkg import dep5_licenses, parse_control
from scratchprobe.packages.osrelease import parse_os_release, read_os_release
from scratchprobe.packages.rpm import RpmHeaderError, RpmTag, RpmType, parse_header
from scratchprobe.root import Root


def write(root: Path, path: str, text: str | bytes) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    return target


def owners(root: Path, *paths: str) -> dict[str, tuple[str, str, str]]:
    """{path: (name, version, purl)} for the paths some package owns."""
    found = find_owners(Root(str(root)), frozenset(paths))
    return {path: (p.name, p.version, p.purl) for path, p in found.owners}


# ----------------------------------------------------------------------------- os-release


def test_os_release_quoting() -> None:
    fields = parse_os_release(
        '# comment\nID=debian\nVERSION_ID="12"\nNAME=\'Debian GNU/Linux\'\nBROKEN="x\n\n'
    )
    assert fields == {"ID": "debian", "VERSION_ID": "12", "NAME": "Debian GNU/Linux"}


def test_os_release_falls_back_to_usr_lib(tmp_path: Path) -> None:
    write(tmp_path, "/usr/lib/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
    release = read_os_release(Root(str(tmp_path)))
    assert (release.id, release.version_id, release.distro) == ("alpine", "3.19.1", "alpine-3.19.1")
    assert read_os_release(Root(str(tmp_path / "usr"))).distro is None


# ----------------------------------------------------------------------------------- dpkg

STATUS = """\
Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: foo (1.0-1)
Version: 1.0-1+deb12u1
Description: foo
 a library

Package: libfoo1
Status: install ok installed
Architecture: i386
Multi-Arch: same
Source: foo (1.0-1)
Version: 1.0-1+deb12u1

Package: tool
Status: install ok installed
Architecture: amd64
Version: 1:2.0-3

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 0.1-1
"""

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: foo

Files: *
Copyright: someone
License: MIT

Files: src/compat/*
Copyright: someone else
License: BSD-3-clause or GPL-2+

Files: debian/*
Copyright: the packager
License: GPL-2+

License: MIT
 Permission is hereby granted...
"""


def dpkg_root(tmp_path: Path) -> Path:
    """A merged-/usr Debian root: /lib -> usr/lib, lists naming /lib/... paths."""
    root = tmp_path / "debian"
    write(root, "/etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    write(root, "/var/lib/dpkg/status", STATUS)
    write(
        root,
        "/var/lib/dpkg/info/libfoo1:amd64.list",
        "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1.0\n"
        "/lib/x86_64-linux-gnu/libfoo.so.1\n",
    )
    write(root, "/var/lib/dpkg/info/libfoo1:i386.list", "/lib/i386-linux-gnu/libfoo.so.1.0\n")
    write(root, "/var/lib/dpkg/info/tool.list", "/usr/bin/tool\n/bin/tool-link\n")
    write(root, "/var/lib/dpkg/info/gone.list", "/etc/gone.conf\n")
    write(root, "/usr/share/doc/libfoo1/copyright", DEP5)
    write(root, "/usr/share/doc/tool/copyright", "This is free-form. License: GPL\n")
    write(root, "/usr/lib/x86_64-linux-gnu/libfoo.so.1.0", "lib")
    (root / "usr/lib/x86_64-linux-gnu/libfoo.so.1").symlink_to("libfoo.so.1.0")
    write(root, "/usr/lib/i386-linux-gnu/libfoo.so.1.0", "lib32")
    write(root, "/usr/bin/tool", "tool")
    (root / "usr/bin/tool-link").symlink_to("tool")
    (root / "lib").symlink_to("usr/lib")
    (root / "bin").symlink_to("usr/bin")
    write(root, "/etc/gone.conf", "x")
    write(root, "/usr/bin/unowned", "x")
    return root


def test_dpkg_matches_listed_paths_through_merged_usr(tmp_path: Path) -> None:
    root = dpkg_root(tmp_path)
    found = owners(
        root,
        "/usr/lib/x86_64-linux-gnu/libfoo.so.1.0",
        "/usr/lib/i386-linux-gnu/libfoo.so.1.0",
        "/usr/bin/tool",
        "/usr/bin/tool-link",
        "/etc/gone.conf",
        "/usr/bin/unowned",
    )
    assert found == {
        "/usr/lib/x86_64-linux-gnu/libfoo.so.1.0": (
            "libfoo1",
            "1.0-1+deb12u1",
            "pkg:deb/debian/libfoo1@1.0-1%2Bdeb12u1?arch=amd64&distro=debian-12",
        ),
        "/usr/lib/i386-linux-gnu/libfoo.so.1.0": (
            "libfoo1",
            "1.0-1+deb12u1",
            "pkg:deb/debian/libfoo1@1.0-1%2Bdeb12u1?arch=i386&distro=debian-12",
        ),
        "/usr/bin/tool": (
            "tool",
            "1:2.0-3",
            "pkg:deb/debian/tool@1:2.0-3?arch=amd64&distro=debian-12",
        ),
        # The package lists the symlink /bin/tool-link; under merged-/usr it is here.
        "/usr/bin/tool-link": (
            "tool",
            "1:2.0-3",
            "pkg:deb/debian/tool@1:2.0-3?arch=amd64&distro=debian-12",
        ),
    }


def test_dpkg_licences_and_source(tmp_path: Path) -> None:
    root = dpkg_root(tmp_path)
    found = dict(
        find_owners(
            Root(str(root)),
            frozenset({"/usr/lib/x86_64-linux-gnu/libfoo.so.1.0", "/usr/bin/tool"}),
        ).owners
    )
    libfoo = found["/usr/lib/x86_64-linux-gnu/libfoo.so.1.0"]
    assert libfoo.licenses == ("MIT", "BSD-3-clause or GPL-2+")
    assert libfoo.source_package == "foo"
    assert libfoo.manager is PackageManager.DPKG
    tool = found["/usr/bin/tool"]
    assert tool.licenses == (), "a free-form copyright file states no machine-readable licence"
    assert tool.source_package is None


def test_dep5_skips_packaging_and_standalone_paragraphs() -> None:
    assert dep5_licenses(DEP5) == ("MIT", "BSD-3-clause or GPL-2+")
    assert dep5_licenses("Files: *\nLicense: MIT\n") == (), "no Format: line, not DEP-5"
    assert dep5_licenses("") == ()


def test_control_parser_continuations() -> None:
    (first, second) = parse_control("A: 1\nB: x\n y\n .\n z\n\n\nA: 2\n")
    assert first == {"A": "1", "B": "x\ny\n.\nz"}
    assert second == {"A": "2"}


def test_distroless_status_d(tmp_path: Path) -> None:
    """Distroless images keep one paragraph and one md5sums file per package."""
    root = tmp_path / "distroless"
    write(root, "/etc/os-release", "ID=debian\nVERSION_ID=12\n")
    write(
        root,
        "/var/lib/dpkg/status.d/libc6",
        "Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n",
    )
    write(
        root,
        "/var/lib/dpkg/status.d/libc6.md5sums",
        "0123456789abcdef0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n",
    )
    write(root, "/lib/x86_64-linux-gnu/libc.so.6", "libc")
    assert owners(root, "/lib/x86_64-linux-gnu/libc.so.6") == {
        "/lib/x86_64-linux-gnu/libc.so.6": (
            "libc6",
            "2.36-9+deb12u4",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
        )
    }


def test_damaged_dpkg_database_gives_no_traceback(tmp_path: Path) -> None:
    root = tmp_path / "damaged"
    write(root, "/var/lib/dpkg/status", b"\xff\xfe\x00garbage\n\nPackage: x\n")
    write(root, "/var/lib/dpkg/info/x.list", b"/usr/bin/\x00x\n/usr/bin/x\n")
    (root / "var/lib/dpkg/info/loop.list").symlink_to("loop.list")
    write(root, "/usr/bin/x", "x")
    found = find_owners(Root(str(root)), frozenset({"/usr/bin/x"}))
    assert found.owners == (), "a record without Version names no package"
    assert found.databases == ((PackageManager.DPKG, "/var/lib/dpkg/status"),)


def test_no_package_database(tmp_path: Path) -> None:
    write(tmp_path, "/usr/bin/x", "x")
    found = find_owners(Root(str(tmp_path)), frozenset({"/usr/bin/x"}))
    assert (found.owners, found.databases, found.warnings) == ((), (), ())


# ------------------------------------------------------------------------------------ apk

INSTALLED = """\
C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT
o:musl
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1xyz=
R:libc.musl-x86_64.so.1

C:Q1def=
P:zlib
V:1.3.1-r0
A:x86_64
L:Zlib
o:zlib
F:usr/lib
R:libz.so.1
R:libz.so.1.3.1

P:broken-no-version
F:usr/bin
R:nothing
"""


def test_apk_parser() -> None:
    musl, zlib_record = parse_installed(INSTALLED)
    assert (musl.name, musl.version, musl.arch, musl.license) == (
        "musl",
        "1.2.4-r2",
        "x86_64",
        "MIT",
    )
    assert musl.files == ("/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1")
    assert zlib_record.files == ("/usr/lib/libz.so.1", "/usr/lib/libz.so.1.3.1")


def test_apk_owners(tmp_path: Path) -> None:
    root = tmp_path / "alpine"
    write(root, "/etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
    write(root, "/lib/apk/db/installed", INSTALLED)
    write(root, "/lib/ld-musl-x86_64.so.1", "musl")
    write(root, "/usr/lib/libz.so.1.3.1", "z")
    found = find_owners(
        Root(str(root)), frozenset({"/lib/ld-musl-x86_64.so.1", "/usr/lib/libz.so.1.3.1"})
    )
    by_path = dict(found.owners)
    musl = by_path["/lib/ld-musl-x86_64.so.1"]
    assert musl.purl == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
    assert musl.licenses == ("MIT",)
    assert musl.manager is PackageManager.APK
    assert by_path["/usr/lib/libz.so.1.3.1"].name == "zlib"
    assert found.databases == ((PackageManager.APK, "/lib/apk/db/installed"),)


# ------------------------------------------------------------------------------------ rpm

# The header rpm 4.18.0 (Debian's build) wrote to rpmdb.sqlite for this spec, built with
# rpmbuild and installed with `rpm --root R --dbpath /var/lib/rpm -i`; zlib, then base64:
#   Name: demo-lib / Version: 1.2.3 / Release: 4.fc39 / Epoch: 2 / BuildArch: x86_64
#   License: MIT AND (Apache-2.0 OR BSD-3-Clause)
#   %files: /usr/lib64/libdemo.so.1.2.3, /usr/lib64/libdemo.so.1 (symlink), /usr/bin/demo
RPM_418_HEADER = (
    "eNp1lU9oXEUcx2f/tCZpiy2tGv8cVughgb6XmXnvzZuRiMQEbRDbYhRarcq8mXnJ4ia77G5iFAQL6kURQQ8eLeTg"
    "QS/iVfQkXrx568WDhVZbrZcgqI3zdr6pserAb+d95vub/7/fLCHkYUKaxwkhj3i7g5DGa74+7M16GyOh1Hz7FV/v"
    "91YHXwUfAP8IPgL+yddNb5Pga74e9/YA+Dr4QfDP8J8C/4LxToB/hU7B29BT8G8Y7xz4T+gOfBP8UuBmE+MNvTX8"
    "5/5Qk9fB4+C3wBPwfwd8AOfzIfhg4Nr94EPBv0bBd0KfBR8GPwE+FtZXexbruwv9N6HfA/83wh00J6F/BP1e6J+A"
    "7wP/Dp4K49dxP83HQ//6JPST4OPgxdC/vrv+s9BTzH8O+iz4PPTz8H8e+gr4BfDb8C+wnotYjwV/DHbgT8El+DNw"
    "B/w5eIj5v8F86+DvwBuY//sw/9H3oV8L/Y9+jfFugH+A/zb4cvBvSPDVoDdmA9dq0N8D70M+fRDyqXYojN/Ygn4E"
    "/C3i80boP4qLaj/7UB/D+u+GjnxqLoORT80VcKvieWLdajfqtAvCYh4nJI1Lk6gql+uVMpKrZDg48cXG6ijHJ59c"
    "fLo1d2qhNTXX02bFRTymrdNPtR5dWoiSaL6j1wdumjyzNug50y7bzpJOe219k2xK8aJIwzvRxNvRvLB1cefCVmis"
    "5ti1NLdO5Y4JxYSx3EqV2Uw6kVJhykSZXDsjyrTgSjOW2iwpmWVWapFxI3jmY0YnPLNGm0LSglOuKUuLlNNCJaVh"
    "igpvlDJZSuM4E5ZqagpKrWDUmbxUOfHLLqrdx4NuHM7mttLvdof//7N7rtGobxTONR70TdzvrZKdPeXWDex+TPmj"
    "ikQ6HS5sYtd8v0qc7672+m4wcPaxdsed0qtuME2gVS0L7WU3GP7ddka/0unqkfPgpN5wZ/qubG9OkySmcRoxf+Mi"
    "pqM6/DIZU7zl/7A63jmC92yMP7R3a+Q2vFVG/UdhtPdA/326M+uD/kzRXpsJX14X6QyJTvNWtExMr90ly6+2e0Qh"
    "kCLrirZei0Jw/Uep5iVzS/OLi62h2xyGda8Py0gSf/VFzhJmrZXWX7pMlS0VU4kWCWM8E1qWnElaiiwzKXPalZaL"
    "0vkASbVQYXNjkuelZGnpZKJUmmtNeW6ZErIoXJKxzKlUJrSwWaasULmUTvuwTpyxhe/IR6kw+jPd2fnjKySEp5e3"
    "372UXLlePDf+5tIOH968XIjEljwvmHMFk34oZvKEln7NPgcSKmW1gWo8nyqpD2tjE9+eOZ8rmS21cUoLluZSaR/x"
    "xhlmuORUFDJNpMpFpvLMUaGtDDn4ZTi+evU/0Kj4LybaQ7E="
)


def real_header() -> bytes:
    return zlib.decompress(base64.b64decode(RPM_418_HEADER))


def test_rpm_header_written_by_rpm() -> None:
    header = parse_header(real_header())
    assert (header.name, header.version, header.release, header.epoch, header.arch) == (
        "demo-lib",
        "1.2.3",
        "4.fc39",
        2,
        "x86_64",
    )
    assert header.license == "MIT AND (Apache-2.0 OR BSD-3-Clause)"
    assert sorted(header.files) == [
        "/usr/bin/demo",
        "/usr/lib64/libdemo.so.1",
        "/usr/lib64/libdemo.so.1.2.3",
    ]


def header_blob(entries: list[tuple[int, int, bytes, int]]) -> bytes:
    """A header blob from (tag, type, data, count) entries: the layout rpm's headerExport
    writes (il, dl, index entries, data store), with INT32 data aligned to 4."""
    index = b""
    store = b""
    for tag, kind, data, count in entries:
        if kind == RpmType.INT32:
            store += b"\0" * (-len(store) % 4)
        index += struct.pack(">iIiI", tag, kind, len(store), count)
        store += data
    return struct.pack(">ii", len(entries), len(store)) + index + store


def synthetic_header(name: str, files: dict[str, list[str]]) -> bytes:
    dirs = list(files)
    basenames = [b for d in dirs for b in files[d]]
    indexes = [i for i, d in enumerate(dirs) for _ in files[d]]

    def strings(values: list[str]) -> bytes:
        return b"".join(v.encode() + b"\0" for v in values)

    return header_blob(
        [
            (RpmTag.NAME, RpmType.STRING, strings([name]), 1),
            (RpmTag.VERSION, RpmType.STRING, strings(["8.2.1"]), 1),
            (RpmTag.RELEASE, RpmType.STRING, strings(["3.fc39"]), 1),
            (RpmTag.ARCH, RpmType.STRING, strings(["x86_64"]), 1),
            (RpmTag.LICENSE, RpmType.STRING, strings(["curl"]), 1),
            (
                RpmTag.DIRINDEXES,
                RpmType.INT32,
                struct.pack(f">{len(indexes)}i", *indexes),
                len(indexes),
            ),
            (RpmTag.BASENAMES, RpmType.STRING_ARRAY, strings(basenames), len(basenames)),
            (RpmTag.DIRNAMES, RpmType.STRING_ARRAY, strings(dirs), len(dirs)),
        ]
    )


def rpm_root(tmp_path: Path, blobs: list[bytes], directory: str = "/var/lib/rpm") -> Path:
    root = tmp_path / "fedora"
    write(root, "/etc/os-release", "ID=fedora\nVERSION_ID=39\n")
    database = root / directory.lstrip("/") / "rpmdb.sqlite"
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(database)
    connection.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    )
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    connection.commit()
    connection.close()
    return root


def test_rpm_owners_from_sqlite(tmp_path: Path) -> None:
    curl = synthetic_header("curl", {"/usr/bin/": ["curl"], "/usr/lib64/": ["libcurl.so.4.8.0"]})
    root = rpm_root(tmp_path, [real_header(), curl], directory="/usr/lib/sysimage/rpm")
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/rpm").symlink_to("../../usr/lib/sysimage/rpm")
    write(root, "/usr/bin/curl", "c")
    write(root, "/usr/lib64/libcurl.so.4.8.0", "l")
    write(root, "/usr/lib64/libdemo.so.1.2.3", "d")
    found = find_owners(
        Root(str(root)),
        frozenset({"/usr/bin/curl", "/usr/lib64/libcurl.so.4.8.0", "/usr/lib64/libdemo.so.1.2.3"}),
    )
    by_path = dict(found.owners)
    assert by_path["/usr/bin/curl"].purl == (
        "pkg:rpm/fedora/curl@8.2.1-3.fc39?arch=x86_64&distro=fedora-39"
    )
    assert by_path["/usr/lib64/libcurl.so.4.8.0"].licenses == ("curl",)
    demo = by_path["/usr/lib64/libdemo.so.1.2.3"]
    assert demo.purl == "pkg:rpm/fedora/demo-lib@1.2.3-4.fc39?arch=x86_64&distro=fedora-39&epoch=2"
    assert demo.manager is PackageManager.RPM
    assert found.warnings == ()


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\0\0\0\1",
        struct.pack(">ii", 1 << 20, 0),
        struct.pack(">ii", 2, 1 << 30),
        header_blob([(RpmTag.NAME, RpmType.STRING, b"no-terminator", 1)]),
        header_blob([(RpmTag.NAME, RpmType.INT32, b"\0\0\0\1", 1)]),
        header_blob([(RpmTag.VERSION, RpmType.STRING, b"1\0", 1)]),
    ],
    ids=[
        "empty",
        "short",
        "too-many-tags",
        "too-much-data",
        "unterminated",
        "wrong-type",
        "no-name",
    ],
)
def test_rpm_malformed_header(blob: bytes) -> None:
    with pytest.raises(RpmHeaderError):
        parse_header(blob)


def test_rpm_bad_dirindex() -> None:
    blob = synthetic_header("x", {"/usr/bin/": ["x"]})
    broken = blob.replace(struct.pack(">i", 0) + b"x\0", struct.pack(">i", 7) + b"x\0")
    assert broken != blob
    with pytest.raises(RpmHeaderError, match="DIRINDEXES"):
        parse_header(broken)


def test_rpm_damaged_rows_are_a_warning(tmp_path: Path) -> None:
    root = rpm_root(tmp_path, [b"junk", real_header()])
    write(root, "/usr/bin/demo", "d")
    found = find_owners(Root(str(root)), frozenset({"/usr/bin/demo"}))
    assert dict(found.owners)["/usr/bin/demo"].name == "demo-lib"
    assert found.warnings == ("rpm: 1 unreadable package headers in /var/lib/rpm/rpmdb.sqlite",)


def test_rpm_not_sqlite_is_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "fedora"
    write(root, "/var/lib/rpm/rpmdb.sqlite", "not a database")
    found = find_owners(Root(str(root)), frozenset({"/usr/bin/x"}))
    assert found.owners == ()
    (warning,) = found.warnings
    assert warning.startswith("rpm: /var/lib/rpm/rpmdb.sqlite is unreadable")


def test_berkeley_db_is_reported_not_read(tmp_path: Path) -> None:
    root = tmp_path / "centos7"
    write(root, "/var/lib/rpm/Packages", b"\0" * 64)
    found = find_owners(Root(str(root)), frozenset({"/usr/bin/x"}))
    assert found.databases == ()
    (warning,) = found.warnings
    assert warning.startswith("rpm database present but not read: /var/lib/rpm/Packages")


def test_fifos_in_a_root_do_not_block(tmp_path: Path) -> None:
    """A FIFO where a database file should be is skipped, never opened for a blocking read."""
    root = dpkg_root(tmp_path)
    (root / "var/lib/dpkg/info/tool.list").unlink()
    os.mkfifo(root / "var/lib/dpkg/info/tool.list")
    (root / "usr/share/doc/libfoo1/copyright").unlink()
    os.mkfifo(root / "usr/share/doc/libfoo1/copyright")
    (root / "etc/os-release").unlink()
    os.mkfifo(root / "etc/os-release")
    found = find_owners(
        Root(str(root)), frozenset({"/usr/bin/tool", "/usr/lib/x86_64-linux-gnu/libfoo.so.1.0"})
    )
    (libfoo,) = (p for _, p in found.owners)
    assert (libfoo.name, libfoo.licenses) == ("libfoo1", ())
    assert libfoo.purl == "pkg:deb/debian/libfoo1@1.0-1%2Bdeb12u1?arch=amd64"
    assert found.warnings == ("dpkg: /var/lib/dpkg/info/tool.list is unreadable",)
