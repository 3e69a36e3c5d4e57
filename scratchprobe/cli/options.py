"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import inspect
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from scratchprobe.needs.model import ContainerRuntime, NeedKind

if TYPE_CHECKING:
    from scratchprobe.model import InspectOptions
    from scratchprobe.trace.includes import Include

F = TypeVar("F", bound=Callable[..., object])


def error(message: str) -> None:
    """One line on stderr, the only way any command reports an error. A name quoted in the
    message is written visibly escaped (docs/output-encoding.md), so a newline or an ESC
    sequence in a file name can never forge another line."""
    from scratchprobe.render.names import visible_text

    click.echo(f"scratchprobe: error: {visible_text(message)}", err=True)


def warning(message: str) -> None:
    """One line on stderr for a problem that does not change the exit status."""
    click.echo(f"scratchprobe: warning: {message}", err=True)


def note(message: str) -> None:
    """One line on stderr that changes nothing in the result (what a walk skipped)."""
    click.echo(f"scratchprobe: note: {message}", err=True)


def color_wanted(output: str | None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything but the empty
    string (https://no-color.org); a report written with --output is never coloured."""
    return output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def output_option(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        "output",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Write the report to FILE instead of standard output (errors stay on stderr).",
    )(func)


def emit(text: str, output: str | None) -> None:
    """The report on stdout, or in the --output file; a file that cannot be written is a
    usage error (exit 2) like any other unusable argument."""
    if output is None:
        # color=True: the report is printed exactly as rendered; click would otherwise strip
        # what looks like an ANSI sequence when stdout is not a terminal.
        click.echo(text, nl=False, color=True)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        error(f"{output}: cannot write the report: {exc.strerror or exc}")
        sys.exit(2)


@contextmanager
def batch_progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while a batch is analysed, only when stderr is a terminal
    (a log or a pipe gets nothing); it is erased when the batch is done. NO_COLOR drops its
    colours, not the bar (rich reads NO_COLOR itself)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    # No refresh thread (auto_refresh=False): the batch forks its workers, and a fork while
    # another thread holds the console's lock would leave the child stuck on it.
    bar = Progress(
        TextColumn("inspecting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    )
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if total < 2:
            return  # one file is not a batch
        if not task:
            bar.start()
            task.append(bar.add_task("inspect", total=total))
        bar.update(task[0], completed=done, total=total, refresh=True)

    try:
        yield update
    finally:
        if task:
            bar.stop()


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
            "layers are the root and its entry point the binary.",
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
        if "includes" in kwargs and entry is not None:
            # The entry point's script and file arguments, each with its reason.
            kwargs["includes"] = (*kwargs["includes"], *entry.includes)
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


_LOCALE_NAME = re.compile(r"[A-Za-z0-9_]{1,32}([.][A-Za-z0-9_-]{1,32})?(@[A-Za-z0-9_]{1,32})?")


def _check_locale(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A locale name goes into ENV lines and names a directory: only locale names pass."""
    if value is not None and not _LOCALE_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a locale name like C.UTF-8 or de_DE.UTF-8")
    return value


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
            metavar="KIND",
            help="Include this kind of runtime need whatever its confidence. Repeatable. "
            "KIND: " + ", ".join(_NEED_KINDS) + ".",
        ),
        click.option(
            "--without",
            "without_kinds",
            multiple=True,
            type=click.Choice(_NEED_KINDS),
            metavar="KIND",
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
            help="Write minimal /etc/passwd and /etc/group (root, nobody, nonroot 65532 and "
            "the --user): the default.",
        ),
        click.option(
            "--copy-etc",
            is_flag=True,
            help="Copy the builder's /etc/passwd and /etc/group instead of generating "
            "minimal ones.",
        ),
        click.option(
            "--locale",
            "locale",
            metavar="NAME",
            callback=_check_locale,
            help="The locale a program calling setlocale gets (LANG, LC_ALL); default C.UTF-8.",
        ),
        click.option(
            "--runtime",
            "runtime",
            type=click.Choice([r.value for r in ContainerRuntime]),
            default=ContainerRuntime.DOCKER.value,
            show_default=True,
            help="What runs the image: docker (also podman, kubernetes) mounts /etc/hosts and "
            "/etc/resolv.conf; bare (runc bundle, nspawn, chroot) mounts nothing, so the image "
            "gets an /etc/hosts with localhost.",
        ),
        click.option(
            "--include",
            "includes",
            multiple=True,
            metavar="PATH|GLOB[:DEST]",
            help="Add this file, directory (whole) or glob inside --root to the image, at DEST "
            "if given. Repeatable.",
        ),
        click.option(
            "--include-from",
            "include_from",
            multiple=True,
            metavar="FILE",
            help="Add the entries of this include file (TOML written by verify --learn, or one "
            "--include spec per line). Repeatable.",
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
    locale: str | None = None,
    runtime: str = ContainerRuntime.DOCKER.value,
    copy_etc: bool = False,
    includes: tuple[str | Include, ...] = (),
    include_from: tuple[str, ...] = (),
) -> InspectOptions:
    """The core's options from the command line's (shared by inspect, check, rootfs, verify)."""
    from scratchprobe.model import InspectOptions
    from scratchprobe.needs.choices import choice_problems
    from scratchprobe.needs.context import NeedsOptions

    if generate_etc and copy_etc:
        # click reports it like any bad option (exit 2), whichever command called.
        raise click.UsageError("--generate-etc and --copy-etc contradict each other")
    needs = NeedsOptions(
        tz=zones,
        user=user,
        generate_etc=generate_etc,
        locale=locale,
        runtime=ContainerRuntime(runtime),
        copy_etc=copy_etc,
    )
    # A zone or user the root lacks is a usage error (exit 2), one line each, before any
    # planning: the image would quietly run in UTC or not start at all.
    problems = choice_problems(root, needs)
    for problem in problems:
        error(problem)
    if problems:
        sys.exit(2)
    return InspectOptions(
        includes=include_entries(includes, include_from),
        root=root,
        library_path=library_path,
        runtime_needs=not no_runtime,
        strict=strict,
        with_kinds=frozenset(NeedKind(k) for k in with_kinds),
        without_kinds=frozenset(NeedKind(k) for k in without_kinds),
        needs=needs,
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
    locale: str | None = None,
    runtime: str = ContainerRuntime.DOCKER.value,
    copy_etc: bool = False,
    includes: tuple[str | Include, ...] = (),
    include_from: tuple[str, ...] = (),
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
    args += ["--locale", locale] if locale else []
    # Only a non-default runtime is written, so today's stages stay byte-identical.
    args += ["--runtime", runtime] if runtime != ContainerRuntime.DOCKER.value else []
    args += ["--copy-etc"] if copy_etc else []
    # The include files are not in the builder stage: each entry is passed as --include.
    for entry in include_entries(includes, include_from):
        args += ["--include", entry.spec]
    return tuple(args)


def include_entries(
    includes: tuple[str | Include, ...] = (), include_from: tuple[str, ...] = ()
) -> tuple[Include, ...]:
    """--include specs, then the entries of each --include-from file. Raises UsageError for
    a bad spec and InputError for an unreadable or malformed file."""
    from scratchprobe.trace.includes import Include, load_file, parse_spec

    # An Include already made (--from-image's entry point files) keeps its own reason.
    entries = [spec if isinstance(spec, Include) else parse_spec(spec) for spec in includes]
    for path in include_from:
        entries += load_file(path)
    return tuple(entries)
