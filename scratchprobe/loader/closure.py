"""Resolve the shared-library closure the way the real loader would, inside a root.

glibc (elf/dl-load.c `_dl_map_object`, elf/dl-deps.c `_dl_map_object_deps`):
- dependencies load breadth-first in DT_NEEDED order; a name that matches an object already
  loaded (its requested names or its DT_SONAME) is not searched again, nor is a file already
  mapped under another name (same file identity);
- a name containing '/' is opened as it is;
- DT_RPATH of the requesting object, then of the object that loaded it, and on up to the
  executable, is searched, but only if the requesting object has no DT_RUNPATH; an object
  with both uses only DT_RUNPATH ("When the object has the RUNPATH information we don't use
  any RPATHs");
- then LD_LIBRARY_PATH (`--library-path`), then DT_RUNPATH of the requesting object only
  (it is not inherited), then /etc/ld.so.cache, then the built-in system directories; an
  object linked with -z nodefaultlib (DF_1_NODEFLIB) skips the system directories and cache
  entries that point into them;
- in each directory, glibc-hwcaps/<level>/ subdirectories are probed first (glibc >= 2.33);
- a candidate of the wrong class or machine is skipped and the search goes on.
musl (ldso/dynlink.c `load_library`): libc.so, libpthread, librt, libm, libdl, libutil and
libxnet names are the loader itself; then LD_LIBRARY_PATH, then the RUNPATH (or RPATH) of
the requesting object and each object above it, then /etc/ld-musl-ARCH.path under the
loader's prefix, else /lib:/usr/local/lib:/usr/lib.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from scratchprobe.elf.arch import Architecture
from scratchprobe.elf.classify import Libc, libc_from_names
from scratchprobe.elf.image import Images
from scratchprobe.elf.reader import ElfFile, read_elf
from scratchprobe.errors import ELFError
from scratchprobe.loader.ldcache import LdCache, LdCacheError, parse_ld_cache
from scratchprobe.loader.ldconf import read_ld_so_conf
from scratchprobe.loader.platform import (
    MUSL_DEFAULT_PATH,
    debian_default_dirs,
    platform_facts,
    upstream_default_dirs,
)
from scratchprobe.loader.systemdirs import LOADER_READ, read_loader_data, system_dirs_from_loader
from scratchprobe.root import NotRegularFileError, Root


class FoundVia(Enum):
    """Which loader rule located a library."""

    INTERPRETER = "interpreter"
    PATH = "path"
    RPATH = "rpath"
    LIBRARY_PATH = "library-path"
    RUNPATH = "runpath"
    LD_CACHE = "ld.so.cache"
    LD_CONF = "ld.so.conf"
    SYSTEM_DIRS = "system-dirs"
    MUSL_PATH_FILE = "ld-musl-path"
    MUSL_BUILTIN = "musl-builtin"
    """musl's libc.so / libpthread / ... names, served by the loader itself."""


@dataclass(frozen=True)
class HwcapsVariant:
    """A copy of a library under DIR/glibc-hwcaps/LEVEL/, preferred on CPUs of that level."""

    path: str
    real_path: str
    size: int


@dataclass(frozen=True)
class LoadedObject:
    """A library the loader maps, and how it got there."""

    name: str
    """The DT_NEEDED string that first requested it."""
    soname: str | None
    path: str
    """In-root path the loader opened (search directory + name): where the image needs it."""
    real_path: str
    """In-root path after symlinks: the file whose bytes are copied."""
    via: FoundVia
    needed_by: str
    """In-root path of the object whose DT_NEEDED loaded it (the binary for direct needs)."""
    elf: ElfFile
    hwcaps_variants: tuple[HwcapsVariant, ...] = ()
    """glibc-hwcaps copies a capable CPU would load instead."""


@dataclass(frozen=True)
class Dependency:
    """One DT_NEEDED edge: `needer` asked for `name`, which the loader found at `path`."""

    needer: str
    name: str
    path: str | None
    """In-root path of the object satisfying it; None when missing."""


@dataclass(frozen=True)
class MissingLibrary:
    name: str
    needed_by: str
    searched: tuple[str, ...]
    """Directories tried, in order, for the report."""


@dataclass(frozen=True)
class MissingVersion:
    version: str
    library: str
    needed_by: str


@dataclass(frozen=True)
class Closure:
    """Everything the loader maps for one program, in load order."""

    libc: Libc | None
    interpreter: LoadedObject | None
    interpreter_missing: bool
    libraries: tuple[LoadedObject, ...]
    dependencies: tuple[Dependency, ...]
    missing: tuple[MissingLibrary, ...]
    missing_versions: tuple[MissingVersion, ...]
    system_dirs: tuple[str, ...]
    """The directories the image's loader searches without any cache."""
    system_dirs_source: str
    warnings: tuple[str, ...]


@dataclass(eq=False)  # never compared: no __eq__ to generate at import
class _Node:
    """Mutable bookkeeping during the walk (never leaves this module)."""

    obj_path: str
    origin: str
    elf: ElfFile
    loader: _Node | None
    names: set[str] = field(default_factory=set)


class ElfCache:
    """Parsed ELF files by host path, shared by every binary of a run (read libc once).

    A run's cache parses through the run's images (`read_through`): each file is opened
    once, by its image, for the parse and every later reader (docs/architecture.md, "One
    reader per file"); a cache of its own (a trace's lookups) opens and closes each file."""

    def __init__(self) -> None:
        self._files: dict[str, ElfFile | Exception] = {}
        self._images: Images | None = None

    def read_through(self, images: Images) -> None:
        """Parse every file from now on through `images` (the run's, closed by its owner)."""
        self._images = images

    def get(self, host_path: str) -> ElfFile:
        cached = self._files.get(host_path)
        if cached is None:
            try:
                if self._images is not None:
                    cached = self._images.parse(host_path)
                else:
                    cached = read_elf(host_path)
            except (OSError, ELFError) as exc:
                cached = exc
            self._files[host_path] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def head(self, host_path: str, limit: int) -> bytes:
        """The first `limit` bytes of the file (all of a shorter one): read by the run's
        image of it when the file was parsed through one, else opened for this read.
        OSError when it cannot be opened, ELFError when it changed under the image."""
        cached = self._files.get(host_path)
        if self._images is not None and isinstance(cached, ElfFile):
            with self._images.use(cached) as image:
                return image.read(0, min(limit, image.size), "the file's first bytes")
        return read_loader_data(host_path, limit)


class Resolver:
    """Resolves closures inside one root; caches loader facts across binaries."""

    def __init__(
        self, root: Root, library_path: tuple[str, ...] = (), elf_cache: ElfCache | None = None
    ) -> None:
        self.root = root
        self.library_path = library_path
        self.elf_cache = elf_cache or ElfCache()
        self._ld_cache: LdCache | str | None = "unread"
        self._ld_conf: tuple[str, ...] | None = None
        self._system_dirs: dict[tuple[str | None, str], tuple[tuple[str, ...], str]] = {}
        self._musl_paths: dict[str, tuple[tuple[str, ...], str] | None] = {}
        self.root_warnings: list[str] = []
        self._candidates: dict[tuple[str, Architecture], tuple[str, ElfFile] | None] = {}

    # ----- loader facts of the root -------------------------------------------------

    def ld_cache(self) -> LdCache | None:
        if isinstance(self._ld_cache, str):
            self._ld_cache = None
            try:
                self._ld_cache = parse_ld_cache(self.root.read_file("/etc/ld.so.cache"))
            except NotRegularFileError as exc:
                self.root_warnings.append(f"/etc/ld.so.cache ignored: {exc.strerror}")
            except OSError:
                pass
            except LdCacheError as exc:
                self.root_warnings.append(f"/etc/ld.so.cache ignored: {exc}")
        return self._ld_cache

    def ld_conf_dirs(self) -> tuple[str, ...]:
        if self._ld_conf is None:
            self._ld_conf = read_ld_so_conf(self.root)
        return self._ld_conf

    def system_dirs(
        self, interpreter_real: str | None, arch: Architecture
    ) -> tuple[tuple[str, ...], str]:
        """The glibc loader's built-in directories: read from the loader, else a table."""
        key = (interpreter_real, arch.name)
        if key not in self._system_dirs:
            self._system_dirs[key] = self._compute_system_dirs(interpreter_real, arch)
        return self._system_dirs[key]

    def _compute_system_dirs(
        self, interpreter_real: str | None, arch: Architecture
    ) -> tuple[tuple[str, ...], str]:
        if interpreter_real is not None:
            try:
                data = self.elf_cache.head(self.root.host_path(interpreter_real), LOADER_READ)
                dirs = system_dirs_from_loader(data, arch.elf_class, arch.byte_order)
                if dirs:
                    return dirs, f"read from {interpreter_real}"
            except (OSError, ELFError):
                pass
        facts = platform_facts(arch)
        if facts.multiarch and (
            self.root.listdir(f"/usr/lib/{facts.multiarch}")
            or self.root.listdir(f"/lib/{facts.multiarch}")
        ):
            return debian_default_dirs(facts), "Debian multiarch layout of the root"
        return upstream_default_dirs(facts), "glibc's default for the architecture"

    def musl_path(self, interpreter: str) -> tuple[tuple[str, ...], str]:
        if interpreter not in self._musl_paths:
            base = posixpath.basename(interpreter)
            arch = base[len("ld-musl-") :].split(".so", 1)[0]
            # dynlink.c: the prefix is the interpreter path up to its second-to-last '/'.
            prefix = posixpath.dirname(posixpath.dirname(interpreter))
            prefix = "" if prefix == "/" else prefix
            conf = f"{prefix}/etc/ld-musl-{arch}.path"
            result: tuple[tuple[str, ...], str] | None = None
            try:
                text = self.root.read_text(conf)
                dirs = tuple(d for d in text.replace("\n", ":").split(":") if d)
                result = (dirs, conf)
            except OSError:
                pass
            self._musl_paths[interpreter] = result
        found = self._musl_paths[interpreter]
        return found if found is not None else (MUSL_DEFAULT_PATH, "musl's built-in default")

    # ----- the walk -----------------------------------------------------------------

    def resolve(self, binary_path: str, elf: ElfFile) -> Closure:
        """The closure of the object at in-root `binary_path` whose facts are `elf`."""
        walk = _Walk(self, binary_path, elf)
        return walk.run()

    def open_candidate(self, path: str, arch: Architecture) -> tuple[str, ElfFile] | None:
        """Open `path` as the loader would; None when absent or for another architecture.
        A name the directory listing has is answered once per (path, architecture) in a
        run: every binary of a batch tries the same directories for the same names. (An
        absent name is not kept: a crafted search path tries millions.)"""
        if not self.root.may_exist(path):
            return None
        key = (path, arch)
        if key in self._candidates:
            return self._candidates[key]
        found = self._open_candidate(path, arch)
        self._candidates[key] = found
        return found

    def _open_candidate(self, path: str, arch: Architecture) -> tuple[str, ElfFile] | None:
        try:
            resolved = self.root.resolve(path)
        except OSError:
            return None
        if not resolved.is_file:
            return None
        try:
            candidate = self.elf_cache.get(resolved.host_path)
        except (OSError, ELFError):
            return None
        if not arch.can_load(candidate.arch):
            return None
        return resolved.path, candidate


_MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")


class _Walk:
    def __init__(self, resolver: Resolver, binary_path: str, elf: ElfFile) -> None:
        self.r = resolver
        self.root = resolver.root
        self.binary_path = binary_path
        self.elf = elf
        self.arch = elf.arch
        self.libc = libc_from_names(elf.interpreter, elf.needed)
        self.warnings: list[str] = []
        self.loaded: list[LoadedObject] = []
        # Indexes of `loaded`, so each lookup is one dict access, not a scan: a crafted
        # closure of thousands of objects must stay linear.
        self.loaded_by_path: dict[str, LoadedObject] = {}
        self.by_basename: dict[str, str] = {}
        self._expanded: dict[tuple[str, str], list[str]] = {}
        self.by_name: dict[str, str] = {}
        self.by_real: dict[str, str] = {}
        self.deps: list[Dependency] = []
        self.missing: list[MissingLibrary] = []
        self.interpreter: LoadedObject | None = None
        self.interpreter_real: str | None = None
        self.interpreter_missing = False

    def run(self) -> Closure:
        elf = self.elf
        main_real = self._real(self.binary_path) or self.binary_path
        self.by_real[main_real] = self.binary_path
        if elf.soname:
            self.by_name[elf.soname] = self.binary_path
        interp_path = elf.interpreter
        if interp_path is None and self.libc is Libc.GLIBC:
            # A shared library given as input has no PT_INTERP; the program that loads it
            # will use the architecture's standard loader.
            interp_path = platform_facts(self.arch).glibc_interpreter
        if interp_path is not None:
            self._load_interpreter(interp_path)
        if self.libc is Libc.MUSL:
            dirs, source = self._musl_dirs()
        else:
            dirs, source = self.r.system_dirs(self.interpreter_real, self.arch)
        self.system_dirs = dirs
        main = _Node(self.binary_path, posixpath.dirname(self.binary_path), elf, None)
        queue: deque[_Node] = deque([main])
        while queue:
            node = queue.popleft()
            for name in node.elf.needed:
                found = self._lookup_loaded(name)
                if found is not None:
                    self.deps.append(Dependency(node.obj_path, name, found))
                    continue
                result = self._search(name, node)
                if result is None:
                    self.deps.append(Dependency(node.obj_path, name, None))
                    continue
                obj, new = result
                self.deps.append(Dependency(node.obj_path, name, obj.path))
                if new:
                    queue.append(_Node(obj.path, posixpath.dirname(obj.path), obj.elf, node))
        if self.libc is None:
            self.libc = self._libc_from_closure()
        return Closure(
            libc=self.libc,
            interpreter=self.interpreter,
            interpreter_missing=self.interpreter_missing,
            libraries=tuple(self.loaded),
            dependencies=tuple(self.deps),
            missing=tuple(self.missing),
            missing_versions=self._check_versions(),
            system_dirs=dirs,
            system_dirs_source=source,
            warnings=tuple(self.warnings),
        )

    def _real(self, path: str) -> str | None:
        try:
            return self.root.resolve(path).path
        except OSError:
            return None

    def _load_interpreter(self, interp_path: str) -> None:
        opened = self.r.open_candidate(interp_path, self.arch)
        if opened is None:
            self.interpreter_missing = True
            return
        real, interp_elf = opened
        self.interpreter_real = real
        self.interpreter = LoadedObject(
            name=interp_path,
            soname=interp_elf.soname,
            path=interp_path,
            real_path=real,
            via=FoundVia.INTERPRETER,
            needed_by=self.binary_path,
            elf=interp_elf,
        )
        self.by_real[real] = interp_path
        self.by_name[interp_path] = interp_path
        if interp_elf.soname:
            self.by_name[interp_elf.soname] = interp_path

    def _musl_dirs(self) -> tuple[tuple[str, ...], str]:
        interp = self.elf.interpreter or f"/lib/ld-musl-{platform_facts(self.arch).musl_arch}.so.1"
        return self.r.musl_path(interp)

    def _lookup_loaded(self, name: str) -> str | None:
        if self.libc is Libc.MUSL and "/" not in name:
            reserved = name.startswith("lib") and name[3:].startswith(_MUSL_RESERVED)
            if reserved and self.interpreter is not None:
                return self.interpreter.path
            # musl compares the short name of every loaded object (the first one wins).
            found = self.by_basename.get(name)
            if found is not None:
                return found
        return self.by_name.get(name)

    def _record(
        self, name: str, node: _Node, path: str, real: str, elf: ElfFile, via: FoundVia
    ) -> tuple[LoadedObject, bool]:
        existing = self.by_real.get(real)
        if existing is not None:
            # Same file under another name: glibc maps it once (_dl_file_id_match_p).
            self.by_name[name] = existing
            loaded = self.loaded_by_path.get(existing)
            if loaded is not None:
                return loaded, False
            assert self.interpreter is not None
            return self.interpreter, False
        variants = self._hwcaps_variants(path, name, elf) if self.libc is not Libc.MUSL else ()
        obj = LoadedObject(name, elf.soname, path, real, via, node.obj_path, elf, variants)
        self.loaded.append(obj)
        self.loaded_by_path.setdefault(path, obj)
        self.by_basename.setdefault(posixpath.basename(path), path)
        self.by_real[real] = path
        self.by_name[name] = path
        if elf.soname:
            self.by_name.setdefault(elf.soname, path)
        return obj, True

    def _search(self, name: str, node: _Node) -> tuple[LoadedObject, bool] | None:
        if "/" in name:
            path = name if name.startswith("/") else posixpath.join("/", name)
            opened = self.r.open_candidate(path, self.arch)
            if opened is None:
                self.missing.append(MissingLibrary(name, node.obj_path, (path,)))
                return None
            return self._record(name, node, posixpath.normpath(path), *opened, FoundVia.PATH)
        tried: list[str] = []
        seen: set[str] = set()
        for directory, via in self._candidate_dirs(node):
            if directory in seen:
                continue
            seen.add(directory)
            tried.append(directory)
            path = posixpath.join(directory, name)
            opened = self.r.open_candidate(path, self.arch)
            if opened is not None:
                return self._record(name, node, posixpath.normpath(path), *opened, via)
        if self.libc is not Libc.MUSL:
            found = self._from_cache(name, node)
            if found is not None:
                return found
            if self.r.ld_cache() is not None:
                tried.append("/etc/ld.so.cache")
                seen.add("/etc/ld.so.cache")
            if not node.elf.nodeflib:
                tried += [d for d in self.system_dirs if d not in seen]
        self.missing.append(MissingLibrary(name, node.obj_path, tuple(tried)))
        return None

    def _candidate_dirs(self, node: _Node) -> Iterator[tuple[str, FoundVia]]:
        """Search directories in the loader's order, up to (not including) ld.so.cache.

        Lazy: a name found in the first directory does not expand the RPATH of every
        object up the loading chain (a crafted chain is 1000 objects deep).
        """
        main_origin = posixpath.dirname(self.binary_path)
        if self.libc is Libc.MUSL:
            for d in self.r.library_path:
                yield self._expand(d, main_origin), FoundVia.LIBRARY_PATH
            chain: _Node | None = node
            while chain is not None:
                search = chain.elf.runpath or chain.elf.rpath
                if search:
                    for d in self._split(search, chain.origin):
                        yield d, FoundVia.RUNPATH
                chain = chain.loader
            dirs, source = self._musl_dirs()
            via = FoundVia.SYSTEM_DIRS if source.startswith("musl's") else FoundVia.MUSL_PATH_FILE
            for d in dirs:
                yield d, via
            return
        if node.elf.runpath is None:
            chain = node
            while chain is not None:
                rpath = chain.elf.effective_rpath
                if rpath:
                    for d in self._split(rpath, chain.origin):
                        yield d, FoundVia.RPATH
                chain = chain.loader
        for d in self.r.library_path:
            yield self._expand(d, main_origin), FoundVia.LIBRARY_PATH
        if node.elf.runpath:
            for d in self._split(node.elf.runpath, node.origin):
                yield d, FoundVia.RUNPATH

    def _cache_candidates(self, name: str, nodeflib: bool) -> Iterator[tuple[str, FoundVia]]:
        """ld.so.cache's entries for `name` (else the ld.so.conf directories), then the
        system directories: lazy, as the loader stops at the first it can open."""
        cache = self.r.ld_cache()
        if cache is not None:
            flags = platform_facts(self.arch).cache_flags
            for entry in cache.lookup(name, flags):
                if entry.hwcap:
                    continue
                if nodeflib and posixpath.dirname(entry.path) in self.system_dirs:
                    continue
                yield entry.path, FoundVia.LD_CACHE
        else:
            # No cache in the root: ldconfig would have indexed these directories.
            for d in self.r.ld_conf_dirs():
                yield posixpath.join(d, name), FoundVia.LD_CONF
        if not nodeflib:
            for d in self.system_dirs:
                yield posixpath.join(d, name), FoundVia.SYSTEM_DIRS

    def _from_cache(self, name: str, node: _Node) -> tuple[LoadedObject, bool] | None:
        for path, via in self._cache_candidates(name, node.elf.nodeflib):
            opened = self.r.open_candidate(path, self.arch)
            if opened is not None:
                # A cache hit inside a system directory is what the image's loader finds
                # there anyway: record it as such, so placement stays where it is.
                in_system = posixpath.dirname(path) in self.system_dirs
                how = FoundVia.SYSTEM_DIRS if in_system else via
                return self._record(name, node, posixpath.normpath(path), *opened, how)
        return None

    def _hwcaps_variants(self, path: str, name: str, elf: ElfFile) -> tuple[HwcapsVariant, ...]:
        directory = posixpath.dirname(path)
        hwcaps_dir = posixpath.join(directory, "glibc-hwcaps")
        out = []
        for level in sorted(self.root.listdir(hwcaps_dir)):
            candidate = posixpath.join(hwcaps_dir, level, name)
            opened = self.r.open_candidate(candidate, self.arch)
            if opened is not None:
                out.append(HwcapsVariant(candidate, opened[0], opened[1].size))
        return tuple(out)

    def _split(self, search: str, origin: str) -> list[str]:
        # Expanded once per (path list, origin): every object loaded below an RPATH
        # searches it again.
        key = (search, origin)
        found = self._expanded.get(key)
        if found is None:
            found = [self._expand(d, origin) for d in search.split(":") if d]
            self._expanded[key] = found
        return found

    def _expand(self, directory: str, origin: str) -> str:
        """Dynamic string tokens (dl-load.c _dl_dst_substitute; musl expands only $ORIGIN)."""
        facts = platform_facts(self.arch)
        values = {"ORIGIN": origin}
        if self.libc is not Libc.MUSL:
            # $LIB is the slibdir basename; Debian's loader uses its multiarch path there.
            multiarch_lib = f"lib/{facts.multiarch}" if facts.multiarch else "lib"
            lib = (
                multiarch_lib
                if self.system_dirs and self.system_dirs[0].endswith(str(facts.multiarch))
                else f"lib{facts.lib_suffix}"
            )
            values["LIB"] = lib
            values["PLATFORM"] = facts.platform
        out = directory
        for token, value in values.items():
            out = out.replace("${" + token + "}", value).replace("$" + token, value)
        if not out.startswith("/"):
            # A relative entry is relative to the working directory, "/" in a scratch image.
            out = "/" + out
        return posixpath.normpath(out)

    def _libc_from_closure(self) -> Libc | None:
        for obj in self.loaded:
            found = libc_from_names(None, (obj.name,))
            if found is not None:
                return found
        return None

    def _check_versions(self) -> tuple[MissingVersion, ...]:
        providers: dict[str, LoadedObject] = {}
        for obj in ([self.interpreter] if self.interpreter else []) + self.loaded:
            providers.setdefault(obj.name, obj)
            if obj.soname:
                providers.setdefault(obj.soname, obj)
        out = []
        for path, elf in [(self.binary_path, self.elf)] + [(o.path, o.elf) for o in self.loaded]:
            for need in elf.version_needs:
                provider = providers.get(need.file)
                if provider is None or not provider.elf.version_defs:
                    continue
                provided = set(provider.elf.version_defs)
                for version in need.versions:
                    if version not in provided:
                        out.append(MissingVersion(version, need.file, path))
        return tuple(out)
