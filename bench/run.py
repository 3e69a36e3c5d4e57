#!/usr/bin/env python3
"""Benchmark scratchprobe against pax-utils `lddtree` and `libtree`, side by side, in one run.

Standard library only. Every command runs as a fresh process with stdout sent to /dev/null;
wall time is `time.perf_counter` around the process, CPU time is the change in
`RUSAGE_CHILDREN` (user + system, including the children a wrapper such as a pyenv shim
spawns). The commands of one scenario are interleaved round-robin (and the order rotated each
round) so that noise from other load on the machine falls on every tool alike.

Ratios are always "scratchprobe time / other time" of the medians: below 1 scratchprobe is
faster, above 1 slower. See bench/README.md.

    python bench/run.py            # 10 cold runs; up to 3 batch rounds over /usr/bin in 150 s
    python bench/run.py --quick    # CI smoke: 3 cold runs, 1 batch round, 100 files

Exit status: 0 valid result; 1 some measurement crashed, failed or timed out (listed under
"RESULT NOT VALID"); 2 scratchprobe does not work at all (nothing measured).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
PY = sys.executable
SP_MODULE = [PY, "-m", "scratchprobe"]
INSTALL_HINT = "apt-get install pax-utils libtree"
ELF_MAGIC = b"\x7fELF"
SLOW_BATCH_S = 10.0
"""A batch scratchprobe run slower than this drops the optional rows and repeated breakdowns."""

# Phases of `inspect` timed inside one process (a separate interpreter, so that this script
# never imports scratchprobe). It uses internal API; when that changes, the breakdown is
# reported as unavailable and the rest of the benchmark still runs.
BREAKDOWN_SNIPPET = r"""
import json, os, sys, time
files = tuple(json.load(sys.stdin))
phases = {}
def lap(name, since):
    now = time.perf_counter()
    phases[name] = now - since
    return now
t = time.perf_counter()
import scratchprobe.cli
t = lap("import scratchprobe.cli (click)", t)
from scratchprobe.model import InspectOptions
from scratchprobe.pipeline import inspect
from scratchprobe.render import OutputFormat, RenderOptions, renderer
render_json = renderer(OutputFormat.JSON)
render_copy = renderer(OutputFormat.COPY)
try:
    from scratchprobe.annotate import annotate  # what the CLI adds for --format json
except ImportError:
    annotate = None
t = lap("import core + renderers", t)
result = inspect(files, InspectOptions())
t = lap("inspect(): all analysis (read, resolve, detect, plan)", t)
annotations = None
if annotate is not None:
    annotations = annotate(result)
    t = lap("annotate(): digests, package owners, licences (what cyclonedx runs)", t)
out = render_json(result, RenderOptions(), annotations)
t = lap("render json (manifest + json.dumps indent=2)", t)
render_copy(result, RenderOptions())
t = lap("render copy", t)
try:
    from scratchprobe.render.manifest import manifest
except ImportError:
    pass
else:
    doc = manifest(result)
    t = lap("  of which: manifest() dict", t)
    json.dumps(doc, indent=2)
    t = lap("  of which: json.dumps(indent=2)", t)
    json.dumps(doc)
    t = lap("  (for comparison) json.dumps compact, C encoder", t)
doc = json.loads(out)
binaries = doc.get("binaries", [])
sanity = {
    "inputs": None if any(os.path.isdir(f) for f in files) else len(files),
    "binaries": len(binaries),
    "binaries_with_missing": sum(1 for b in binaries if b.get("missing")),
    "files_in_plan": len(doc.get("files", [])),
    "warnings": len(doc.get("warnings", [])),
    "errors": len(doc.get("errors", [])),
    "json_bytes": len(out),
}
print(json.dumps({"phases": phases, "binaries": len(result.binaries), "json_bytes": len(out),
                  "sanity": sanity}))
"""


# Records which modules one real `inspect --format json` run loads, so that the import floor
# imports exactly those, whatever the CLI comes to import.
MODULES_SNIPPET = r"""
import atexit, json, runpy, sys
out, binary = sys.argv[1], sys.argv[2]
def dump():
    with open(out, "w") as handle:
        json.dump(sorted(m for m in sys.modules if m not in ("__main__", "__mp_main__")), handle)
atexit.register(dump)
sys.argv = ["scratchprobe", "inspect", "--format", "json", binary]
runpy.run_module("scratchprobe", run_name="__main__", alter_sys=True)
"""

IMPORT_LIST_SNIPPET = r"""
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Case:
    """One command line (or a list of them, run one after another, timed as one)."""

    key: str
    label: str
    tool: str
    argvs: list[list[str]]
    """Each argv is one process; a measurement runs them all in sequence."""
    ok_codes: frozenset[int] = frozenset({0})
    env: dict[str, str] | None = None
    """The whole environment of the processes; None: this script's own."""
    optional: bool = False
    """Left out when the main scratchprobe row turns out slow (see `measure`)."""
    cwd: Path | None = None
    """Working directory of the processes; None: the repository (the checkout measured)."""


@dataclass
class CaseResult:
    case: Case
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    nonzero: list[int] = field(default_factory=list)
    """Per timed run: how many of its processes exited non-zero."""
    exit_codes: set[int] = field(default_factory=set)
    stderr_lines: list[int] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    """Per timed run: the largest peak resident set of its processes (ru_maxrss, KiB)."""
    crashes: int = 0
    """Timed runs whose stderr holds a Python traceback: the time is not of real work."""
    crash_line: str | None = None
    failed: str | None = None
    skipped: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def minimum(self) -> float:
        return min(self.wall)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class MeasurementTimeout(Exception):
    """A measurement ran longer than --timeout; its process was killed."""


TRACEBACK = b"Traceback (most recent call last):"


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    nonzero: int
    codes: set[int]
    stderr_lines: int
    crash_line: str | None
    """The last line of the first Python traceback on stderr, if there was one."""
    rss_kb: int = 0
    """The largest peak resident set of the run's processes (wait4's ru_maxrss, KiB)."""


def _crash_line(stderr: bytes) -> str | None:
    at = stderr.find(TRACEBACK)
    if at < 0:
        return None
    tail = stderr[at:].decode(errors="replace").splitlines()
    for line in tail[1:]:
        if line and not line.startswith((" ", "\t")):
            return line.strip()
    return tail[-1].strip()


def run_once(case: Case, timeout: float) -> Run:
    """Run every process of `case` once, timed.

    `Popen.wait()` without a timeout blocks in waitpid(). `subprocess.run(timeout=...)` must
    not be used here: with a timeout, Python 3.11 polls with sleeps of up to 50 ms, which
    rounds every measured time up to a 50 ms step. One watchdog thread per measurement (not
    per process: starting a thread costs ~0.1 ms, which 500 libtree calls would feel) kills
    the running process instead.
    """
    codes: set[int] = set()
    nonzero = 0
    rss = 0
    current: list[subprocess.Popen[bytes]] = []
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        for proc in current[-1:]:
            proc.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    with tempfile.TemporaryFile() as err:
        watchdog.start()
        try:
            cpu0 = _children_cpu()
            t0 = time.perf_counter()
            for argv in case.argvs:
                with subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    cwd=case.cwd or REPO,
                    env=case.env,
                ) as proc:
                    current.append(proc)
                    # wait4: the same blocking wait, and the child's own rusage (its peak
                    # RSS; RUSAGE_CHILDREN's ru_maxrss is the largest of all children).
                    _pid, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = code = os.waitstatus_to_exitcode(status)
                    rss = max(rss, usage.ru_maxrss)
                    current.pop()
                if expired.is_set():
                    raise MeasurementTimeout(f"killed after {timeout:g} s")
                codes.add(code)
                nonzero += code != 0
            wall = time.perf_counter() - t0
            cpu = _children_cpu() - cpu0
        finally:
            watchdog.cancel()
        err.seek(0)
        stderr = err.read()
    return Run(wall, cpu, nonzero, codes, stderr.count(b"\n"), _crash_line(stderr), rss)


def measure(
    cases: Sequence[Case],
    reps: int,
    warmup: int,
    timeout: float,
    budget: float | None = None,
    slow: float | None = None,
) -> tuple[list[CaseResult], list[str]]:
    """Warm up, then run every case `reps` times, interleaved round-robin with rotation.

    `budget`: stop starting timed rounds once another round would end after `budget` seconds
    (at least one round always runs). `slow`: when the first run of the main scratchprobe row
    ("sp", first in the first round) takes longer, the optional cases are left out.
    """
    results = [CaseResult(c) for c in cases]
    notes: list[str] = []
    total = warmup + reps
    timed_start: float | None = None
    for rnd in range(total):
        if rnd == warmup:
            timed_start = time.perf_counter()
        round_start = time.perf_counter()
        shift = rnd % len(results) if results else 0
        for res in results[shift:] + results[:shift]:
            if res.failed or res.skipped:
                continue
            try:
                run = run_once(res.case, timeout)
            except (OSError, MeasurementTimeout) as exc:
                res.failed = f"{type(exc).__name__}: {exc}"
                continue
            if res.case.key == "sp" and slow is not None and run.wall > slow:
                for other in results:
                    if other.case.optional and not other.wall and not other.skipped:
                        other.skipped = (
                            f"left out: scratchprobe took {fmt_time(run.wall)} a run"
                            f" (more than {slow:g} s)"
                        )
            if rnd < warmup:
                continue
            res.wall.append(run.wall)
            res.cpu.append(run.cpu)
            res.nonzero.append(run.nonzero)
            res.exit_codes |= run.codes
            res.stderr_lines.append(run.stderr_lines)
            res.rss_kb.append(run.rss_kb)
            if run.crash_line is not None:
                res.crashes += 1
                res.crash_line = res.crash_line or run.crash_line
        _progress(f"  round {rnd + 1}/{total}{' (warm-up)' if rnd < warmup else ''}")
        now = time.perf_counter()
        done = rnd + 1 - warmup
        if (
            budget is not None
            and timed_start is not None
            and done < reps
            and now - timed_start + (now - round_start) > budget
        ):
            notes.append(
                f"stopped after {done} of {reps} timed rounds: another would pass"
                f" --budget {budget:g} s (a round takes {fmt_time(now - round_start)})"
            )
            break
    _progress("")
    return results, notes


def warm_page_cache(files: Sequence[str]) -> tuple[float, int]:
    """Read every file once, so that no tool pays for the first read from disk. Fairer and far
    cheaper than a warm-up run of each batch command (a slow one can take minutes)."""
    total = 0
    start = time.perf_counter()
    for path in files:
        try:
            with open(path, "rb", buffering=0) as handle:
                while chunk := handle.read(1 << 20):
                    total += len(chunk)
        except OSError:
            continue
    return time.perf_counter() - start, total


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Environment and tools


@dataclass
class Tools:
    lddtree: str | None
    lddtree_python: str | None
    """What `lddtree`'s shebang runs on this PATH (None: not a Python script)."""
    lddtree_same_python: bool
    libtree: str | None
    console_script: str | None
    """The `scratchprobe` console script next to sys.executable."""
    path_script: str | None
    """`scratchprobe` on PATH when it is a different file (e.g. a pyenv shim)."""
    no_runtime: bool
    """`inspect --no-runtime` exists: the loader closure only, like lddtree and libtree."""
    notes: list[str]
    info: dict[str, Any]


def _output(argv: Sequence[str], cwd: Path | None = None) -> str | None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=cwd, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text if proc.returncode == 0 and text else None


GIT = ["git", "--no-optional-locks", "-C", str(REPO)]


def _git_differs() -> bool | None:
    """Whether scratchprobe/ differs from HEAD (read-only: no index refresh is written)."""
    try:
        proc = subprocess.run(
            [*GIT, "diff", "--quiet", "HEAD", "--", "scratchprobe"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: False, 1: True}.get(proc.returncode)


def _shebang(path: str) -> list[str]:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return []
    if not first.startswith(b"#!"):
        return []
    return first[2:].decode(errors="replace").split()


def _shebang_interpreter(path: str) -> str | None:
    words = _shebang(path)
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0]


def _dpkg_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    return _output(["dpkg-query", "-W", "-f", "${Version}", package])


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def discover_tools() -> Tools:
    notes: list[str] = []
    info: dict[str, Any] = {}

    sp_file = _output([PY, "-c", "import scratchprobe; print(scratchprobe.__file__)"], cwd=REPO)
    info["scratchprobe"] = {
        "command": " ".join(SP_MODULE),
        "cwd": str(REPO),
        "module_file": sp_file,
        "version": _output([*SP_MODULE, "--version"], cwd=REPO),
        "commit": _output([*GIT, "rev-parse", "--short", "HEAD"]),
        "working_tree_differs": _git_differs(),
    }
    if sp_file is None or not Path(sp_file).resolve().is_relative_to(REPO):
        sys.exit(f"bench: `{PY} -m scratchprobe` does not import the repository ({sp_file})")

    console: str | None = str(Path(PY).parent / "scratchprobe")
    if console is not None and not os.access(console, os.X_OK):
        console = None
    installed = _output(
        [PY, "-c", "import scratchprobe; print(scratchprobe.__file__)"], cwd=Path("/")
    )
    if console is not None and (
        installed is None or not Path(installed).resolve().is_relative_to(REPO)
    ):
        notes.append(
            f"console script {console} imports {installed}, not this checkout: not measured"
        )
        console = None
    on_path = shutil.which("scratchprobe")
    path_script = None
    if on_path is not None and (console is None or not _same_file(on_path, console)):
        path_script = on_path
        notes.append(
            f"`scratchprobe` on PATH is {on_path} ({' '.join(_shebang(on_path)) or 'binary'}),"
            " not the console script: measured separately in the cold curl scenario"
        )
    info["scratchprobe"]["console_script"] = console
    info["scratchprobe"]["path_script"] = path_script
    no_runtime = "--no-runtime" in (_output([*SP_MODULE, "inspect", "--help"], cwd=REPO) or "")
    info["scratchprobe"]["no_runtime_flag"] = no_runtime

    lddtree = shutil.which("lddtree")
    lddtree_python = None
    same_python = True
    if lddtree is None:
        notes.append(f"lddtree not found on PATH: its rows are skipped ({INSTALL_HINT})")
        info["lddtree"] = None
    else:
        lddtree_python = _shebang_interpreter(lddtree)
        same_python = lddtree_python is not None and _same_file(lddtree_python, PY)
        elftools = None
        if lddtree_python is not None:
            elftools = _output(
                [lddtree_python, "-c", "import elftools; print(elftools.__version__)"]
            )
        info["lddtree"] = {
            "path": lddtree,
            "version": _dpkg_version("pax-utils"),
            "shebang": " ".join(_shebang(lddtree)),
            "interpreter": lddtree_python,
            "interpreter_realpath": os.path.realpath(lddtree_python) if lddtree_python else None,
            "pyelftools": elftools,
        }
        if lddtree_python is not None and not same_python:
            notes.append(
                f"lddtree's `{' '.join(_shebang(lddtree))}` runs {lddtree_python}, not {PY}:"
                " the cold scenarios also time `sys.executable lddtree` (same interpreter as"
                " scratchprobe) to separate launcher cost from work"
            )

    libtree = shutil.which("libtree")
    if libtree is None:
        notes.append(f"libtree not found on PATH: its rows are skipped ({INSTALL_HINT})")
        info["libtree"] = None
    else:
        info["libtree"] = {
            "path": libtree,
            "version": _output([libtree, "--version"]) or _dpkg_version("libtree"),
        }
    return Tools(
        lddtree, lddtree_python, same_python, libtree, console, path_script, no_runtime, notes, info
    )


def machine_info() -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_mib": mem_kib // 1024 if mem_kib else None,
        "kernel": platform.release(),
        "os": _os_release(),
        "python": platform.python_version(),
        "python_executable": PY,
        "python_implementation": platform.python_implementation(),
    }


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------------
# Inputs


# A file name COPY would read as a pattern (/usr/bin/[) makes `--format copy` refuse the
# whole batch (docs/output-encoding.md): the like-for-like batch rows leave such names out,
# for every tool alike.
_COPY_PATTERN_CHARS = frozenset("*?[\\")


def find_elf_files(directory: str) -> list[str]:
    """Regular ELF programs and shared libraries (not symlinks) below `directory`, sorted
    like scratchprobe's own directory walk, without names COPY cannot express."""
    out: list[str] = []
    for current, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(current, name)
            if _COPY_PATTERN_CHARS.intersection(path) or not path.isprintable():
                continue
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as handle:
                    head = handle.read(18)
            except OSError:
                continue
            # Programs and shared libraries only (e_type ET_EXEC or ET_DYN, in the byte
            # order of EI_DATA): a relocatable crt1.o or a core file named on the command
            # line is an input error for every tool, and nothing a batch means to measure.
            if len(head) < 18 or head[:4] != ELF_MAGIC:
                continue
            if int.from_bytes(head[16:18], "big" if head[5] == 2 else "little") not in (2, 3):
                continue
            out.append(path)
    return out


def section_names(path: str) -> set[str]:
    """The section names of an ELF file (empty when it cannot be read): enough to tell an
    unstripped Go program (.gopclntab or .go.buildinfo, and .symtab) from the rest."""
    import struct

    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != ELF_MAGIC or len(head) < 64:
                return set()
            e = "<" if head[5] == 1 else ">"
            is64 = head[4] == 2
            if is64:
                shoff, shentsize, shnum, shstrndx = struct.unpack_from(e + "Q10xHHH", head, 40)
            else:
                shoff, shentsize, shnum, shstrndx = struct.unpack_from(e + "I10xHHH", head, 32)
            if not shoff or not 0 < shstrndx < shnum or shnum > 65535:
                return set()
            handle.seek(shoff)
            table = handle.read(shentsize * shnum)
            fmt = e + ("IIQQQQ" if is64 else "IIIIII")

            def header(index: int) -> tuple[int, ...]:
                return struct.unpack_from(fmt, table, index * shentsize)

            _n, _t, _f, _a, str_off, str_size = header(shstrndx)
            handle.seek(str_off)
            names = handle.read(min(str_size, 1 << 20))
            out = set()
            for index in range(shnum):
                start = header(index)[0]
                end = names.find(b"\0", start)
                if end > start:
                    out.add(names[start:end].decode("latin-1"))
            return out
    except (OSError, struct.error):
        return set()


def unstripped_go(files: Sequence[str], at_least: int) -> str | None:
    """The smallest unstripped Go program of `files` of at least `at_least` bytes."""
    sizes = sorted((os.stat(f).st_size, f) for f in files if os.stat(f).st_size >= at_least)
    for _size, path in sizes:
        names = section_names(path)
        if ".symtab" in names and names & {".gopclntab", ".go.buildinfo"}:
            return path
    return None


def built_go(floor_mb: int, timeout: float) -> tuple[str | None, str]:
    """An unstripped Go program over `floor_mb` MB built by bench/gobuild.py (cached)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import gobuild
    finally:
        sys.path.remove(str(BENCH_DIR))
    _progress(f"building a Go program over {floor_mb} MB")
    return gobuild.build(floor_mb, timeout)


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


def fits_argv(argv: Sequence[str]) -> bool:
    """Whether one exec can take `argv` (with the environment and a safety margin)."""
    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (OSError, ValueError):
        limit = 2 * 1024 * 1024
    env = sum(len(k) + len(v) + 2 for k, v in os.environ.items())
    args = sum(len(a.encode()) + 1 + 8 for a in argv)
    return env + args < limit - 64 * 1024


# --------------------------------------------------------------------------------------------
# Scenarios


def sp_inspect(fmt: str, inputs: Sequence[str], launcher: Sequence[str] = SP_MODULE) -> list[str]:
    return [*launcher, "inspect", "--format", fmt, *inputs]


def before_cases(before: Path | None, inputs: Sequence[str], what: str) -> list[Case]:
    """The same json and copy commands run by another source tree (`--before`): the old
    code, for the before/after ratios. `python -m` puts its working directory first on
    sys.path, so the processes run inside that tree."""
    if before is None:
        return []
    env = {**os.environ, "PYTHONPATH": str(before)}
    return [
        Case(
            f"sp-before{suffix}",
            f"before: scratchprobe {fmt}{what}",
            "scratchprobe",
            [sp_inspect(fmt, inputs)],
            frozenset({0, 1}),
            env=env,
            cwd=before,
        )
        for suffix, fmt in (("", "json"), ("-copy", "copy"))
    ]


def cold_cases(
    binary: str,
    tools: Tools,
    with_variants: bool,
    cached_env: dict[str, str] | None,
    before: Path | None = None,
) -> list[Case]:
    any_code = frozenset(range(256))
    cases = [
        Case(
            "sp",
            "scratchprobe (python -m)",
            "scratchprobe",
            [sp_inspect("json", [binary])],
            frozenset({0, 1}),
        )
    ]
    if tools.no_runtime:
        cases.append(
            Case(
                "sp-closure",
                "scratchprobe --no-runtime (closure only)",
                "scratchprobe",
                [[*sp_inspect("json", [binary]), "--no-runtime"]],
                frozenset({0, 1}),
            )
        )
    # The report a user reads, and the COPY lines: neither hashes files nor reads the
    # package database, which only json and cyclonedx pay for. These rows run with bytecode
    # cached (when this environment forbids writing it), as an installed copy does.
    cases.append(
        Case("sp-text", "scratchprobe text report", "scratchprobe",
             [[*SP_MODULE, "inspect", binary]], frozenset({0, 1}), env=cached_env)
    )  # fmt: skip
    cases.append(
        Case("sp-copy", "scratchprobe --format copy", "scratchprobe",
             [sp_inspect("copy", [binary])], frozenset({0, 1}), env=cached_env)
    )  # fmt: skip
    if tools.no_runtime:
        cases.append(
            Case("sp-copy-closure", "scratchprobe --format copy --no-runtime", "scratchprobe",
                 [[*sp_inspect("copy", [binary]), "--no-runtime"]], frozenset({0, 1}),
                 env=cached_env)
        )  # fmt: skip
    if cached_env is not None:
        cases.append(
            Case(
                "sp-pyc",
                "scratchprobe (python -m, .pyc cached)",
                "scratchprobe",
                [sp_inspect("json", [binary])],
                frozenset({0, 1}),
                env=cached_env,
            )
        )
    if with_variants and tools.console_script:
        cases.append(
            Case(
                "sp-script",
                "scratchprobe (console script)",
                "scratchprobe",
                [sp_inspect("json", [binary], [tools.console_script])],
                frozenset({0, 1}),
            )
        )
    if with_variants and tools.path_script:
        cases.append(
            Case(
                "sp-path",
                "scratchprobe (PATH)",
                "scratchprobe",
                [sp_inspect("json", [binary], [tools.path_script])],
                frozenset({0, 1}),
            )
        )
    if tools.lddtree:
        cases.append(Case("lddtree", "lddtree", "lddtree", [[tools.lddtree, binary]], any_code))
        if not tools.lddtree_same_python:
            cases.append(
                Case(
                    "lddtree-py",
                    "lddtree (sys.executable)",
                    "lddtree",
                    [[PY, tools.lddtree, binary]],
                    any_code,
                )
            )
    if tools.libtree:
        cases.append(Case("libtree", "libtree", "libtree", [[tools.libtree, binary]], any_code))
    cases += before_cases(before, [binary], "")
    return cases


def bytecode_disabled() -> bool:
    """Whether this environment stops Python from writing .pyc files (PYTHONDONTWRITEBYTECODE,
    -B): then every run compiles scratchprobe from source, which an installed copy never does."""
    return bool(sys.flags.dont_write_bytecode) or bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


def pyc_env(prefix: str) -> dict[str, str]:
    """The environment with .pyc writing on, cached under `prefix` (never inside the repo)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def modules_loaded(binary: str, timeout: float) -> list[str] | None:
    """The modules a real `inspect --format json BINARY` run has loaded when it exits."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "modules.json")
        try:
            subprocess.run(
                [PY, "-c", MODULES_SNIPPET, out, binary],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
                timeout=timeout,
                check=False,
            )
            with open(out) as handle:
                names: list[str] = json.load(handle)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
    return names


def floor_cases(cached_env: dict[str, str] | None, modules: list[str] | None) -> list[Case]:
    if modules is None:
        import_argv = [
            PY,
            "-c",
            "import scratchprobe.cli.inspect, scratchprobe.pipeline, scratchprobe.render.manifest",
        ]
        what = "core imports of inspect json"
    else:
        import_argv = [PY, "-c", IMPORT_LIST_SNIPPET, json.dumps(modules)]
        what = f"{len(modules)} modules of inspect json"
    extra = []
    if cached_env is not None:
        extra.append(
            Case(
                "py-imports-pyc",
                f"python -c <{what}>, .pyc",
                "python",
                [import_argv],
                env=cached_env,
            )
        )
    return [
        Case(
            "py-bare", "python -I -S -c pass (no site)", "python", [[PY, "-I", "-S", "-c", "pass"]]
        ),
        Case("py-pass", "python -c pass", "python", [[PY, "-c", "pass"]]),
        Case(
            "py-cli",
            'python -c "import scratchprobe.cli"',
            "python",
            [[PY, "-c", "import scratchprobe.cli"]],
        ),
        Case("py-imports", f"python -c <{what}>", "python", [import_argv]),
        *extra,
    ]


def batch_cases(
    files: list[str],
    directories: list[str],
    limited: bool,
    tools: Tools,
    before: Path | None = None,
) -> tuple[list[Case], list[str]]:
    notes: list[str] = []
    cases: list[Case] = []
    any_code = frozenset(range(256))
    one_call_ok = fits_argv(sp_inspect("json", files))
    if not one_call_ok:
        notes.append("file list exceeds ARG_MAX: one-process-with-all-files rows use the directory")
    sp_args = files if one_call_ok else directories
    cases.append(
        Case(
            "sp",
            "scratchprobe json, FILE... (1 process)",
            "scratchprobe",
            [sp_inspect("json", sp_args)],
            frozenset({0, 1}),
        )
    )
    if not limited and one_call_ok:
        cases.append(
            Case(
                "sp-dir",
                "scratchprobe json, DIR (1 process)",
                "scratchprobe",
                [sp_inspect("json", directories)],
                frozenset({0, 1}),
                optional=True,
            )
        )
    elif limited:
        notes.append("--limit is set: the `scratchprobe DIR` row is left out (not the same files)")
    cases.append(
        Case(
            "sp-copy",
            "scratchprobe copy, FILE... (1 process)",
            "scratchprobe",
            [sp_inspect("copy", sp_args)],
            frozenset({0, 1}),
        )
    )
    if tools.no_runtime:
        cases.append(
            Case(
                "sp-closure",
                "scratchprobe json --no-runtime, FILE...",
                "scratchprobe",
                [[*sp_inspect("json", sp_args), "--no-runtime"]],
                frozenset({0, 1}),
            )
        )
        # The like-for-like row: the loader closure and the COPY lines, no digests, no
        # package database, no runtime files (what lddtree and libtree compute).
        cases.append(
            Case(
                "sp-copy-closure",
                "scratchprobe copy --no-runtime, FILE...",
                "scratchprobe",
                [[*sp_inspect("copy", sp_args), "--no-runtime"]],
                frozenset({0, 1}),
            )
        )
    # The console script differs from `python -m` only in start-up, which the cold curl
    # scenario shows; a batch row for it would cost a whole batch run per round.
    if tools.lddtree:
        if one_call_ok:
            cases.append(
                Case(
                    "lddtree",
                    "lddtree FILE... (1 process)",
                    "lddtree",
                    [[tools.lddtree, *files]],
                    any_code,
                )
            )
        else:
            notes.append("lddtree skipped: the file list does not fit one command line")
    if tools.libtree:
        cases.append(
            Case(
                "libtree-each",
                "libtree FILE (1 process per file)",
                "libtree",
                [[tools.libtree, f] for f in files],
                any_code,
            )
        )
        if one_call_ok:
            cases.append(
                Case(
                    "libtree-all",
                    "libtree FILE... (1 process)",
                    "libtree",
                    [[tools.libtree, *files]],
                    any_code,
                )
            )
    cases += before_cases(before, sp_args, ", FILE... (1 process)")
    return cases, notes


def half_batch(files: list[str]) -> list[str]:
    """Every other file of the batch, and its largest file: a peak RSS follows the largest
    file scanned (its mapped segments are read whole), so both batch sizes must hold it for
    their difference to be what the added binaries cost."""
    largest = max(files, key=lambda f: os.stat(f).st_size)
    return [f for i, f in enumerate(files) if i % 2 == 0 or f == largest]


def memory_cases(
    go_program: str | None, files: list[str], before: Path | None = None
) -> list[Case]:
    """Peak RSS rows: the largest Go program (json and copy), and the batch at two sizes
    (half, whole, with the same largest file), whose difference shows what each added
    binary costs; with `before`, the two batch rows of the old code too."""
    cases: list[Case] = []
    if go_program is not None:
        size = os.stat(go_program).st_size / 1e6
        cases += [
            Case("sp", f"scratchprobe json, Go {size:.0f} MB", "scratchprobe",
                 [sp_inspect("json", [go_program])], frozenset({0, 1})),
            Case("sp-copy", f"scratchprobe copy, Go {size:.0f} MB", "scratchprobe",
                 [sp_inspect("copy", [go_program])], frozenset({0, 1})),
        ]  # fmt: skip
    half = half_batch(files)
    trees: list[tuple[str, str, dict[str, str] | None, Path | None]] = [("", "", None, None)]
    if before is not None:
        trees.append(("-before", "before: ", {**os.environ, "PYTHONPATH": str(before)}, before))
    for suffix, what, env, cwd in trees:
        for key, part in (("sp-half", half), ("sp-batch", files)):
            if fits_argv(sp_inspect("json", part)):
                cases.append(
                    Case(key + suffix, f"{what}scratchprobe json, {len(part)} batch files",
                         "scratchprobe", [sp_inspect("json", part)], frozenset({0, 1}),
                         env=env, cwd=cwd)
                )  # fmt: skip
    return cases


def memory_derived(scn: dict[str, Any], half: int, whole: int) -> list[str]:
    rss = {r["key"]: r.get("max_rss_mb") for r in scn["rows"] if r.get("max_rss_mb")}
    lines = []
    if "sp" in rss:
        verdict = "holds" if rss["sp"] <= 100 else "does NOT hold"
        lines.append(f"Go program json: peak RSS {rss['sp']:.0f} MB (target <= 100 MB: {verdict})")
    for suffix, what in (("", ""), ("-before", "before: ")):
        small, large = rss.get("sp-half" + suffix), rss.get("sp-batch" + suffix)
        if small and large and whole > half:
            per_file = (large - small) * 1024 / (whole - half)
            lines.append(
                f"{what}batch: {small:.0f} MB for {half} files, {large:.0f} MB for {whole}"
                f" (the same largest file): {per_file:.0f} KiB per added file"
            )
    return lines


SCALE_DIRS = ("/usr/bin", "/usr/lib/x86_64-linux-gnu")
SCALE_DATA = (
    "/etc/ssl",
    "/usr/lib/ssl",
    "/usr/share/ca-certificates",
    "/usr/share/zoneinfo",
    "/var/lib/dpkg",
)


def build_scale_root(copies: int) -> tuple[Path | None, list[str], str]:
    """A root holding /usr/bin and /usr/lib/x86_64-linux-gnu hard-linked (`cp -al`: no bytes
    copied), the loader's configuration and links, and `copies` more hard-linked copies of
    both under /opt/copyN: the same distinct libraries, `copies + 1` times the binaries.
    Returns the root, the in-root ELF files to inspect, and a note."""
    scratch = Path(tempfile.mkdtemp(prefix="scratchprobe-bench-scale-"))
    root = scratch / "root"
    try:
        (root / "usr/lib").mkdir(parents=True)
        subprocess.run(["cp", "-al", "/usr/bin", str(root / "usr/bin")], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(["cp", "-al", SCALE_DIRS[1], str(root / "usr/lib")], check=True,
                       capture_output=True)  # fmt: skip
        if os.path.isdir("/usr/lib64"):
            subprocess.run(["cp", "-a", "/usr/lib64", str(root / "usr/lib64")], check=True,
                           capture_output=True)  # fmt: skip
        for link in ("lib", "lib64", "bin", "sbin"):
            if os.path.islink(f"/{link}"):
                os.symlink(os.readlink(f"/{link}"), root / link)
        (root / "etc").mkdir()
        for name in ("ld.so.conf", "ld.so.cache", "os-release", "passwd", "group",
                     "nsswitch.conf"):  # fmt: skip
            if os.path.isfile(f"/etc/{name}"):
                shutil.copy(f"/etc/{name}", root / "etc" / name)
        if os.path.isdir("/etc/ld.so.conf.d"):
            shutil.copytree("/etc/ld.so.conf.d", root / "etc/ld.so.conf.d")
        # What the runtime needs and the json owners read: CA bundle, zoneinfo, dpkg.
        for tree in SCALE_DATA:
            if os.path.isdir(tree):
                (root / tree[1:]).parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-al", tree, str(root / tree[1:])], check=True,
                               capture_output=True)  # fmt: skip
        for n in range(1, copies + 1):
            (root / f"opt/copy{n}").mkdir(parents=True)
            for source, name in ((root / "usr/bin", "bin"), (root / SCALE_DIRS[1][1:], "lib")):
                subprocess.run(["cp", "-al", str(source), str(root / f"opt/copy{n}/{name}")],
                               check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        detail = exc.stderr.decode(errors="replace").strip() if hasattr(exc, "stderr") else exc
        return None, [], f"scale root not built (hard links need one filesystem): {detail}"
    inputs = [
        "/" + os.path.relpath(f, root)
        for top in ["usr/bin", SCALE_DIRS[1][1:]]
        + [f"opt/copy{n}/{d}" for n in range(1, copies + 1) for d in ("bin", "lib")]
        for f in find_elf_files(str(root / top))
    ]
    return root, inputs, f"scale root {root}: {len(inputs)} ELF files ({copies + 1} copies)"


def scale_cases(root: Path, inputs: list[str]) -> list[Case]:
    argv_inputs = inputs if fits_argv(sp_inspect("json", inputs)) else ["/usr/bin", "/opt"]
    rooted = ["--root", str(root)]
    return [
        Case("sp", f"scratchprobe json --root, {len(inputs)} files", "scratchprobe",
             [[*sp_inspect("json", argv_inputs), *rooted]], frozenset({0, 1})),
        Case("sp-copy", f"scratchprobe copy --root, {len(inputs)} files", "scratchprobe",
             [[*sp_inspect("copy", argv_inputs), *rooted]], frozenset({0, 1})),
    ]  # fmt: skip


def throughput(scn: dict[str, Any], files: int, total_mb: float) -> list[str]:
    """Seconds per GB of input and files per second of every scratchprobe row, so that the
    cost's growth with the work shows when batches of different sizes are compared."""
    lines = []
    for row in scn["rows"]:
        if row["tool"] == "scratchprobe" and row.get("median_s") and not row["crashed_runs"]:
            seconds = row["median_s"]
            cores = row["cpu_median_s"] / seconds
            lines.append(
                f"{row['label']}: {seconds / (total_mb / 1e3):.2f} s per GB of input,"
                f" {files / seconds:.0f} files/s, cpu/wall {cores:.2f}"
            )
    return lines


# --------------------------------------------------------------------------------------------
# Results


def describe_argv(argvs: list[list[str]]) -> str:
    def one(argv: list[str]) -> str:
        if len(argv) > 8:
            head = [a for a in argv if not a.startswith("/") or a == argv[0]][:6]
            return " ".join([*head, f"<{sum(a.startswith('/') for a in argv[1:])} paths>"])
        return " ".join(argv)

    if len(argvs) == 1:
        return one(argvs[0])
    return f"{one(argvs[0])}  (x{len(argvs)} processes)"


def row_json(res: CaseResult, ref: CaseResult | None) -> dict[str, Any]:
    case = res.case
    row: dict[str, Any] = {
        "key": case.key,
        "label": case.label,
        "tool": case.tool,
        "command": describe_argv(case.argvs),
        "processes_per_run": len(case.argvs),
    }
    if res.skipped and not res.wall:
        row["skipped"] = res.skipped
        return row
    if res.failed or not res.wall:
        row["failed"] = res.failed or "no timed runs"
        return row
    row |= {
        "median_s": res.median,
        "min_s": res.minimum,
        "max_s": max(res.wall),
        "stdev_s": statistics.stdev(res.wall) if len(res.wall) > 1 else 0.0,
        "cpu_median_s": statistics.median(res.cpu),
        "runs_s": res.wall,
        "exit_codes": sorted(res.exit_codes),
        "nonzero_exits_per_run": max(res.nonzero),
        "stderr_lines_per_run": max(res.stderr_lines),
        "max_rss_mb": max(res.rss_kb) / 1024 if res.rss_kb else None,
        "unexpected_exit": bool(res.exit_codes - case.ok_codes),
        "crashed_runs": res.crashes,
        "crash": res.crash_line,
    }
    if ref is not None and ref.wall and not ref.crashes and not res.crashes:
        row["ratio_sp_over_this"] = ref.median / res.median
        row["ratio_sp_over_this_min"] = ref.minimum / res.minimum
    return row


def scenario_json(
    sid: str, title: str, results: list[CaseResult], notes: list[str], **extra: Any
) -> dict[str, Any]:
    ref = next((r for r in results if r.case.key == "sp"), None)
    rows = [row_json(r, ref) for r in results]
    return {"id": sid, "title": title, "notes": notes, **extra, "rows": rows}


def _runs(reps: int, warmup: int) -> str:
    text = f"{reps} run{'s' * (reps != 1)}"
    return f"{text} after {warmup} warm-up" if warmup else text


def fmt_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}M"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def print_scenario(scn: dict[str, Any]) -> None:
    print(f"\n== {scn['title']} ==")
    for note in scn["notes"]:
        print(f"   note: {note}")
    header = f"{'command':<42}{'median':>10}{'min':>10}{'cpu':>10}{'sp/this':>9}{'RSS':>8}  exits"
    print(header)
    print("-" * len(header))
    for row in scn["rows"]:
        if "failed" in row:
            print(f"{row['label']:<42}  FAILED: {row['failed']}")
            continue
        if "skipped" in row:
            print(f"{row['label']:<42}  {row['skipped']}")
            continue
        exits = ",".join(str(c) for c in row["exit_codes"])
        if row["processes_per_run"] > 1:
            exits = f"{row['nonzero_exits_per_run']}/{row['processes_per_run']} non-zero"
        if row["stderr_lines_per_run"]:
            exits += f", {row['stderr_lines_per_run']} stderr lines"
        if row["unexpected_exit"]:
            exits += " (!)"
        if row["crashed_runs"]:
            exits += f" CRASHED x{row['crashed_runs']}: {row['crash']}"
        print(
            f"{row['label']:<42}{fmt_time(row['median_s']):>10}{fmt_time(row['min_s']):>10}"
            f"{fmt_time(row['cpu_median_s']):>10}{fmt_ratio(row.get('ratio_sp_over_this')):>9}"
            f"{fmt_mb(row.get('max_rss_mb')):>8}  {exits}"
        )
    for line in scn.get("derived", []):
        print(f"   {line}")


def _median_of(scn: dict[str, Any], key: str, field_name: str = "median_s") -> float | None:
    """The median (or `field_name`) of row `key`, or None when it did not run or crashed (no
    honest time)."""
    for row in scn["rows"]:
        if row["key"] == key and field_name in row and not row["crashed_runs"]:
            value: float = row[field_name]
            return value
    return None


RATIO_PAIRS = (
    ("sp", "lddtree", "scratchprobe / lddtree"),
    ("sp", "lddtree-py", "scratchprobe / lddtree (same python)"),
    ("sp", "libtree", "scratchprobe / libtree"),
    ("sp", "libtree-each", "scratchprobe / libtree once per file"),
    ("sp", "libtree-all", "scratchprobe / libtree one call"),
    ("sp-closure", "lddtree", "scratchprobe --no-runtime / lddtree"),
    ("sp-closure", "lddtree-py", "scratchprobe --no-runtime / lddtree (same python)"),
    ("sp-closure", "libtree", "scratchprobe --no-runtime / libtree"),
    ("sp-closure", "libtree-each", "scratchprobe --no-runtime / libtree once per file"),
    ("sp-text", "lddtree", "scratchprobe text / lddtree"),
    ("sp-copy", "lddtree", "scratchprobe copy / lddtree"),
    ("sp-copy-closure", "lddtree", "scratchprobe copy --no-runtime / lddtree"),
    ("sp-copy-closure", "libtree", "scratchprobe copy --no-runtime / libtree"),
    ("sp-copy-closure", "libtree-each", "scratchprobe copy --no-runtime / libtree once per file"),
    ("sp-copy", "libtree", "scratchprobe copy / libtree"),
    ("sp-copy", "libtree-each", "scratchprobe copy / libtree once per file"),
    ("sp", "sp-before", "scratchprobe json: after / before (--before)"),
    ("sp-copy", "sp-before-copy", "scratchprobe copy: after / before (--before)"),
    ("sp-before", "lddtree", "before: scratchprobe json / lddtree"),
    ("sp-before-copy", "lddtree", "before: scratchprobe copy / lddtree"),
    ("sp-before", "libtree-each", "before: scratchprobe json / libtree once per file"),
    ("sp-before-copy", "libtree-each", "before: scratchprobe copy / libtree once per file"),
)


def summary(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario: a scratchprobe row's median over each reference tool's median."""
    out = []
    for scn in scenarios:
        ratios, minimums = {}, {}
        for num_key, den_key, label in RATIO_PAIRS:
            num, den = _median_of(scn, num_key), _median_of(scn, den_key)
            if num is not None and den:
                ratios[label] = num / den
            low, base = _median_of(scn, num_key, "min_s"), _median_of(scn, den_key, "min_s")
            if low is not None and base:
                minimums[label] = low / base
        if ratios:
            out.append(
                {
                    "scenario": scn["id"],
                    "title": scn["title"],
                    "ratios": ratios,
                    "ratios_of_min": minimums,
                }
            )
    return out


def print_summary(lines: list[dict[str, Any]]) -> None:
    if not lines:
        return
    print(
        "\n== Ratios: scratchprobe / other, of the medians and of the mins"
        " (< 1: scratchprobe faster; on a busy machine trust the mins) =="
    )
    for line in lines:
        print(line["scenario"])
        for label, value in line["ratios"].items():
            low = line.get("ratios_of_min", {}).get(label)
            print(f"   {label:<52}{fmt_ratio(value):>10}  (min {fmt_ratio(low)})")


# --------------------------------------------------------------------------------------------
# Extra insight into scratchprobe itself


def breakdown(files: list[str], reps: int, timeout: float) -> dict[str, Any]:
    """Time the phases of `inspect` inside fresh processes; median per phase."""
    payload = json.dumps(files)
    runs: list[dict[str, Any]] = []
    for _ in range(max(reps, 1)):
        try:
            proc = subprocess.run(
                [PY, "-c", BREAKDOWN_SNIPPET],
                input=payload,
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)}
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": f"breakdown failed (internal API changed?): {tail}"}
        runs.append(json.loads(proc.stdout))
    names = list(runs[0]["phases"])
    phases = {n: statistics.median(r["phases"][n] for r in runs) for n in names}
    return {
        "files": len(files),
        "runs": len(runs),
        "binaries": runs[0]["binaries"],
        "json_bytes": runs[0]["json_bytes"],
        "phases_median_s": phases,
        "sanity": runs[0].get("sanity"),
    }


def print_breakdown(title: str, data: dict[str, Any]) -> None:
    print(f"\n== {title} ==")
    if "error" in data:
        print(f"   unavailable: {data['error']}")
        return
    print(
        f"   {data['binaries']} binaries, {data['json_bytes']} bytes of JSON,"
        f" median of {data['runs']} fresh processes (after interpreter start-up)"
    )
    for name, seconds in data["phases_median_s"].items():
        print(f"   {name:<52}{fmt_time(seconds):>10}")


def profile(files: list[str], top: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "inspect.prof")
        argv = [
            PY,
            "-m",
            "cProfile",
            "-o",
            out,
            "-m",
            "scratchprobe",
            *sp_inspect("json", files)[3:],
        ]
        try:
            subprocess.run(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
                timeout=timeout,
                check=False,
            )
            texts = {}
            for order in ("tottime", "cumulative"):
                buf = io.StringIO()
                stats = pstats.Stats(out, stream=buf)
                stats.strip_dirs().sort_stats(order).print_stats(top)
                texts[order] = buf.getvalue().split("\n", 5)[-1].strip("\n")
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)}
    return {
        "files": len(files),
        "top": top,
        "by_tottime": texts["tottime"],
        "by_cumtime": texts["cumulative"],
    }


def preflight(binary: str, timeout: float) -> str | None:
    """None when scratchprobe prints a JSON manifest for `binary`; else why not. Timing a
    crash would only measure how fast Python prints a traceback."""
    try:
        proc = subprocess.run(
            sp_inspect("json", [binary]),
            capture_output=True,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    crash = _crash_line(proc.stderr)
    try:
        json.loads(proc.stdout)
    except ValueError:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return f"exit {proc.returncode}, no JSON manifest: {crash or tail[0]}"
    if crash:
        return f"exit {proc.returncode}, traceback on stderr: {crash}"
    return None


def problems_of(scenarios: list[dict[str, Any]], extra: dict[str, Any]) -> list[str]:
    """What makes this result untrustworthy (the exit status of the script says so too)."""
    out = []
    for scn in scenarios:
        for row in scn["rows"]:
            where = f"{scn['id']}: {row['label']}"
            if "skipped" in row:
                continue
            if "failed" in row:
                out.append(f"{where}: {row['failed']}")
            elif row["crashed_runs"]:
                out.append(f"{where}: crashed in {row['crashed_runs']} runs: {row['crash']}")
            elif row["unexpected_exit"] and row["tool"] in ("scratchprobe", "python"):
                out.append(f"{where}: unexpected exit codes {row['exit_codes']}")
    sanity_result = extra.get("sanity", {})
    if "error" in sanity_result:
        out.append(f"sanity: {sanity_result['error']}")
    elif sanity_result.get("inputs") is not None and sanity_result.get(
        "binaries"
    ) != sanity_result.get("inputs"):
        out.append(
            f"sanity: {sanity_result['inputs']} inputs but {sanity_result['binaries']} binaries"
        )
    return out


def sanity(files: list[str], timeout: float) -> dict[str, Any]:
    """One untimed run whose JSON is read back: did scratchprobe cover every file?"""
    args = files if fits_argv(sp_inspect("json", files)) else []
    if not args:
        return {"skipped": "file list does not fit one command line"}
    proc = subprocess.run(
        sp_inspect("json", args),
        capture_output=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        return {"exit_code": proc.returncode, "error": f"output is not JSON: {exc}"}
    binaries = doc.get("binaries", [])
    return {
        "exit_code": proc.returncode,
        "inputs": len(files),
        "binaries": len(binaries),
        "binaries_with_missing": sum(1 for b in binaries if b.get("missing")),
        "files_in_plan": len(doc.get("files", [])),
        "warnings": len(doc.get("warnings", [])),
        "errors": len(doc.get("errors", [])),
        "json_bytes": len(proc.stdout),
    }


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark scratchprobe against lddtree and libtree (see bench/README.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke run: --reps 3 --batch-reps 1 --limit 100"
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="timed runs per cold command (default 10; --quick 3)"
    )
    parser.add_argument(
        "--batch-reps",
        type=int,
        default=None,
        help="timed runs per batch command (default 3; --quick 1)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs of each cold command first (default 1)"
    )
    parser.add_argument(
        "--batch-warmup",
        type=int,
        default=0,
        help="untimed runs of each batch command, after the files are read once (default 0)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed batch rounds; no new round starts that would pass it"
        " (default 150; --quick 30)",
    )
    parser.add_argument(
        "--dir",
        action="append",
        default=None,
        help="directory for the batch, repeatable (default /usr/bin and the multiarch library"
        " directory /usr/lib/x86_64-linux-gnu when it exists)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="TREE",
        help="also run the json and copy rows from this other source tree (an older checkout,"
        " e.g. `git worktree add /tmp/old main`) and print after/before ratios",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only the first N ELF files of --dir (--quick: 100)",
    )
    parser.add_argument(
        "--binary",
        action="append",
        default=None,
        metavar="PATH",
        help="cold-scenario binary (repeatable; default the issue's list where present:"
        " curl, python3, gdb, ffmpeg, docker, terraform, an unstripped Go program over 40 MB"
        " and one over 100 MB from the batch files, and the largest ELF; --quick: curl and"
        " the largest)",
    )
    parser.add_argument("--skip-cold", action="store_true", help="leave out scenario 1")
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the peak-RSS rows (not in --quick)"
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="also the scale row: a root of /usr/bin and /usr/lib/x86_64-linux-gnu hard-linked"
        " with --scale-copies more copies (10,000+ ELF files), json and copy, one run each",
    )
    parser.add_argument(
        "--scale-copies",
        type=int,
        default=5,
        help="extra copies of the two directories in the scale root (default 5)",
    )
    parser.add_argument("--skip-batch", action="store_true", help="leave out scenario 2")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one batch run and report the top entries",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON result file (default {DEFAULT_OUTPUT.relative_to(REPO)})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before one process is given up (default 600)",
    )
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 3 if args.quick else 10
    if args.batch_reps is None:
        args.batch_reps = 1 if args.quick else 3
    if args.limit is None and args.quick:
        args.limit = 100
    if args.budget is None:
        args.budget = 30.0 if args.quick else 150.0
    if args.dir is None:
        args.dir = ["/usr/bin"]
        if not args.quick and os.path.isdir("/usr/lib/x86_64-linux-gnu"):
            args.dir.append("/usr/lib/x86_64-linux-gnu")
    if args.before is not None:
        args.before = args.before.resolve()
        if not (args.before / "scratchprobe" / "__init__.py").is_file():
            parser.error(f"--before {args.before}: no scratchprobe package there")
    for name in ("reps", "batch_reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.batch_warmup < 0 or (args.limit is not None and args.limit < 1):
        parser.error("--warmup and --batch-warmup must be >= 0, --limit >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pyc_dir = tempfile.mkdtemp(prefix="scratchprobe-bench-pyc-") if bytecode_disabled() else None
    try:
        return run(args, pyc_env(pyc_dir) if pyc_dir else None)
    finally:
        if pyc_dir:
            shutil.rmtree(pyc_dir, ignore_errors=True)


def run(args: argparse.Namespace, cached_env: dict[str, str] | None) -> int:
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    tools = discover_tools()
    machine = machine_info()
    notes = list(tools.notes)
    if cached_env is not None:
        notes.append(
            "PYTHONDONTWRITEBYTECODE/-B is in effect: every run compiles scratchprobe from source;"
            " rows marked `.pyc` run with bytecode cached in a temporary PYTHONPYCACHEPREFIX, as"
            " an installed copy would"
        )
    if load_start[0] > 0.5 * (machine["usable_cpus"] or 1):
        notes.append(
            f"machine busy at start (load {load_start[0]:.2f}): medians are noisy, mins less so"
        )

    all_files = [f for directory in args.dir for f in find_elf_files(directory)]
    if not all_files:
        sys.exit(f"bench: no ELF files under {', '.join(args.dir)}")
    files = all_files[: args.limit] if args.limit else all_files
    limited = len(files) < len(all_files)

    print(f"scratchprobe bench  {dt.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {machine['usable_cpus']}/{machine['nproc']} CPUs ({machine['cpu_model']}),"
        f" {machine['os']}, kernel {machine['kernel']}, Python {machine['python']} ({PY})"
    )
    sp_info = tools.info["scratchprobe"]
    dirty = " (+ uncommitted changes)" if sp_info["working_tree_differs"] else ""
    print(f"{sp_info['version']} @ {sp_info['commit']}{dirty} from {sp_info['module_file']}")
    for name in ("lddtree", "libtree"):
        entry = tools.info.get(name)
        if entry:
            run_by = f", run by {entry['interpreter']}" if entry.get("interpreter") else ""
            print(f"{name} {entry['version']} ({entry['path']}{run_by})")
    for note in notes:
        print(f"note: {note}")
    broken = preflight(files[0], args.timeout)
    if broken is not None:
        print(f"bench: scratchprobe does not work on {files[0]}, nothing measured: {broken}")
        return 2

    scenarios: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    go_programs: dict[int, str] = {}
    if not args.skip_cold:
        binaries = args.binary or ["/usr/bin/curl"]
        if args.binary is None:
            # The jobs of the speed issue's table, where this machine has them.
            if not args.quick:
                named = ("python3", "gdb", "ffmpeg", "docker", "terraform")
                # The distribution's programs first: a pyenv `python3` on PATH is a shim.
                search = os.pathsep.join(["/usr/bin", "/usr/local/bin", os.environ.get("PATH", "")])
                binaries += [p for n in named if (p := shutil.which(n, path=search)) and is_elf(p)]
                for floor_mb in (40, 100):
                    go = unstripped_go(all_files, floor_mb * 1_000_000)
                    if go is None:
                        go, note = built_go(floor_mb, args.timeout)
                        notes.append(f"no unstripped Go program over {floor_mb} MB in the batch;"
                                     f" {note}")  # fmt: skip
                    if go is not None:
                        go_programs[floor_mb] = go
                        binaries.append(go)
            largest = max(all_files, key=lambda p: os.stat(p).st_size)
            binaries.append(largest)
            binaries = [os.path.realpath(b) for b in binaries]
        _progress("floor")
        modules = modules_loaded(binaries[0], args.timeout)
        extra["modules_loaded"] = modules
        results, _ = measure(floor_cases(cached_env, modules), args.reps, args.warmup, args.timeout)
        floor = scenario_json(
            "floor", f"Floor: interpreter start-up ({_runs(args.reps, 0)})", results, []
        )
        scenarios.append(floor)
        print_scenario(floor)
        for index, binary in enumerate(dict.fromkeys(binaries)):
            if not is_elf(binary):
                print(f"\nnote: cold scenario for {binary} skipped: not a readable ELF file")
                notes.append(f"cold scenario for {binary} skipped: not a readable ELF file")
                continue
            size = os.stat(binary).st_size
            _progress(f"cold {binary}")
            results, _ = measure(
                cold_cases(binary, tools, index == 0, cached_env, args.before),
                args.reps,
                args.warmup,
                args.timeout,
            )
            scn = scenario_json(
                f"cold:{os.path.basename(binary)}",
                f"Cold single binary: {binary} ({size / 1e6:.1f} MB), fresh process per run,"
                f" {_runs(args.reps, args.warmup)}",
                results,
                [],
                binary=binary,
                size_bytes=size,
            )
            sp = _median_of(scn, "sp")
            derived = []
            for key, label in (("py-pass", "python -c pass"), ("py-imports", "its imports")):
                base = _median_of(floor, key)
                if sp is not None and base is not None:
                    derived.append(f"scratchprobe above {label}: {fmt_time(sp - base)}")
            scn["derived"] = derived
            scenarios.append(scn)
            print_scenario(scn)
        if binaries:
            extra["breakdown_single"] = breakdown(binaries[:1], args.reps, args.timeout)
            print_breakdown(
                "scratchprobe phases, one binary (in-process timers)", extra["breakdown_single"]
            )

    if not args.skip_batch:
        cases, batch_notes = batch_cases(files, args.dir, limited, tools, args.before)
        _progress("batch: reading the files once")
        warm_s, warm_bytes = warm_page_cache(files)
        batch_notes.append(
            f"warm-up: every file read once ({warm_bytes / 1e6:.0f} MB in {fmt_time(warm_s)})"
            + (f", then {_runs(args.batch_warmup, 0)} of each command" if args.batch_warmup else "")
        )
        results, stop_notes = measure(
            cases,
            args.batch_reps,
            args.batch_warmup,
            args.timeout,
            budget=args.budget,
            slow=SLOW_BATCH_S,
        )
        total_mb = sum(os.stat(f).st_size for f in files) / 1e6
        scn = scenario_json(
            "batch",
            f"Batch: {len(files)} ELF files of {' '.join(args.dir)} ({total_mb:.0f} MB),"
            f" up to {_runs(args.batch_reps, 0)}",
            results,
            batch_notes + stop_notes,
            files=len(files),
            total_bytes=int(total_mb * 1e6),
        )
        derived = []
        sp, copy = _median_of(scn, "sp"), _median_of(scn, "sp-copy")
        if sp is not None and copy is not None:
            derived.append(
                f"json minus copy: {fmt_time(sp - copy)} (JSON rendering plus any work only"
                " --format json asks for; the phases below give rendering alone)"
            )
        for row in scn["rows"]:
            if row.get("cpu_median_s") and row["tool"] == "scratchprobe":
                derived.append(
                    f"{row['label']}: cpu/wall {row['cpu_median_s'] / row['median_s']:.2f}"
                    f" (> 1 means more than one core is used)"
                )
                break
        derived += throughput(scn, len(files), total_mb)
        scn["derived"] = derived
        scenarios.append(scn)
        print_scenario(scn)
        # A slow scratchprobe gets one breakdown run, not one per batch round.
        reps = 1 if sp is None or sp > SLOW_BATCH_S else args.batch_reps
        extra["breakdown_batch"] = breakdown(files, reps, args.timeout)
        print_breakdown("scratchprobe phases, batch (in-process timers)", extra["breakdown_batch"])
        extra["sanity"] = extra["breakdown_batch"].get("sanity") or sanity(files, args.timeout)
        print("\n== Sanity (the breakdown run's JSON manifest, read back) ==")
        print("   " + ", ".join(f"{k}={v}" for k, v in extra["sanity"].items()))
        if args.profile:
            extra["profile"] = profile(files, 25, args.timeout)
            prof = extra["profile"]
            print("\n== cProfile of one batch run (top by tottime) ==")
            print(prof.get("by_tottime") or prof.get("error"))
            print("\n== cProfile of one batch run (top by cumulative time) ==")
            print(prof.get("by_cumtime") or prof.get("error"))

    if not args.quick and not args.skip_memory:
        go = go_programs.get(100)
        if go is None and not args.skip_cold:
            notes.append("memory: no Go program over 100 MB, its rows are left out")
        elif go is None:
            go, note = built_go(100, args.timeout)
            notes.append(note)
        _progress("memory")
        results, _ = measure(memory_cases(go, files, args.before), 1, 0, args.timeout)
        scn = scenario_json(
            "memory",
            "Memory: peak resident set (wait4 ru_maxrss) of one run each",
            results,
            [],
        )
        scn["derived"] = memory_derived(scn, len(half_batch(files)), len(files))
        scenarios.append(scn)
        print_scenario(scn)

    if args.scale:
        _progress("scale: building the root")
        root, inputs, note = build_scale_root(args.scale_copies)
        scale_notes = [note]
        if root is not None:
            try:
                warm_s, warm_bytes = warm_page_cache([str(root) + f for f in inputs])
                scale_notes.append(
                    f"warm-up: every file read once ({warm_bytes / 1e6:.0f} MB in"
                    f" {fmt_time(warm_s)}); hard links: the page cache holds each file once"
                )
                _progress("scale")
                results, _ = measure(scale_cases(root, inputs), 1, 0, args.timeout)
                total_mb = sum(os.stat(str(root) + f).st_size for f in inputs) / 1e6
                scn = scenario_json(
                    "scale",
                    f"Scale: {len(inputs)} ELF files in one root ({total_mb:.0f} MB), one"
                    " process, 1 run",
                    results,
                    scale_notes,
                    files=len(inputs),
                    total_bytes=int(total_mb * 1e6),
                )
                scn["derived"] = throughput(scn, len(inputs), total_mb)
                scenarios.append(scn)
                print_scenario(scn)
            finally:
                shutil.rmtree(root.parent, ignore_errors=True)
        else:
            notes.append(note)

    ratios = summary(scenarios)
    print_summary(ratios)

    problems = problems_of(scenarios, extra)
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - started
    result = {
        "format": "scratchprobe-bench/1",
        "started": started_at,
        "duration_s": elapsed,
        "settings": {
            "quick": args.quick,
            "reps": args.reps,
            "batch_reps": args.batch_reps,
            "warmup": args.warmup,
            "batch_warmup": args.batch_warmup,
            "budget_s": args.budget,
            "dir": args.dir,
            "limit": args.limit,
            "elf_files_in_dir": len(all_files),
            "files_used": len(files),
        },
        "machine": machine | {"loadavg_start": load_start, "loadavg_end": load_end},
        "tools": tools.info,
        "notes": notes,
        "scenarios": scenarios,
        "summary": ratios,
        "valid": not problems,
        "problems": problems,
        **extra,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    if problems:
        print("\n== RESULT NOT VALID ==")
        for problem in problems:
            print(f"   {problem}")
    print(
        f"\n{elapsed:.0f} s in all; load {load_start[0]:.2f} -> {load_end[0]:.2f};"
        f" results in {args.output}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
