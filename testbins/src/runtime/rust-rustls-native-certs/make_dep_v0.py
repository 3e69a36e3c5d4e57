#!/usr/bin/env python3
"""Emulate cargo-auditable: `cargo metadata` JSON -> the zlib-compressed `.dep-v0` payload.

Usage: make_dep_v0.py METADATA.json OUT.bin > CRATES.json

cargo-auditable is not packaged for Debian 12, so build-runtime-go-rust.sh writes its
section itself. The payload follows cargo-auditable's documented format (PARSING.md and
cargo-auditable.schema.json in rust-secure-code/cargo-auditable): a zlib stream of compact
UTF-8 JSON `{"format": 1, "packages": [...]}`, each package with `name`, `version`,
`source` ("crates.io" for the crates.io index, the scheme before '+' otherwise, "local"
for path packages), `kind` (omitted when "runtime", "build" for packages reached only
through build-dependencies), `dependencies` (sorted indices, omitted when empty) and
`root` (omitted when false). Packages are sorted by name, then package id, and
dev-dependencies are dropped, as auditable_from_metadata.rs does.

stdout gets the same package list as plain JSON (name, version, source, kind, root) for the
test manifest. Python 3.11 standard library only.
"""

from __future__ import annotations

import json
import sys
import zlib

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
# Strength order: a package reached both ways is recorded with the stronger kind.
RANK = {"dev": 0, "build": 1, "runtime": 2}


def dep_kind(dep: dict) -> str:
    kinds = [k.get("kind") or "runtime" for k in dep.get("dep_kinds") or [{}]]
    kinds = ["runtime" if k == "normal" else k for k in kinds]
    return max(kinds, key=RANK.__getitem__)


def source_of(package: dict) -> str:
    source = package.get("source")
    if source is None:
        return "local"
    if source == CRATES_IO:
        return "crates.io"
    return str(source.split("+", 1)[0])


def main() -> None:
    metadata_path, out_path = sys.argv[1:]
    with open(metadata_path) as handle:
        metadata = json.load(handle)
    resolve = metadata["resolve"]
    root_id = resolve["root"]
    nodes = {node["id"]: node for node in resolve["nodes"]}

    # Breadth-first walk from the root; a child's kind is capped by its parent's.
    kind_of = {root_id: "runtime"}
    queue = [root_id]
    while queue:
        following = []
        for parent in queue:
            for dep in nodes[parent]["deps"]:
                kind = min(dep_kind(dep), kind_of[parent], key=RANK.__getitem__)
                child = dep["pkg"]
                if child not in kind_of or RANK[kind] > RANK[kind_of[child]]:
                    kind_of[child] = kind
                    following.append(child)
        queue = following

    packages = [p for p in metadata["packages"] if kind_of.get(p["id"], "dev") != "dev"]
    packages.sort(key=lambda p: (p["name"], p["id"]))
    index = {p["id"]: i for i, p in enumerate(packages)}
    encoded = []
    for package in packages:
        entry: dict[str, object] = {
            "name": package["name"],
            "version": package["version"],
            "source": source_of(package),
        }
        if kind_of[package["id"]] == "build":
            entry["kind"] = "build"
        deps = sorted(index[d["pkg"]] for d in nodes[package["id"]]["deps"] if dep_kind(d) != "dev")
        if deps:
            entry["dependencies"] = deps
        if package["id"] == root_id:
            entry["root"] = True
        encoded.append(entry)

    document = {"format": 1, "packages": encoded}
    text = json.dumps(document, separators=(",", ":")).encode()
    with open(out_path, "wb") as handle:
        handle.write(zlib.compress(text, 9))
    crates = [
        {
            "name": e["name"],
            "version": e["version"],
            "source": e["source"],
            "kind": e.get("kind", "runtime"),
            "root": e.get("root", False),
        }
        for e in encoded
    ]
    json.dump(crates, sys.stdout)


if __name__ == "__main__":
    main()
