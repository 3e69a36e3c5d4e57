"""Locales: a glibc program that calls setlocale reads the locale it selects from files.

`setlocale(LC_ALL, "")` takes the locale from LC_ALL, LC_<category> or LANG; without any,
or for a locale glibc cannot load, the program stays in the "C" locale, whose codeset is
ASCII: multibyte input is then refused or counted byte by byte. glibc 2.36 builds no locale
in except "C"/"POSIX" (C.UTF-8 is a locale source since 2.35, compiled like any other:
Debian's libc-bin ships it as /usr/lib/locale/C.utf8).

Where glibc looks (locale/findlocale.c `_nl_find_locale`, locale/loadarchive.c): without
LOCPATH, first the archive `<LOCALEDIR>/locale-archive`, then the directory
`<LOCALEDIR>/<language>[_territory][.codeset][@modifier]` with the codeset normalised by
`_nl_normalize_codeset` (intl/l10nflist.c: letters and digits only, lower case, "iso"
prepended to an all-digit codeset: UTF-8 -> utf8). For LC_ALL every category must load, or
setlocale fails and changes nothing (locale/setlocale.c), so the whole directory is copied.
LOCALEDIR is compiled into libc beside the archive's name and read from the root's libc.

musl's UTF-8 is built in (its C.UTF-8 needs no file): nothing is planned for musl.
"""

from __future__ import annotations

import posixpath
import re

from scratchprobe.elf.classify import Libc
from scratchprobe.needs.context import Context, compiled_dir
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

DEFAULT_LOCALE = "C.UTF-8"
DEFAULT_LOCALEDIR = "/usr/lib/locale"
_NAME = re.compile(
    r"^(?P<lang>[A-Za-z0-9_]{1,32})(?:\.(?P<codeset>[A-Za-z0-9_-]{1,32}))?"
    r"(?P<modifier>@[A-Za-z0-9_]{1,32})?$"
)
_SETLOCALE = ("setlocale", "newlocale")
# Calls whose result depends on the codeset setlocale chose: the program handles text as
# characters, so the locale it runs in decides what it prints.
_MULTIBYTE = (
    "mbrtowc", "mbstowcs", "mbsrtowcs", "mbtowc", "mbrlen", "mblen", "wcwidth", "wcswidth",
    "nl_langinfo", "wcrtomb", "wcstombs", "wctomb", "iswprint", "iswalpha", "towlower",
    "towupper", "btowc", "mbsnrtowcs",
)  # fmt: skip


def normalise_codeset(codeset: str) -> str:
    """glibc's _nl_normalize_codeset (intl/l10nflist.c)."""
    kept = "".join(c.lower() for c in codeset if c.isascii() and c.isalnum())
    return "iso" + kept if kept.isdigit() else kept


def locale_dirs(name: str) -> tuple[str, ...]:
    """The directory names glibc tries for `name`, the normalised codeset first."""
    match = _NAME.match(name)
    if match is None:
        return ()
    lang, codeset, modifier = match["lang"], match["codeset"], match["modifier"] or ""
    if codeset is None:
        return (name,)
    normal = f"{lang}.{normalise_codeset(codeset)}{modifier}"
    return tuple(dict.fromkeys((normal, name)))


def _compiled_localedir(subject: Subject, ctx: Context) -> str:
    """LOCALEDIR, compiled into libc as the archive's directory (read once per libc)."""
    path = compiled_dir(subject, ctx, b"/locale-archive\0")
    if path is None or not path.startswith("/") or ".." in path.split("/"):
        return DEFAULT_LOCALEDIR
    return path


def locale_files(
    ctx: Context, localedir: str, name: str
) -> tuple[tuple[NeededFile, ...], tuple[str, ...]]:
    """The files that give `name`: its compiled directory, else the archive."""
    candidates = locale_dirs(name)
    if not candidates:
        return (), (f"{name!r} is not a locale name (like C.UTF-8 or de_DE.UTF-8)",)
    for candidate in candidates:
        directory = posixpath.join(localedir, candidate)
        if ctx.is_dir(directory) and ctx.exists(posixpath.join(directory, "LC_CTYPE")):
            note = f"{name}, compiled (glibc normalises the codeset: {candidate})"
            return (NeededFile(directory, "directory", source=directory, note=note),), ()
    archive = posixpath.join(localedir, "locale-archive")
    if ctx.exists(archive):
        # Which locales an archive holds is not read here: it is copied whole (localedef
        # --list-archive in the builder tells; a compiled directory is smaller).
        note = f"the archive that holds {name}, tried before any directory"
        return (NeededFile(archive, "file", source=archive, note=note),), ()
    return (), (
        f"the root has no locale {name} ({posixpath.join(localedir, candidates[0])} or "
        f"{archive}): Debian's libc-bin ships C.utf8; others need the locales package and "
        "locale-gen (or localedef) in the builder stage",
    )


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    if subject.libc is not Libc.GLIBC:
        return []
    calls = subject.uses(*_SETLOCALE)
    if not calls:
        return []
    multibyte = subject.uses(*_MULTIBYTE)
    name = ctx.options.locale or DEFAULT_LOCALE
    files, problems = locale_files(ctx, _compiled_localedir(subject, ctx), name)
    evidence = ["calls " + ", ".join(calls)]
    if multibyte:
        evidence.append("handles multibyte text: " + ", ".join(multibyte))
    chosen = (
        f"the locale {name} (--locale)"
        if ctx.options.locale
        else f"the locale {name} (the default; choose with --locale NAME)"
    )
    return [
        RuntimeNeed(
            kind=NeedKind.LOCALE,
            # setlocale alone may only ask for "C"; with character functions the codeset
            # decides what the program does.
            confidence=Confidence.LIKELY if multibyte else Confidence.POSSIBLE,
            summary=(
                "selects its locale with setlocale: glibc builds in only the C locale "
                f"(ASCII), so the image gets {chosen} and LANG naming it (LC_ALL is not "
                "set, so LC_* variables still choose per category)"
            ),
            evidence=tuple(evidence),
            files=files,
            env=(("LANG", name),) if files else (),
            problems=problems,
        )
    ]
