"""gconv: iconv of a charset not built into glibc loads a module with dlopen.

glibc converts only UTF-8, UCS-4, UCS-2 and ASCII itself (iconv/gconv_builtin.h); every other
charset is a module <GCONV_DIR>/<NAME>.so (iconv/gconv_dl.c), found through
gconv-modules.cache (iconv/gconv_cache.c) or, without it, the gconv-modules file and
gconv-modules.d/*.conf (iconv/gconv_conf.c). GCONV_DIR is compiled into libc.
docs/runtime-facts.md, "gconv".
"""

from __future__ import annotations

import functools
import os
import posixpath
import re

from scratchprobe.elf.classify import Libc
from scratchprobe.elf.image import ElfImage
from scratchprobe.errors import ELFError
from scratchprobe.needs.context import Context, compiled_dir
from scratchprobe.needs.dlopen import library_file
from scratchprobe.needs.evidence import Subject
from scratchprobe.needs.model import Confidence, NeededFile, NeedKind, RuntimeNeed

# Charsets glibc converts without any module (iconv/gconv_builtin.h). UTF-16, UTF-32 and
# UTF-7 (with their LE/BE and IMAP forms) are not among them: they are the modules
# UTF-16.so, UTF-32.so and UTF-7.so (iconv/gconv_builtin.h lists none of them; measured in
# docs/runtime-facts.md, "gconv").
_BUILTIN_CHARSETS = frozenset(
    {
        "INTERNAL", "ISO-10646/UTF8/", "UTF-8", "UTF8", "ISO-10646/UCS4/", "UCS-4", "UCS-4BE",
        "UCS-4LE", "ISO-10646/UCS2/", "UCS-2", "UCS-2BE", "UCS-2LE", "UNICODEBIG",
        "UNICODELITTLE", "ANSI_X3.4-1968", "ASCII", "US-ASCII", "WCHAR_T",
    }
)  # fmt: skip
_MAX_CHARSET_SCAN = 64 << 20


@functools.cache
def _charset_string() -> re.Pattern[bytes]:
    """Compiled on first use: only a program that converts charsets is scanned with it."""
    # A whole C string made of the characters charset names use (after upper-casing).
    # A literal first byte (the NUL) lets the regex engine skip ahead at memchr speed.
    return re.compile(rb"\0([A-Za-z0-9][A-Za-z0-9_.:/()+-]{4,62})(?=\0)")


def _compiled_gconv_dir(subject: Subject, ctx: Context) -> str | None:
    """glibc's GCONV_DIR, compiled into libc next to the cache's name (iconv/gconv_cache.c):
    the only place it looks for modules, whatever the library search path says."""
    path = compiled_dir(subject, ctx, b"/gconv-modules.cache\0")
    return path if path is not None and path.startswith("/") else None


_GconvConfig = tuple[dict[str, str], dict[str, str], list[str]]


def _gconv_config(ctx: Context, gconv: str) -> _GconvConfig:
    """(alias -> charset, charset -> module file name, config files), read once per run."""
    if gconv not in ctx.gconv_configs:
        ctx.gconv_configs[gconv] = _read_gconv_config(ctx, gconv)
    return ctx.gconv_configs[gconv]


def _read_gconv_config(ctx: Context, gconv: str) -> _GconvConfig:
    aliases: dict[str, str] = {}
    modules: dict[str, str] = {}
    configs = [posixpath.join(gconv, "gconv-modules")]
    confd = posixpath.join(gconv, "gconv-modules.d")
    configs += sorted(
        posixpath.join(confd, n) for n in ctx.root.listdir(confd) if n.endswith(".conf")
    )
    found = []
    for config in configs:
        try:
            lines = ctx.root.read_text(config).splitlines()
        except OSError:
            continue
        found.append(config)
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) >= 3 and words[0] == "alias":
                aliases[words[1].rstrip("/").upper()] = words[2].rstrip("/").upper()
            elif len(words) >= 4 and words[0] == "module":
                for name in words[1:3]:
                    if name.rstrip("/").upper() != "INTERNAL":
                        modules.setdefault(name.rstrip("/").upper(), words[3])
    return aliases, modules, found


def _charsets_in(image: ElfImage, names: list[str]) -> list[str]:
    """Charset names the program's read-only data holds (case-insensitive, whole strings)."""
    elf = image.elf
    ranges = [
        (s.offset, s.size)
        for s in elf.sections
        if s.name in (".rodata", ".rodata1") and s.type != 8
    ] or [(0, elf.size)]
    blob = b""
    try:
        for offset, size in ranges:
            if size > _MAX_CHARSET_SCAN:
                return []
            # Clamped to the file, as a read at the end of a file returns what is there.
            blob += b"\0" + image[offset : offset + size] + b"\0"
    except ELFError:
        return []
    # Every C string of the data, whole and up to a "//" suffix ("ISO-8859-1//TRANSLIT"):
    # one pass over the bytes instead of one search per charset name.
    strings: set[bytes] = set()
    for match in _charset_string().finditer(blob):
        item = match.group(1).upper()
        strings.add(item)
        strings.add(item.split(b"/", 1)[0])
    return [name for name in names if name.encode() in strings]


# The encodings of the WHATWG Encoding Standard (https://encoding.spec.whatwg.org/, "Names
# and labels") that glibc does not build in: the legacy single-byte and multi-byte ones and
# UTF-16BE/LE ("Legacy miscellaneous encodings"): what browsers decode, so what text from
# users and the web is in.
# A program that takes its charset names at run time gets glibc's modules for these by
# default, spelled as glibc's gconv-modules names them (aliases are resolved from the root).
COMMON_CHARSETS = (
    "ISO-8859-1", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4", "ISO-8859-5", "ISO-8859-6",
    "ISO-8859-7", "ISO-8859-8", "ISO-8859-10", "ISO-8859-13", "ISO-8859-14", "ISO-8859-15",
    "ISO-8859-16", "IBM866", "KOI8-R", "KOI8-U", "MACINTOSH", "MAC-CYRILLIC", "CP874",
    "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1252", "WINDOWS-1253", "WINDOWS-1254",
    "WINDOWS-1255", "WINDOWS-1256", "WINDOWS-1257", "WINDOWS-1258", "GBK", "GB18030",
    "BIG5", "EUC-JP", "ISO-2022-JP", "SHIFT_JIS", "EUC-KR", "UTF-16BE", "UTF-16LE",
)  # fmt: skip


def detect(subject: Subject, ctx: Context) -> list[RuntimeNeed]:
    if subject.libc is not Libc.GLIBC:
        return []
    evidence = []
    if subject.uses("iconv_open"):
        evidence.append("calls iconv_open")
    elif (
        subject.static_glibc
        and subject.static_strings("gconv-modules")
        and (subject.static_strings("__gconv_open") or ".symtab" not in subject.elf.section_names)
    ):
        evidence.append('static glibc with iconv linked in ("gconv-modules")')
    if not evidence:
        return []
    gconv = _compiled_gconv_dir(subject, ctx)
    if gconv is None or not ctx.is_dir(gconv):
        gconv = ctx.system_dir_with("gconv", subject.closure, subject.elf)
    if gconv is None:
        return [
            RuntimeNeed(
                kind=NeedKind.GCONV,
                confidence=Confidence.POSSIBLE,
                summary="converts character sets with iconv, but the root has no gconv modules",
                evidence=tuple(evidence),
                problems=("the root has no gconv directory",),
            )
        ]
    aliases, modules, configs = _gconv_config(ctx, gconv)
    candidates = sorted(n for n in set(aliases) | set(modules) if len(n) >= 5)
    named = _charsets_in(subject.image, candidates) if candidates and subject.image else []
    wanted = sorted({aliases.get(n, n) for n in named} - _BUILTIN_CHARSETS)
    if not subject.dynamic and not wanted:
        # Every static glibc carries the gconv strings (stdio's wide-character code links
        # them); without a non-builtin charset name in the program there is no evidence.
        return []
    static_files = _static_gconv_files(subject, ctx)
    if wanted and all(c in modules for c in wanted):
        files = _module_files(ctx, gconv, configs, modules, wanted)
        evidence.append("charset names in the program: " + ", ".join(sorted(set(named))))
        summary = (
            "converts character sets with iconv; "
            + ", ".join(wanted)
            + (
                " is not built into glibc and loads a gconv module"
                if len(wanted) == 1
                else " are not built into glibc and load gconv modules"
            )
        )
        if static_files:
            summary += _STATIC_SUMMARY
        # The names in the data are what it surely converts; others may still come at run
        # time (git names UTF-16 and takes working-tree-encoding from .gitattributes, ctags
        # names UTF-32LE and takes --input-encoding), so the whole directory stays on offer
        # at `possible`, as for a program that names none.
        return [
            RuntimeNeed(
                kind=NeedKind.GCONV,
                confidence=Confidence.LIKELY,
                summary=summary,
                evidence=tuple(evidence),
                files=(*files, *static_files),
            ),
            _whole_directory(gconv, evidence, static_files),
        ]
    # The names come at run time (arguments, input, configuration): no charset outside
    # glibc's built-in UTF-8, UCS-2 and UCS-4 is named in the data. What a user expects is
    # that the usual charsets convert: the common set is planned, the whole directory is
    # offered.
    common = sorted(
        {aliases.get(n, n) for n in COMMON_CHARSETS if aliases.get(n, n) in modules}
        - _BUILTIN_CHARSETS
    )
    needs = []
    if common and subject.dynamic:
        files = _module_files(ctx, gconv, configs, modules, common)
        size = sum(_size(ctx, f.path) for f in files)
        needs.append(
            RuntimeNeed(
                kind=NeedKind.GCONV,
                confidence=Confidence.LIKELY,
                summary=(
                    "converts character sets with iconv, named at run time (no charset "
                    "beyond glibc's built-in UTF-8, UCS-2 and UCS-4 is named in the "
                    "program): the image gets the modules of the common charsets "
                    f"({len(common)} charsets, {size // 1024} KiB: the WHATWG Encoding "
                    "Standard's legacy encodings and UTF-16) and the module cache; "
                    "--strict adds the whole gconv "
                    "directory for every other charset, --without gconv leaves both out"
                ),
                evidence=(*evidence, "no non-builtin charset name in the program"),
                files=tuple(files),
            )
        )
    needs.append(_whole_directory(gconv, evidence, static_files))
    return needs


def _whole_directory(
    gconv: str, evidence: list[str], static_files: list[NeededFile]
) -> RuntimeNeed:
    """The `possible` need of the whole gconv directory: every charset a program may be
    given at run time (`--strict` or `--with gconv` takes it)."""
    summary = (
        "converts character sets with iconv: only UTF-8, UCS-2, UCS-4 and ASCII are built "
        "into glibc, every other charset loads a gconv module (add the directory "
        "with --with gconv)"
    )
    if static_files:
        summary += _STATIC_SUMMARY
    return RuntimeNeed(
        kind=NeedKind.GCONV,
        confidence=Confidence.POSSIBLE,
        summary=summary,
        evidence=tuple(evidence),
        files=(NeededFile(gconv, "directory", source=gconv), *static_files),
    )


_STATIC_SUMMARY = "; a static program also needs the same glibc's shared libc and loader"


def _size(ctx: Context, path: str) -> int:
    try:
        return os.stat(ctx.root.resolve(path).host_path).st_size
    except OSError:
        return 0


def _module_files(
    ctx: Context,
    gconv: str,
    configs: list[str],
    modules: dict[str, str],
    charsets: list[str],
) -> list[NeededFile]:
    """The configuration glibc reads and the module of each charset, with the helper
    libraries a module needs from beside it (EUC-JP.so: libJIS.so through RUNPATH $ORIGIN)."""
    cache = posixpath.join(gconv, "gconv-modules.cache")
    # With the cache glibc reads neither text file; without it, all of them.
    config_files = [cache] if ctx.exists(cache) else configs
    files = [NeededFile(c, "file", source=c, note="gconv configuration") for c in config_files]
    seen: set[str] = set(config_files)
    for charset in charsets:
        module = posixpath.join(gconv, modules[charset] + ".so")
        if module in seen or not ctx.exists(module):
            continue
        seen.add(module)
        files.append(NeededFile(module, "file", source=module, note=f"{charset} module"))
        for helper in _module_helpers(ctx, module):
            if helper not in seen:
                seen.add(helper)
                note = f"needed by {posixpath.basename(module)}"
                files.append(NeededFile(helper, "file", source=helper, note=note))
    return files


def _module_helpers(ctx: Context, module: str) -> tuple[str, ...]:
    """DT_NEEDED entries of a gconv module that sit in the gconv directory itself (read
    once per run: every iconv program of a batch asks for the same modules)."""
    if module not in ctx.module_helpers:
        try:
            needed = ctx.resolver.elf_cache.get(ctx.root.resolve(module).host_path).needed
        except (OSError, ELFError):
            needed = ()
        directory = posixpath.dirname(module)
        ctx.module_helpers[module] = tuple(
            posixpath.join(directory, name)
            for name in needed
            if "/" not in name and ctx.exists(posixpath.join(directory, name))
        )
    return ctx.module_helpers[module]


def _static_gconv_files(subject: Subject, ctx: Context) -> list[NeededFile]:
    """A static program loads modules through a shared libc of the same version, which it
    finds (with the loader) in the default directories (verified: the loader at its
    PT_INTERP path alone is not enough)."""
    if subject.dynamic:
        return []
    from scratchprobe.loader.platform import platform_facts

    interp = "ld-linux-x86-64.so.2"
    default_interp = platform_facts(subject.elf.arch).glibc_interpreter
    if default_interp:
        interp = posixpath.basename(default_interp)
    files = []
    for name in ("libc.so.6", interp):
        located = ctx.locate_library(name, subject.elf, None)
        if located is not None:
            files.append(library_file(located.path, located.real_path, "for gconv modules"))
    return files
