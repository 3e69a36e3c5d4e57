"""`verify --probe CMD`: exercise a program while it runs in its image, the way SlimToolkit's
HTTP probe exercises a server.

A scratch image has no shell to run a test command in, so the probe runs on this machine,
outside the sandbox, while the program runs inside it (traced with --trace); the sandbox
shares this machine's network unless --no-network, so a probe reaches a server on
127.0.0.1. The probe must wait for the program to be ready (retry its connection). When the
probe ends, the program is stopped; the run's result is the probe's: exit 0 passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading

from scratchprobe.errors import UsageError
from scratchprobe.sandbox import RunResult, SandboxKind, SandboxSpec, run_sandboxed
from scratchprobe.verify import Runner

_STOP_GRACE = 10.0


def probe_runner(probe: tuple[str, ...]) -> Runner:
    def run(
        spec: SandboxSpec, kind: SandboxKind, timeout: float | None, tracer: tuple[str, ...]
    ) -> RunResult:
        if kind is not SandboxKind.BWRAP:
            raise UsageError("--probe needs the bubblewrap sandbox (--sandbox bwrap)")
        # The program runs in the same hardened sandbox as any image run, in a thread of
        # ours; the probe runs here meanwhile, and when it ends the program is stopped.
        runner: list[subprocess.Popen[bytes]] = []
        ready = threading.Event()
        outcome: list[RunResult | BaseException] = []

        def started(proc: subprocess.Popen[bytes]) -> None:
            runner.append(proc)
            ready.set()

        def sandboxed() -> None:
            try:
                outcome.append(run_sandboxed(spec, kind, None, tracer, started))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=sandboxed, daemon=True)
        thread.start()
        ready.wait()
        try:
            probed = _run_probe(probe, timeout)
        finally:
            if runner:
                _stop(runner[0], bool(tracer))
            thread.join()
        program = outcome[0] if outcome else None
        if isinstance(program, BaseException):
            raise program
        program_stderr = program.stderr if program is not None else b""
        # The run is the program's (its argv is what the trace attributes syscalls to);
        # its result is the probe's.
        return RunResult(
            spec.argv,
            probed.exit_status,
            probed.stdout,
            probed.stderr + program_stderr,
            probed.timed_out,
            probed.exec_error,
        )

    return run


def _run_probe(probe: tuple[str, ...], timeout: float | None) -> RunResult:
    try:
        proc = subprocess.run(
            probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return RunResult(probe, None, exc.stdout or b"", exc.stderr or b"", timed_out=True)
    except OSError as exc:
        return RunResult(probe, None, b"", b"", exec_error=f"probe: {exc.strerror or exc}")
    code = proc.returncode
    return RunResult(probe, 128 - code if code < 0 else code, proc.stdout, proc.stderr)


def _stop(program: subprocess.Popen[bytes], traced: bool) -> None:
    if program.poll() is not None:
        return
    # With a tracer, stop its child (bwrap) only: strace then sees its tracees exit and
    # writes the whole trace out; bwrap's --die-with-parent takes the sandbox down with it.
    targets = _children(program.pid) if traced else []
    if targets:
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    else:
        os.killpg(program.pid, signal.SIGTERM)
    try:
        program.wait(_STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(program.pid, signal.SIGKILL)
        program.wait()


def _children(pid: int) -> list[int]:
    """Direct children (proc(5), /proc/PID/task/TID/children)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(word) for word in handle.read().split()]
    except (OSError, ValueError):
        return []
