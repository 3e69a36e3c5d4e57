"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from scratchprobe.errors import ScratchprobeError
from scratchprobe.needs.model import ContainerRuntime, NeedKind

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from scratchprobe.model import InspectOptions
    from scratchprobe.trace.includes import Include

F = TypeVar("F", bound=Callable[..., object])


def error(message: str) -> None:
    """One line on stderr, the only way any command reports an error. A name quoted in the
    message is written visibly escaped (docs/output-encoding.md), so a newline or an ESC
    sequence in a file name can never forge another line."""
    from scratchprobe.render.names import visible_text

    click.echo(f"scratchprobe: error: {visible_text(message)}", err=True)


def fail(message: str) -> NoReturn:
    """One error line, then exit 2: a usage error or an unusable input (README, "Exit
    codes")."""
    error(message)
    sys.exit(2)


@contextmanager
def exits_on_error(
    os_error: Callable[[OSError], str] | None = None, prefix: str = ""
) -> Iterator[None]:
    """The one place an error raised by the core becomes an exit code (README, "Exit
    codes"): a ScratchprobeError is unusable input or options, exit 2 with its message as
    one line (after `prefix`); so is an OSError where the command says what it was doing
    (`os_error` words the line, see `cannot`). Any other exception is a bug and keeps its
    traceback."""
    try:
        yield
    except ScratchprobeError as exc:
        fail(f"{prefix}{exc}")
    except OSError as exc:
        if os_error is None:
            raise
        fail(os_error(exc))


def cannot(path: str, doing: str) -> Callable[[OSError], str]:
    """`PATH: DOING: the system's reason`, the line of an OSError for `exits_on_error`."""
    return lambda exc: f"{path}: {doing}: {exc.strerror or exc}"


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
    with (
        exits_on_error(cannot(output, "cannot write the report")),
        open(output, "w", encoding="utf-8") as handle,
    ):
        handle.write(text)


@contextmanager
def batch_progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while a batch is analysed, only when stderr is a terminal
    (a log or a pipe gets nothing); it is erased when the batch is done. NO_COLOR drops its
    colours, not the bar (rich reads NO_COLOR itself)."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: list[Progress] = []
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if total < 2:
            return  # one file is not a batch, and does not pay for importing rich
        if not bar:
            bar.append(_progress_bar())
            bar[0].start()
            task.append(bar[0].add_task("inspect", total=total))
        bar[0].update(task[0], completed=done, total=total, refresh=True)

    try:
        yield update
    finally:
        if bar:
            bar[0].stop()


def _progress_bar() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    # No refresh thread (auto_refresh=False): the batch forks its workers, and a fork while
    # another thread holds the console's lock would leave the child stuck on it.
    return Progress(
        TextColumn("inspecting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    )


_NEED_KINDS = [kind.value for kind in NeedKind]


@functools.cache
def _platform() -> re.Pattern[str]:
    """Compiled on first use: only a --platform is checked with it."""
    return re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


@functools.cache
def _locale_name() -> re.Pattern[str]:
    """Compiled on first use: only a --locale is checked with it."""
    return re.compile(r"[A-Za-z0-9_]{1,32}([.][A-Za-z0-9_-]{1,32})?(@[A-Za-z0-9_]{1,32})?")


@functools.cache
def _user_spec() -> re.Pattern[str]:
    """Compiled on first use: only a --user, or a source image's user, is checked with it."""
    # Matched with fullmatch: `$` would also match before a trailing newline ("root\n").
    return re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?")


@dataclass(frozen=True)
class PlanningFlags:
    """The planning flags of every planning command (inspect, check, rootfs, verify, image)
    as given on the command line; `planning_options` builds it, `inspect_options` turns it
    into the core's options and `forwarded_args` back into words."""

    root: str = "/"
    """--root; `image` takes its own repeatable --root and plans once per root."""
    library_path: tuple[str, ...] = ()
    runtime_needs: bool = True
    """Off with --no-runtime: the loader and libraries only."""
    strict: bool = False
    with_kinds: tuple[NeedKind, ...] = ()
    """In the order given, so that a forwarded command line is the same words."""
    without_kinds: tuple[NeedKind, ...] = ()
    zones: tuple[str, ...] = ()
    user: str | None = None
    generate_etc: bool = False
    copy_etc: bool = False
    locale: str | None = None
    runtime: ContainerRuntime = ContainerRuntime.DOCKER
    includes: tuple[str | Include, ...] = ()
    """--include specs, then (--from-image) the entry point's files, each with its reason."""
    include_from: tuple[str, ...] = ()


def _check_platform(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _platform().match(value):
        raise click.BadParameter(f"{value!r} is not OS/ARCH[/VARIANT] (linux/arm64)")
    return value


def _check_locale(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A locale name goes into ENV lines and names a directory: only locale names pass."""
    if value is not None and not _locale_name().fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a locale name like C.UTF-8 or de_DE.UTF-8")
    return value


def _check_user(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A user spec goes into a USER line and /etc/passwd: only names and numbers pass."""
    if value is not None and not _user_spec().fullmatch(value):
        raise click.BadParameter(f"{value!r} is not NAME, UID, NAME:GROUP or UID:GID")
    return value


_ROOT = click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The builder's filesystem: every library is resolved inside it, never on the host.",
)

# In the order --help lists them, after --root.
_OPTIONS = [
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
    click.option(
        "--library-path",
        "library_path",
        multiple=True,
        metavar="DIR",
        help="Search DIR like LD_LIBRARY_PATH (inside --root). Repeatable.",
    ),
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
        help="Copy the builder's /etc/passwd and /etc/group instead of generating minimal ones.",
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


def planning_options(*, root: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The planning options of a command (--root unless `root` is False, --from-image,
    --platform, --binary, --library-path and the runtime-needs options), passed to it as one
    `planning: PlanningFlags`.

    With `--from-image REF` an existing image's layers are the builder's root and its entry
    point the binary (docs/slim.md): the image is unpacked into a private temporary root,
    which becomes `planning.root` (or the command's `roots`); `binaries` (or `binary` and
    `args`) come from the entry point when none are given; the root is removed afterwards.
    A command that takes a `source` parameter also gets the opened image."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            reference = kwargs.pop("from_image")
            platform = kwargs.pop("platform")
            picked = kwargs.pop("binary_paths")
            planning = _flags(kwargs)
            if reference is None:
                if platform is not None or picked:
                    fail("--platform and --binary go with --from-image")
                _require_binaries(kwargs)
                return func(planning=planning, **kwargs)
            return _with_image(func, kwargs, planning, reference, platform, picked)

        result: Callable[..., Any] = wrapper
        for option in reversed([_ROOT, *_OPTIONS] if root else _OPTIONS):
            result = option(result)
        return result

    return decorate


def _flags(kwargs: dict[str, Any]) -> PlanningFlags:
    """Takes the planning options out of click's keyword arguments."""
    return PlanningFlags(
        root=kwargs.pop("root", "/"),
        library_path=kwargs.pop("library_path"),
        runtime_needs=not kwargs.pop("no_runtime"),
        strict=kwargs.pop("strict"),
        with_kinds=tuple(NeedKind(kind) for kind in kwargs.pop("with_kinds")),
        without_kinds=tuple(NeedKind(kind) for kind in kwargs.pop("without_kinds")),
        zones=kwargs.pop("zones"),
        user=kwargs.pop("user"),
        generate_etc=kwargs.pop("generate_etc"),
        copy_etc=kwargs.pop("copy_etc"),
        locale=kwargs.pop("locale"),
        runtime=ContainerRuntime(kwargs.pop("runtime")),
        includes=kwargs.pop("includes"),
        include_from=kwargs.pop("include_from"),
    )


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
    planning: PlanningFlags,
    reference: str,
    platform: str | None,
    picked: tuple[str, ...],
) -> Any:
    from scratchprobe.root import Root
    from scratchprobe.source.entry import checked_binaries, resolve_entry
    from scratchprobe.source.reference import open_image

    if planning.root != "/" or kwargs.get("roots"):
        fail("--from-image REF is the builder's root: give it or --root, not both")
    with exits_on_error(cannot(reference, "cannot read")):
        source = open_image(reference, platform)
    try:
        root = Root(source.root)
        config = source.config
        with exits_on_error(prefix=f"{reference}: "):
            entry = None if picked else resolve_entry(root, config)
            chosen = checked_binaries(root, picked, config) if picked else None
        for message in entry.warnings if entry is not None else ():
            warning(f"{reference}: {message}")
        binaries = chosen if chosen is not None else entry.binaries if entry else ()
        if "roots" in kwargs:
            kwargs["roots"] = (source.root,)
        else:
            planning = replace(planning, root=source.root)
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
        if entry is not None:
            # The entry point's script and file arguments, each with its reason.
            planning = replace(planning, includes=(*planning.includes, *entry.includes))
        if "env_values" in kwargs:
            image_env = tuple(f"{key}={value}" for key, value in config.env)
            kwargs["env_values"] = image_env + kwargs["env_values"]
        if planning.user is None and config.user and _user_spec().match(config.user):
            planning = replace(planning, user=config.user)
        if "source" in inspect.signature(func).parameters:
            kwargs["source"] = source
        return func(planning=planning, **kwargs)
    finally:
        import shutil  # only here: its archive modules cost every run otherwise

        shutil.rmtree(source.root, ignore_errors=True)


def inspect_options(planning: PlanningFlags) -> InspectOptions:
    """The core's options from the command line's (every planning command)."""
    from scratchprobe.model import InspectOptions
    from scratchprobe.needs.context import NeedsOptions

    if planning.generate_etc and planning.copy_etc:
        # click reports it like any bad option (exit 2), whichever command called.
        raise click.UsageError("--generate-etc and --copy-etc contradict each other")
    needs = NeedsOptions(
        tz=planning.zones,
        user=planning.user,
        generate_etc=planning.generate_etc,
        locale=planning.locale,
        runtime=planning.runtime,
        copy_etc=planning.copy_etc,
    )
    # A zone or user the root lacks is a usage error (exit 2), one line each, before any
    # planning: the image would quietly run in UTC or not start at all. Without a --tz, or a
    # --user looked up in copied files, there is nothing to check (needs/choices.py), and a
    # --no-runtime run never loads the detectors that module imports.
    problems: tuple[str, ...] = ()
    if needs.tz or (needs.user is not None and needs.copy_etc):
        from scratchprobe.needs.choices import choice_problems

        problems = choice_problems(planning.root, needs)
    for problem in problems:
        error(problem)
    if problems:
        sys.exit(2)
    return InspectOptions(
        includes=include_entries(planning.includes, planning.include_from),
        root=planning.root,
        library_path=planning.library_path,
        runtime_needs=planning.runtime_needs,
        strict=planning.strict,
        with_kinds=frozenset(planning.with_kinds),
        without_kinds=frozenset(planning.without_kinds),
        needs=needs,
    )


def forwarded_args(planning: PlanningFlags) -> tuple[str, ...]:
    """The planning options again as command-line words (all but --root), for a
    `scratchprobe rootfs` run in a Dockerfile stage that must plan exactly what this run
    planned."""
    args: list[str] = []
    for directory in planning.library_path:
        args += ["--library-path", directory]
    args += [] if planning.runtime_needs else ["--no-runtime"]
    args += ["--strict"] if planning.strict else []
    for kind in planning.with_kinds:
        args += ["--with", kind.value]
    for kind in planning.without_kinds:
        args += ["--without", kind.value]
    for zone in planning.zones:
        args += ["--tz", zone]
    args += ["--user", planning.user] if planning.user else []
    args += ["--generate-etc"] if planning.generate_etc else []
    args += ["--locale", planning.locale] if planning.locale else []
    # Only a non-default runtime is written, so today's stages stay byte-identical.
    if planning.runtime is not ContainerRuntime.DOCKER:
        args += ["--runtime", planning.runtime.value]
    args += ["--copy-etc"] if planning.copy_etc else []
    # The include files are not in the builder stage: each entry is passed as --include.
    for entry in include_entries(planning.includes, planning.include_from):
        args += ["--include", entry.spec]
    return tuple(args)


def include_entries(
    includes: tuple[str | Include, ...] = (), include_from: tuple[str, ...] = ()
) -> tuple[Include, ...]:
    """--include specs, then the entries of each --include-from file. Raises UsageError for
    a bad spec and InputError for an unreadable or malformed file."""
    if not includes and not include_from:
        return ()  # a run without includes never loads their parser
    from scratchprobe.trace.includes import Include, load_file, parse_spec

    # An Include already made (--from-image's entry point files) keeps its own reason.
    entries = [spec if isinstance(spec, Include) else parse_spec(spec) for spec in includes]
    for path in include_from:
        entries += load_file(path)
    return tuple(entries)
