"""`--format json`: the manifest, schema_version 1 (a public contract: add fields, never rename).

The schema lives beside the package (scratchprobe/schema/manifest-v1.schema.json) and the
tests validate this output against it.

Names that are not valid UTF-8 (docs/output-encoding.md): every string is written with each
undecodable byte as `\\xNN` (render.names.machine_text), so the document is strict UTF-8
JSON with no lone surrogate; a binary's or file's `path`, `source` and `target` that needed
it also get `<field>_base64`, their exact bytes.
"""

from __future__ import annotations

from typing import Any

from scratchprobe.annotations import FileAnnotations
from scratchprobe.elf.reader import format_version
from scratchprobe.model import BinaryReport, Inspection, all_warnings
from scratchprobe.plan import ImageFile, Plan
from scratchprobe.render import RenderOptions
from scratchprobe.render.jsontext import indented
from scratchprobe.render.names import is_utf8, machine_text, raw_base64

SCHEMA_VERSION = 1

_EXACT_FIELDS = ("path", "source", "target")


def _with_exact_bytes(out: dict[str, Any]) -> dict[str, Any]:
    """Add `<field>_base64` (the exact bytes) for each name field that is not UTF-8."""
    for key in _EXACT_FIELDS:
        value = out.get(key)
        if isinstance(value, str) and not is_utf8(value):
            out[f"{key}_base64"] = raw_base64(value)
    return out


def _binary(report: BinaryReport, plan: Plan) -> dict[str, Any]:
    elf = report.elf
    files = plan.binary(report.path)
    closure = report.closure
    libraries: list[dict[str, Any]] = []
    missing: list[str] = []
    missing_versions: list[dict[str, str]] = []
    if closure is not None:
        for obj in closure.libraries:
            libraries.append(
                {
                    "soname": obj.soname or obj.name,
                    "path": files.loaded[obj.path][0],
                    "source": obj.real_path,
                    "needed_by": obj.needed_by,
                    "found_via": obj.via.value,
                }
            )
        missing = list(dict.fromkeys(m.name for m in closure.missing))
        missing_versions = [
            {"version": v.version, "library": v.library, "needed_by": v.needed_by}
            for v in closure.missing_versions
        ]
    max_glibc = elf.max_glibc
    out = {
        "path": report.path,
        "arch": elf.arch.name,
        "linkage": report.linkage.value,
        "interpreter": elf.interpreter,
        "libc": report.libc.value if report.libc else None,
        "libraries": libraries,
        "missing": missing,
        # Fields added after the first contract (additive).
        "source": report.source,
        "type": report.object_kind.value,
        "elf_type": elf.elf_type.name,
        "elf_class": elf.arch.elf_class.bits,
        "byte_order": elf.arch.byte_order.value,
        "machine": elf.arch.machine,
        "needed": list(elf.needed),
        "soname": elf.soname,
        "rpath": elf.rpath,
        "runpath": elf.runpath,
        "nodeflib": elf.nodeflib,
        "max_glibc": format_version(max_glibc) if max_glibc else None,
        "interpreter_found": None if closure is None else closure.interpreter is not None,
        "missing_versions": missing_versions,
        "files": list(files.files),
        "size": plan.size_of(report.path),
        "toolchain": report.toolchain,
        "needs": [
            {
                "kind": need.kind.value,
                "confidence": need.confidence.value,
                "included": keep,
                "summary": need.summary,
                "evidence": list(need.evidence),
                "files": [f.path for f in need.files],
                "env": dict(need.env),
                "runtime_provided": list(need.runtime_provided),
                "problems": list(need.problems),
            }
            for need, keep in zip(report.needs, report.included, strict=True)
        ],
    }
    return _with_exact_bytes(out)


def _file(entry: ImageFile, annotations: FileAnnotations | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": entry.path}
    if entry.source is not None:
        out["source"] = entry.source
    out["type"] = entry.type.value
    if entry.target is not None:
        out["target"] = entry.target
    if entry.mode is not None:
        out["mode"] = entry.mode
    if entry.content is not None:
        out["content"] = entry.content
    out["kind"] = entry.kind.value
    out["reason"] = entry.reason
    if entry.from_context:
        out["from_context"] = True
    if entry.origin is not None:
        # Added with --include / --include-from (kind "included").
        out["included_from"] = entry.origin
    if entry.source is not None and entry.type.value == "file":
        out["size"] = entry.size
    # Added with the annotate step (json and cyclonedx only): digest, size of generated
    # content, and the owning OS package (null when no package database lists the file).
    facts = annotations.file(entry.path) if annotations is not None else None
    if facts is not None:
        if facts.sha256 is not None:
            out["sha256"] = facts.sha256
        if facts.size is not None and "size" not in out:
            out["size"] = facts.size
        package = facts.package
        out["package"] = (
            None
            if package is None
            else {
                "name": package.name,
                "version": package.version,
                "arch": package.arch,
                "purl": package.purl,
                "manager": package.manager.value,
            }
        )
    return _with_exact_bytes(out)


def manifest(inspection: Inspection, annotations: FileAnnotations | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "root": inspection.root,
        "binaries": [_binary(b, inspection.plan) for b in inspection.binaries],
        "files": [_file(f, annotations) for f in inspection.plan.files],
        "warnings": list(all_warnings(inspection, annotations)),
        "errors": [{"path": p.path, "message": p.message} for p in inspection.problems],
        "env": dict(inspection.env),
        "runtime_provided": list(inspection.runtime_provided),
        "user": inspection.user,
    }


def render(
    inspection: Inspection, options: RenderOptions, annotations: FileAnnotations | None = None
) -> str:
    """The manifest; `annotations` (scratchprobe.annotate) add each file's digest and owner."""
    return indented(manifest(inspection, annotations), machine_text) + "\n"
