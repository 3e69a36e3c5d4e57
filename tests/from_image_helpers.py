"""Crafted images for the --from-image tests: OCI archives and docker-archives written with
tarfile member by member, so that each hostile case is exactly the bytes it claims to be."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scratchprobe.verify import provide_runtime_files
from tests.conftest import TESTBINS
from tests.helpers_sandbox import extract

STATIC = TESTBINS / "c-glibc-static"


@dataclass
class Member:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    size: int | None = None
    """Declared size when it differs from len(data): a lying header, the layer's last."""
    devmajor: int = 0
    devminor: int = 0


def layer_tar(members: list[Member]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.mode = m.mode
            info.linkname = m.linkname
            info.devmajor, info.devminor = m.devmajor, m.devminor
            if m.size is not None:
                # A header that promises more than follows: the layer ends right there.
                info.size = m.size
                out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + m.data)
                return out.getvalue()
            if m.type == tarfile.REGTYPE:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def binary_members(path: str = "app/hello", source: Path = STATIC) -> list[Member]:
    return [Member(path, data=source.read_bytes(), mode=0o755)]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    layers: list[bytes]
    config: dict[str, Any] = field(
        default_factory=lambda: {"Entrypoint": ["/app/hello"], "Env": ["PATH=/app:/bin"]}
    )
    gzip_layers: bool = True
    architecture: str = "amd64"

    def config_blob(self) -> bytes:
        return json.dumps(
            {
                "architecture": self.architecture,
                "os": "linux",
                "config": self.config,
                "rootfs": {"type": "layers", "diff_ids": [digest(x) for x in self.layers]},
            }
        ).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def manifest_for(image: Image, blobs: dict[str, bytes]) -> dict[str, Any]:
    config = image.config_blob()
    blobs[digest(config)] = config
    layers = []
    for layer in image.layers:
        blob = gzip.compress(layer, mtime=0) if image.gzip_layers else layer
        blobs[digest(blob)] = blob
        kind = "tar+gzip" if image.gzip_layers else "tar"
        layers.append(
            {
                "mediaType": f"application/vnd.oci.image.layer.v1.{kind}",
                "digest": digest(blob),
                "size": len(blob),
            }
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    blobs[digest(manifest)] = manifest
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(manifest),
        "size": len(manifest),
        "platform": {"os": "linux", "architecture": image.architecture},
    }


def oci_archive(path: Path, *images: Image, index: dict[str, Any] | None = None) -> Path:
    blobs: dict[str, bytes] = {}
    descriptors = [manifest_for(image, blobs) for image in images]
    index = index or {"schemaVersion": 2, "manifests": descriptors}
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", json.dumps(index).encode())
        for name, data in sorted(blobs.items()):
            _add(tar, "blobs/sha256/" + name.split(":", 1)[1], data)
    return path


def docker_archive(path: Path, image: Image, layer_names: list[str] | None = None) -> Path:
    names = layer_names or [f"{i}/layer.tar" for i in range(len(image.layers))]
    with tarfile.open(path, "w") as tar:
        _add(tar, "config.json", image.config_blob())
        for name, layer in zip(names, image.layers, strict=False):
            if not name.startswith("../") and not name.startswith("/"):
                _add(tar, name, layer)
        entry = [{"Config": "config.json", "RepoTags": ["x:1"], "Layers": names}]
        _add(tar, "manifest.json", json.dumps(entry).encode())
    return path


def run_tool(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=900, cwd=cwd, env=env
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-2000:]}"
    return proc.stdout


def exported_root(name: str, into: Path) -> Path:
    """podman create + export of an image, unpacked: the root a container of it sees."""
    container = f"sp-slim-{uuid.uuid4().hex[:12]}"
    run_tool("podman", "create", "--name", container, name)
    try:
        run_tool("podman", "export", "-o", str(into.with_suffix(".tar")), container)
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)
    root = extract(into.with_suffix(".tar"), into)
    into.with_suffix(".tar").unlink()
    provide_runtime_files(str(root), ())
    return root
