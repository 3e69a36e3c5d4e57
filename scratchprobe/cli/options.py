"""Options and helpers shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def error(message: str) -> None:
    """One line on stderr, the only way any command reports an error."""
    click.echo(f"scratchprobe: error: {message}", err=True)


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
