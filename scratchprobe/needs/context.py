"""What detectors may ask of the builder's filesystem, and the user's choices."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from scratchprobe.elf.image import Images
from scratchprobe.elf.reader import ElfFile
from scratchprobe.loader.closure import Closure, Resolver
from scratchprobe.needs.evidence import CA_BUNDLE_PATHS, EvidenceCache, Subject
from scratchprobe.needs.model import ContainerRuntime
from scratchprobe.root import Root


@dataclass(frozen=True)
class NeedsOptions:
    tz: tuple[str, ...] = ()
    """--tz: copy only these zones, set TZ and /etc/localtime (the first zone)."""
    user: str | None = None
    """--user NAME|UID[:GID]: the image runs as this user; its entry must exist."""
    generate_etc: bool = False
    """--generate-etc: write minimal passwd/group (the default since copy_etc exists; kept
    so that existing command lines and callers keep working)."""
    copy_etc: bool = False
    """--copy-etc: copy the builder's /etc/passwd and /etc/group instead of generating
    minimal ones."""
    locale: str | None = None
    """--locale NAME: the locale the image selects (LANG, LC_ALL); None: C.UTF-8."""
    runtime: ContainerRuntime = ContainerRuntime.DOCKER
    """--runtime: what runs the image; `bare` mounts no /etc/hosts, so the image gets one."""


@dataclass(frozen=True)
class LocatedLibrary:
    path: str
    """Where the image's loader will find it (a default directory)."""
    real_path: str


class Context:
    """One run, as the detectors see it: the root (every lookup stays inside it,
    scratchprobe.root), the resolver with its parsed files, the user's choices, the open
    file images, the evidence read so far, and what was read from the root once for every
    binary (gconv configuration, module helpers, compiled-in directories).

    Created once per run (per worker in a parallel batch) and closed at its end."""

    def __init__(self, root: Root, resolver: Resolver, options: NeedsOptions) -> None:
        self.root = root
        self.resolver = resolver
        self.options = options
        self.images = Images()
        # The resolver parses through the run's images: one open per file (elf/image.py).
        resolver.elf_cache.read_through(self.images)
        self.evidence = EvidenceCache(self.images)
        self.gconv_configs: dict[str, tuple[dict[str, str], dict[str, str], list[str]]] = {}
        """gconv directory -> (alias -> charset, charset -> module, config files)."""
        self.module_helpers: dict[str, tuple[str, ...]] = {}
        """gconv module -> the helper libraries beside it it needs."""
        self.compiled_dirs: dict[tuple[str, bytes], str | None] = {}
        """(libc path, marker) -> the directory compiled in beside the marker."""

    def close(self) -> None:
        """Close the run's open images."""
        self.images.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def exists(self, path: str) -> bool:
        return self.root.exists(path)

    def is_dir(self, path: str) -> bool:
        try:
            return self.root.resolve(path).is_dir
        except OSError:
            return False

    def real(self, path: str) -> str | None:
        try:
            return self.root.resolve(path).path
        except OSError:
            return None

    def ca_bundle(self) -> str | None:
        """The first CA bundle the root has, in Go's order (the widest-known list)."""
        for path in CA_BUNDLE_PATHS:
            try:
                if self.root.resolve(path).is_file:
                    return path
            except OSError:
                continue
        return None

    def locate_library(
        self, name: str, elf: ElfFile, closure: Closure | None
    ) -> LocatedLibrary | None:
        """Where the loader of `elf` finds a dlopen'd `name` without any search path of the
        program's: the default directories (what dlopen of a bare name uses), else the cache.
        """
        dirs = closure.system_dirs if closure is not None else ()
        if not dirs:
            interp = closure.interpreter.real_path if closure and closure.interpreter else None
            dirs = self.resolver.system_dirs(interp, elf.arch)[0]
        for directory in dirs:
            opened = self.resolver.open_candidate(posixpath.join(directory, name), elf.arch)
            if opened is not None:
                return LocatedLibrary(posixpath.join(directory, name), opened[0])
        cache = self.resolver.ld_cache()
        if cache is not None and dirs:
            for entry in cache.lookup(name, frozenset()):
                opened = self.resolver.open_candidate(entry.path, elf.arch)
                if opened is not None:
                    # Placed in the first default directory: the image has no cache.
                    return LocatedLibrary(posixpath.join(dirs[0], name), opened[0])
        return None

    def system_dir_with(self, subdir: str, closure: Closure | None, elf: ElfFile) -> str | None:
        """The first default library directory holding `subdir` (e.g. gconv)."""
        dirs = closure.system_dirs if closure is not None else ()
        if not dirs:
            dirs = self.resolver.system_dirs(None, elf.arch)[0]
        for directory in dirs:
            candidate = posixpath.join(directory, subdir)
            if self.is_dir(candidate):
                return candidate
        return None


def libc_elf(subject: Subject) -> ElfFile | None:
    """The glibc the program runs with (its closure's libc.so.6, or the static program
    itself), where libc's compiled-in paths (LOCALEDIR, GCONV_DIR) are read."""
    libc: ElfFile | None = subject.elf if not subject.dynamic else None
    if subject.closure is not None:
        for obj in subject.closure.libraries:
            if obj.name == "libc.so.6":
                libc = obj.elf
    return libc


def compiled_dir(subject: Subject, ctx: Context, marker: bytes) -> str | None:
    """The path compiled into the program's libc just before `marker` (a NUL-terminated
    file name such as b"/locale-archive\0"), read once per libc and run; None when the libc
    has none or cannot be read."""
    libc = libc_elf(subject)
    if libc is None:
        return None
    key = (libc.path, marker)
    if key not in ctx.compiled_dirs:
        ctx.compiled_dirs[key] = _read_compiled_dir(ctx, libc, marker)
    return ctx.compiled_dirs[key]


def _read_compiled_dir(ctx: Context, libc: ElfFile, marker: bytes) -> str | None:
    try:
        # The run's pread-based image (elf/image.py): a libc that shrinks while it is read
        # is an error, not a SIGBUS.
        with ctx.images.use(libc) as view:
            # A compiled-in path is a string constant: looked for in .rodata first (glibc's
            # iconv/gconv_cache.c and locale/loadarchive.c keep them there), so a static
            # program's code is not read to reach it; elsewhere only when .rodata has none.
            at = -1
            for start, end in view.section_ranges((".rodata",)):
                at = view.find(marker, start, end)
                if at >= 0:
                    break
            if at < 0:
                at = view.find(marker)
            if at < 0:
                return None
            start = view.rfind(b"\0", max(0, at - 256), at) + 1
            return view[start:at].decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
