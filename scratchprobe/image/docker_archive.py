"""The docker-archive format: what `docker load` and `podman load` read.

`docker save` writes a tar whose `manifest.json` lists, per image, its config file, its
RepoTags and its layer files, each an uncompressed tar (moby image/tarexport; the format
containers/image reads as `docker-archive:`). Since Docker 25 the same tar is also an OCI
image layout, the layers being `blobs/sha256/HEX`. scratchprobe writes that combined form:
`manifest.json` names the layout's blobs, so one archive serves both kinds of readers.

The layers are uncompressed (media type `application/vnd.oci.image.layer.v1.tar`), because
the config's `rootfs.diff_ids` must be the digests of the files manifest.json names, which
older `docker load` versions check without decompressing.

One image per archive: manifest.json has no platform field, and two entries with the same
RepoTags would have the later one win, so a multi-platform image is refused for this format
(use oci-archive or oci-layout, which carry an image index).
"""

from __future__ import annotations

import re

from scratchprobe.errors import UsageError
from scratchprobe.image.config import canonical_json
from scratchprobe.image.layout import BLOB_DIR, Descriptor

MANIFEST_FILE = "manifest.json"

_HAS_TAG = re.compile(r":[\w][\w.-]*$")


def repo_tag(tag: str) -> str:
    """`name` -> `name:latest`, as `docker tag` completes a reference without a tag."""
    name = tag.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name if _HAS_TAG.search(last) else f"{name}:latest"


def _blob_path(descriptor_digest: str) -> str:
    return f"{BLOB_DIR}/{descriptor_digest.split(':', 1)[1]}"


def manifest_file(config: Descriptor, layers: tuple[Descriptor, ...], tag: str | None) -> bytes:
    """manifest.json for one image."""
    if tag is not None and "@" in tag:
        raise UsageError(f"--tag {tag}: a docker-archive records tags, not digests")
    entry = {
        "Config": _blob_path(config.digest),
        "RepoTags": [repo_tag(tag)] if tag else [],
        "Layers": [_blob_path(layer.digest) for layer in layers],
    }
    return canonical_json([entry])
