"""`scratchprobe verify`: run the binary inside its own root filesystem, in a sandbox."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from scratchprobe.cli.options import (
    error,
    inspect_options,
    library_path_option,
    needs_options,
    root_option,
)
from scratchprobe.errors import ScratchprobeError

if TYPE_CHECKING:
    from scratchprobe.sandbox import RunResult
    from scratchprobe.verify import Verification


def _parse_env(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--env")
        pairs.append((key, rest))
    return tuple(pairs)


def _status(run: RunResult) -> str:
    if run.timed_out:
        return "timed out (stopped)"
    if run.exec_error is not None:
        return f"could not start: {run.exec_error}"
    return f"exit {run.exit_status}"


def _stream(name: str, data: bytes) -> list[str]:
    if not data:
        return [f"--- {name}: empty"]
    text = data.decode(errors="replace")
    return [f"--- {name}:", text.rstrip("\n")]


def _render(result: Verification) -> str:
    rootfs = result.rootfs
    how = result.sandbox.value
    if result.emulator is not None:
        how += f" + qemu-{result.emulator.qemu_name}-static"
    lines = [
        f"verify {result.label} ({result.arch}): {rootfs.file_count} files, "
        f"{rootfs.directory_count} directories, {rootfs.symlink_count} symlinks, "
        f"{rootfs.total_bytes} bytes; sandbox: {how}",
        f"image run: {_status(result.image_run)}",
        *_stream("stdout", result.image_run.stdout),
        *_stream("stderr", result.image_run.stderr),
    ]
    builder, comparison = result.builder_run, result.comparison
    if builder is not None and comparison is not None:
        lines.append(f"builder run: {_status(builder)}")
        if not comparison.stdout:
            lines += _stream("builder stdout", builder.stdout)
        if not comparison.stderr:
            lines += _stream("builder stderr", builder.stderr)
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
@root_option
@library_path_option
@needs_options
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
@click.option("--no-network", is_flag=True, help="Run without network (a new empty namespace).")
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "bwrap", "unshare"]),
    default="auto",
    show_default=True,
    help="auto: bwrap where present, else unshare + chroot.",
)
def command(
    binary: str,
    args: tuple[str, ...],
    root: str,
    library_path: tuple[str, ...],
    compare: bool,
    timeout: float,
    env_values: tuple[str, ...],
    no_network: bool,
    sandbox: str,
    add_host: tuple[str, ...],
    **needs: Any,
) -> None:
    """Write BINARY's root filesystem to a temporary place and run it there, with nothing
    else visible (bubblewrap, else unshare + chroot; QEMU for foreign architectures).

    Put the program's arguments after `--`. Exit 0 when it ran and exited 0 (and, with
    --compare, behaved like the builder run), 1 when not, 2 for usage errors, unusable input
    or no way to run it here.
    """
    from scratchprobe.sandbox import SandboxKind
    from scratchprobe.verify import VerifyOptions, verify

    options = VerifyOptions(
        root=root,
        library_path=library_path,
        args=args,
        env=_parse_env(env_values),
        compare=compare,
        timeout=timeout,
        network=not no_network,
        sandbox=None if sandbox == "auto" else SandboxKind(sandbox),
        plan=inspect_options(root, library_path, **needs),
        add_hosts=_parse_hosts(add_host),
    )
    try:
        result = verify(binary, options)
    except ScratchprobeError as exc:
        error(str(exc))
        sys.exit(2)
    except OSError as exc:
        error(f"{binary}: {exc.strerror or exc}")
        sys.exit(2)
    for warning in result.warnings:
        click.echo(f"scratchprobe: warning: {warning}", err=True)
    if result.unresolved:
        click.echo(
            f"scratchprobe: warning: {result.label}: some library is unresolved "
            "(see `scratchprobe inspect`)",
            err=True,
        )
    click.echo(_render(result), nl=False)
    sys.exit(result.exit_code)
