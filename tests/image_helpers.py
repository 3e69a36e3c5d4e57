"""Reading what `scratchprobe image` wrote, for the image tests: blobs, manifests, layers,
and validation against the OCI image-spec JSON schemas vendored in tests/data/oci."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.conftest import REPO, TESTBINS, CliResult, run_cli

SCHEMAS = REPO / "tests" / "data" / "oci"
HELLO = str(TESTBINS / "c-glibc-dynamic")
AARCH64 = TESTBINS / "foreign" / "hello-aarch64"
AARCH64_ROOT = Path("/usr/aarch64-linux-gnu")


def _retrieve(uri: str) -> Resource[Any]:
    # The schemas name each other by file name relative to their `id`s, which differ in
    # path: every reference resolves to the sibling file of that name.
    name = uri.rsplit("/", 1)[-1]
    return Resource.from_contents(
        json.loads((SCHEMAS / name).read_text()), default_specification=DRAFT4
    )


@functools.cache
def validator(schema_file: str) -> Draft4Validator:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return Draft4Validator(schema, registry=registry)


def validate(data: Any, schema_file: str) -> None:
    errors = sorted(validator(schema_file).iter_errors(data), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


@dataclass
class Layout:
    """An OCI image layout on disk (a directory, or an archive unpacked into one)."""

    path: Path

    def blob(self, digest: str) -> bytes:
        data = (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    def json_blob(self, descriptor: dict[str, Any]) -> Any:
        data = self.blob(descriptor["digest"])
        assert len(data) == descriptor["size"]
        return json.loads(data)

    @property
    def index(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "index.json").read_text())
        return data

    def images(self) -> list[dict[str, Any]]:
        """The image descriptors of index.json (not the referrers)."""
        return [m for m in self.index["manifests"] if "artifactType" not in m]

    def manifest(self, descriptor: dict[str, Any] | None = None) -> dict[str, Any]:
        if descriptor is None:
            (descriptor,) = self.images()
        data: dict[str, Any] = self.json_blob(descriptor)
        return data

    def config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.json_blob(manifest["config"])
        return data

    def layer_tar(self, descriptor: dict[str, Any]) -> bytes:
        data = self.blob(descriptor["digest"])
        if descriptor["mediaType"].endswith("+gzip"):
            return gzip.decompress(data)
        return data

    def layer_names(self, descriptor: dict[str, Any]) -> list[str]:
        with tarfile.open(fileobj=io.BytesIO(self.layer_tar(descriptor))) as tar:
            return tar.getnames()

    def unpack(self, manifest: dict[str, Any], into: Path) -> Path:
        """Apply the layers in order, as a container runtime does."""
        into.mkdir(parents=True, exist_ok=True)
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(self.layer_tar(layer))) as tar:
                tar.extractall(into, filter="tar")
        return into


def open_archive(archive: Path, into: Path) -> Layout:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return Layout(into)


def image_cli(*args: str, epoch: str = "1700000000") -> CliResult:
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    result = run_cli("image", *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def two_platform_roots(tmp_path: Path) -> tuple[Path, Path]:
    """An amd64 and an arm64 builder root, each with a hello program at /app/hello."""
    if not AARCH64_ROOT.is_dir():
        pytest.skip("libc6-arm64-cross is not installed")
    amd64, arm64 = tmp_path / "amd64", tmp_path / "arm64"
    files = {
        amd64: {
            "app/hello": HELLO,
            "lib64/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
        },
        arm64: {
            "app/hello": str(AARCH64),
            "lib/ld-linux-aarch64.so.1": str(AARCH64_ROOT / "lib/ld-linux-aarch64.so.1"),
            "lib/libc.so.6": str(AARCH64_ROOT / "lib/libc.so.6"),
        },
    }
    for root, entries in files.items():
        for path, source in entries.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / path)
    return amd64, arm64
