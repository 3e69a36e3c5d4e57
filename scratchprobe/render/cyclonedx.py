"""`--format cyclonedx`: a CycloneDX 1.6 JSON SBOM of the scratch image.

Built with cyclonedx-python-lib (its model and its 1.6 serializer), never by hand, and
imported only here: it costs ~0.1 s to import, which no other format pays.

What the document holds (every fact comes from the `Inspection` and the `FileAnnotations`
scratchprobe.annotate computes for it; this module only maps them onto CycloneDX):
- metadata.component: the image, type `container`, named after its binaries;
- one `file` component per entry of the plan, named by its path in the image, with the
  SHA-256 of the bytes the image holds (for a generated file, of its content);
- a directory the plan copies whole (zoneinfo, OpenSSL modules, gconv, ...) is one
  component, like its one COPY line and its one JSON entry, with a note: how many files
  and symlinks it holds, the SHA-256 of its `sha256sum`-style listing
  (`scratchprobe:tree-sha256`), and every package owning a file in it. Listing each file
  instead would add ~1,300 components for zoneinfo alone, about 0.8 s of the library's time
  per run, for files no scanner matches on;
- one `library` component per OS package owning a file (purl pkg:deb / pkg:apk /
  pkg:rpm, licences as the package states them), per Go module (pkg:golang: the main
  module, its dependencies, and `stdlib` at the toolchain's version) and per Rust crate from
  cargo-auditable data (pkg:cargo; build-time-only crates have scope `excluded`);
- the dependency graph: image -> binaries; binary -> interpreter, libraries, runtime files,
  modules; library -> the libraries it loads; file -> owning packages; crate -> crates.
Properties in the `scratchprobe:` namespace carry what CycloneDX has no field for: the kind
and reason of a file, where it is copied from, and `scratchprobe:package` = the owner's
purl, or `none` when no package database lists the file.

Without annotations (a caller that skipped the annotate step) the document still lists
every file and binary, without digests, owners or modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.bom_ref import BomRef
from cyclonedx.model.component import Component, ComponentScope, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from scratchprobe import __version__
from scratchprobe.annotations import AnnotatedFile, EmbeddedModule, FileAnnotations, ModuleRole
from scratchprobe.model import Inspection, all_warnings
from scratchprobe.packages import Package
from scratchprobe.plan import FileType, ImageFile
from scratchprobe.render import RenderOptions
from scratchprobe.render.names import machine_document

PROPERTY_PREFIX = "scratchprobe:"
IMAGE_REF = "image"
_MAX_NAMED_BINARIES = 3
_TREE_NOTE = (
    "directory copied whole; scratchprobe:tree-sha256 is the SHA-256 of its listing: one "
    "line per file or symlink, sorted by path, `SHA256  RELATIVE/PATH` or "
    "`symlink:TARGET  RELATIVE/PATH`"
)


def _prop(name: str, value: str) -> Property:
    return Property(name=PROPERTY_PREFIX + name, value=value)


def _file_ref(path: str) -> str:
    return f"file:{path}"


def _image_name(inspection: Inspection) -> str:
    """`curl`, `curl+wget`, or `curl+wget+git+4-more`: the binaries the image runs."""
    names = list(dict.fromkeys(posixpath.basename(b.path) for b in inspection.binaries))
    if not names:
        return "scratch-image"
    shown = "+".join(names[:_MAX_NAMED_BINARIES])
    rest = len(names) - _MAX_NAMED_BINARIES
    return f"{shown}+{rest}-more" if rest > 0 else shown


def _licenses(package: Package) -> list[License]:
    """The package's licences: SPDX ids where a name is one, an SPDX expression when it is
    the only licence stated (CycloneDX forbids an expression beside other licences),
    otherwise each as a named licence (Debian short names such as `GPL-2+` are not SPDX)."""
    from cyclonedx.contrib.license.factories import LicenseFactory

    factory = LicenseFactory()
    made = [factory.make_from_string(value) for value in package.licenses]
    if len(made) > 1:
        made = [
            DisjunctiveLicense(name=value) if isinstance(item, LicenseExpression) else item
            for value, item in zip(package.licenses, made, strict=True)
        ]
    return made


def _package_component(package: Package) -> Component:
    properties = [_prop("package-manager", package.manager.value)]
    if package.source_package:
        properties.append(_prop("source-package", package.source_package))
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        bom_ref=package.purl,
        purl=PackageURL.from_string(package.purl),
        licenses=_licenses(package),
        properties=properties,
    )


def _module_component(module: EmbeddedModule) -> Component:
    properties = [_prop("ecosystem", module.ecosystem.value)]
    if module.role is not ModuleRole.DEPENDENCY:
        properties.append(_prop("module-role", module.role.value))
    if module.checksum:
        properties.append(_prop("go:sum", module.checksum))
    if module.replaces:
        properties.append(_prop("go:replaces", module.replaces))
    if module.replaced_by:
        properties.append(_prop("go:replaced-by", module.replaced_by))
    if module.source:
        properties.append(_prop("cargo:source", module.source))
    return Component(
        type=ComponentType.LIBRARY,
        name=module.name,
        version=module.version,
        bom_ref=module.purl,
        purl=PackageURL.from_string(module.purl),
        scope=ComponentScope.EXCLUDED if module.build_only else None,
        properties=properties,
    )


def _file_component(entry: ImageFile, facts: AnnotatedFile | None, annotated: bool) -> Component:
    properties = [_prop("kind", entry.kind.value)]
    if entry.type is not FileType.FILE:
        properties.append(_prop("type", entry.type.value))
    if entry.target is not None:
        properties.append(_prop("symlink-target", entry.target))
    if entry.source is not None:
        properties.append(_prop("source", entry.source))
    if entry.content is not None:
        properties.append(_prop("generated", "true"))
    if entry.from_context:
        properties.append(_prop("from-context", "true"))
    if entry.mode is not None:
        properties.append(_prop("mode", entry.mode))
    hashes = []
    if facts is not None:
        if facts.sha256 is not None:
            hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=facts.sha256))
        if facts.size is not None:
            properties.append(_prop("size", str(facts.size)))
        if facts.tree_sha256 is not None:
            properties.append(_prop("tree-sha256", facts.tree_sha256))
            properties.append(_prop("files", str(len(facts.members))))
            properties.append(_prop("note", _TREE_NOTE))
        if facts.problem is not None:
            properties.append(_prop("problem", facts.problem))
    if annotated:
        owners = facts.owners if facts is not None else ()
        properties += [_prop("package", p.purl) for p in owners] or [_prop("package", "none")]
    return Component(
        type=ComponentType.FILE,
        name=entry.path,
        bom_ref=_file_ref(entry.path),
        description=entry.reason,
        hashes=hashes,
        properties=properties,
    )


def _serial(refs: Iterable[str]) -> uuid.UUID:
    """The same image gives the same serial number (a UUID of its contents' identities)."""
    digest = hashlib.sha256("\n".join(sorted(refs)).encode("utf-8", "surrogateescape"))
    return uuid.uuid5(uuid.NAMESPACE_URL, "scratchprobe:sbom:" + digest.hexdigest())


def _timestamp() -> datetime:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(tz=UTC)


def _metadata(
    inspection: Inspection, annotations: FileAnnotations | None, image: Component
) -> BomMetaData:
    properties = [_prop("root", inspection.root)]
    if annotations is not None:
        distro = annotations.os_release.distro
        if distro:
            properties.append(_prop("distro", distro))
        for manager, location in annotations.databases:
            properties.append(_prop("package-database", f"{manager.value}:{location}"))
        if not annotations.databases:
            properties.append(_prop("package-database", "none"))
    # CycloneDX has no place for diagnostics: a warning (an unreadable file, an rpm database
    # not read, ...) travels as a property, so that a consumer can see what is incomplete.
    properties += [_prop("warning", w) for w in all_warnings(inspection, annotations)]
    metadata = BomMetaData(component=image, properties=properties, timestamp=_timestamp())
    tool = Component(type=ComponentType.APPLICATION, name="scratchprobe", version=__version__)
    metadata.tools.components.add(tool)
    return metadata


def bom(inspection: Inspection, annotations: FileAnnotations | None = None) -> Bom:
    """The SBOM of the image `inspection` plans, as a cyclonedx-python-lib model."""
    image = Component(
        type=ComponentType.CONTAINER,
        name=_image_name(inspection),
        bom_ref=IMAGE_REF,
        description="FROM scratch image planned by scratchprobe",
    )
    document = Bom(metadata=_metadata(inspection, annotations, image))
    files: dict[str, Component] = {}
    for entry in inspection.plan.files:
        facts = annotations.file(entry.path) if annotations is not None else None
        files[entry.path] = _file_component(entry, facts, annotations is not None)
    document.components.update(files.values())

    libraries: dict[str, Component] = {}

    def library(purl: str, make: Callable[[], Component]) -> Component:
        if purl not in libraries:
            libraries[purl] = make()
        return libraries[purl]

    # The graph is built as Dependency objects in one go: Bom.register_dependency scans
    # every registered entry on each call, which is quadratic in the number of components.
    graph: dict[str, list[Component]] = {
        IMAGE_REF: [files[b.path] for b in inspection.binaries if b.path in files]
    }
    if annotations is None:
        for report in inspection.binaries:
            if report.path in files:
                paths = inspection.plan.binary(report.path).files
                needed = [files[p] for p in paths if p in files and p != report.path]
                graph[_file_ref(report.path)] = needed
    else:
        for facts in annotations.files:
            if facts.path not in files:
                continue
            needed = [files[p] for p in facts.needs if p in files]
            needed += [library(m.purl, partial(_module_component, m)) for m in facts.modules]
            needed += [library(p.purl, partial(_package_component, p)) for p in facts.owners]
            graph[_file_ref(facts.path)] = needed
            for module in facts.modules:
                if module.dependencies:
                    graph[module.purl] = [
                        libraries[p] for p in module.dependencies if p in libraries
                    ]
    document.components.update(libraries.values())
    for component in (*files.values(), *libraries.values()):
        graph.setdefault(str(component.bom_ref), [])
    document.dependencies = [
        Dependency(
            ref=BomRef(ref),
            dependencies=[
                Dependency(ref=BomRef(needed_ref))
                for needed_ref in dict.fromkeys(str(c.bom_ref) for c in needed)
            ],
        )
        for ref, needed in graph.items()
    ]
    identities = [
        f"{component.bom_ref} {' '.join(h.content for h in component.hashes)}"
        for component in files.values()
    ]
    document.serial_number = _serial([*identities, *libraries])
    return document


def render(
    inspection: Inspection, options: RenderOptions, annotations: FileAnnotations | None = None
) -> str:
    text = JsonV1Dot6(bom(inspection, annotations)).output_as_string(indent=2)
    # A name that is not UTF-8 would be a lone surrogate in the JSON: every string is
    # written with undecodable bytes as \xNN instead (docs/output-encoding.md); references
    # stay consistent because every string goes through the same function.
    document = json.loads(text)
    escaped = machine_document(document)
    if escaped != document:
        text = json.dumps(escaped, indent=2)
    return text if text.endswith("\n") else text + "\n"
