"""The runtime needs recorded in testbins/built/runtime/MANIFEST-c.json are real here.

For every C runtime testbin the root starts minimal: the binary, its loader and its
DT_NEEDED closure, copied from this host at the paths ldd prints. Then:

* with every file marked needed_for_success added, the program does its job and prints
  exactly the expected line (so every file *not* added, e.g. nsswitch.conf, is proven
  unnecessary);
* without any single one of them it fails or prints something else (several programs
  exit 0 with a wrong answer, e.g. localtime falling back to UTC, so the output is
  compared, never just the exit code);
* under strace, observed_open matches what the program tried to open, and every path it
  touched is listed in the manifest.

These tests copy the host's own files into the roots; they do not use scratchprobe.
The lead's later tests build the same roots from scratchprobe's plan instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox_probe import (
    BWRAP,
    RUNTIME_BINS,
    STRACE,
    TESTBINS,
    BinaryEntry,
    Need,
    SandboxOptions,
    TraceEvent,
    argv_of,
    build_root,
    copy_into_root,
    is_loader_probe,
    load_manifest,
    loader_closure,
    minimal_root,
    needs_tls,
    normalise,
    options_of,
    parse_strace,
    required,
    run_in_root,
    touches,
    traced_run,
)
from tests.tls_fixture import BODY, OPENSSL, fetch, https_server

MANIFEST = load_manifest()
BINARIES = MANIFEST["binaries"]
GCONV = "/usr/lib/x86_64-linux-gnu/gconv"
MULTIARCH = "/lib/x86_64-linux-gnu"

needs_bwrap = pytest.mark.skipif(BWRAP is None, reason="bubblewrap (bwrap) is not installed")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed")
needs_openssl_cli = pytest.mark.skipif(OPENSSL is None, reason="the openssl CLI is not installed")


def _host_sources(entry: BinaryEntry) -> list[Path]:
    """Host files a root for this entry copies, besides the closure."""
    paths = []
    for need in required(entry):
        source = need.get("provide", {}).get("copy")
        if source is not None:
            paths.append(Path(source) if source.startswith("/") else TESTBINS / source)
    return paths


def _skip_unless_runnable(name: str) -> None:
    """Skip (with the reason) when this host cannot build the root: a toolchain skipped
    at build time, or a host file (musl loader, libssl, a gconv module) missing."""
    binary = RUNTIME_BINS / name
    if not binary.is_file():
        pytest.skip(f"{binary} was not built")
    try:
        closure = loader_closure(binary)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot list the libraries of {name} on this host: {exc}")
    for path in [*map(Path, closure), *_host_sources(BINARIES[name])]:
        if not path.exists():
            pytest.skip(f"host file {path} (needed to build the root for {name}) is missing")


@pytest.fixture(scope="module")
def sandbox_works(tmp_path_factory: pytest.TempPathFactory) -> None:
    """bwrap may be installed yet unable to create namespaces (e.g. in a locked-down
    container); skip instead of failing every test then."""
    if BWRAP is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    root = tmp_path_factory.mktemp("bwrap-check") / "root"
    inner = minimal_root(root, RUNTIME_BINS / "c-localtime-static")
    proc = run_in_root(root, [inner, "UTC"])
    if proc.returncode != 0 and proc.stderr.startswith("bwrap:"):
        pytest.skip(f"bwrap cannot create a sandbox here: {proc.stderr.strip()}")


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, Path]]:
    if OPENSSL is None:
        pytest.skip("the openssl CLI is not installed (needed for the throw-away CA)")
    with https_server() as server:
        yield server


def _tls_for(entry: BinaryEntry, request: pytest.FixtureRequest) -> tuple[int | None, Path | None]:
    """(port, CA) of the module's HTTPS fixture, started only for the TLS client."""
    if not needs_tls(entry):
        return None, None
    port, ca_pem = request.getfixturevalue("tls_server")
    return port, ca_pem


def _run(
    root: Path, name: str, request: pytest.FixtureRequest, *, omit: str | None = None
) -> tuple[subprocess.CompletedProcess[str], int | None]:
    entry = BINARIES[name]
    port, ca_pem = _tls_for(entry, request)
    inner = build_root(root, name, entry, omit=omit, ca_pem=ca_pem)
    return run_in_root(root, argv_of(inner, entry, port), entry["env"], 20, options_of(entry)), port


NEED_CASES = [
    pytest.param(name, need["path"], id=f"{name}:{need['path']}")
    for name, entry in BINARIES.items()
    for need in required(entry)
]


# --------------------------------------------------------------------------- manifest


def test_manifest_lists_exactly_the_c_runtime_testbins() -> None:
    built = {p.name for p in RUNTIME_BINS.glob("c-*") if p.is_file()}
    assert set(BINARIES) == built
    for name, entry in BINARIES.items():
        assert (TESTBINS.parent / entry["source"]).is_file(), name
        assert required(entry), f"{name}: a runtime testbin must need at least one file"
        for need in entry["needs"]:
            assert need["note"], f"{name}: {need['path']} has no note"
            # Only needed files are put in roots, so only they need a recipe.
            assert ("provide" in need) == need["needed_for_success"], (name, need["path"])
            assert ("without" in need) == need["needed_for_success"], (name, need["path"])


# --------------------------------------------------------------------------- needs


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize("name", list(BINARIES))
def test_does_its_job_with_its_needs(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _skip_unless_runnable(name)
    proc, _ = _run(tmp_path / "root", name, request)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == BINARIES[name]["expect_stdout"]


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(("name", "path"), NEED_CASES)
def test_fails_or_differs_without_the_need(
    name: str, path: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _skip_unless_runnable(name)
    proc, port = _run(tmp_path / "root", name, request, omit=path)
    expected = BINARIES[name]["expect_stdout"]
    assert proc.returncode != 0 or proc.stdout != expected, f"{path} was not needed"
    # ...and it fails the way the manifest recorded.
    need: Need = next(n for n in BINARIES[name]["needs"] if n["path"] == path)
    assert proc.returncode == need["without"]["returncode"]
    assert normalise(proc.stdout, port) == need["without"]["stdout"]


# Paths every dynamic glibc program probes at start-up, and the chroot check of NSS:
# part of loading the closure, not runtime needs of the program.
_STARTUP = {"/etc/ld.so.preload", "/etc/ld.so.cache", "/"}


@needs_bwrap
@needs_strace
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize("name", list(BINARIES))
def test_trace_agrees_with_manifest(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _skip_unless_runnable(name)
    entry = BINARIES[name]
    port, ca_pem = _tls_for(entry, request)
    root = tmp_path / "root"
    inner = build_root(root, name, entry, ca_pem=ca_pem)
    proc, events = traced_run(root, argv_of(inner, entry, port), entry["env"], 20,
                              options_of(entry))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [e for e in events if not is_loader_probe(e)]
    for need in entry["needs"]:
        seen = [str(e) for e in events if touches(e, need["path"])]
        assert bool(seen) == need["observed_open"], (need["path"], seen)
    closure = [*loader_closure(RUNTIME_BINS / name), inner]
    unlisted = [
        str(e)
        for e in events
        if e.path.startswith("/")
        and e.path not in _STARTUP
        and not any(touches(e, p) for p in closure)
        and not any(touches(e, n["path"]) for n in entry["needs"])
    ]
    assert unlisted == [], "the program touched paths MANIFEST-c.json does not mention"


# --------------------------------------------------------------------------- details


def _root_with(tmp_path: Path, name: str, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """Minimal root for ``name`` plus ``files`` ({in-root path: host path or contents})."""
    _skip_unless_runnable(name)
    root = tmp_path / "root"
    inner = minimal_root(root, RUNTIME_BINS / name)
    for path, source in files.items():
        if isinstance(source, bytes):
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(source)
        else:
            if not Path(source).exists():
                pytest.skip(f"host file {source} is missing")
            copy_into_root(root, path, source)
    return root, inner


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(
    ("name", "files", "expected"),
    [
        # Without the cache glibc reads the text file; ISO-8859-1 is defined there.
        pytest.param(
            "c-iconv",
            [f"{GCONV}/gconv-modules", f"{GCONV}/ISO8859-1.so"],
            "ISO-8859-1: 68 e9 6c 6c 6f\n",
            id="iso8859-1-text-config",
        ),
        # Debian defines IBM037 only in gconv-modules.d/gconv-modules-extra.conf: the
        # main text file alone is not enough.
        pytest.param(
            "c-iconv-ebcdic",
            [f"{GCONV}/gconv-modules", f"{GCONV}/IBM037.so"],
            None,
            id="ibm037-main-text-file-only",
        ),
        pytest.param(
            "c-iconv-ebcdic",
            [
                f"{GCONV}/gconv-modules",
                f"{GCONV}/gconv-modules.d/gconv-modules-extra.conf",
                f"{GCONV}/IBM037.so",
            ],
            "IBM037: 88 51 93 93 96\n",
            id="ibm037-text-config-with-extra",
        ),
    ],
)
def test_gconv_text_configuration(
    name: str, files: list[str], expected: str | None, tmp_path: Path
) -> None:
    root, inner = _root_with(tmp_path, name, {f: f for f in files})
    proc = run_in_root(root, [inner], options=SandboxOptions(share_net=False))
    if expected is None:
        assert proc.returncode != 0
        assert "Invalid argument" in proc.stderr
    else:
        assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(
    ("service", "libs", "ok"),
    [
        # files (and dns) are built into libc.a since glibc 2.34: nothing to dlopen.
        pytest.param("files", [], True, id="files-builtin"),
        # Any other service is dlopen'd as libnss_X.so.2, which NEEDs the shared
        # libc.so.6, which NEEDs ld-linux-x86-64.so.2, searched by name in the default
        # library dirs (the PT_INTERP path /lib64/... is not one of them).
        pytest.param("compat", ["libnss_compat.so.2", "libc.so.6"], False, id="compat-no-loader"),
        pytest.param(
            "compat",
            ["libnss_compat.so.2", "libc.so.6", "ld-linux-x86-64.so.2"],
            True,
            id="compat-with-loader",
        ),
    ],
)
def test_static_glibc_nss_services(service: str, libs: list[str], ok: bool, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "/etc/passwd": b"scratchprobe:x:4242:4343::/home/probe:/bin/sh\n",
        "/etc/nsswitch.conf": f"passwd: {service}\n".encode(),
    }
    files.update({f"{MULTIARCH}/{lib}": f"{MULTIARCH}/{lib}" for lib in libs})
    root, inner = _root_with(tmp_path, "c-getpwnam-static", files)
    proc = run_in_root(root, [inner, "scratchprobe"], options=SandboxOptions(share_net=False))
    if ok:
        assert (proc.returncode, proc.stdout) == (0, "4242:4343:/home/probe\n"), proc.stderr
    else:
        # A failed module dlopen is not fatal: the service is skipped, the user not found.
        assert proc.returncode == 1
        assert "no such user" in proc.stderr


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(
    "name",
    [n for n, e in BINARIES.items() if any(x["path"] == "/proc/self/exe" for x in e["needs"])],
)
def test_static_glibc_does_not_need_proc(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Static glibc readlink()s /proc/self/exe at start-up; without /proc it carries on."""
    _skip_unless_runnable(name)
    entry = BINARIES[name]
    root = tmp_path / "root"
    inner = build_root(root, name, entry, ca_pem=None)
    options = SandboxOptions(share_net=entry["share_net"], mount_proc=False)
    proc = run_in_root(root, argv_of(inner, entry, None), entry["env"], 20, options)
    assert (proc.returncode, proc.stdout) == (0, entry["expect_stdout"]), proc.stderr


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize("name", ["c-mkstemp", "c-mkstemp-musl-static"])
@pytest.mark.parametrize(("mode", "ok"), [(0o1777, True), (0o755, False)])
def test_tmp_must_be_writable_by_a_non_root_user(
    name: str, mode: int, ok: bool, tmp_path: Path
) -> None:
    """The image's /tmp belongs to root and the program runs as another user (USER
    nobody). Here /tmp belongs to host uid 1, which the sandbox's user namespace does
    not map, so the program (uid 65534) is "other" to it, as in the image."""
    if os.geteuid() != 0:
        pytest.skip("chown of the root's /tmp needs root")
    root, inner = _root_with(tmp_path, name, {})
    tmp = root / "tmp"
    tmp.mkdir()
    os.chown(tmp, 1, 1)
    tmp.chmod(mode)
    proc = run_in_root(root, [inner], options=SandboxOptions(share_net=False, uid=65534))
    if proc.returncode != 0 and proc.stderr.startswith("bwrap:"):
        pytest.skip(f"bwrap cannot create a user namespace here: {proc.stderr.strip()}")
    if ok:
        assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    else:
        assert proc.returncode == 1
        assert "Permission denied" in proc.stderr


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # musl also searches /share/zoneinfo/ and /etc/zoneinfo/ ...
        ("c-localtime-musl", "2023-11-14 23:13 CET\n"),
        # ... glibc only $TZDIR (default /usr/share/zoneinfo): silent UTC otherwise.
        ("c-localtime", "2023-11-14 22:13 Europe\n"),
    ],
)
def test_zoneinfo_search_dirs(name: str, expected: str, tmp_path: Path) -> None:
    paris = "/usr/share/zoneinfo/Europe/Paris"
    root, inner = _root_with(tmp_path, name, {"/etc/zoneinfo/Europe/Paris": paris})
    proc = run_in_root(root, [inner, "Europe/Paris"], options=SandboxOptions(share_net=False))
    assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.usefixtures("sandbox_works")
@pytest.mark.parametrize(
    ("where", "ok"),
    [
        # The Debian/Go/rustls bundle path: OpenSSL never looks there by itself.
        ("/etc/ssl/certs/ca-certificates.crt", False),
        # X509_CERT_DIR lookup by subject hash works without cert.pem.
        ("/usr/lib/ssl/certs/{hash}.0", True),
        # SSL_CERT_FILE overrides the default file.
        ("env:SSL_CERT_FILE=/ca.pem", True),
    ],
)
def test_openssl_ca_locations(
    where: str, ok: bool, tmp_path: Path, tls_server: tuple[int, Path]
) -> None:
    port, ca_pem = tls_server
    env: dict[str, str] = {}
    if where.startswith("env:"):
        key, path = where[4:].split("=", 1)
        env[key] = path
    else:
        path = where
    if "{hash}" in path:
        assert OPENSSL is not None
        subject_hash = subprocess.run(
            [OPENSSL, "x509", "-hash", "-noout", "-in", str(ca_pem)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        path = path.replace("{hash}", subject_hash)
    root, inner = _root_with(tmp_path, "c-openssl-client", {path: str(ca_pem)})
    proc = run_in_root(root, [inner, str(port)], env)
    if ok:
        assert (proc.returncode, proc.stdout) == (0, "HTTP/1.0 200 OK\n"), proc.stderr
    else:
        assert proc.returncode == 1
        assert "unable to get local issuer certificate" in proc.stderr


# --------------------------------------------------------------------------- helpers


def test_parse_strace_follows_the_program_not_bwrap() -> None:
    text = "\n".join(
        [
            '100 execve("/usr/bin/bwrap", ["bwrap"], 0x1 /* 3 vars */) = 0',
            '100 openat(AT_FDCWD, "/proc/self/ns/user", O_RDONLY) = 3',
            '101 openat(AT_FDCWD, "/newroot", O_RDONLY) = 4',
            '102 execve("/app/x", ["/app/x"], 0x2 /* 0 vars */) = 0',
            '101 openat(AT_FDCWD, "/bwrap/after", O_RDONLY) = 5',
            '102 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file)',
            '102 newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=1, ...}, AT_EMPTY_PATH) = 0',
            '103 openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libgcc_s.so.1", O_RDONLY <unfinished ...>',
            '102 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
            "103 <... openat resumed>) = 4",
            "102 connect(4, {sa_family=AF_INET, sin_port=htons(443), "
            'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
            "102 --- SIGABRT {si_signo=SIGABRT} ---",
        ]
    )
    assert parse_strace(text, "/usr/bin/bwrap") == [
        TraceEvent("openat", "/etc/hosts", "-1 ENOENT"),
        # An interrupted call is reported when it completes.
        TraceEvent("connect", "/var/run/nscd/socket", "-1 ENOENT"),
        TraceEvent("openat", "/lib/x86_64-linux-gnu/libgcc_s.so.1", "4"),
        TraceEvent("connect", "127.0.0.1:443", "0"),
    ]


def test_run_in_root_refuses_the_host_root() -> None:
    with pytest.raises(ValueError, match="dedicated root"):
        run_in_root(Path("/"), ["/bin/true"])


@needs_openssl_cli
def test_tls_fixture_serves_hello_over_tls() -> None:
    with https_server() as (port, ca_pem):
        assert ca_pem.is_file()
        assert fetch(port, ca_pem) == BODY.decode()
