"""`--format text`: the human report (rich). Colour only when the CLI says it is a terminal."""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape as markup_escape
from rich.tree import Tree

from scratchprobe.elf.reader import format_version
from scratchprobe.loader.closure import Closure, Dependency
from scratchprobe.model import BinaryReport, Inspection
from scratchprobe.plan import FileKind, FileType, Plan
from scratchprobe.render import RenderOptions
from scratchprobe.render.console import report_console
from scratchprobe.render.copy import UnexpressibleName, copy_lines, layer_note, uncopyable_note
from scratchprobe.render.names import visible_text


def escape(text: str) -> str:
    """A name or message as the report shows it: control characters and undecodable bytes
    written visibly (`\\xNN`, docs/output-encoding.md), so no name can forge a line or
    move the cursor, then rich markup escaped."""
    return markup_escape(visible_text(text))


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def verdict(report: BinaryReport, plan: Plan) -> str:
    """`dynamic glibc x86_64, needs 7 files, 2.9 MiB`."""
    libc = report.libc.value if report.libc else "no known libc"
    kind = (
        "shared library" if report.object_kind.value == "shared-library" else report.linkage.value
    )
    count = len(plan.binary(report.path).files)
    line = (
        f"{kind} {libc} {report.elf.arch.name}, needs {count} file{'s' if count != 1 else ''}, "
        f"{human_size(plan.size_of(report.path))}"
    )
    # The count alone reads as a success; what the loader will not find belongs on the
    # same line (`needs 2 files, 2.1 MiB; missing: libc.so.6`).
    if report.missing_items:
        line += "; missing: " + ", ".join(report.missing_items)
    return line


def _tree(report: BinaryReport, closure: Closure) -> Tree:
    children: dict[str, list[Dependency]] = {}
    for dep in closure.dependencies:
        children.setdefault(dep.needer, []).append(dep)
    found_via = {obj.path: obj.via.value for obj in closure.libraries}
    tree = Tree(f"[bold]{escape(report.path)}[/bold]")
    shown: set[str] = {report.path}

    # Each library is expanded once; later needs of it are listed on one line so the tree
    # of a large program stays readable. Depth first with an explicit stack, not recursion:
    # a crafted chain of libraries is thousands deep.
    Frame = tuple[Tree, Iterator[Dependency], list[str]]
    stack: list[Frame] = [(tree, iter(children.get(report.path, [])), [])]
    while stack:
        node, pending, again = stack[-1]
        item = next(pending, None)
        if item is None:
            if again:
                node.add(f"[dim]also needs {escape(', '.join(again))}[/dim]")
            stack.pop()
            continue
        if item.path is None:
            node.add(f"[red]{escape(item.name)} => not found[/red]")
            continue
        if item.path in shown:
            again.append(item.name)
            continue
        shown.add(item.path)
        how = found_via.get(item.path, "interpreter")
        child = node.add(f"{escape(item.name)} => {escape(item.path)} [dim]({how})[/dim]")
        stack.append((child, iter(children.get(item.path, [])), []))
    return tree


def _binary(console: Console, report: BinaryReport, plan: Plan, full: bool) -> None:
    # Verdict, problems and runtime needs first: they are what a terminal must show; the
    # tree of a large program (curl: 30+ libraries) comes last, and only with --full.
    elf = report.elf
    console.print(f"[bold]{escape(report.label)}[/bold]: {escape(verdict(report, plan))}")
    closure = report.closure
    if elf.interpreter:
        state = ""
        if closure is not None and closure.interpreter_missing:
            state = " [red](missing in the root)[/red]"
        console.print(f"  interpreter: {escape(elf.interpreter)}{state}")
    if report.toolchain:
        console.print(f"  toolchain: {escape(report.toolchain)}")
    if elf.max_glibc:
        console.print(f"  requires glibc >= {format_version(elf.max_glibc)}")
    if elf.runpath:
        console.print(f"  runpath: {escape(elf.runpath)}")
    elif elf.rpath:
        console.print(f"  rpath: {escape(elf.rpath)}")
    if closure is None:
        console.print("  no shared libraries: the loader is never involved")
    else:
        for miss in closure.missing:
            tried = ", ".join(miss.searched) or "no directory"
            console.print(
                f"  [red]missing: {escape(miss.name)}[/red] (needed by "
                f"{escape(miss.needed_by)}; searched {escape(tried)})"
            )
        for version in closure.missing_versions:
            console.print(
                f"  [red]missing version: {escape(version.version)} of "
                f"{escape(version.library)}[/red] (needed by {escape(version.needed_by)})"
            )
        for warning in closure.warnings:
            console.print(f"  [yellow]warning:[/yellow] {escape(warning)}")
    _needs(console, report)
    if closure is not None:
        if full:
            console.print(
                f"  default directories ({escape(closure.system_dirs_source)}): "
                + escape(":".join(closure.system_dirs))
            )
            if closure.libraries or closure.missing:
                console.print(_tree(report, closure))
        else:
            missing = f", {len(closure.missing)} missing" if closure.missing else ""
            console.print(
                f"  libraries: {len(closure.libraries)} found{missing} (--full shows who "
                "needs what)"
            )
    console.print()


def _needs(console: Console, report: BinaryReport) -> None:
    if not report.needs:
        return
    console.print("  runtime needs:")
    for need, keep in zip(report.needs, report.included, strict=True):
        mark = "[green]+[/green]" if keep else "[dim]-[/dim]"
        state = "" if keep else f", not included: --with {need.kind.value}"
        console.print(
            f"  {mark} [bold]{need.kind.value}[/bold] ({need.confidence.value}{state}): "
            f"{escape(need.summary)}"
        )
        console.print(f"      evidence: {escape('; '.join(need.evidence))}")
        if need.files:
            console.print(f"      files: {escape(', '.join(f.path for f in need.files))}")
        if need.runtime_provided:
            console.print(
                "      provided by the container runtime: "
                + escape(", ".join(need.runtime_provided))
            )
        for key, value in need.env:
            console.print(f"      ENV {escape(key)}={escape(value)}")
        for problem in need.problems:
            console.print(f"      [red]problem:[/red] {escape(problem)}")


def _included(console: Console, inspection: Inspection) -> None:
    """Entries --include / --include-from added, each with its reason."""
    entries = [f for f in inspection.plan.files if f.kind is FileKind.INCLUDED]
    if not entries:
        return
    console.print("[bold]included[/bold] (--include, --include-from):")
    for entry in entries:
        what = entry.type.value
        if entry.type is FileType.DIRECTORY and entry.source is None:
            what = "empty directory"
        elif entry.type is FileType.DIRECTORY:
            what = "directory, whole"
        source = f" from {escape(entry.source)}" if entry.source not in (None, entry.path) else ""
        console.print(f"  + {escape(entry.path)} ({what}{source}): {escape(entry.reason)}")
    console.print()


def render(inspection: Inspection, options: RenderOptions) -> str:
    buffer = io.StringIO()
    console = report_console(buffer, options.color, options.width)
    for report in inspection.binaries:
        _binary(console, report, inspection.plan, options.full)
    _included(console, inspection)
    for warning in inspection.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    try:
        lines = copy_lines(inspection, options.stage)
    except UnexpressibleName as exc:
        # No partial COPY block: one that leaves a file out builds an image that fails.
        if inspection.warnings:
            console.print()
        console.print(f"[bold]COPY lines[/bold]: none, {escape(str(exc))}")
        return buffer.getvalue()
    if lines and not options.full:
        if inspection.warnings:
            console.print()
        console.print(
            f"{len(inspection.plan.files)} image entries: --format copy prints the COPY lines, "
            "--format dockerfile a scratch stage, --full the library trees and COPY lines"
        )
    elif lines:
        if inspection.warnings:
            console.print()
        console.print(f"[bold]COPY lines[/bold] (from stage {escape(options.stage)!s}):")
        for line in lines:
            console.print(escape(line))
        note = uncopyable_note(inspection)
        if note is not None:
            console.print(escape(note))
        too_many = layer_note(len(lines))
        if too_many is not None:
            console.print(escape(too_many))
    return buffer.getvalue()
