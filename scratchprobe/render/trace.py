"""The report of `verify --trace`: misses, confirmed, untouched and runtime-provided paths,
per round, in words or as JSON. Renderers only format (scratchprobe.trace computes)."""

from __future__ import annotations

import json
from typing import Any

from scratchprobe.sandbox import RunResult
from scratchprobe.trace.analyse import MISS_WORDS, Miss, TraceReport
from scratchprobe.trace.learn import Round, TraceOutcome
from scratchprobe.verify import Verification


def _covering(miss: Miss) -> str:
    include = miss.include
    dest = include.dest or include.source
    how = "file"
    if miss.directory:
        how = "whole directory" if include.tree else "empty directory"
    source = f" from {include.source}" if dest != include.source else ""
    return f"{dest} ({how}{source})"


def _misses(report: TraceReport) -> list[str]:
    if not report.misses:
        return ["  misses: none (nothing it tried is missing from the image but in the builder)"]
    lines = [f"  misses ({len(report.misses)}: tried, not in the image, in the builder):"]
    for miss in report.misses:
        lines.append(f"  + {_covering(miss)}: {MISS_WORDS[miss.kind]}")
        lines.append(f"      evidence: {miss.evidence}")
    return lines


def _round_line(item: Round) -> str:
    run = item.verification.image_run
    verdict = "passed" if item.verification.passed else "failed"
    learned = len(item.learned)
    return (
        f"round {item.number}: image run {_status(run)}, {verdict}; "
        f"{len(item.report.misses)} misses, {learned} new include entr"
        f"{'y' if learned == 1 else 'ies'}"
    )


def _status(run: RunResult) -> str:
    if run.timed_out:
        return "timed out"
    if run.exec_error is not None:
        return f"could not start ({run.exec_error})"
    return f"exit {run.exit_status}"


def render_text(outcome: TraceOutcome) -> str:
    """The trace section, after the last round's verify report."""
    lines: list[str] = []
    for item in outcome.rounds:
        lines.append(_round_line(item))
        lines += _misses(item.report)
        for note in item.report.notes:
            lines.append(f"  note: {note}")
    report = outcome.last.report
    lines.append(f"confirmed ({len(report.confirmed)}: planned entries the last run opened):")
    lines += [f"  = {seen.path}: {seen.evidence}" for seen in report.confirmed]
    lines.append(
        f"untouched ({len(report.untouched)}: planned, never opened in the last run; "
        "a hint, not a removal):"
    )
    lines += [f"  ? {path}" for path in report.untouched]
    lines.append(
        f"runtime-provided ({len(report.runtime_provided)}: supplied by the container runtime):"
    )
    lines += [f"  ~ {seen.path}: {seen.evidence}" for seen in report.runtime_provided]
    if outcome.learn_file is not None:
        lines.append(
            f"learned: {len(outcome.learned)} include entries, written to {outcome.learn_file} "
            "(use --include-from)"
        )
    lines.append(f"rounds: {len(outcome.rounds)}; stopped: {outcome.stop}")
    return "\n".join(lines) + "\n"


def _run(run: RunResult | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "argv": list(run.argv),
        "exit_status": run.exit_status,
        "timed_out": run.timed_out,
        "exec_error": run.exec_error,
        "stdout": run.stdout.decode(errors="replace"),
        "stderr": run.stderr.decode(errors="replace"),
    }


def verification_json(result: Verification) -> dict[str, Any]:
    comparison = result.comparison
    return {
        "label": result.label,
        "image_path": result.image_path,
        "arch": result.arch,
        "sandbox": result.sandbox.value,
        "emulator": result.emulator.qemu_name if result.emulator else None,
        "passed": result.passed,
        "image_run": _run(result.image_run),
        "builder_run": _run(result.builder_run),
        "comparison": None
        if comparison is None
        else {
            "exit_status": comparison.exit_status,
            "stdout": comparison.stdout,
            "stderr": comparison.stderr,
            "matches": comparison.matches,
        },
        "warnings": list(result.warnings),
    }


def _report_json(report: TraceReport) -> dict[str, Any]:
    return {
        "program_seen": report.started,
        "truncated": report.truncated,
        "misses": [
            {
                "path": miss.path,
                "kind": miss.kind.value,
                "evidence": miss.evidence,
                "include": {
                    "path": miss.include.source,
                    "dest": miss.include.dest or miss.include.source,
                    "tree": miss.include.tree,
                    "directory": miss.directory,
                    "reason": miss.include.reason,
                },
            }
            for miss in report.misses
        ],
        "confirmed": [{"path": s.path, "evidence": s.evidence} for s in report.confirmed],
        "untouched": list(report.untouched),
        "runtime_provided": [
            {"path": s.path, "evidence": s.evidence} for s in report.runtime_provided
        ],
        "notes": list(report.notes),
    }


def render_json(outcome: TraceOutcome) -> str:
    document = {
        **verification_json(outcome.last.verification),
        "trace": {
            "rounds": [
                {
                    "round": item.number,
                    "passed": item.verification.passed,
                    "image_run": _run(item.verification.image_run),
                    **_report_json(item.report),
                    "learned": [i.spec for i in item.learned],
                }
                for item in outcome.rounds
            ],
            "learn_file": outcome.learn_file,
            "learned": [
                {
                    "path": i.source,
                    "dest": i.dest or i.source,
                    "tree": i.tree,
                    "kind": i.kind,
                    "reason": i.reason,
                }
                for i in outcome.learned
            ],
            "stop": outcome.stop,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def render_verification_json(result: Verification) -> str:
    return json.dumps(verification_json(result), indent=2) + "\n"
