"""The rich console every human report is written to (inspect's and check's)."""

from __future__ import annotations

import io

from rich.console import Console


def report_console(buffer: io.StringIO, color: bool, width: int | None) -> Console:
    """Colour only on a terminal; piped output is never wrapped, so every line stays
    greppable."""
    return Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        width=width or (None if color else 100_000),
        highlight=False,
        soft_wrap=True,
    )
