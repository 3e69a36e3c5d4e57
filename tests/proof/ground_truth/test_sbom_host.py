"""The SBOM and the annotated JSON manifest of the machine's own /usr/bin/curl: package owners
against `dpkg -S`, digests against the files (the crafted cases are in
tests/unit/render/test_sbom.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import run_cli
from tests.unit.render.test_sbom import (
    CURL,
    components,
    dpkg_owners,
    graph,
    manifest_schema,
    needs_dpkg,
    properties,
    sbom,
    sha256,
)


@pytest.mark.host
@needs_dpkg
def test_curl_sbom_names_the_debian_package_of_every_library() -> None:
    document = sbom(CURL)
    by_ref = components(document)
    edges = graph(document)
    image = document["metadata"]["component"]
    assert (image["type"], image["name"], image["bom-ref"]) == ("container", "curl", "image")
    assert edges["image"] == [f"file:{CURL}"]
    loaded = {
        ref: c
        for ref, c in by_ref.items()
        if c["type"] == "file"
        and properties(c)["scratchprobe:kind"][0]
        in (
            "binary",
            "interpreter",
            "library",
        )
    }
    assert len(loaded) > 20
    candidates: dict[str, list[str]] = {}
    for ref, component in loaded.items():
        image_path = component["name"]
        source = properties(component)["scratchprobe:source"][0]
        candidates[ref] = [
            image_path,
            source,
            os.path.join(os.path.dirname(image_path), os.path.basename(source)),
        ]
    expected = dpkg_owners(candidates)
    assert set(expected) == set(loaded), "dpkg owns every file of the closure"
    for ref, component in loaded.items():
        (purl,) = properties(component)["scratchprobe:package"]
        package = by_ref[purl]
        name, version = expected[ref]
        assert (package["name"], package["version"]) == (name, version), ref
        assert package["purl"].startswith(f"pkg:deb/debian/{name}@")
        assert "distro=debian-" in package["purl"]
        assert purl in edges[ref], "file -> owning package edge"
        assert component["hashes"] == [
            {"alg": "SHA-256", "content": sha256(properties(component)["scratchprobe:source"][0])}
        ]
    libc = by_ref["file:/lib/x86_64-linux-gnu/libc.so.6"]
    assert "file:/lib64/ld-linux-x86-64.so.2" in edges[libc["bom-ref"]]
    libcurl = "file:/lib/x86_64-linux-gnu/libcurl.so.4"
    assert libcurl in edges[f"file:{CURL}"]
    assert "file:/lib/x86_64-linux-gnu/libssl.so.3" in edges[libcurl]


@pytest.mark.host
@needs_dpkg
def test_unowned_files_are_marked() -> None:
    """The CA bundle is written by update-ca-certificates: no package lists it."""
    by_ref = components(sbom(CURL))
    bundle = by_ref.get("file:/etc/ssl/certs/ca-certificates.crt")
    if bundle is None:
        pytest.skip("curl's plan has no CA bundle on this machine")
    assert properties(bundle)["scratchprobe:package"] == ["none"]
    assert bundle["hashes"][0]["content"] == sha256("/etc/ssl/certs/ca-certificates.crt")


@pytest.mark.host
@needs_dpkg
def test_directory_is_one_component_with_a_tree_digest() -> None:
    by_ref = components(sbom(CURL))
    zoneinfo = by_ref.get("file:/usr/share/zoneinfo")
    if zoneinfo is None:
        pytest.skip("curl's plan has no zoneinfo on this machine")
    props = properties(zoneinfo)
    assert props["scratchprobe:type"] == ["directory"]
    base = Path(os.path.realpath("/usr/share/zoneinfo"))
    lines = []
    count = 0
    for current, dirs, names in os.walk(base):
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(current, d))]):
            path = Path(current, name)
            relative = path.relative_to(base).as_posix()
            first = f"symlink:{os.readlink(path)}" if path.is_symlink() else sha256(path)
            lines.append((relative, f"{first}  {relative}\n"))
            count += 1
    listing = "".join(line for _, line in sorted(lines))
    assert props["scratchprobe:tree-sha256"] == [hashlib.sha256(listing.encode()).hexdigest()]
    assert props["scratchprobe:files"] == [str(count)]
    (owner,) = props["scratchprobe:package"]
    assert owner.startswith("pkg:deb/debian/tzdata@")


@pytest.mark.host
@needs_dpkg
def test_json_manifest_gains_digest_size_and_package() -> None:
    result = run_cli("inspect", "--format", "json", CURL)
    document = result.json()
    jsonschema.validate(document, manifest_schema())
    files = {f["path"]: f for f in document["files"]}
    libc = files["/lib/x86_64-linux-gnu/libc.so.6"]
    assert libc["sha256"] == sha256(libc["source"])
    assert libc["size"] == os.path.getsize(libc["source"])
    assert libc["package"]["name"] == "libc6"
    assert libc["package"]["manager"] == "dpkg"
    assert libc["package"]["purl"].startswith("pkg:deb/debian/libc6@")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libc6"], capture_output=True, text=True, check=True
    ).stdout
    assert libc["package"]["version"] == version
    assert all("package" in f for f in document["files"])
