"""Go recognition: build info, pcln function markers and GoFacts against the Go testbins.

Expected values come from how the binaries were built (testbins/built/runtime/
MANIFEST-go-rust.json, written by build-runtime-go-rust.sh from its own build commands, and
testbins/build.sh for go-static/go-cgo), from the sources' go.mod files, and from `go version
-m` as an independent oracle when a Go toolchain is installed; never from our parser.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.elf.reader import ElfFile, read_elf
from scratchprobe.errors import ELFError
from scratchprobe.toolchain import Toolchain, detect_toolchain
from scratchprobe.toolchain.go import (
    GO_MARKER_FUNCTIONS,
    GoBuildInfo,
    GoFacts,
    PclntabVersion,
    go_facts,
    go_function_names,
    go_function_prefixes,
    go_functions,
    locate_pclntab,
    parse_modinfo,
    read_go_buildinfo,
)
from scratchprobe.toolchain.signs import (
    CGO_RESOLVER,
    CGO_RUNTIME,
    GO_BUILDINFO_MAGIC,
    USER_CGO,
    X509ROOTS_FALLBACK_PREFIX,
)
from tests.conftest import REPO, TESTBINS

RUNTIME = TESTBINS / "runtime"
SOURCES = REPO / "testbins" / "src"


def _runtime_manifest() -> dict[str, dict[str, Any]]:
    path = RUNTIME / "MANIFEST-go-rust.json"
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return data


RUNTIME_MANIFEST = _runtime_manifest()
GO_RUNTIME = sorted(n for n, r in RUNTIME_MANIFEST.items() if r["toolchain"] == "go")

# The two older Go testbins come from testbins/build.sh with Debian's go1.19.8 (README.md
# "Toolchain versions of the committed build"): go-static with CGO_ENABLED=0, go-cgo with
# CGO_ENABLED=1 and an `import "C"` in main, so external linking against glibc.
LEGACY: dict[str, dict[str, Any]] = {
    "go-static": {
        "source": "go-static",
        "go_version": "go1.19.8",
        "cgo_enabled": False,
        "libc_linked": False,
        "tags": [],
        "embeds_tzdata": False,
        "markers_present": [],
        "markers_absent": ["x_cgo_init", "_cgo_topofstack", "net._C2func_getaddrinfo"],
    },
    "go-cgo": {
        "source": "go-cgo",
        "go_version": "go1.19.8",
        "cgo_enabled": True,
        "libc_linked": True,
        "tags": [],
        "embeds_tzdata": False,
        # External linking: the C half of runtime/cgo (x_cgo_init) is linked by gcc, so
        # the Go linker's table lists only runtime/cgo's Go and assembly functions.
        "markers_present": ["_cgo_topofstack", "_cgo_panic", "runtime.cgocallback"],
        "markers_absent": ["x_cgo_init", "time/tzdata.loadFromEmbeddedTZData"],
    },
}
ALL_GO: dict[str, tuple[Path, dict[str, Any]]] = {
    **{name: (TESTBINS / name, record) for name, record in LEGACY.items()},
    **{f"runtime/{name}": (RUNTIME / name, RUNTIME_MANIFEST[name]) for name in GO_RUNTIME},
}
NOT_GO = [
    "c-glibc-dynamic",
    "c-glibc-static",
    "c-glibc-static-pie",
    "c-musl-static",
    "cpp-dynamic",
    "rust-hello",
    "runtime/rust-std-env",
    "runtime/rust-rustls-native-certs",
    "foreign/hello-aarch64",
]


def _module_path(source: str) -> str:
    text = (SOURCES / source / "go.mod").read_text()
    match = re.search(r"^module\s+(\S+)", text, re.MULTILINE)
    assert match is not None
    return match.group(1)


def _elf(path: Path) -> ElfFile:
    return read_elf(str(path))


def test_manifest_lists_every_go_and_rust_output() -> None:
    """Every binary the recipe built has a record, so none goes untested."""
    outputs = {
        p.name
        for p in RUNTIME.iterdir()
        if p.is_file() and p.name.startswith(("go", "rust-")) and p.read_bytes()[:4] == b"\x7fELF"
    }
    assert outputs == set(RUNTIME_MANIFEST)


# ---------------------------------------------------------------------------- real testbins


@pytest.mark.parametrize("name", sorted(ALL_GO))
def test_go_facts_match_the_build(name: str) -> None:
    path, record = ALL_GO[name]
    facts = go_facts(_elf(path))
    assert facts is not None
    assert facts.warnings == ()
    assert facts.go_version == record["go_version"]
    assert facts.cgo_enabled is record["cgo_enabled"]
    assert facts.cgo_linked is record["libc_linked"]
    assert facts.cgo is (record["cgo_enabled"] or record["libc_linked"])
    assert facts.tags == frozenset(record["tags"])
    assert facts.netgo is ("netgo" in record["tags"])
    assert facts.osusergo is ("osusergo" in record["tags"])
    assert facts.embeds_tzdata is record["embeds_tzdata"]
    assert facts.has_x509roots_fallback is False
    info = facts.buildinfo
    assert info is not None
    assert info.pointer_format is False
    assert info.path == _module_path(record["source"])
    assert info.main is not None
    assert info.main.path == _module_path(record["source"])
    assert info.main.version == "(devel)"
    assert info.setting("-trimpath") == "true"
    assert info.setting("GOOS") == "linux"
    assert info.setting("GOARCH") == "amd64"
    assert info.setting("CGO_ENABLED") == ("1" if record["cgo_enabled"] else "0")
    assert info.setting("no-such-setting") is None


@pytest.mark.parametrize("name", sorted(ALL_GO))
def test_marker_functions_present_and_absent(name: str) -> None:
    path, record = ALL_GO[name]
    elf = _elf(path)
    present = set(record["markers_present"])
    absent = set(record["markers_absent"])
    found = go_functions(elf, present | absent)
    assert found == present
    facts = go_facts(elf)
    assert facts is not None
    for marker in present | absent:
        if marker in GO_MARKER_FUNCTIONS:
            assert facts.has_function(marker) is (marker in present), marker


def test_marker_meanings_per_variant() -> None:
    """The derived booleans of GoFacts, variant against variant (docs/runtime-facts.md, "Go")."""

    def facts(name: str) -> GoFacts:
        result = go_facts(_elf(RUNTIME / name))
        assert result is not None
        return result

    assert facts("go-https-get").uses_system_roots
    assert facts("go119-https-get").uses_system_roots
    assert not facts("go-tz").uses_system_roots
    assert facts("go-tz-embedded").embeds_tzdata
    assert not facts("go-tz").embeds_tzdata
    assert facts("go-user").pure_go_user
    assert not facts("go-user").found(USER_CGO)
    assert facts("go-user-cgo").found(USER_CGO)
    assert not facts("go-user-cgo").pure_go_user
    assert facts("go-user-osusergo").pure_go_user
    assert not facts("go-user-osusergo").found(USER_CGO)
    assert facts("go-lookup-cgo").has_function(CGO_RESOLVER)
    assert not facts("go-lookup").has_function(CGO_RESOLVER)
    assert not facts("go-lookup-netgo").has_function(CGO_RESOLVER)
    # CGO_ENABLED=1 with netgo/osusergo links no cgo at all: the setting is not the truth.
    for name in ("go-lookup-netgo", "go-user-osusergo"):
        assert facts(name).cgo_enabled is True
        assert facts(name).cgo_linked is False
        assert _elf(RUNTIME / name).needed == ()


@pytest.mark.parametrize("name", sorted(ALL_GO))
def test_fast_lookup_agrees_with_full_decode(name: str) -> None:
    """go_functions (literal search) and go_function_names (full decode) agree."""
    elf = _elf(ALL_GO[name][0])
    names = go_function_names(elf)
    assert len(names) > 1000
    table = set(names)
    rng = random.Random(name)
    sample = {names[0], names[-1], *rng.sample(names, 300)}
    assert go_functions(elf, sample) == sample
    # Prefixes and extensions of real names are not names.
    fakes = {n + "X" for n in sample} | {n[:-1] for n in sample if n[:-1] not in table}
    assert go_functions(elf, fakes) == frozenset()
    assert go_functions(elf, GO_MARKER_FUNCTIONS) == table & set(GO_MARKER_FUNCTIONS)
    assert go_function_prefixes(elf, ["runtime.", "no/such/package."]) == {"runtime."}
    assert go_functions(elf, ["", "a\x00b"]) == frozenset()


def test_pclntab_versions() -> None:
    """Magic per toolchain (internal/abi/symtab.go): 1.19 writes Go118, 1.27 writes Go120."""
    old = locate_pclntab(_elf(TESTBINS / "go-static"))
    new = locate_pclntab(_elf(RUNTIME / "go-tz"))
    assert old is not None
    assert old.version is PclntabVersion.GO118
    assert new is not None
    assert new.version is PclntabVersion.GO120
    for where in (old, new):
        assert where.ptr_size == 8
        assert not where.big_endian
        assert where.names_exact


@pytest.mark.parametrize("name", ["go-cgo", "runtime/go-lookup-cgo", "runtime/go119-https-get"])
def test_without_section_headers(name: str, tmp_path: Path) -> None:
    """sstrip-style files: buildinfo from the data segment, pclntab by its magic."""
    original = _elf(ALL_GO[name][0])
    copy = tmp_path / "noshdr"
    copy.write_bytes(_strip_section_headers(ALL_GO[name][0].read_bytes()))
    stripped = _elf(copy)
    assert stripped.sections == ()
    before, after = go_facts(original), go_facts(stripped)
    assert before is not None
    assert after is not None
    assert after.buildinfo == before.buildinfo
    assert after.functions == before.functions
    assert after.pclntab == before.pclntab
    assert go_function_names(stripped) == go_function_names(original)


@pytest.mark.skipif(shutil.which("strip") is None, reason="binutils strip not installed")
@pytest.mark.parametrize("name", ["go-cgo", "runtime/go-user-cgo", "runtime/go-tz-embedded"])
def test_gnu_strip_keeps_the_facts(name: str, tmp_path: Path) -> None:
    """.go.buildinfo and .gopclntab are allocated sections: `strip --strip-all` keeps them."""
    copy = tmp_path / "stripped"
    subprocess.run(["strip", "--strip-all", "-o", str(copy), str(ALL_GO[name][0])], check=True)
    before, after = go_facts(_elf(ALL_GO[name][0])), go_facts(_elf(copy))
    assert before is not None
    assert after is not None
    assert after.buildinfo == before.buildinfo
    assert after.functions == before.functions


def test_non_go_files_give_none() -> None:
    for name in NOT_GO:
        elf = _elf(TESTBINS / name)
        assert go_facts(elf) is None, name
        assert read_go_buildinfo(elf) is None, name
        assert go_functions(elf, GO_MARKER_FUNCTIONS) == frozenset(), name


def test_detect_toolchain_on_go() -> None:
    facts = detect_toolchain(_elf(RUNTIME / "go-lookup-netgo"))
    assert facts.kind is Toolchain.GO
    assert facts.go is not None
    assert facts.rust is None
    assert facts.description.startswith(
        f"Go {RUNTIME_MANIFEST['go-lookup-netgo']['go_version'][2:]}, CGO_ENABLED=1, tags netgo"
    )
    cgo = detect_toolchain(_elf(TESTBINS / "go-cgo"))
    assert cgo.kind is Toolchain.GO
    assert "cgo linked" in cgo.description
    assert cgo.libc is not None
    assert cgo.libc.value == "glibc"


# ---------------------------------------------------------------------------- oracle


def _go_tool() -> str | None:
    for candidate in (shutil.which("go"), "/usr/lib/go-1.19/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


GO_TOOL = _go_tool()
needs_go = pytest.mark.skipif(GO_TOOL is None, reason="no Go toolchain for `go version -m`")


def _go_version_m(path: Path) -> list[str]:
    assert GO_TOOL is not None
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOENV": "off"}
    proc = subprocess.run(
        [GO_TOOL, "version", "-m", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    first, *rest = proc.stdout.splitlines()
    assert first.startswith(f"{path}: ")
    # `go version -m` prints an empty line after each replacement (mod.go String()).
    return [first.split(": ", 1)[1]] + [line[1:] for line in rest if line.strip()]


def _go_quote(text: str) -> str:
    """strconv.Quote for the printable ASCII that build settings hold."""
    assert all(0x20 <= ord(c) < 0x7F for c in text), text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_go_prints(info: GoBuildInfo) -> list[str]:
    """Our parse, written back the way runtime/debug.(*BuildInfo).String does."""
    lines = [info.go_version]
    if info.path is not None:
        lines.append(f"path\t{info.path}")
    for word, module in ([("mod", info.main)] if info.main else []) + [
        ("dep", d) for d in info.deps
    ]:
        assert module is not None
        if module.replace is None:
            lines.append(f"{word}\t{module.path}\t{module.version}\t{module.sum}")
        else:
            lines.append(f"{word}\t{module.path}\t{module.version}")
            r = module.replace
            lines.append(f"=>\t{r.path}\t{r.version}\t{r.sum}")
    for setting in info.settings:
        key = _go_quote(setting.key) if re.search(r"[= \t\"`]", setting.key) else setting.key
        value = _go_quote(setting.value) if re.search(r"[ \t\"`]", setting.value) else setting.value
        lines.append(f"build\t{key}={value}")
    return lines


@needs_go
@pytest.mark.parametrize("name", sorted(ALL_GO))
def test_buildinfo_matches_go_version_m(name: str) -> None:
    path = ALL_GO[name][0]
    info = read_go_buildinfo(_elf(path))
    assert info is not None
    assert _as_go_prints(info) == _go_version_m(path)


def _toolchain_binaries() -> list[Path]:
    """The Go toolchain's own programs: real, unstripped, differently built Go binaries."""
    if GO_TOOL is None:
        return []
    proc = subprocess.run(
        [GO_TOOL, "env", "GOROOT", "GOTOOLDIR"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    if proc.returncode != 0:
        return []
    goroot, tooldir = proc.stdout.split()
    candidates = [*Path(goroot, "bin").iterdir(), *Path(tooldir).iterdir()]
    return sorted(p for p in candidates if p.is_file() and p.read_bytes()[:4] == b"\x7fELF")


@needs_go
def test_toolchain_binaries_match_go_version_m() -> None:
    binaries = _toolchain_binaries()
    assert binaries
    for path in binaries:
        info = read_go_buildinfo(_elf(path))
        assert info is not None, path
        assert _as_go_prints(info) == _go_version_m(path), path


# ---------------------------------------------------------------------------- pointer form

# modload/build.go infoStart / infoEnd.
INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")
GO117_MODINFO = (
    "path\texample.com/legacy/cmd/tool\n"
    "mod\texample.com/legacy\t(devel)\t\n"
    "dep\tgolang.org/x/text\tv0.3.7\th1:olpwvP2KacW1ZWvsR7uQhoyTYvKAupfQrRGBFM352Gk=\n"
    "dep\texample.com/lib\tv1.0.0\n"
    "=>\t../lib\t(devel)\t\n"
)


def _pointer_form(src: Path, dst: Path, *, ptr_size: int, big_endian: bool) -> None:
    """A synthetic Go 1.13-1.17 build info in a copy of a real Go testbin.

    No Go <= 1.17 toolchain is available to build a real one, so the `.go.buildinfo`
    section of a go1.27 binary is rewritten in the documented pointer form
    (debug/buildinfo readRawBuildInfo): header with flags bit 1 clear, then two pointers
    to Go string headers {data, len}, whose data follows, all inside the section.
    """
    elf = _elf(src)
    section = elf.section(".go.buildinfo")
    assert section is not None
    fmt = (">" if big_endian else "<") + ("I" if ptr_size == 4 else "Q")
    version = b"go1.17.13"
    modinfo = INFO_START + GO117_MODINFO.encode() + INFO_END
    version_header = section.addr + 32
    modinfo_header = version_header + 2 * ptr_size
    version_data = modinfo_header + 2 * ptr_size
    modinfo_data = version_data + len(version)
    header = GO_BUILDINFO_MAGIC + bytes([ptr_size, 1 if big_endian else 0])
    header += struct.pack(fmt, version_header) + struct.pack(fmt, modinfo_header)
    blob = header.ljust(32, b"\x00")
    blob += struct.pack(fmt, version_data) + struct.pack(fmt, len(version))
    blob += struct.pack(fmt, modinfo_data) + struct.pack(fmt, len(modinfo))
    blob += version + modinfo
    assert len(blob) <= section.size
    data = bytearray(src.read_bytes())
    data[section.offset : section.offset + section.size] = blob.ljust(section.size, b"\x00")
    dst.write_bytes(bytes(data))
    # `go version` skips a file without an execute bit (Go 1.19's cmd/go/internal/version
    # checks the mode before reading it), which would leave nothing to compare.
    dst.chmod(0o755)


@pytest.mark.parametrize(("ptr_size", "big_endian"), [(8, False), (4, True), (4, False)])
def test_pointer_form_buildinfo(tmp_path: Path, ptr_size: int, big_endian: bool) -> None:
    copy = tmp_path / "go117"
    _pointer_form(RUNTIME / "go-tempfile", copy, ptr_size=ptr_size, big_endian=big_endian)
    info = read_go_buildinfo(_elf(copy))
    assert info is not None
    assert info.pointer_format is True
    assert info.go_version == "go1.17.13"
    assert info.version_tuple == (1, 17, 13)
    assert info.path == "example.com/legacy/cmd/tool"
    assert info.main is not None
    assert info.main.path == "example.com/legacy"
    assert [(d.path, d.version) for d in info.deps] == [
        ("golang.org/x/text", "v0.3.7"),
        ("example.com/lib", "v1.0.0"),
    ]
    assert info.deps[0].sum.startswith("h1:")
    assert info.deps[0].replace is None
    assert info.deps[1].replace is not None
    assert info.deps[1].replace.path == "../lib"
    # Go < 1.18 recorded no build settings: CGO_ENABLED is unknown, not "off".
    assert info.settings == ()
    assert info.cgo_enabled is None
    assert info.tags == frozenset()
    facts = go_facts(_elf(copy))
    assert facts is not None
    assert facts.cgo_enabled is None
    assert facts.warnings == ()
    # Section headers gone as well: found in the first writable PT_LOAD.
    noshdr = tmp_path / "go117-noshdr"
    noshdr.write_bytes(_strip_section_headers(copy.read_bytes()))
    assert read_go_buildinfo(_elf(noshdr)) == info


@needs_go
def test_pointer_form_matches_go_version_m(tmp_path: Path) -> None:
    copy = tmp_path / "go117"
    _pointer_form(RUNTIME / "go-tempfile", copy, ptr_size=8, big_endian=False)
    info = read_go_buildinfo(_elf(copy))
    assert info is not None
    assert _as_go_prints(info) == _go_version_m(copy)


# ---------------------------------------------------------------------------- synthetic pclntab


def _replace_pclntab(src: Path, dst: Path, table: bytes) -> None:
    elf = _elf(src)
    section = elf.section(".gopclntab")
    assert section is not None
    assert len(table) <= section.size
    data = bytearray(src.read_bytes())
    data[section.offset : section.offset + section.size] = table.ljust(section.size, b"\x00")
    dst.write_bytes(bytes(data))


SYNTHETIC_NAMES = ["main.main", "os/user.readColonFile", "runtime.main"]


def _go12_table(names: list[str]) -> bytes:
    """A Go 1.2-1.15 pcln table (gosym go12 layout): header, nfunc, functab pairs, _funcs."""
    nfunc = len(names)
    functab_at = 16
    funcs_at = functab_at + (2 * nfunc + 1) * 8 + 4
    names_at = funcs_at + nfunc * 12
    offsets, blob = [], b""
    for name in names:
        offsets.append(names_at + len(blob))
        blob += name.encode() + b"\x00"
    table = struct.pack("<IBBBBQ", 0xFFFFFFFB, 0, 0, 1, 8, nfunc)
    for index in range(nfunc):
        table += struct.pack("<QQ", 0x401000 + 16 * index, funcs_at + 12 * index)
    table += struct.pack("<QI", 0x401000 + 16 * nfunc, 0)
    for index in range(nfunc):
        table += struct.pack("<QI", 0x401000 + 16 * index, offsets[index])
    assert len(table) == names_at
    return table + blob


def _go116_table(names: list[str]) -> bytes:
    """A Go 1.16 pcln table: pcHeader words nfunc, nfiles, funcnameOffset, cuOffset, ..."""
    blob = b"".join(n.encode() + b"\x00" for n in names)
    header_size = 8 + 7 * 8
    words = [len(names), 0, header_size, header_size + len(blob), 0, 0, 0]
    return struct.pack("<IBBBB7Q", 0xFFFFFFFA, 0, 0, 1, 8, *words) + blob


@pytest.mark.parametrize(
    ("builder", "version"),
    [(_go12_table, PclntabVersion.GO12), (_go116_table, PclntabVersion.GO116)],
)
def test_older_pclntab_layouts(tmp_path: Path, builder: Any, version: PclntabVersion) -> None:
    copy = tmp_path / "old"
    _replace_pclntab(RUNTIME / "go-user", copy, builder(SYNTHETIC_NAMES))
    elf = _elf(copy)
    where = locate_pclntab(elf)
    assert where is not None
    assert where.version is version
    assert where.nfunc == 3
    assert go_function_names(elf) == tuple(SYNTHETIC_NAMES)
    assert go_functions(elf, [*SYNTHETIC_NAMES, "os/user.lookupUser"]) == set(SYNTHETIC_NAMES)
    facts = go_facts(elf)
    assert facts is not None
    assert facts.pure_go_user
    assert facts.warnings == ()


@pytest.mark.parametrize(
    ("builder", "version"),
    [(_go12_table, PclntabVersion.GO12), (_go116_table, PclntabVersion.GO116)],
)
def test_older_pclntab_found_by_magic(
    tmp_path: Path, builder: Any, version: PclntabVersion
) -> None:
    """Without section headers the magics are searched newest first: an older table is
    still found after the newer magics found nothing."""
    copy = tmp_path / "old"
    _replace_pclntab(RUNTIME / "go-user", copy, builder(SYNTHETIC_NAMES))
    bare = tmp_path / "old-noshdr"
    bare.write_bytes(_strip_section_headers(copy.read_bytes()))
    elf = _elf(bare)
    assert elf.sections == ()
    where = locate_pclntab(elf)
    assert where is not None
    assert where.version is version
    assert go_function_names(elf) == tuple(SYNTHETIC_NAMES)


def test_fallback_roots_package(tmp_path: Path) -> None:
    """A binary that links golang.org/x/crypto/x509roots/fallback (synthetic: one function
    name in a real table is overwritten, as the module proxy is out of reach here)."""
    src = RUNTIME / "go-https-get"
    names = go_function_names(_elf(src))
    target = X509ROOTS_FALLBACK_PREFIX + "init.0"
    victim = next(n for n in names[1:] if len(n) >= len(target) and not n.startswith("crypto/"))
    data = bytearray(src.read_bytes())
    where = locate_pclntab(_elf(src))
    assert where is not None
    at = data.index(b"\x00" + victim.encode() + b"\x00", where.names_start) + 1
    data[at : at + len(target) + 1] = target.encode() + b"\x00"
    copy = tmp_path / "fallback"
    copy.write_bytes(bytes(data))
    facts = go_facts(_elf(copy))
    assert facts is not None
    assert facts.has_x509roots_fallback
    assert go_facts(_elf(src)) is not None
    assert not go_facts(_elf(src)).has_x509roots_fallback  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- broken input


def _strip_section_headers(data: bytes) -> bytes:
    """Zero e_shoff, e_shnum and e_shstrndx of an ELF64 little-endian file."""
    out = bytearray(data)
    out[0x28:0x30] = b"\x00" * 8
    out[0x3C:0x40] = b"\x00" * 4
    return bytes(out)


def _patched(tmp_path: Path, src: Path, at: int, raw: bytes, name: str = "patched") -> Path:
    data = bytearray(src.read_bytes())
    data[at : at + len(raw)] = raw
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _buildinfo_offset(path: Path) -> int:
    section = _elf(path).section(".go.buildinfo")
    assert section is not None
    return section.offset


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        # Inline form, version length 2^63: runs past the segment.
        (lambda o: (o + 32, b"\xff" * 9 + b"\x7f"), "runs past"),
        # Inline form, version length varint that never ends.
        (lambda o: (o + 32, b"\xff" * 12), "truncated"),
        # Inline form, empty version: Go's "not a Go executable".
        (lambda o: (o + 32, b"\x00"), "empty Go version"),
        # Pointer form with an impossible pointer size.
        (lambda o: (o + 14, b"\x03\x00"), "pointer size"),
        # Pointer form pointing nowhere.
        (lambda o: (o + 14, b"\x08\x00" + b"\xee" * 16), "not mapped"),
    ],
)
def test_corrupt_buildinfo_is_a_clear_error(tmp_path: Path, patch: Any, message: str) -> None:
    src = RUNTIME / "go-tz"
    at, raw = patch(_buildinfo_offset(src))
    elf = _elf(_patched(tmp_path, src, at, raw))
    with pytest.raises(ELFError, match=message):
        read_go_buildinfo(elf)
    facts = go_facts(elf)
    assert facts is not None
    assert facts.buildinfo is None
    assert any("build info" in w for w in facts.warnings)
    # The function table is still read: the marker is not lost with the build info.
    assert "time.LoadLocation" in facts.functions
    assert detect_toolchain(elf).kind is Toolchain.GO


def test_misaligned_magic_is_not_buildinfo(tmp_path: Path) -> None:
    """debug/buildinfo only accepts the magic at a 16-byte-aligned address."""
    src = RUNTIME / "go-tz"
    at = _buildinfo_offset(src)
    blob = src.read_bytes()[at : at + 64]
    elf = _elf(_patched(tmp_path, src, at, b"\x00" + blob))
    assert read_go_buildinfo(elf) is None
    facts = go_facts(elf)
    assert facts is not None
    assert facts.go_version is None
    assert facts.warnings == ()


def test_bad_modinfo_line_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ELFError, match="line 2: build line missing '='"):
        parse_modinfo("go1.22.0", "path\tx\nbuild\tnoequals\n")


def test_corrupt_pclntab_header(tmp_path: Path) -> None:
    src = RUNTIME / "go-user"
    section = _elf(src).section(".gopclntab")
    assert section is not None
    elf = _elf(_patched(tmp_path, src, section.offset, b"\x00" * 16))
    with pytest.raises(ELFError, match="pcln header"):
        locate_pclntab(elf)
    facts = go_facts(elf)
    assert facts is not None
    assert facts.functions == frozenset()
    assert facts.pclntab is None
    assert any("pcln" in w for w in facts.warnings)
    assert facts.buildinfo is not None  # the other half still reads


def test_random_damage_never_raises_anything_but_elferror(tmp_path: Path) -> None:
    """Junk guard: flipped bytes in both blobs and truncated, section-less copies."""
    src = RUNTIME / "go-lookup-cgo"
    original = src.read_bytes()
    elf = _elf(src)
    regions = [s for s in elf.sections if s.name in (".go.buildinfo", ".gopclntab")]
    rng = random.Random(20240102)
    path = tmp_path / "damaged"
    for round_ in range(60):
        data = bytearray(original)
        section = regions[round_ % len(regions)]
        for _ in range(rng.randint(1, 8)):
            data[section.offset + rng.randrange(min(section.size, 128))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        _check_no_crash(path)
    stripped = _strip_section_headers(original)
    for fraction in (0.05, 0.3, 0.5, 0.7, 0.95):
        path.write_bytes(stripped[: int(len(stripped) * fraction)])
        _check_no_crash(path)


def _check_no_crash(path: Path) -> None:
    try:
        elf = read_elf(str(path))
    except ELFError:
        return
    facts = go_facts(elf)
    assert facts is None or isinstance(facts, GoFacts)
    for call in (read_go_buildinfo, go_function_names, locate_pclntab):
        with contextlib.suppress(ELFError):
            call(elf)
    detect_toolchain(elf)


# ---------------------------------------------------------------------------- modinfo text


def test_modinfo_quoting_and_replacements() -> None:
    text = (
        "path\texample.com/cmd\n"
        "mod\texample.com\tv1.2.3\n"
        "=>\t./local\t(devel)\t\n"
        "\n"
        "dep\tgolang.org/x/crypto\tv0.31.0\th1:abc=\n"
        "build\t-buildmode=exe\n"
        'build\t-ldflags="-s -w -X main.v=1 -extldflags \\"-z noexecstack\\""\n'
        'build\t-tags="netgo,osusergo timetzdata"\n'
        'build\t"we\\tird=key"=`raw "value"`\n'
        "build\tDefaultGODEBUG=httpmuxgo121=1,x509negativeserial=1\n"
        "build\tvcs.revision=39d7233318deb49883d7f5e94cba96db15a01c0f\n"
        'build\tCGO_CFLAGS="\\x41\\101\\u00e9"\n'
        "build\tCGO_ENABLED=1\n"
        "some future line\n"
    )
    info = parse_modinfo("go1.24.2", text)
    assert info.main is not None
    assert info.main.replace is not None
    assert info.main.replace.path == "./local"
    assert info.deps[0].path == "golang.org/x/crypto"
    assert info.deps[0].replace is None
    assert info.setting("-ldflags") == '-s -w -X main.v=1 -extldflags "-z noexecstack"'
    assert info.tags == frozenset({"netgo", "osusergo", "timetzdata"})
    assert info.setting("we\tird=key") == 'raw "value"'
    assert info.setting("CGO_CFLAGS") == "AAé"
    assert info.setting("vcs.revision") == "39d7233318deb49883d7f5e94cba96db15a01c0f"
    assert info.cgo_enabled is True
    assert info.version_tuple == (1, 24, 2)


@pytest.mark.parametrize(
    "line",
    [
        "build\t=value",
        "build\t",
        "build\t-ldflags=-s -w",
        'build\t-ldflags="unterminated',
        'build\t-ldflags="bad \\q escape"',
        'build\t"key"value',
        "mod\tonly-one-column",
        "=>\ta\tb",
        "dep\ta\tb\tc\td",
    ],
)
def test_modinfo_rejects_what_go_rejects(line: str) -> None:
    with pytest.raises(ELFError):
        parse_modinfo("go1.22.0", f"mod\tx\tv1.0.0\n{line}\n")


def test_replacement_without_module_is_rejected() -> None:
    with pytest.raises(ELFError, match="replacement with no module"):
        parse_modinfo("go1.22.0", "path\tx\n=>\ta\tb\tc\n")


def test_cgo_runtime_markers_are_known_markers() -> None:
    assert set(CGO_RUNTIME) <= set(GO_MARKER_FUNCTIONS)
