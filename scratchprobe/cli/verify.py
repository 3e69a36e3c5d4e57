"""`scratchprobe verify`: run the binary inside its own root filesystem, in a sandbox."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import click

from scratchprobe.cli.options import (
    PlanningFlags,
    exits_on_error,
    fail,
    inspect_options,
    planning_options,
    warning,
)
from scratchprobe.render.formats import VerifyFormat, names

if TYPE_CHECKING:
    from scratchprobe.model import InspectOptions


def _parse_env(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--env")
        pairs.append((key, rest))
    return tuple(pairs)


def _terminated(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def _parse_hosts(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        name, sep, address = value.partition(":")
        if not sep or not name or not address:
            raise click.BadParameter(f"{value!r} is not NAME:IP", param_hint="--add-host")
        out.append((name, address))
    return tuple(out)


@click.command("verify")
@click.argument("binary", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@planning_options()
@click.option("--compare", is_flag=True, help="Also run it in the builder and compare.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Stop each run after S seconds.",
)
@click.option(
    "--env",
    "env_values",
    multiple=True,
    metavar="K=V",
    help="Set K=V for the program; the environment is otherwise empty. Repeatable.",
)
@click.option(
    "--add-host",
    multiple=True,
    metavar="NAME:IP",
    help="Add a line to the /etc/hosts the run gets, as `docker run --add-host`. Repeatable.",
)
@click.option(
    "--network",
    type=click.Choice(["loopback", "host"]),
    default="loopback",
    show_default=True,
    help="loopback: a network of its own with only loopback; host: the host's network.",
)
@click.option(
    "--no-network",
    is_flag=True,
    help="A network of its own with only loopback (the default; kept for scripts).",
)
@click.option(
    "--writable",
    multiple=True,
    metavar="PATH",
    help="Make PATH (in the image) writable; the root is otherwise read-only but /tmp. Repeatable.",
)
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "bwrap", "unshare"]),
    default="auto",
    show_default=True,
    help="bwrap, the only sandbox (auto names it too); unshare is refused: a chroot can be "
    "escaped.",
)
@click.option(
    "--trace",
    is_flag=True,
    help="Run the image run under strace and report what it tried and the image lacks "
    "(misses), the planned files it opened, those it did not, and runtime-provided paths.",
)
@click.option(
    "--learn",
    "learn_file",
    metavar="FILE",
    help="With --trace: add include entries covering the misses to FILE (TOML, for "
    "--include-from; its earlier entries are used and kept).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="With --trace: repeat run + learn until the run passes (with --compare: matches "
    "the builder run), nothing new is learned, or N rounds.",
)
@click.option(
    "--probe",
    "probe",
    metavar="CMD",
    help="Run CMD on this machine while the program runs in its image (a test client for a "
    "server: it must retry until the program is ready); the program is stopped when CMD "
    "ends, and the run passes when CMD exits 0. Not with --compare.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(names(VerifyFormat)),
    default="text",
    show_default=True,
    help="text: the report; json: the runs (and with --trace, every round's findings).",
)
def command(
    binary: str,
    args: tuple[str, ...],
    planning: PlanningFlags,
    compare: bool,
    timeout: float,
    env_values: tuple[str, ...],
    network: str,
    no_network: bool,
    writable: tuple[str, ...],
    sandbox: str,
    add_host: tuple[str, ...],
    trace: bool,
    learn_file: str | None,
    rounds: int,
    probe: str | None,
    output_format: str,
) -> None:
    """Write BINARY's root filesystem to a temporary place and run it there, with nothing
    of the host visible (bubblewrap: no capabilities, read-only root, own namespaces; QEMU
    for foreign architectures).

    Put the program's arguments after `--`. Exit 0 when it ran and exited 0 (and, with
    --compare, behaved like the builder run), 1 when not, 2 for usage errors, unusable input
    or no way to run it here.
    """
    from scratchprobe.render.verify import render
    from scratchprobe.sandbox import SandboxKind
    from scratchprobe.verify import VerifyOptions, verify

    if no_network and network == "host":
        fail("--no-network and --network host contradict each other")
    for path in writable:
        if not path.startswith("/") or "\0" in path:
            fail(f"--writable {path}: not an absolute path inside the image")
    if (learn_file is not None or rounds > 1) and not trace:
        fail("--learn and --rounds need --trace")
    if probe is not None and compare:
        fail("--probe cannot be combined with --compare (the builder run has no probe)")
    if probe is not None and network != "host":
        fail(
            "--probe needs --network host: the probe reaches the program over this "
            "machine's loopback"
        )
    try:
        probe_argv = tuple(shlex.split(probe)) if probe is not None else ()
    except ValueError as exc:
        fail(f"--probe: {exc}")
    if probe is not None and not probe_argv:
        fail("--probe: an empty command")
    # A SIGTERM (a CI job cancelled) unwinds like ^C, so the temporary rootfs is removed.
    previous = signal.signal(signal.SIGTERM, _terminated)
    outcome = None
    try:
        with exits_on_error(lambda exc: f"{exc.filename or binary}: {exc.strerror or exc}"):
            plan = inspect_options(planning)
            binary, args, plan = _follow_shebang(binary, args, plan)
            options = VerifyOptions(
                root=planning.root,
                library_path=planning.library_path,
                args=args,
                env=_parse_env(env_values),
                compare=compare,
                timeout=timeout,
                network=network == "host",
                writable=tuple(dict.fromkeys(os.path.normpath(path) for path in writable)),
                sandbox=None if sandbox == "auto" else SandboxKind(sandbox),
                plan=plan,
                add_hosts=_parse_hosts(add_host),
            )
            if probe_argv:
                from scratchprobe.trace.probe import probe_runner

                options = replace(options, runner=probe_runner(probe_argv))
            if trace:
                from scratchprobe.trace.learn import trace_verify

                outcome = trace_verify(binary, options, rounds, learn_file)
                result = outcome.last.verification
            else:
                result = verify(binary, options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for message in result.warnings:
        warning(message)
    if result.unresolved:
        warning(f"{result.label}: some library is unresolved (see `scratchprobe inspect`)")
    click.echo(render(result, outcome, VerifyFormat(output_format)), nl=False)
    sys.exit(result.exit_code)


def _follow_shebang(
    binary: str, args: tuple[str, ...], plan: InspectOptions
) -> tuple[str, tuple[str, ...], InspectOptions]:
    """A `#!` script runs as its interpreter with the script as argument (execve(2),
    "Interpreter scripts"): verify that interpreter, with the script in the image."""
    from scratchprobe.trace.shebang import follow

    followed = follow(binary, plan.root)
    if followed is None:
        return binary, args, plan
    interpreter, interpreter_args, script = followed
    return (
        interpreter,
        (*interpreter_args, script.dest or script.source, *args),
        replace(plan, includes=(*plan.includes, script)),
    )
