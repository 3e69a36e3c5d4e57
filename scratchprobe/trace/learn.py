"""`verify --trace [--learn FILE] [--rounds N]`: run under the tracer, learn, re-plan.

Each round plans the image with every include known so far (the command line's, the
--learn file's and what earlier rounds learned), runs it traced in the sandbox, and learns
the entries that cover its misses. The rounds stop when the run passes (exits 0 and, with
--compare, matches the builder run), when a round learns nothing new, or after N rounds.
The learn file holds its earlier entries and the new ones, as the smallest covering set: an
entry below a directory copied whole is dropped.

The core never prints: it returns a `TraceOutcome`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass

from scratchprobe.errors import ScratchprobeError
from scratchprobe.model import InspectOptions
from scratchprobe.root import Root
from scratchprobe.trace.analyse import TraceReport, analyse
from scratchprobe.trace.includes import Include, load_file, write_file
from scratchprobe.trace.strace import (
    STRACE_HINT,
    BoundedSink,
    command_prefix,
    find_strace,
    parse,
    path_events,
)
from scratchprobe.verify import Verification, VerifyOptions, verify

LEARN_HEADER = """Include file written by `scratchprobe verify --trace --learn`.
Use it with --include-from FILE on inspect, rootfs, check and verify (docs/trace.md).
Each entry: path (inside --root), dest (image path, default path), reason, kind, and
tree = false for a directory the program only checked (created empty)."""


class TracerUnavailable(ScratchprobeError):
    """No strace on this machine."""


@dataclass(frozen=True)
class Round:
    number: int
    verification: Verification
    report: TraceReport
    learned: tuple[Include, ...]
    """New entries this round added."""


@dataclass(frozen=True)
class TraceOutcome:
    rounds: tuple[Round, ...]
    learned: tuple[Include, ...]
    """Everything learned over the rounds (already minimal)."""
    learn_file: str | None
    stop: str
    """Why the rounds stopped, in words."""

    @property
    def last(self) -> Round:
        return self.rounds[-1]

    @property
    def exit_code(self) -> int:
        return self.last.verification.exit_code


def minimal(includes: tuple[Include, ...], root: Root) -> tuple[Include, ...]:
    """Drop duplicates and entries inside a directory another entry copies whole."""
    by_dest: dict[str, Include] = {}
    for include in includes:
        dest = include.dest or include.source
        known = by_dest.get(dest)
        if known is None or (include.tree and not known.tree):
            by_dest[dest] = include
    trees = _trees(tuple(by_dest.values()), root)
    return tuple(i for d, i in by_dest.items() if not _below(d, trees))


def _trees(includes: tuple[Include, ...], root: Root) -> tuple[str, ...]:
    """Image paths of the includes that copy a directory whole."""
    out = []
    for include in includes:
        if not include.tree:
            continue
        try:
            if root.resolve(include.source).is_dir:
                out.append(include.dest or include.source)
        except OSError:
            continue
    return tuple(out)


def _below(path: str, trees: tuple[str, ...]) -> bool:
    return any(path.startswith(tree.rstrip("/") + "/") for tree in trees)


def trace_verify(
    binary: str, options: VerifyOptions, rounds: int = 1, learn_file: str | None = None
) -> TraceOutcome:
    strace = find_strace()
    if strace is None:
        raise TracerUnavailable(f"verify --trace needs strace: {STRACE_HINT}")
    plan_options = options.plan or InspectOptions(
        root=options.root, library_path=options.library_path
    )
    earlier: tuple[Include, ...] = ()
    if learn_file is not None and os.path.exists(learn_file):
        earlier = load_file(learn_file)
    base = plan_options.includes
    learned: tuple[Include, ...] = ()
    done: list[Round] = []
    stop = ""
    root = Root(plan_options.root)
    for number in range(1, max(rounds, 1) + 1):
        # For one image path a whole directory wins over the same directory created empty.
        includes = minimal(_merge(base, earlier, learned), root)
        planned = dataclasses.replace(plan_options, includes=includes)
        with tempfile.TemporaryDirectory(prefix="scratchprobe-trace-") as work:
            with BoundedSink(work) as sink:
                run_options = dataclasses.replace(
                    options, plan=planned, tracer=command_prefix(strace, sink.fifo)
                )
                verification = verify(binary, run_options)
            log = parse(sink.path) if os.path.exists(sink.path) else None
            if log is not None and sink.truncated:
                log = dataclasses.replace(log, truncated=True)
        program = verification.image_run.argv[0]
        events, started = path_events(log, program) if log is not None else ((), False)
        assert verification.plan is not None
        report = analyse(
            events,
            started,
            log.truncated if log is not None else False,
            verification.plan,
            verification.rootfs.layout,
            root,
            plan_options.library_path,
        )
        if verification.emulator is not None:
            # qemu-user translates the guest's file syscalls into its own with the same
            # paths (no -L prefix is given to the static emulator verify copies in), so
            # the tracer sees the guest's attempts as qemu's.
            note = (
                f"traced through qemu-{verification.emulator.qemu_name}-static: the guest's "
                "file syscalls are made by qemu with the same paths, so they are seen; "
                "qemu's own reads (/proc/self/maps, /proc/self/exe) are among the "
                "runtime-provided paths"
            )
            report = dataclasses.replace(report, notes=(note, *report.notes))
        known: dict[str, bool] = {}
        for include in includes:
            dest = include.dest or include.source
            known[dest] = known.get(dest, False) or include.tree
        trees = _trees(includes, root)
        new = tuple(
            m.include
            for m in report.misses
            if _adds(m.include, known) and not _below(m.include.dest or m.path, trees)
        )
        learned = minimal((*learned, *new), root)
        done.append(Round(number, verification, report, new))
        if verification.passed:
            stop = "the run passed" + (
                " and matched the builder run" if verification.comparison else ""
            )
            break
        if not new:
            stop = "nothing new was learned"
            break
        stop = f"{number} round{'s' if number > 1 else ''} done (--rounds {rounds})"
    if learn_file is not None:
        write_file(learn_file, minimal((*earlier, *learned), root), LEARN_HEADER)
    return TraceOutcome(tuple(done), learned, learn_file, stop)


def _adds(include: Include, known: dict[str, bool]) -> bool:
    """Whether the entry adds to what is included: a new path, or the contents of a
    directory included empty so far."""
    dest = include.dest or include.source
    return dest not in known or (include.tree and not known[dest])


def _merge(*groups: tuple[Include, ...]) -> tuple[Include, ...]:
    seen: set[tuple[str, str | None, bool]] = set()
    out = []
    for group in groups:
        for include in group:
            key = (include.source, include.dest, include.tree)
            if key not in seen:
                seen.add(key)
                out.append(include)
    return tuple(out)
