"""The rich console every human report is written to (inspect's and check's)."""

from __future__ import annotations

import io

from rich.console import Console


def report_console(buffer: io.StringIO, color: bool, width: int | None) -> Console:
    """Colour only on a terminal; piped output is never wrapped, so every line stays
    greppable. Names reach it escaped (render.names.visible_text, then rich's markup
    escape); `emoji=False` and `highlight=False` so that no `:name:` or number in a path is
    turned into something else."""
    return Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        width=width or (None if color else 100_000),
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
