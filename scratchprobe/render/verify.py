"""The report of `verify`: the build of the root, each run's status and output, the
comparison with the builder run and the verdict; with --trace, the trace section after it
(render/trace.py). Renderers only format (scratchprobe.verify computes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scratchprobe.render.formats import VerifyFormat
from scratchprobe.sandbox import OUTPUT_LIMIT_TEXT

if TYPE_CHECKING:
    from scratchprobe.sandbox import RunResult
    from scratchprobe.trace.learn import TraceOutcome
    from scratchprobe.verify import Verification


def _status(run: RunResult) -> str:
    if run.output_cut:
        return f"stopped: output over {OUTPUT_LIMIT_TEXT}"
    if run.timed_out:
        return "timed out (stopped)"
    if run.exec_error is not None:
        return f"could not start: {run.exec_error}"
    return f"exit {run.exit_status}"


def _stream(name: str, data: bytes, cut: bool = False) -> list[str]:
    if not data:
        return [f"--- {name}: empty"]
    text = data.decode(errors="replace")
    if cut:
        return [f"--- {name} (output cut at {OUTPUT_LIMIT_TEXT}):", text.rstrip("\n")]
    return [f"--- {name}:", text.rstrip("\n")]


def render_text(result: Verification) -> str:
    """The report of one verify run, in words."""
    rootfs = result.rootfs
    how = result.sandbox.value
    if result.emulator is not None:
        how += f" + qemu-{result.emulator.qemu_name}-static"
    lines = [
        f"verify {result.label} ({result.arch}): {rootfs.file_count} files, "
        f"{rootfs.directory_count} directories, {rootfs.symlink_count} symlinks, "
        f"{rootfs.total_bytes} bytes; sandbox: {how}",
        f"image run: {_status(result.image_run)}",
        *_stream("stdout", result.image_run.stdout, result.image_run.stdout_cut),
        *_stream("stderr", result.image_run.stderr, result.image_run.stderr_cut),
    ]
    builder, comparison = result.builder_run, result.comparison
    if builder is not None and comparison is not None:
        lines.append(f"builder run: {_status(builder)}")
        if not comparison.stdout:
            lines += _stream("builder stdout", builder.stdout, builder.stdout_cut)
        if not comparison.stderr:
            lines += _stream("builder stderr", builder.stderr, builder.stderr_cut)
        parts = [
            f"{name} {'matches' if same else 'differs'}"
            for name, same in (
                ("exit status", comparison.exit_status),
                ("stdout", comparison.stdout),
                ("stderr", comparison.stderr),
            )
        ]
        lines.append(f"comparison: {', '.join(parts)}")
    verdict = "PASS" if result.passed else "FAIL"
    if result.passed:
        reason = "ran in its scratch root filesystem and exited 0"
        if comparison is not None:
            reason += ", like the builder run"
    elif not result.image_run.succeeded:
        reason = "did not exit 0 in its scratch root filesystem"
    else:
        reason = "behaved differently from the builder run"
    lines.append(f"{verdict}: {result.label} {reason}")
    return "\n".join(lines) + "\n"


def render(result: Verification, outcome: TraceOutcome | None, fmt: VerifyFormat) -> str:
    """`verify`'s output in `fmt`: the last run (`result`), then with --trace every round
    (`outcome`, whose last round is `result`)."""
    if fmt is VerifyFormat.JSON:
        from scratchprobe.render.trace import render_json, render_verification_json

        return render_json(outcome) if outcome is not None else render_verification_json(result)
    text = render_text(result)
    if outcome is not None:
        from scratchprobe.render.trace import render_text as trace_text

        text += trace_text(outcome)
    return text
