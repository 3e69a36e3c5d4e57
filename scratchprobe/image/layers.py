"""The plan split into layers that images share, each written as a reproducible tar.

Why layers at all: a registry, `podman load` and every container store keep one copy of a
blob per digest. If two images built from the same builder hold the same loader and libc in
a layer of identical bytes, that layer is stored and pulled once. So the plan is split by
how widely an entry is shared, from most to least:

1. base: the program loader (PT_INTERP) and the C library's own shared objects (glibc's
   libc.so.6, libm.so.6, ... as glibc's shlib-versions names them; musl's one libc):
   the same for every dynamic program of one builder;
2. runtime: the runtime files of kinds many programs need (CA bundle, zoneinfo, passwd and
   group, nsswitch.conf, NSS and gconv modules, libgcc_s for unwinding, /tmp, mime.types):
   the same for every program with the same needs on one builder;
3. app: the binaries, every other library of their closures and the program-specific
   runtime files (OpenSSL configuration and modules, dlopen'ed libraries, data directories,
   Python's standard library);
4. packages (only with `--package-metadata`): the package-database entries for scanners,
   last, so that they never change the layers above.

An empty layer is left out (a static Go binary has no base layer). Each layer also holds the
parent directories of its entries, with the plan's modes, so that it unpacks alone; a
directory in two layers has identical metadata in both.

Reproducible bytes: the entries come in the rootfs writer's order and metadata
(scratchprobe.rootfs.write_tar: sorted, owner 0:0, mtime SOURCE_DATE_EPOCH); gzip is written
with mtime 0 and no file name in its header (RFC 1952 MTIME and FNAME), at a fixed level, so
the same entries give the same compressed bytes with the same zlib.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from scratchprobe.needs.model import NeedKind
from scratchprobe.plan import FileKind, ImageKind, Plan
from scratchprobe.rootfs import Entry, Layout, write_tar

MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
GZIP_LEVEL = 6
"""zlib's default level: a fixed level is part of what makes the blob reproducible."""


class LayerRole(Enum):
    BASE = "base"
    RUNTIME = "runtime"
    APP = "app"
    PACKAGES = "packages"


LAYER_ORDER = (LayerRole.BASE, LayerRole.RUNTIME, LayerRole.APP, LayerRole.PACKAGES)

_LAYER_WORDS = {
    LayerRole.BASE: "the program loader and the C library",
    LayerRole.RUNTIME: "runtime files shared by programs with the same needs",
    LayerRole.APP: "the binaries and their other libraries and files",
    LayerRole.PACKAGES: "package-database entries for the packages whose files the image holds",
}

# The shared objects glibc itself installs (glibc's shlib-versions and Makeconfig
# `rtld-installed-name`): the loader's companions, the same for every program of a builder.
_GLIBC_LIBRARY = re.compile(
    r"^(libc\.so\.6(\.1)?|libm\.so\.6(\.1)?|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2"
    r"|librt\.so\.1|libresolv\.so\.2|libanl\.so\.1|libutil\.so\.1|libnsl\.so\.1"
    r"|libBrokenLocale\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0"
    r"|ld-linux[-.\w]*\.so\.\d+|ld\.so\.1|ld64\.so\.[12])$"
)
# musl installs one object, the libc that is also its loader (musl's Makefile: libc.so,
# linked as ld-musl-ARCH.so.1; Alpine names the file libc.musl-ARCH.so.1).
_MUSL_LIBRARY = re.compile(r"^(libc\.so|libc\.musl-[\w]+\.so\.1|ld-musl-[\w]+\.so\.1)$")

_RUNTIME_KINDS = frozenset(
    {
        NeedKind.CA_CERTIFICATES,
        NeedKind.ZONEINFO,
        NeedKind.USERS,
        NeedKind.NAME_SERVICE,
        NeedKind.NSS_MODULES,
        NeedKind.GCONV,
        NeedKind.UNWINDER,
        NeedKind.TMP,
        NeedKind.MIME,
    }
)


def describe(role: LayerRole) -> str:
    """What a layer holds, in words (the image config's history)."""
    return _LAYER_WORDS[role]


def is_libc_object(path: str) -> bool:
    name = posixpath.basename(path)
    return bool(_GLIBC_LIBRARY.match(name) or _MUSL_LIBRARY.match(name))


def role_of(kind: ImageKind, path: str) -> LayerRole:
    if kind is FileKind.INTERPRETER:
        return LayerRole.BASE
    if kind is FileKind.LIBRARY:
        return LayerRole.BASE if is_libc_object(path) else LayerRole.APP
    if kind is FileKind.BINARY:
        return LayerRole.APP
    return LayerRole.RUNTIME if kind in _RUNTIME_KINDS else LayerRole.APP


def split(plan: Plan, tree: Layout) -> dict[LayerRole, tuple[Entry, ...]]:
    """The entries of `tree` (written from `plan`) by layer, each with its parents, in tree
    order. An entry copied as part of a directory belongs where that directory does."""
    roles = {f.path: role_of(f.kind, f.path) for f in plan.files}
    chosen: dict[LayerRole, set[str]] = {role: set() for role in LAYER_ORDER}
    for entry in tree.entries:
        path = entry.path
        owner = path
        while owner != "/" and owner not in roles:
            owner = posixpath.dirname(owner)
        if owner == "/":
            continue  # a parent directory no plan entry names: added with its children
        members = chosen[roles[owner]]
        members.add(path)
        parent = posixpath.dirname(path)
        while parent != "/":
            members.add(parent)
            parent = posixpath.dirname(parent)
    return {
        role: tuple(e for e in tree.entries if e.path in chosen[role])
        for role in LAYER_ORDER
        if chosen[role]
    }


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: `digest` names the blob as stored, `diff_id` its uncompressed tar
    (the image config's rootfs.diff_ids; equal to `digest` when not compressed)."""

    role: LayerRole
    media_type: str
    digest: str
    size: int
    diff_id: str
    host_path: str
    """Where the blob was written (inside the blob directory being built)."""


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through it to the next stream."""

    def __init__(self, out: io.BufferedIOBase | io.RawIOBase | gzip.GzipFile) -> None:
        super().__init__()
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self._out.write(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size


def write_layer(
    role: LayerRole, entries: Iterable[Entry], mtime: int, blob_dir: str, compress: bool
) -> LayerBlob:
    """One layer as a blob named by its digest in `blob_dir`."""
    tree = Layout(tuple(entries), ())
    fd, tmp = tempfile.mkstemp(prefix=".layer.", suffix=".partial", dir=blob_dir)
    try:
        with os.fdopen(fd, "wb") as raw:
            stored = _HashingWriter(raw)
            if compress:
                # filename="" and mtime=0: nothing of this run gets into the gzip header.
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=stored, compresslevel=GZIP_LEVEL, mtime=0
                ) as packed:
                    plain = _HashingWriter(packed)
                    write_tar(tree, plain, mtime)  # type: ignore[arg-type]
            else:
                plain = stored
                write_tar(tree, plain, mtime)  # type: ignore[arg-type]
        digest = "sha256:" + stored.sha256.hexdigest()
        final = os.path.join(blob_dir, stored.sha256.hexdigest())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return LayerBlob(
        role=role,
        media_type=MEDIA_TYPE_LAYER_GZIP if compress else MEDIA_TYPE_LAYER_TAR,
        digest=digest,
        size=stored.size,
        diff_id="sha256:" + plain.sha256.hexdigest(),
        host_path=final,
    )
