"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import inspect
import re
import shutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from scratchprobe.needs.model import NeedKind

if TYPE_CHECKING:
    from scratchprobe.inspect import InspectOptions

F = TypeVar("F", bound=Callable[..., object])


def error(message: str) -> None:
    """One line on stderr, the only way any command reports an error."""
    click.echo(f"scratchprobe: error: {message}", err=True)


def root_option(func: F) -> F:
    func = from_image_options(func)
    return click.option(
        "--root",
        default="/",
        show_default=True,
        type=click.Path(file_okay=False),
        help="The builder's filesystem: every library is resolved inside it, never on the host.",
    )(func)


_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


def _check_platform(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _PLATFORM.match(value):
        raise click.BadParameter(f"{value!r} is not OS/ARCH[/VARIANT] (linux/arm64)")
    return value


def from_image_options(func: F) -> F:
    """`--from-image REF`, `--platform`, `--binary`: an existing image's layers as the
    builder's root, its entry point as the binary (docs/slim.md).

    The command itself is unchanged: this wrapper unpacks the image into a private
    temporary root, passes it as `root` (or `roots`), fills `binaries` (or `binary` and
    `args`) from the entry point when none are given, and removes the root afterwards. A
    command that takes a `source` parameter also gets the opened image."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        reference = kwargs.pop("from_image")
        platform = kwargs.pop("platform")
        picked = kwargs.pop("binary_paths")
        if reference is None:
            if platform is not None or picked:
                error("--platform and --binary go with --from-image")
                sys.exit(2)
            _require_binaries(kwargs)
            return func(**kwargs)
        return _with_image(func, kwargs, reference, platform, picked)

    options = [
        click.option(
            "--from-image",
            "from_image",
            metavar="REF",
            help="Use an existing image as the builder: an OCI layout directory, an OCI "
            "archive, a docker-archive, or a local image by name (skopeo or podman). Its "
            "layers are the root and its entry point the binary (docs/slim.md).",
        ),
        click.option(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            callback=_check_platform,
            help="With --from-image: the image of a multi-platform index to use.",
        ),
        click.option(
            "--binary",
            "binary_paths",
            multiple=True,
            metavar="PATH",
            help="With --from-image: analyse this file of the image instead of the entry "
            "point (looked up in the image's PATH without '/'). Repeatable.",
        ),
    ]
    result: Callable[..., Any] = wrapper
    for option in reversed(options):
        result = option(result)
    return cast(F, result)


def _require_binaries(kwargs: dict[str, Any]) -> None:
    """The BINARY argument is optional only with --from-image."""
    for name in ("binaries", "binary"):
        if name in kwargs and not kwargs[name]:
            ctx = click.get_current_context()
            param = next(p for p in ctx.command.params if p.name == name)
            raise click.MissingParameter(ctx=ctx, param=param)


def _with_image(
    func: Callable[..., Any],
    kwargs: dict[str, Any],
    reference: str,
    platform: str | None,
    picked: tuple[str, ...],
) -> Any:
    from scratchprobe.root import Root
    from scratchprobe.source.entry import checked_binaries, resolve_entry
    from scratchprobe.source.reference import open_image
    from scratchprobe.source.unpack import ImageSourceError

    if kwargs.get("root", "/") != "/" or kwargs.get("roots"):
        error("--from-image REF is the builder's root: give it or --root, not both")
        sys.exit(2)
    try:
        source = open_image(reference, platform)
    except ImageSourceError as exc:
        error(str(exc))
        sys.exit(2)
    except OSError as exc:
        error(f"{reference}: cannot read: {exc.strerror or exc}")
        sys.exit(2)
    try:
        root = Root(source.root)
        config = source.config
        try:
            entry = None if picked else resolve_entry(root, config)
            chosen = checked_binaries(root, picked, config) if picked else None
        except ImageSourceError as exc:
            error(f"{reference}: {exc}")
            sys.exit(2)
        for warning in entry.warnings if entry is not None else ():
            click.echo(f"scratchprobe: warning: {reference}: {warning}", err=True)
        binaries = chosen if chosen is not None else entry.binaries if entry else ()
        if "roots" in kwargs:
            kwargs["roots"] = (source.root,)
        else:
            kwargs["root"] = source.root
        if "binaries" in kwargs:
            kwargs["binaries"] = kwargs["binaries"] or binaries
        if "binary" in kwargs:
            # verify: every positional word is an argument of the image's program, whose
            # default arguments are the entry point's.
            words = ((kwargs["binary"],) if kwargs["binary"] else ()) + kwargs["args"]
            kwargs["binary"] = binaries[0]
            if words:
                kwargs["args"] = words
            else:
                kwargs["args"] = entry.exec_argv[1:] if entry is not None else ()
        if "env_values" in kwargs:
            image_env = tuple(f"{key}={value}" for key, value in config.env)
            kwargs["env_values"] = image_env + kwargs["env_values"]
        if kwargs.get("user") is None and config.user and _USER_SPEC.match(config.user):
            kwargs["user"] = config.user
        if "source" in inspect.signature(func).parameters:
            kwargs["source"] = source
        return func(**kwargs)
    finally:
        shutil.rmtree(source.root, ignore_errors=True)


def library_path_option(func: F) -> F:
    return click.option(
        "--library-path",
        "library_path",
        multiple=True,
        metavar="DIR",
        help="Search DIR like LD_LIBRARY_PATH (inside --root). Repeatable.",
    )(func)


_NEED_KINDS = [kind.value for kind in NeedKind]


_USER_SPEC = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$")


def _check_user(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A user spec goes into a USER line and /etc/passwd: only names and numbers pass."""
    if value is not None and not _USER_SPEC.match(value):
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
