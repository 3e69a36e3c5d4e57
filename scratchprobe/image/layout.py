"""OCI image layout (image-spec image-layout.md) and OCI archive (a tar of that layout).

A layout is `oci-layout` ({"imageLayoutVersion": "1.0.0"}), `index.json` (an image index)
and `blobs/sha256/HEX`, each blob named by the SHA-256 of its bytes. Every JSON blob is
written in one canonical form (sorted keys, no spaces), so the same content gives the same
digest.

Publishing:
- a layout directory is built in a sibling staging directory; a missing or empty
  destination is replaced by it in one rename; an existing layout keeps its blobs and
  gains the new ones, and its `index.json` is replaced atomically (write + rename) with the
  entries of the same ref name replaced (image-layout.md allows many refs in one layout;
  blobs no entry refers to any more stay until a `umoci gc`); any other non-empty directory
  is refused;
- an archive is written to a temporary sibling and renamed over the destination when
  complete. Its members are sorted (`oci-layout`, `index.json`, then the blobs), owner 0:0,
  mtime SOURCE_DATE_EPOCH, so the same layout gives the same archive bytes.

Python libraries for OCI layouts were looked at first (PyPI: `oras`, a registry client whose
layout support is for pushing and pulling; `opencontainers`, untyped spec structures;
`pyoci`, an experimental builder for Python projects): none writes a layout and an archive
reproducibly with typed data, so this module does, with hashlib, json and tarfile.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, Any

from scratchprobe.errors import ScratchprobeError
from scratchprobe.image.config import canonical_json
from scratchprobe.image.platform import Platform

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
"""The empty descriptor's content (image-spec manifest.md "Guidance for an Empty Descriptor")."""
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOB_DIR = "blobs/sha256"
OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})


class ImageWriteError(ScratchprobeError):
    """The image cannot be written to the destination."""


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (image-spec descriptor.md)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    artifact_type: str | None = None
    data: bytes | None = None
    """Embedded content (the `data` field, base64), used for the empty config only."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            out["platform"] = self.platform.as_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        return out


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobDirectory:
    """Content-addressed blobs under DIR/blobs/sha256 (a builder: it only ever adds)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.blobs = os.path.join(directory, BLOB_DIR)
        os.makedirs(self.blobs, exist_ok=True)

    def put(self, content: bytes, media_type: str, **fields: Any) -> Descriptor:
        digest = digest_of(content)
        path = os.path.join(self.blobs, digest.split(":", 1)[1])
        if not os.path.exists(path):
            with open(path, "wb") as out:
                out.write(content)
        return Descriptor(media_type, digest, len(content), **fields)


def manifest_json(
    config: Descriptor,
    layers: tuple[Descriptor, ...],
    annotations: tuple[tuple[str, str], ...] = (),
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
) -> bytes:
    """An image manifest (image-spec manifest.md); with `subject` and `artifact_type`, an
    OCI 1.1 artifact manifest that refers to the image `subject` describes."""
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.as_json(),
        "layers": [layer.as_json() for layer in layers],
    }
    if artifact_type is not None:
        data["artifactType"] = artifact_type
    if subject is not None:
        data["subject"] = subject.as_json()
    if annotations:
        data["annotations"] = dict(annotations)
    return canonical_json(data)


def index_json(
    manifests: tuple[Descriptor, ...], annotations: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """An image index (image-spec image-index.md)."""
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [m.as_json() for m in manifests],
    }
    if annotations:
        data["annotations"] = dict(annotations)
    return canonical_json(data)


def write_layout_files(blobs: BlobDirectory, index: bytes) -> None:
    with open(os.path.join(blobs.directory, LAYOUT_FILE), "wb") as out:
        out.write(OCI_LAYOUT)
    with open(os.path.join(blobs.directory, INDEX_FILE), "wb") as out:
        out.write(index)


# ----- archives --------------------------------------------------------------------------


def _members(directory: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(archive name, host path) of every file and directory, a directory right before its
    contents, names sorted; at the top, the layout's two small files first."""
    names = sorted(os.listdir(directory))
    if not prefix:
        names.sort(key=lambda n: n not in (LAYOUT_FILE, INDEX_FILE))
    for name in names:
        path = os.path.join(directory, name)
        yield prefix + name, path
        if stat.S_ISDIR(os.lstat(path).st_mode):
            yield from _members(path, f"{prefix}{name}/")


def write_archive(directory: str, out: IO[bytes], mtime: int) -> None:
    """The tree under `directory` as a tar: the same bytes for the same tree and mtime."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in _members(directory):
            st = os.lstat(path)
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = st.st_size
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)


def _check_parent(destination: str) -> None:
    parent = os.path.dirname(os.path.abspath(destination))
    if not os.path.isdir(parent):
        raise ImageWriteError(f"{destination}: the parent directory {parent} does not exist")
    with suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(destination).st_mode):
            raise ImageWriteError(f"{destination}: is a symbolic link; give the real path")


def staging_directory(destination: str) -> str:
    """A fresh directory beside the destination (same filesystem: publishing is a rename)."""
    _check_parent(destination)
    parent, name = os.path.split(os.path.abspath(destination))
    staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent)
    # mkdtemp makes it 0700; published as the layout directory, it gets what mkdir gives.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def publish_archive(staging: str, destination: str, mtime: int) -> None:
    _check_parent(destination)
    with suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(destination).st_mode):
            raise ImageWriteError(f"{destination}: exists and is not a regular file")
    parent, name = os.path.split(os.path.abspath(destination))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write_archive(staging, out, mtime)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(out.fileno(), 0o666 & ~umask)
        os.replace(tmp, destination)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _ref(descriptor: dict[str, Any]) -> str | None:
    annotations = descriptor.get("annotations") or {}
    value = annotations.get(REF_NAME)
    return value if isinstance(value, str) else None


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError) as exc:
        raise ImageWriteError(f"{path}: not a readable OCI layout file: {exc}") from None


def _reachable(layout: str, descriptors: list[dict[str, Any]]) -> set[str]:
    """Digests of the manifests `descriptors` name, through nested indexes."""
    found: set[str] = set()
    pending = list(descriptors)
    while pending:
        item = pending.pop()
        digest = item.get("digest")
        if not isinstance(digest, str) or digest in found:
            continue
        found.add(digest)
        if item.get("mediaType") == MEDIA_TYPE_INDEX:
            blob = os.path.join(layout, BLOB_DIR, digest.split(":", 1)[-1])
            with suppress(ImageWriteError):
                nested = _read_json(blob).get("manifests", [])
                pending += [m for m in nested if isinstance(m, dict)]
    return found


def _merged_index(layout: str, staging_index: bytes, ref_name: str | None) -> bytes:
    """The existing index.json with the new entries: the old entry of the same ref name
    goes, and so do referrers (OCI 1.1 artifacts) whose subject no entry reaches any more."""
    old = _read_json(os.path.join(layout, INDEX_FILE))
    new = json.loads(staging_index)
    if not isinstance(old, dict) or not isinstance(old.get("manifests"), list):
        raise ImageWriteError(f"{layout}/{INDEX_FILE}: not an image index")
    kept = [
        m
        for m in old["manifests"]
        if isinstance(m, dict) and "artifactType" not in m and _ref(m) != ref_name
    ]
    live = _reachable(layout, kept + new["manifests"])
    for m in old["manifests"]:
        if isinstance(m, dict) and "artifactType" in m:
            blob = os.path.join(layout, BLOB_DIR, str(m.get("digest", "")).split(":", 1)[-1])
            with suppress(ImageWriteError):
                subject = _read_json(blob).get("subject") or {}
                if subject.get("digest") in live:
                    kept.append(m)
    merged = dict(old)
    merged["manifests"] = kept + new["manifests"]
    merged.setdefault("schemaVersion", 2)
    merged.setdefault("mediaType", MEDIA_TYPE_INDEX)
    return canonical_json(merged)


def publish_layout(staging: str, destination: str, ref_name: str | None) -> None:
    """Make `staging` (a complete layout) the layout at `destination` (see the module)."""
    _check_parent(destination)
    try:
        st = os.lstat(destination)
    except FileNotFoundError:
        os.rename(staging, destination)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise ImageWriteError(f"{destination}: exists and is not a directory")
    if not os.listdir(destination):
        os.rename(staging, destination)
        return
    if not os.path.isfile(os.path.join(destination, LAYOUT_FILE)):
        raise ImageWriteError(
            f"{destination}: a non-empty directory that is not an OCI image layout"
        )
    with open(os.path.join(staging, INDEX_FILE), "rb") as handle:
        index = _merged_index(destination, handle.read(), ref_name)
    target_blobs = os.path.join(destination, BLOB_DIR)
    os.makedirs(target_blobs, exist_ok=True)
    source_blobs = os.path.join(staging, BLOB_DIR)
    for name in sorted(os.listdir(source_blobs)):
        target = os.path.join(target_blobs, name)
        if not os.path.exists(target):
            os.replace(os.path.join(source_blobs, name), target)
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".partial", dir=destination)
    with os.fdopen(fd, "wb") as out:
        out.write(index)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(destination, INDEX_FILE))
    shutil.rmtree(staging, ignore_errors=True)
