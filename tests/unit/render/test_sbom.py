"""`--format cyclonedx` and the annotated JSON manifest, end to end.

The SBOM is checked with cyclonedx-python-lib's own strict validator for CycloneDX 1.6; the
package owners of the machine's own /usr/bin/curl closure are checked against `dpkg -S`;
Go modules and Rust crates against the committed testbins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from scratchprobe.annotate import annotate
from scratchprobe.model import InspectOptions, all_warnings
from scratchprobe.pipeline import inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli

CURL = "/usr/bin/curl"
RUNTIME = TESTBINS / "runtime"
needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg") is None or not os.path.exists(CURL),
    reason="needs a Debian-family machine with curl installed",
)


@cache
def validator() -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.V1_6)


def sbom(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("inspect", "--format", "cyclonedx", *args, env=env)
    assert result.returncode in (0, 1), result.stderr
    error = validator().validate_str(result.stdout)
    assert error is None, error
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def properties(component: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in component.get("properties", []):
        found.setdefault(item["name"], []).append(item["value"])
    return found


def components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in document["components"]}


def graph(document: dict[str, Any]) -> dict[str, list[str]]:
    return {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}


def manifest_schema() -> dict[str, Any]:
    text = resources.files("scratchprobe").joinpath("schema/manifest-v1.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dpkg_owners(candidates: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """{key: (package, version)} from `dpkg -S`, trying each key's candidate paths in turn."""
    paths = sorted({p for options in candidates.values() for p in options})
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, check=False).stdout
    listed: dict[str, str] = {}
    for line in out.splitlines():
        owners, _, path = line.rpartition(": ")
        if "," not in owners and not owners.startswith("diversion"):
            listed[path] = owners
    found: dict[str, tuple[str, str]] = {}
    for key, options in candidates.items():
        owner = next((listed[p] for p in options if p in listed), None)
        if owner is None:
            continue
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", owner],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found[key] = (owner.split(":")[0], version)
    return found


# -------------------------------------------------------------------------- debian host


# ------------------------------------------------------------------------ embedded modules


def test_go_modules_are_listed_as_golang_purls() -> None:
    binary = str(RUNTIME / "go-tempfile")
    document = sbom(binary)
    by_ref = components(document)
    edges = graph(document)
    main = "pkg:golang/scratchprobe/testbins/runtime/go-tempfile"
    dep = "pkg:golang/scratchprobe/testbins/runtime/go-modlib@v0.1.0"
    assert properties(by_ref[main])["scratchprobe:module-role"] == ["main"]
    assert "version" not in by_ref[main], "(devel): built from a work tree, no version"
    assert by_ref[dep]["version"] == "v0.1.0"
    assert properties(by_ref[dep])["scratchprobe:go:replaced-by"] == ["../go-modlib"]
    stdlib = [ref for ref in by_ref if ref.startswith("pkg:golang/stdlib@")]
    assert len(stdlib) == 1
    assert {main, dep, *stdlib} <= set(edges[f"file:{binary}"])
    assert properties(by_ref[f"file:{binary}"])["scratchprobe:package"] == ["none"]


def test_rust_crates_are_listed_as_cargo_purls() -> None:
    binary = str(RUNTIME / "rust-rustls-native-certs")
    document = sbom(binary)
    by_ref = components(document)
    edges = graph(document)
    crates = {ref: c for ref, c in by_ref.items() if ref.startswith("pkg:cargo/")}
    assert "pkg:cargo/base64@0.13.0" in crates
    assert len(crates) == 16
    assert set(crates) <= set(edges[f"file:{binary}"])
    assert crates["pkg:cargo/cc@1.0.73"]["scope"] == "excluded", "a build-only crate"
    assert "scope" not in crates["pkg:cargo/base64@0.13.0"]
    assert edges["pkg:cargo/log@0.4.17"] == ["pkg:cargo/cfg-if@1.0.0"]
    assert properties(crates["pkg:cargo/base64@0.13.0"])["scratchprobe:cargo:source"] == [
        "crates.io"
    ]


# ----------------------------------------------------------------------- other roots


def test_root_without_package_database(make_root: RootBuilder) -> None:
    root = make_root({**glibc_base(), "/app": TESTBINS / "c-glibc-dynamic"})
    assert not (root / "var/lib/dpkg").exists()
    document = sbom("--root", str(root), "/app")
    by_ref = components(document)
    for ref in ("file:/app", "file:/lib/x86_64-linux-gnu/libc.so.6"):
        assert properties(by_ref[ref])["scratchprobe:package"] == ["none"]
        assert by_ref[ref]["hashes"][0]["content"] == sha256(root / ref[len("file:/") :])
    meta = properties(document["metadata"])
    assert meta["scratchprobe:package-database"] == ["none"]
    assert [c["type"] for c in by_ref.values()] == ["file"] * len(by_ref)
    manifest = run_cli("inspect", "--format", "json", "--root", str(root), "/app").json()
    jsonschema.validate(manifest, manifest_schema())
    assert {f["path"]: f["package"] for f in manifest["files"]}["/app"] is None
    assert manifest["warnings"] == []


def test_generated_files_hash_their_content() -> None:
    binary = str(RUNTIME / "c-getpwnam")
    by_ref = components(sbom("--generate-etc", binary))
    manifest = run_cli("inspect", "--format", "json", "--generate-etc", binary).json()
    passwd = next(f for f in manifest["files"] if f["path"] == "/etc/passwd")
    digest = hashlib.sha256(passwd["content"].encode()).hexdigest()
    assert passwd["sha256"] == digest
    assert passwd["size"] == len(passwd["content"].encode())
    assert passwd["package"] is None
    component = by_ref["file:/etc/passwd"]
    assert component["hashes"] == [{"alg": "SHA-256", "content": digest}]
    assert properties(component)["scratchprobe:generated"] == ["true"]


def test_reproducible_with_source_date_epoch() -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    binary = str(TESTBINS / "c-glibc-dynamic")
    first = run_cli("inspect", "--format", "cyclonedx", binary, env=env).stdout
    second = run_cli("inspect", "--format", "cyclonedx", binary, env=env).stdout
    assert first == second
    assert json.loads(first)["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")


def test_renderer_without_annotations_computes_nothing() -> None:
    """A caller that skipped the annotate step gets files and the graph, no digests."""
    result = inspect((str(TESTBINS / "c-glibc-dynamic"),), InspectOptions())
    text = renderer(OutputFormat.CYCLONEDX)(result, RenderOptions())
    assert validator().validate_str(text) is None
    document = json.loads(text)
    assert all("hashes" not in c for c in document["components"])
    assert all("scratchprobe:package" not in properties(c) for c in document["components"])
    annotated = renderer(OutputFormat.CYCLONEDX)(result, RenderOptions(), annotate(result))
    assert validator().validate_str(annotated) is None


def test_copy_and_text_do_not_annotate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only json and cyclonedx pay for digests and package databases."""
    from click.testing import CliRunner

    import scratchprobe.annotate
    from scratchprobe.cli.inspect import command

    calls: list[str] = []
    original = scratchprobe.annotate.annotate

    def spy(inspection: Any, sbom: bool = True) -> Any:
        calls.append("annotate")
        return original(inspection, sbom)

    monkeypatch.setattr(scratchprobe.annotate, "annotate", spy)
    binary = str(TESTBINS / "c-glibc-dynamic")
    for fmt, expected in (("copy", 0), ("text", 0), ("dockerfile", 0), ("json", 1)):
        calls.clear()
        outcome = CliRunner().invoke(command, ["--format", fmt, binary])
        assert outcome.exit_code == 0, outcome.output
        assert len(calls) == expected, fmt


def test_every_binary_names_the_image() -> None:
    binaries = [str(TESTBINS / n) for n in ("c-glibc-dynamic", "cpp-dynamic", "c-musl-static")]
    binaries += [str(RUNTIME / "go-tempfile")]
    document = sbom(*binaries)
    image = document["metadata"]["component"]
    assert image["name"] == "c-glibc-dynamic+cpp-dynamic+c-musl-static+1-more"
    assert sorted(graph(document)["image"]) == sorted(f"file:{b}" for b in binaries)


def test_rpm_root_gives_rpm_purls_and_licence_expressions(tmp_path: Path) -> None:
    """A Fedora-like root whose sqlite rpmdb holds a header rpm 4.18 wrote itself."""
    from tests.unit.packages.test_sbom_packages import real_header, rpm_root

    root = rpm_root(tmp_path, [real_header()])
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy(TESTBINS / "c-glibc-static", root / "usr/bin/demo")
    document = sbom("--root", str(root), "/usr/bin/demo")
    purl = "pkg:rpm/fedora/demo-lib@1.2.3-4.fc39?arch=x86_64&distro=fedora-39&epoch=2"
    package = components(document)[purl]
    assert package["licenses"] == [{"expression": "MIT AND (Apache-2.0 OR BSD-3-Clause)"}]
    assert graph(document)["file:/usr/bin/demo"] == [purl]
    meta = properties(document["metadata"])
    assert meta["scratchprobe:package-database"] == ["rpm:/var/lib/rpm/rpmdb.sqlite"]
    assert meta["scratchprobe:distro"] == ["fedora-39"]


def test_apk_root_gives_apk_purls(tmp_path: Path) -> None:
    root = tmp_path / "alpine"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=alpine\nVERSION_ID=3.19.1\n")
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(
        "P:hello\nV:1.0-r0\nA:x86_64\nL:MIT OR Apache-2.0\nF:usr/bin\nR:hello\n\n"
    )
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy(TESTBINS / "c-musl-static", root / "usr/bin/hello")
    document = sbom("--root", str(root), "/usr/bin/hello")
    purl = "pkg:apk/alpine/hello@1.0-r0?arch=x86_64&distro=alpine-3.19.1"
    package = components(document)[purl]
    assert package["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert properties(components(document)["file:/usr/bin/hello"])["scratchprobe:package"] == [purl]


def zoneinfo_root(make_root: RootBuilder) -> Path:
    return make_root(
        {
            **glibc_base(),
            "/app": RUNTIME / "c-localtime",
            "/usr/share/zoneinfo/UTC": "/usr/share/zoneinfo/UTC",
            "/usr/share/zoneinfo/Europe/Paris": "/usr/share/zoneinfo/Europe/Paris",
            "/usr/share/zoneinfo/posixrules": "->UTC",
        }
    )


def test_tree_digest_is_sha256sum_of_the_listing(make_root: RootBuilder) -> None:
    root = zoneinfo_root(make_root)
    annotations = annotate(inspect(("/app",), InspectOptions(root=str(root))))
    zoneinfo = annotations.file("/usr/share/zoneinfo")
    assert zoneinfo is not None
    listing = (
        f"{sha256(root / 'usr/share/zoneinfo/Europe/Paris')}  Europe/Paris\n"
        f"{sha256(root / 'usr/share/zoneinfo/UTC')}  UTC\n"
        "symlink:UTC  posixrules\n"
    )
    assert zoneinfo.tree_sha256 == hashlib.sha256(listing.encode()).hexdigest()
    assert [m.path for m in zoneinfo.members] == [
        "/usr/share/zoneinfo/Europe/Paris",
        "/usr/share/zoneinfo/UTC",
        "/usr/share/zoneinfo/posixrules",
    ]
    assert zoneinfo.package is None
    assert zoneinfo.problem is None


def test_directory_past_the_member_bound_is_reported(
    make_root: RootBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scratchprobe.annotate

    monkeypatch.setattr(scratchprobe.annotate, "MAX_DIRECTORY_MEMBERS", 1)
    root = zoneinfo_root(make_root)
    result = inspect(("/app",), InspectOptions(root=str(root)))
    annotations = annotate(result)
    zoneinfo = annotations.file("/usr/share/zoneinfo")
    assert zoneinfo is not None
    assert zoneinfo.tree_sha256 is None
    assert zoneinfo.problem == "/usr/share/zoneinfo not fully read (more than 1 files)"
    assert "/usr/share/zoneinfo: /usr/share/zoneinfo not fully read (more than 1 files)" in (
        all_warnings(result, annotations)
    )
    text = renderer(OutputFormat.CYCLONEDX)(result, RenderOptions(), annotations)
    assert validator().validate_str(text) is None


@pytest.mark.parametrize("all_owned", [True, False])
def test_a_directory_without_its_members_keeps_its_package(
    make_root: RootBuilder, all_owned: bool
) -> None:
    # The JSON manifest's annotation (sbom=False: no members) gives a copied directory the
    # package the members' owners give it: the one owner of every file, or none.
    root = zoneinfo_root(make_root)
    listed = ["/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/posixrules"]
    if all_owned:
        listed.append("/usr/share/zoneinfo/Europe/Paris")
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0+deb12u1\n"
        "Architecture: all\n"
    )
    (root / "var/lib/dpkg/info/tzdata.list").write_text("\n".join(listed) + "\n")
    result = inspect(("/app",), InspectOptions(root=str(root)))
    full = annotate(result, sbom=False, members=True).file("/usr/share/zoneinfo")
    bare = annotate(result, sbom=False).file("/usr/share/zoneinfo")
    assert full is not None
    assert bare is not None
    assert len(full.members) == 3
    assert bare.members == ()
    assert bare.package == full.package
    assert (full.package is not None and full.package.name == "tzdata") is all_owned
