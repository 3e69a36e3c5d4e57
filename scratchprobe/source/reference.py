"""Open `--from-image REF` and unpack the chosen platform's image into a private root.

REF is, in this order:
- a directory with an `oci-layout` file: an OCI image layout (image-spec image-layout.md);
- a tar file holding `index.json` and `oci-layout`: an OCI archive (the layout, tarred);
- a tar file holding `manifest.json`: a docker-archive (`docker save`, `podman save`;
  moby image/spec "Combined Image JSON + Filesystem Changeset Format": a list of
  {Config, RepoTags, Layers}, the member names of the config and layer tars);
- anything else: a local image by name, copied into an OCI layout first with
  `skopeo copy containers-storage:NAME oci:DIR` (skopeo), else
  `podman save --format oci-dir -o DIR NAME` (podman).

The members of an archive are looked up by name, never extracted as they are; a blob is
named by its digest, which must be `sha256:` and 64 hex digits (anything else could name a
path), and its bytes are checked against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

from scratchprobe.source.config import SourceConfig, parse_config
from scratchprobe.source.unpack import (
    ImageSourceError,
    Limits,
    Unpacked,
    apply_layer,
    finish,
    member_path,
    new_state,
)

_DIGEST = re.compile(r"^sha256:([a-f0-9]{64})$")
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_JSON_LIMIT = 16 << 20


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str | None
    size: int
    """Bytes of the blob as stored (compressed or not)."""


@dataclass(frozen=True)
class SourceImage:
    """The source image, unpacked."""

    reference: str
    kind: str
    """"oci-layout", "oci-archive", "docker-archive" or "containers-storage"."""
    config: SourceConfig
    layers: tuple[Layer, ...]
    unpacked: Unpacked

    @property
    def root(self) -> str:
        return self.unpacked.directory

    @property
    def stored_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


Opener = Callable[[str], AbstractContextManager[IO[bytes]]]


def _blob_name(digest: Any, where: str) -> str:
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise ImageSourceError(f"{where}: {digest!r} is not a sha256 digest")
    return f"blobs/sha256/{match.group(1)}"


def _read_json(opener: Opener, name: str, where: str, digest: str | None = None) -> Any:
    try:
        with opener(name) as handle:
            data = handle.read(_JSON_LIMIT + 1)
    except FileNotFoundError:
        raise ImageSourceError(f"{where}: {name} is missing") from None
    if len(data) > _JSON_LIMIT:
        raise ImageSourceError(f"{where}: {name} is larger than {_JSON_LIMIT} bytes")
    if digest is not None:
        import hashlib

        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ImageSourceError(f"{where}: {name} has digest {actual}, not {digest}")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ImageSourceError(f"{where}: {name} is not JSON ({exc})") from None


def _platform_of(descriptor: dict[str, Any]) -> str | None:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return None
    text = f"{platform.get('os', '')}/{platform.get('architecture', '')}"
    variant = platform.get("variant")
    return f"{text}/{variant}" if variant else text


def platform_matches(wanted: str, offered: str) -> bool:
    """`linux/arm64` matches `linux/arm64/v8`; a variant given must be equal."""
    want = wanted.split("/")
    have = offered.split("/")
    return want[:2] == have[:2] and (len(want) < 3 or want[2:] == have[2:3])


def _select(
    opener: Opener, index: Any, platform: str | None, where: str, depth: int = 0
) -> dict[str, Any]:
    """The image manifest descriptor the index names for the platform."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageSourceError(f"{where}: index.json has no 'manifests' list")
    images = [
        d
        for d in index["manifests"]
        if isinstance(d, dict)
        and "artifactType" not in d
        and d.get("mediaType") in (MEDIA_INDEX, MEDIA_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
    ]
    if platform is not None:
        with_platform = [d for d in images if _platform_of(d) is not None]
        if with_platform:
            images = [d for d in with_platform if platform_matches(platform, _platform_of(d) or "")]
            if not images:
                offered = ", ".join(sorted({_platform_of(d) or "" for d in with_platform}))
                raise ImageSourceError(f"{where}: no image for {platform} (it has {offered})")
    if not images:
        raise ImageSourceError(f"{where}: the index names no image manifest")
    if len(images) > 1:
        offered = ", ".join(sorted({_platform_of(d) or "?" for d in images}))
        raise ImageSourceError(
            f"{where}: the index holds {len(images)} images ({offered}): choose one with --platform"
        )
    chosen = images[0]
    if chosen.get("mediaType") in (MEDIA_INDEX, DOCKER_LIST):
        if depth > 4:
            raise ImageSourceError(f"{where}: indexes nested too deep")
        nested = _read_json(
            opener, _blob_name(chosen.get("digest"), where), where, chosen.get("digest")
        )
        return _select(opener, nested, platform, where, depth + 1)
    return chosen


def _unpack(
    opener: Opener, layers: tuple[Layer, ...], names: tuple[str, ...], limits: Limits, where: str
) -> Unpacked:
    directory = tempfile.mkdtemp(prefix="scratchprobe-image-")
    try:
        state = new_state(limits)
        for number, (layer, name) in enumerate(zip(layers, names, strict=True), 1):
            label = f"{where}: layer {number}"
            try:
                with opener(name) as blob:
                    apply_layer(directory, blob, layer.media_type, label, state, layer.digest)
            except FileNotFoundError:
                raise ImageSourceError(f"{label}: {name} is missing") from None
        return finish(directory, state)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _from_oci(
    opener: Opener, kind: str, reference: str, platform: str | None, limits: Limits
) -> SourceImage:
    index = _read_json(opener, "index.json", reference)
    descriptor = _select(opener, index, platform, reference)
    manifest = _read_json(
        opener, _blob_name(descriptor.get("digest"), reference), reference, descriptor["digest"]
    )
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise ImageSourceError(f"{reference}: the image manifest has no 'layers' list")
    config_descriptor = manifest.get("config")
    if not isinstance(config_descriptor, dict):
        raise ImageSourceError(f"{reference}: the image manifest has no config")
    config = parse_config(
        _read_json(
            opener,
            _blob_name(config_descriptor.get("digest"), reference),
            reference,
            config_descriptor.get("digest"),
        ),
        reference,
    )
    layers = []
    names = []
    for item in manifest["layers"]:
        if not isinstance(item, dict):
            raise ImageSourceError(f"{reference}: a layer descriptor is not an object")
        names.append(_blob_name(item.get("digest"), reference))
        size = item.get("size")
        layers.append(
            Layer(
                str(item.get("mediaType", "")), item["digest"], size if isinstance(size, int) else 0
            )
        )
    unpacked = _unpack(opener, tuple(layers), tuple(names), limits, reference)
    return SourceImage(reference, kind, config, tuple(layers), unpacked)


def _from_docker_archive(
    opener: Opener, reference: str, limits: Limits, sizes: dict[str, int]
) -> SourceImage:
    manifest = _read_json(opener, "manifest.json", reference)
    if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict):
        raise ImageSourceError(f"{reference}: manifest.json is not a list of images")
    if len(manifest) > 1:
        raise ImageSourceError(
            f"{reference}: the docker-archive holds {len(manifest)} images; save only one"
        )
    entry = manifest[0]
    config_name = entry.get("Config")
    layer_names = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise ImageSourceError(f"{reference}: manifest.json has no Config or Layers")
    names = []
    for name in (config_name, *layer_names):
        if not isinstance(name, str):
            raise ImageSourceError(f"{reference}: a layer name is not a string")
        names.append("/".join(member_path(name, reference)))
    config = parse_config(_read_json(opener, names[0], reference), reference)
    # The layer tars of a docker-archive are named by path, not digest: their diff_ids in
    # the config would check them, but the tar is read once and checked by its contents.
    layers = tuple(
        Layer("application/vnd.oci.image.layer.v1.tar", None, sizes.get(n, 0)) for n in names[1:]
    )
    unpacked = _unpack(opener, layers, tuple(names[1:]), limits, reference)
    return SourceImage(reference, "docker-archive", config, layers, unpacked)


def _directory_opener(directory: str) -> Opener:
    def opener(name: str) -> AbstractContextManager[IO[bytes]]:
        parts = member_path(name, directory)
        path = os.path.join(directory, *parts)
        # The names come from the image's own JSON: never follow a link out of it.
        if os.path.islink(path) or not os.path.isfile(path):
            raise FileNotFoundError(path)
        return open(path, "rb")

    return opener


def _archive_opener(archive: tarfile.TarFile) -> tuple[Opener, dict[str, int]]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in archive.getmembers():
        if member.isreg():
            key = "/".join(p for p in member.name.split("/") if p and p != ".")
            members[key] = member
    sizes = {name: m.size for name, m in members.items()}

    def opener(name: str) -> AbstractContextManager[IO[bytes]]:
        member = members.get(name)
        handle = archive.extractfile(member) if member is not None else None
        if handle is None:
            raise FileNotFoundError(name)
        return nullcontext(handle)

    return opener, sizes


def _by_name(reference: str, platform: str | None, limits: Limits) -> SourceImage:
    skopeo = shutil.which("skopeo")
    podman = shutil.which("podman")
    if skopeo is None and podman is None:
        raise ImageSourceError(
            f"{reference}: no such file, and reading a local image by name needs skopeo or "
            "podman (apt-get install skopeo)"
        )
    directory = tempfile.mkdtemp(prefix="scratchprobe-oci-")
    try:
        if skopeo is not None:
            command = [skopeo, "copy", "--quiet"]
            if platform is not None:
                os_name, _, rest = platform.partition("/")
                arch, _, variant = rest.partition("/")
                command += ["--override-os", os_name, "--override-arch", arch]
                command += ["--override-variant", variant] if variant else []
            command += [f"containers-storage:{reference}", f"oci:{directory}"]
        else:
            assert podman is not None
            shutil.rmtree(directory)
            command = [podman, "save", "--quiet", "--format", "oci-dir", "-o", directory, reference]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            lines = [line for line in run.stderr.splitlines() if line.strip()]
            why = lines[-1] if lines else f"exit {run.returncode}"
            raise ImageSourceError(f"{reference}: not a local image ({why})")
        image = _from_oci(
            _directory_opener(directory), "containers-storage", reference, platform, limits
        )
        return image
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def limits_from(environ: Mapping[str, str]) -> Limits:
    """The bounds, lowered (or raised) by SCRATCHPROBE_IMAGE_MAX_BYTES / _MAX_MEMBERS."""
    limits = Limits()
    try:
        return Limits(
            int(environ.get("SCRATCHPROBE_IMAGE_MAX_BYTES", limits.max_bytes)),
            int(environ.get("SCRATCHPROBE_IMAGE_MAX_MEMBERS", limits.max_members)),
        )
    except ValueError:
        raise ImageSourceError(
            "SCRATCHPROBE_IMAGE_MAX_BYTES and SCRATCHPROBE_IMAGE_MAX_MEMBERS take a number"
        ) from None


def open_image(
    reference: str, platform: str | None = None, limits: Limits | None = None
) -> SourceImage:
    """Unpack REF's image into a private temporary root (the caller removes `root`)."""
    limits = limits or limits_from(os.environ)
    if os.path.isdir(reference):
        if not os.path.isfile(os.path.join(reference, "oci-layout")):
            raise ImageSourceError(f"{reference}: not an OCI image layout (no oci-layout file)")
        return _from_oci(_directory_opener(reference), "oci-layout", reference, platform, limits)
    if os.path.exists(reference):
        try:
            archive = tarfile.open(reference, "r:")  # noqa: SIM115 (closed by `with` below)
        except (tarfile.TarError, OSError) as exc:
            raise ImageSourceError(
                f"{reference}: not an OCI archive or docker-archive ({exc})"
            ) from None
        with archive:
            opener, sizes = _archive_opener(archive)
            if "index.json" in sizes and "oci-layout" in sizes:
                return _from_oci(opener, "oci-archive", reference, platform, limits)
            if "manifest.json" in sizes:
                return _from_docker_archive(opener, reference, limits, sizes)
        raise ImageSourceError(
            f"{reference}: a tar without index.json or manifest.json: not an image archive"
        )
    return _by_name(reference, platform, limits)
