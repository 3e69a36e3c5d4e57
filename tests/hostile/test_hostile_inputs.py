"""Hostile input (issue 9 §2, §3): every case that once crashed, hung or ran for minutes.

Each file is written here with `struct` (tests/hostile_elf.py) or is a crafted root in
tmp_path; sparse files come from truncate. Every run is a real CLI process with a memory
limit (a MemoryError, not the machine's OOM killer) and a timeout that only guards against a
hang: nothing here measures time. The suite's conftest makes the last-resort handler raise,
so an input that reaches it fails with a traceback.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from scratchprobe.discover import InputProblem
from scratchprobe.elf.image import opened
from scratchprobe.elf.reader import read_elf
from scratchprobe.errors import ELFError
from scratchprobe.internal import internal_problem
from tests.conftest import HOST_LIBDIR, HOST_LOADER, TESTBINS
from tests.hostile_elf import (
    BASE,
    DT_NEEDED,
    DT_STRSZ,
    DT_STRTAB,
    ET_EXEC,
    PF_R,
    PF_W,
    PT_INTERP,
    PT_LOAD,
    PT_NOTE,
    ElfBuilder,
    dynamic_library,
)

# Out of the fast loop (`pytest -m "not slow"`): each case starts scratchprobe processes on
# sparse or huge crafted inputs.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 3 << 30
HANG_GUARD = 300  # seconds; only a hang (or minutes of quadratic work) ever reaches it
FORMATS = ("text", "json", "cyclonedx", "copy", "dockerfile")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(*args: str, timeout: int = HANG_GUARD) -> subprocess.CompletedProcess[str]:
    """The CLI under a memory limit; asserts the stderr contract of bad input."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scratchprobe", *args],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            env=env,
            preexec_fn=_limit_memory,
            cwd="/",  # `python -m` puts the working directory first on sys.path
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scratchprobe {' '.join(args)} did not finish in {timeout} s (a hang)")
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1, 2), proc.stderr[-3000:]
    for line in proc.stderr.splitlines():
        assert line.startswith("scratchprobe: "), line
        assert "internal error" not in line, line
    return proc


def check_output(fmt: str, stdout: str) -> None:
    if fmt in ("json", "cyclonedx"):
        json.loads(stdout)


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """Everything the run printed: warnings are in the report (text, JSON) or on stderr."""
    return proc.stdout + proc.stderr


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("scratchprobe: error:")]


# ------------------------------------------------------------------------ §2 tracebacks


@pytest.mark.parametrize("fmt", FORMATS)
def test_writable_load_near_2_63(tmp_path: Path, fmt: str) -> None:
    """The Go build-info search clamped the start of a writable segment but not its end:
    OverflowError in json and cyclonedx."""
    builder = ElfBuilder(e_type=ET_EXEC)
    builder.phdr(PT_LOAD, (1 << 63) + 16, 4096, flags=PF_R | PF_W, vaddr=0x800000)
    target = tmp_path / "huge-offset"
    target.write_bytes(builder.build())
    good = TESTBINS / "c-glibc-static"
    proc = run("inspect", "--format", fmt, str(target), str(good))
    check_output(fmt, proc.stdout)
    if fmt == "text":
        assert str(good) in proc.stdout
        assert str(target) in proc.stdout


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("fmt", ["text", "json", "cyclonedx"])
def test_deep_json_in_dep_v0(tmp_path: Path, fmt: str) -> None:
    """cargo-auditable's .dep-v0 is JSON: 100,000 nested arrays overflowed the parser."""
    builder = ElfBuilder(e_type=ET_EXEC)
    builder.section(b".dep-v0", zlib.compress(b'{"packages":' + _deep(100_000) + b"}"))
    builder.section(b".comment", b"rustc version 1.80.0 (051478957 2024-07-21)\0")
    target = tmp_path / "deep-dep-v0"
    target.write_bytes(builder.build())
    proc = run("inspect", "--format", fmt, str(target))
    check_output(fmt, proc.stdout)
    if fmt != "text":
        assert "JSON nested 100001 levels deep, more than 64" in said(proc)


def _note(owner: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % 4)

    return struct.pack("<III", len(owner) + 1, len(desc), ntype) + pad(owner + b"\0") + pad(desc)


@pytest.mark.parametrize("fmt", FORMATS)
def test_deep_json_in_note_dlopen(tmp_path: Path, fmt: str) -> None:
    """systemd's .note.dlopen is JSON too (the FDO dlopen metadata note, type 0x407c0c0a)."""
    builder = ElfBuilder()
    interp = builder.add(HOST_LOADER.encode() + b"\0")
    builder.phdr(PT_INTERP, interp, len(HOST_LOADER) + 1)
    names = b"\0libc.so.6\0"
    str_at = builder.add(names)
    builder.dynamic([(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(names)), (DT_NEEDED, 1)])
    note = _note(b"FDO", 0x407C0C0A, _deep(50_000))
    builder.phdr(PT_NOTE, builder.section(b".note.dlopen", note, 7), len(note))
    target = tmp_path / "deep-dlopen"
    target.write_bytes(builder.build())
    proc = run("inspect", "--format", fmt, str(target))
    check_output(fmt, proc.stdout)


def _chain(root: Path, depth: int, *, rpath: bool) -> Path:
    """/bin/app needs lib0, lib0 needs lib1, ... (RUNPATH /l, or an RPATH per level)."""
    for level in range(depth):
        name = f"lib{level}.so".encode()
        needed = [f"lib{level + 1}.so".encode()] if level + 1 < depth else []
        directory = root / (f"d{level}" if rpath else "l")
        directory.mkdir(exist_ok=True)
        data = (
            dynamic_library(needed, soname=name, rpath=f"/d{level + 1}".encode())
            if rpath
            else dynamic_library(needed, soname=name, runpath=b"/l")
        )
        (directory / name.decode()).write_bytes(data)
    (root / "bin").mkdir()
    app = root / "bin" / "app"
    app.write_bytes(
        dynamic_library([b"lib0.so"], e_type=ET_EXEC, rpath=b"/d0")
        if rpath
        else dynamic_library([b"lib0.so"], e_type=ET_EXEC, runpath=b"/l")
    )
    return app


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_library_chain_1200_deep(tmp_path: Path, fmt: str) -> None:
    """The text tree recursed once per level (RecursionError past ~1000)."""
    root = tmp_path / "root"
    root.mkdir()
    _chain(root, 1200, rpath=False)
    # --full: the text report shows the library tree only on request.
    full = ("--full",) if fmt == "text" else ()
    proc = run("inspect", "--root", str(root), "--format", fmt, *full, "/bin/app")
    check_output(fmt, proc.stdout)
    assert proc.returncode == 0, proc.stderr
    if fmt == "text":
        assert "lib1199.so => /l/lib1199.so" in proc.stdout


def test_rpath_chain_1200_deep(tmp_path: Path) -> None:
    """Each level expanded the RPATH of every object above it before searching: 25 s."""
    root = tmp_path / "root"
    root.mkdir()
    _chain(root, 1200, rpath=True)
    proc = run("inspect", "--root", str(root), "--format", "json", "/bin/app")
    libraries = json.loads(proc.stdout)["binaries"][0]
    assert proc.returncode == 0, proc.stderr
    assert '"/d1199/lib1199.so"' in json.dumps(libraries)


def test_deeply_nested_toml_policy(tmp_path: Path) -> None:
    policy = tmp_path / "scratchprobe.toml"
    policy.write_bytes(b"a = " + _deep(20_000) + b"\n")
    proc = run("check", "--policy", str(policy), str(TESTBINS / "c-glibc-static"))
    assert proc.returncode == 2
    assert errors(proc) == [f"scratchprobe: error: {policy}: invalid TOML: nested too deeply"]


def test_pt_interp_of_50_gib(tmp_path: Path) -> None:
    """PT_INTERP's p_filesz was read whole: 50 GiB (a sparse file) is a MemoryError."""
    builder = ElfBuilder(e_type=ET_EXEC, map_all=False)
    builder.phdr(PT_INTERP, 4096, 50 << 30)
    target = tmp_path / "interp-50g"
    target.write_bytes(builder.build())
    os.truncate(target, (50 << 30) + 8192)
    proc = run("inspect", str(target), str(TESTBINS / "c-glibc-static"))
    assert proc.returncode == 2
    assert errors(proc) == [
        f"scratchprobe: error: {target}: PT_INTERP is {50 << 30} bytes, longer than PATH_MAX"
    ]
    assert str(TESTBINS / "c-glibc-static") in proc.stdout


def test_thousands_of_needed_share_one_long_string(tmp_path: Path) -> None:
    """4000 DT_NEEDED pointing at one 1 MiB string were copied 4000 times (4 GB)."""
    builder = ElfBuilder()
    names = b"\0" + b"a" * (1 << 20) + b"\0"
    str_at = builder.add(names)
    entries = [(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(names))]
    builder.dynamic(entries + [(DT_NEEDED, 1)] * 4000)
    target = tmp_path / "needed-x4000"
    target.write_bytes(builder.build())
    proc = run("inspect", str(target))
    assert errors(proc) == [f"scratchprobe: error: {target}: DT_NEEDED is longer than 4096 bytes"]


def test_thousands_of_needed_share_one_name(tmp_path: Path) -> None:
    """Interned, a name shared by 4000 entries is decoded once and searched as one."""
    builder = ElfBuilder()
    names = b"\0libshared.so\0"
    str_at = builder.add(names)
    entries = [(DT_STRTAB, BASE + str_at), (DT_STRSZ, len(names))]
    builder.dynamic(entries + [(DT_NEEDED, 1)] * 4000)
    target = tmp_path / "shared-name"
    target.write_bytes(builder.build())
    elf = read_elf(str(target))
    assert elf.needed == ("libshared.so",) * 4000
    assert len({id(name) for name in elf.needed}) == 1
    proc = run("inspect", "--format", "json", str(target))
    assert proc.returncode == 1  # libshared.so is missing, once per reference


def _ld_cache(entries: int, string: bytes) -> bytes:
    """A new-format ld.so.cache whose entries all name the same string."""
    header = 48
    table = header + entries * 24
    raw = bytearray(b"glibc-ld.so.cache1.1")
    raw += struct.pack("<II", entries, len(string) + 1) + bytes(header - len(raw) - 8)
    for _ in range(entries):
        raw += struct.pack("<iIIIQ", 0x0303, table, table, 0, 0)
    return bytes(raw) + string + b"\0"


def test_ld_cache_entries_share_one_long_string(tmp_path: Path) -> None:
    """200,000 entries naming one 100 KiB string were 40 GB of copies."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "ld.so.cache").write_bytes(_ld_cache(200_000, b"x" * (100 << 10)))
    (root / "bin").mkdir()
    (root / "bin" / "app").write_bytes(dynamic_library([b"libfoo.so"], e_type=ET_EXEC))
    proc = run("inspect", "--root", str(root), "/bin/app")
    assert proc.returncode == 1
    assert "ld.so.cache ignored: a string in the cache is longer than 4096 bytes" in said(proc)


# ------------------------------------------------------------------------ §3 hangs


def _glibc_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for inner, source in {
        "lib/x86_64-linux-gnu/libc.so.6": f"{HOST_LIBDIR}/libc.so.6",
        "lib64/ld-linux-x86-64.so.2": HOST_LOADER,
        "bin/app": str(TESTBINS / "c-glibc-dynamic"),
    }.items():
        dest = root / inner
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(source).read_bytes())
    (root / "etc").mkdir()
    return root


@pytest.mark.parametrize("where", ["etc/ld.so.cache", "etc/ld.so.conf"])
def test_fifo_in_the_root_glibc(tmp_path: Path, where: str) -> None:
    root = _glibc_root(tmp_path)
    os.mkfifo(root / where)
    proc = run("inspect", "--root", str(root), "/bin/app", timeout=120)
    assert proc.returncode == 0, proc.stderr
    if where == "etc/ld.so.cache":
        assert "/etc/ld.so.cache ignored: not a regular file (a FIFO)" in said(proc)


def test_fifo_as_musl_path_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "bin").mkdir()
    musl = Path("/usr/lib/x86_64-linux-musl/libc.so")
    if not musl.exists():
        pytest.skip("musl is not installed (apt-get install musl)")
    (root / "lib" / "ld-musl-x86_64.so.1").write_bytes(musl.read_bytes())
    (root / "bin" / "app").write_bytes((TESTBINS / "c-musl-dynamic").read_bytes())
    os.mkfifo(root / "etc" / "ld-musl-x86_64.path")
    proc = run("inspect", "--root", str(root), "/bin/app", timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_fifo_as_etc_passwd(tmp_path: Path) -> None:
    root = _glibc_root(tmp_path)
    os.mkfifo(root / "etc" / "passwd")
    # --copy-etc: the builder's passwd is read (by default minimal entries are generated).
    proc = run(
        "inspect", "--root", str(root), "--copy-etc", "--user", "app", "/bin/app", timeout=120
    )
    assert "/etc/passwd is not a regular file (a FIFO)" in said(proc)


def test_fifo_as_policy(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    proc = run("check", "--policy", str(fifo), str(TESTBINS / "c-glibc-static"), timeout=120)
    assert proc.returncode == 2
    assert errors(proc) == [
        f"scratchprobe: error: {fifo}: cannot read the policy: not a regular file (a FIFO)"
    ]


def test_runpath_of_20000_entries_and_50_missing_needed(tmp_path: Path) -> None:
    """Every missing name was checked against a list of the directories tried: minutes."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    runpath = b":".join(b"/r%d" % i for i in range(20_000))
    needed = [b"libmissing%d.so" % i for i in range(50)]
    (root / "bin" / "app").write_bytes(dynamic_library(needed, runpath=runpath, e_type=ET_EXEC))
    proc = run("inspect", "--root", str(root), "--format", "json", "/bin/app")
    assert proc.returncode == 1
    missing = json.loads(proc.stdout)["binaries"][0]
    assert len(json.dumps(missing)) > 0


def test_crafted_loader_of_16_mib(tmp_path: Path) -> None:
    """Reading system_dirs out of a crafted ld.so was quadratic (90 s for 16 MiB)."""
    root = _glibc_root(tmp_path)
    builder = ElfBuilder()
    builder.add(b"/a/\0" * (4 << 20))  # 16 MiB of directory strings, none with lengths
    (root / "lib64" / "ld-linux-x86-64.so.2").write_bytes(builder.build())
    proc = run("inspect", "--root", str(root), "--full", "/bin/app")
    assert "glibc's default for the architecture" in proc.stdout or "Debian" in proc.stdout


def _sparse_static(tmp_path: Path, size: int) -> Path:
    """A section-less static file whose one PT_LOAD maps `size` bytes, nearly all holes."""
    builder = ElfBuilder(e_type=ET_EXEC, map_all=False)
    builder.phdr(PT_LOAD, 0, size, flags=PF_R, vaddr=BASE)
    builder.add(b"/etc/ssl/certs/ca-certificates.crt\0")
    target = tmp_path / f"sparse-{size >> 30}g"
    target.write_bytes(builder.build())
    os.truncate(target, size)
    return target


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_sparse_static_file_of_2_gib(tmp_path: Path, fmt: str) -> None:
    """Scanned whole, several times: 57 s and 2 GB. Now what PT_LOAD maps, once, bounded."""
    target = _sparse_static(tmp_path, 2 << 30)
    proc = run("inspect", "--format", fmt, str(target))
    check_output(fmt, proc.stdout)
    skipped = (2 << 30) - (256 << 20)
    assert f"{target}: {skipped} bytes of its mapped data not searched" in said(proc)
    if fmt == "json":
        assert f"is {2 << 30} bytes, over 1 GiB: not hashed" in said(proc)


def test_sparse_file_of_50_gib_is_not_hashed(tmp_path: Path) -> None:
    target = _sparse_static(tmp_path, 50 << 30)
    proc = run("inspect", "--format", "json", str(target))
    document = json.loads(proc.stdout)
    entry = next(f for f in document["files"] if f["path"] == str(target))
    assert "sha256" not in entry or entry["sha256"] is None
    assert f"{target} is {50 << 30} bytes, over 1 GiB: not hashed" in said(proc)


# ------------------------------------------------------------------------ reads cannot fault


def test_a_file_that_shrinks_while_scanned_is_an_error(tmp_path: Path) -> None:
    """mmap would die of SIGBUS here; the image's pread comes back short instead."""
    copy = tmp_path / "shrinking"
    copy.write_bytes((TESTBINS / "c-glibc-static").read_bytes())
    elf = read_elf(str(copy))
    with opened(elf) as image:
        head = image.read(0, 4, "magic")
        os.truncate(copy, 64)
        with pytest.raises(ELFError, match="changed while it was read"):
            image.find(b"/etc/nsswitch.conf", 0, elf.size)
    assert head == b"\x7fELF"


def test_no_scanner_maps_files() -> None:
    """Every reader goes through elf/image.py: no module of the package imports mmap."""
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "scratchprobe").rglob("*.py")
        if "import mmap" in path.read_text()
    ]
    assert offenders == []


# ------------------------------------------------------------------------ the last resort


def test_last_resort_reports_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRATCHPROBE_DEBUG_INTERNAL")
    try:
        raise RecursionError("maximum recursion depth\nexceeded")
    except RecursionError as exc:
        problem = internal_problem("/bin/x", exc)
    assert problem == InputProblem(
        "/bin/x", "internal error: RecursionError: maximum recursion depth exceeded"
    )


def test_last_resort_raises_in_the_suite() -> None:
    assert os.environ["SCRATCHPROBE_DEBUG_INTERNAL"] == "1"
    with pytest.raises(MemoryError):
        internal_problem("/bin/x", MemoryError())
