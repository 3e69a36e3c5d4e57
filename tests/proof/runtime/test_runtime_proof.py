"""Proof of every runtime-need detection by running the program.

For each case: scratchprobe plans the image (nothing but the binary and the options a user
would give), the root filesystem is written from that plan, and the program does its real job
inside it under bubblewrap, with nothing else visible except what a container runtime mounts
(/etc/hosts, /etc/resolv.conf). Then the files of the detected need are removed from that tree
and the run must fail or print something else: each detection is necessary, and the test can
fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scratchprobe.model import Inspection, InspectOptions
from scratchprobe.needs.context import NeedsOptions
from scratchprobe.needs.model import Confidence, NeedKind
from scratchprobe.pipeline import inspect_for_image
from scratchprobe.root import Root
from scratchprobe.rootfs import Destination, OutputKind, write_rootfs
from scratchprobe.verify import provide_runtime_files
from tests.conftest import TESTBINS
from tests.sandbox_probe import SandboxOptions, run_in_root
from tests.tls_fixture import https_server

RUNTIME = TESTBINS / "runtime"
TEST_HOST = "scratchprobe-test.invalid"

pytestmark = pytest.mark.sandbox


@dataclass(frozen=True)
class Case:
    binary: str
    argv: tuple[str, ...]
    kind: NeedKind
    expect: str
    """Expected stdout (a prefix when `prefix` is set)."""
    needs: NeedsOptions = field(default_factory=NeedsOptions)
    add_hosts: tuple[tuple[str, str], ...] = ()
    tls: bool = False
    prefix: bool = False
    remove_runtime_provided: bool = False
    """The need's evidence is a runtime-provided file (/etc/hosts): remove that instead."""
    with_kinds: frozenset[NeedKind] = frozenset()


USER = NeedsOptions(user="scratchprobe", generate_etc=True)
HOSTS = ((TEST_HOST, "127.0.0.1"),)
PARIS = "2023-11-14 23:13 CET\n"

CASES = [
    Case("c-getaddrinfo", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n",
         add_hosts=HOSTS, remove_runtime_provided=True),
    Case("c-getaddrinfo-static", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n",
         add_hosts=HOSTS, remove_runtime_provided=True),
    Case("c-getaddrinfo-musl", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n",
         add_hosts=HOSTS, remove_runtime_provided=True),
    Case("c-getpwnam", ("scratchprobe",), NeedKind.USERS, "10001:10001:/home/scratchprobe\n",
         needs=USER),
    Case("c-getpwnam-static", ("scratchprobe",), NeedKind.USERS,
         "10001:10001:/home/scratchprobe\n", needs=USER),
    Case("c-getpwnam-musl-static", ("scratchprobe",), NeedKind.USERS,
         "10001:10001:/home/scratchprobe\n", needs=USER),
    Case("c-iconv", (), NeedKind.GCONV, "ISO-8859-1: 68 e9 6c 6c 6f\n"),
    Case("c-iconv-ebcdic", (), NeedKind.GCONV, "IBM037: 88 51 93 93 96\n"),
    Case("c-iconv-static", (), NeedKind.GCONV, "ISO-8859-1: 68 e9 6c 6c 6f\n"),
    Case("c-localtime", ("Europe/Paris",), NeedKind.ZONEINFO, PARIS),
    Case("c-localtime-musl", ("Europe/Paris",), NeedKind.ZONEINFO, PARIS),
    Case("c-localtime-static", ("Europe/Paris",), NeedKind.ZONEINFO, PARIS),
    Case("c-localtime", ("Europe/Paris",), NeedKind.ZONEINFO, PARIS,
         needs=NeedsOptions(tz=("Europe/Paris",))),
    Case("c-pthread-cancel", (), NeedKind.UNWINDER, "cancelled\n"),
    Case("c-mkstemp", (), NeedKind.TMP, "ok\n"),
    Case("c-mkstemp-musl-static", (), NeedKind.TMP, "ok\n"),
    Case("c-openssl-client", ("{port}",), NeedKind.CA_CERTIFICATES, "HTTP/1.", tls=True,
         prefix=True),
    Case("go-https-get", ("https://127.0.0.1:{port}/",), NeedKind.CA_CERTIFICATES, "status 200",
         tls=True, prefix=True),
    Case("go119-https-get", ("https://127.0.0.1:{port}/",), NeedKind.CA_CERTIFICATES, "status 200",
         tls=True, prefix=True),
    Case("go-tz", ("Europe/Paris",), NeedKind.ZONEINFO, "2024-01-02T04:04:05 +0100 CET\n"),
    Case("go-user", ("scratchprobe",), NeedKind.USERS,
         "uid=10001 gid=10001 home=/home/scratchprobe\n", needs=USER),
    Case("go-user-osusergo", ("scratchprobe",), NeedKind.USERS,
         "uid=10001 gid=10001 home=/home/scratchprobe\n", needs=USER),
    Case("go-user-cgo", ("scratchprobe",), NeedKind.USERS,
         "uid=10001 gid=10001 home=/home/scratchprobe\n", needs=USER),
    Case("go-lookup", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n", add_hosts=HOSTS,
         remove_runtime_provided=True),
    Case("go-lookup-cgo", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n",
         add_hosts=HOSTS, remove_runtime_provided=True),
    Case("go-lookup-netgo", (TEST_HOST,), NeedKind.NAME_SERVICE, "127.0.0.1\n",
         add_hosts=HOSTS, remove_runtime_provided=True),
    Case("go-tempfile", (), NeedKind.TMP, "ok", prefix=True),
    Case("rust-rustls-native-certs", ("https://localhost:{port}/",),
         NeedKind.CA_CERTIFICATES, "roots=1\n", tls=True, prefix=True),
    # std::env::home_dir without $HOME asks libc (getpwuid_r) for the user's entry.
    Case("rust-std-env", ("home",), NeedKind.USERS, "home_dir=/root\n"),
    # temp_dir leaves no evidence in an optimised Rust file ("/tmp" is an instruction
    # operand): --with tmp is the user's way, and the same proof applies.
    Case("rust-std-env", ("temp",), NeedKind.TMP, "temp_dir=/tmp ok\n",
         with_kinds=frozenset({NeedKind.TMP})),
]  # fmt: skip


def _ids(case: Case) -> str:
    extra = "-tz" if case.needs.tz else ""
    return (
        "-".join((case.binary + extra, *case.argv[:1]))
        if case.binary.startswith("rust")
        else (case.binary + extra)
    )


@pytest.fixture(scope="module")
def tls_port_and_ca() -> Iterator[tuple[int, Path]]:
    with https_server() as (port, ca_pem):
        yield port, Path(ca_pem)


def plan(case: Case) -> Inspection:
    binary = RUNTIME / case.binary
    if not binary.exists():
        pytest.skip(f"{binary} is not built")
    inspection = inspect_for_image(
        (str(binary),), InspectOptions(needs=case.needs, with_kinds=case.with_kinds)
    )
    assert not inspection.problems, inspection.problems
    return inspection


def write(inspection: Inspection, tmp_path: Path, case: Case) -> Path:
    result = write_rootfs(
        inspection.plan,
        Root(inspection.root),
        Destination(str(tmp_path / "rootfs"), OutputKind.DIRECTORY),
    )
    tree = Path(result.destination.path)
    provide_runtime_files(str(tree), case.add_hosts)
    return tree


def run(tree: Path, inspection: Inspection, case: Case, port: int) -> tuple[int, str, str]:
    argv = [inspection.binaries[0].path, *(a.replace("{port}", str(port)) for a in case.argv)]
    # Only the TLS cases reach the host's loopback; the others get a private network, so a
    # resolver that falls back to DNS fails at once instead of asking the host's servers.
    proc = run_in_root(tree, argv, options=SandboxOptions(share_net=case.tls))
    return proc.returncode, proc.stdout, proc.stderr


def ok(case: Case, code: int, stdout: str) -> bool:
    if code != 0:
        return False
    return stdout.startswith(case.expect) if case.prefix else stdout == case.expect


def remove(tree: Path, paths: list[str]) -> None:
    for path in paths:
        target = tree / path.lstrip("/")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_detected_need_is_sufficient_and_necessary(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    inspection = plan(case)
    (report,) = inspection.binaries
    needs = [(n, keep) for n, keep in zip(report.needs, report.included, strict=True)]
    assert any(n.kind is case.kind for n, _keep in needs), (
        f"{case.binary}: no {case.kind.value} need"
    )
    # What the plan takes of the kind is what must suffice; a `possible` need of the same
    # kind (the whole gconv directory, on offer for charsets named at run time) may stay out.
    found = [n for n, keep in needs if n.kind is case.kind and keep]
    assert found, f"{case.binary}: the {case.kind.value} need is detected but left out of the plan"
    assert all(
        keep or n.confidence is Confidence.POSSIBLE for n, keep in needs if n.kind is case.kind
    ), f"{case.binary}: a likely or certain {case.kind.value} need is left out of the plan"
    port = 0
    tree = write(inspection, tmp_path, case)
    if case.tls:
        port, ca = request.getfixturevalue("tls_port_and_ca")
        # The builder's bundle stands for one that trusts the test CA: same path, its content.
        bundles = [f for n in found for f in n.files if f.type == "file"]
        assert bundles
        for bundle in bundles:
            shutil.copyfile(ca, tree / bundle.path.lstrip("/"))

    code, stdout, stderr = run(tree, inspection, case, port)
    assert ok(case, code, stdout), (code, stdout, stderr)

    if case.remove_runtime_provided:
        removed = sorted({p for n in found for p in n.runtime_provided})
    else:
        removed = sorted({f.path for n in found for f in n.files})
    assert removed, "nothing to remove: the detection would not be tested"
    remove(tree, removed)
    code, stdout, stderr = run(tree, inspection, case, port)
    assert not ok(case, code, stdout), f"still works without {removed}: {stdout!r}"


def test_embedded_tzdata_needs_no_zoneinfo(tmp_path: Path) -> None:
    """time/tzdata linked: no zoneinfo need, and the program works without any."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    case = Case("go-tz-embedded", ("Europe/Paris",), NeedKind.ZONEINFO,
                "2024-01-02T04:04:05 +0100 CET\n")  # fmt: skip
    inspection = plan(case)
    assert not [n for n in inspection.binaries[0].needs if n.kind is NeedKind.ZONEINFO]
    tree = write(inspection, tmp_path, case)
    code, stdout, stderr = run(tree, inspection, case, 0)
    assert ok(case, code, stdout), (code, stdout, stderr)


def test_dlopen_is_reported_not_guessed() -> None:
    inspection = plan(Case("c-dlopen", (), NeedKind.DLOPEN, ""))
    (need,) = [n for n in inspection.binaries[0].needs if n.kind is NeedKind.DLOPEN]
    assert need.confidence.value == "possible"
    assert need.files == ()
    assert "calls dlopen" in need.evidence


@pytest.fixture(scope="module")
def static_openssl_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenSSL client linked statically (OpenSSL inside the program, no libcrypto in
    the closure), built here because the 5 MB result is not worth committing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("static-openssl") / "c-openssl-client-static"
    source = TESTBINS.parent / "src/runtime/c-openssl-client.c"
    proc = subprocess.run(
        ["gcc", "-O2", "-static", "-o", str(out), str(source), "-lssl", "-lcrypto"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"static OpenSSL is not installed (libssl-dev): {proc.stderr[-200:]}")
    return out


def test_static_openssl_reads_its_compiled_in_cert_file(
    static_openssl_client: Path, tmp_path: Path, tls_port_and_ca: tuple[int, Path]
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    inspection = inspect_for_image((str(static_openssl_client),), InspectOptions())
    (report,) = inspection.binaries
    (need,) = [n for n in report.needs if n.kind is NeedKind.CA_CERTIFICATES]
    assert [f.path for f in need.files] == ["/usr/lib/ssl/cert.pem"]
    case = Case("c-openssl-client-static", ("{port}",), NeedKind.CA_CERTIFICATES, "HTTP/1.",
                tls=True, prefix=True)  # fmt: skip
    port, ca = tls_port_and_ca
    tree = write(inspection, tmp_path, case)
    shutil.copyfile(ca, tree / "usr/lib/ssl/cert.pem")
    code, stdout, stderr = run(tree, inspection, case, port)
    assert ok(case, code, stdout), (code, stdout, stderr)
    remove(tree, ["/usr/lib/ssl/cert.pem"])
    code, stdout, stderr = run(tree, inspection, case, port)
    assert not ok(case, code, stdout)
