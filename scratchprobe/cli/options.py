"""Options and helpers shared by several commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from scratchprobe.needs.model import NeedKind

if TYPE_CHECKING:
    from scratchprobe.inspect import InspectOptions

F = TypeVar("F", bound=Callable[..., object])


def error(message: str) -> None:
    """One line on stderr, the only way any command reports an error. A name quoted in the
    message is written visibly escaped (docs/output-encoding.md), so a newline or an ESC
    sequence in a file name can never forge another line."""
    from scratchprobe.render.names import visible_text

    click.echo(f"scratchprobe: error: {visible_text(message)}", err=True)


def root_option(func: F) -> F:
    return click.option(
        "--root",
        default="/",
        show_default=True,
        type=click.Path(file_okay=False),
        help="The builder's filesystem: every library is resolved inside it, never on the host.",
    )(func)


def library_path_option(func: F) -> F:
    return click.option(
        "--library-path",
        "library_path",
        multiple=True,
        metavar="DIR",
        help="Search DIR like LD_LIBRARY_PATH (inside --root). Repeatable.",
    )(func)


_NEED_KINDS = [kind.value for kind in NeedKind]


# Matched with fullmatch: `$` would also match before a trailing newline ("root\n").
_USER_SPEC = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?")


def _check_user(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A user spec goes into a USER line and /etc/passwd: only names and numbers pass."""
    if value is not None and not _USER_SPEC.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not NAME, UID, NAME:GROUP or UID:GID")
    return value


def needs_options(func: F) -> F:
    """Options that choose which runtime needs go into the plan (every planning command)."""
    options = [
        click.option(
            "--no-runtime",
            "no_runtime",
            is_flag=True,
            help="Only the loader and libraries: skip runtime files (CA bundle, zoneinfo, ...).",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Also include runtime needs of 'possible' confidence.",
        ),
        click.option(
            "--with",
            "with_kinds",
            multiple=True,
            type=click.Choice(_NEED_KINDS),
            help="Include this kind of runtime need whatever its confidence. Repeatable.",
        ),
        click.option(
            "--without",
            "without_kinds",
            multiple=True,
            type=click.Choice(_NEED_KINDS),
            help="Leave this kind of runtime need out of the plan. Repeatable.",
        ),
        click.option(
            "--tz",
            "zones",
            multiple=True,
            metavar="ZONE",
            help="Copy only these zones (e.g. Europe/Paris), set TZ and /etc/localtime.",
        ),
        click.option(
            "--user",
            metavar="NAME|UID[:GID]",
            callback=_check_user,
            help="Run as this user (USER line); its passwd entry must exist.",
        ),
        click.option(
            "--generate-etc",
            is_flag=True,
            help="Write minimal /etc/passwd and /etc/group instead of copying the builder's.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def inspect_options(
    root: str,
    library_path: tuple[str, ...],
    no_runtime: bool = False,
    strict: bool = False,
    with_kinds: tuple[str, ...] = (),
    without_kinds: tuple[str, ...] = (),
    zones: tuple[str, ...] = (),
    user: str | None = None,
    generate_etc: bool = False,
) -> InspectOptions:
    """The core's options from the command line's (shared by inspect, check, rootfs, verify)."""
    from scratchprobe.inspect import InspectOptions
    from scratchprobe.needs.context import NeedsOptions

    return InspectOptions(
        root=root,
        library_path=library_path,
        runtime_needs=not no_runtime,
        strict=strict,
        with_kinds=frozenset(NeedKind(k) for k in with_kinds),
        without_kinds=frozenset(NeedKind(k) for k in without_kinds),
        needs=NeedsOptions(tz=zones, user=user, generate_etc=generate_etc),
    )


def forwarded_args(
    library_path: tuple[str, ...],
    no_runtime: bool = False,
    strict: bool = False,
    with_kinds: tuple[str, ...] = (),
    without_kinds: tuple[str, ...] = (),
    zones: tuple[str, ...] = (),
    user: str | None = None,
    generate_etc: bool = False,
) -> tuple[str, ...]:
    """The planning options again as command-line words, for a `scratchprobe rootfs` run in
    a Dockerfile stage that must plan exactly what this run planned."""
    args: list[str] = []
    for directory in library_path:
        args += ["--library-path", directory]
    args += ["--no-runtime"] if no_runtime else []
    args += ["--strict"] if strict else []
    for kind in with_kinds:
        args += ["--with", kind]
    for kind in without_kinds:
        args += ["--without", kind]
    for zone in zones:
        args += ["--tz", zone]
    args += ["--user", user] if user else []
    args += ["--generate-etc"] if generate_etc else []
    return tuple(args)
