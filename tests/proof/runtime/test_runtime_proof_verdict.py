"""Proofs for the classes real-world binaries showed (issue 11), in test_runtime_proof's way:
plan the image, write the root, run the program's real job inside it under bubblewrap,
remove the files of the detected need, and see the same job fail.

The subjects are built here from testbins/src/verdict/ (small programs, not tuned to any
real program's name) with the host's compilers; a missing compiler skips with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scratchprobe.elf.reader import read_elf
from scratchprobe.model import BinaryReport, Inspection, InspectOptions
from scratchprobe.needs.context import NeedsOptions
from scratchprobe.needs.model import Confidence, ContainerRuntime, NeedKind, RuntimeNeed
from scratchprobe.pipeline import inspect_for_image
from scratchprobe.root import Root
from scratchprobe.rootfs import Destination, OutputKind, write_rootfs
from scratchprobe.toolchain import Toolchain, detect_toolchain
from scratchprobe.verify import provide_runtime_files
from tests.conftest import REPO
from tests.sandbox_probe import SandboxOptions, run_in_root
from tests.tls_fixture import https_server

SOURCES = REPO / "testbins" / "src" / "verdict"


def _build(argv: list[str], what: str, cwd: Path | None = None) -> None:
    tool = shutil.which(argv[0])
    if tool is None:
        pytest.skip(f"{argv[0]} is not installed (needed to build {what})")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        # Go: no module downloads, no toolchain switch, a cache of its own.
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GOCACHE": "/tmp/scratchprobe-test-gocache",
        "GOPATH": "/tmp/scratchprobe-test-gopath",
        "CGO_ENABLED": "1",
    }
    proc = subprocess.run(
        [tool, *argv[1:]], cwd=cwd, capture_output=True, text=True, check=False, timeout=600,
        env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot build {what}: {proc.stderr[-300:]}")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verdict-bins")


_LINKS = {
    # gcc's linker, PIE: .gopclntab merged into .data.rel.ro.
    "bfd-pie": ["-buildmode=pie", "-ldflags=-linkmode=external"],
    # lld, static-pie: the docker CLI's way (Go 1.24, static, lld-linked).
    "lld-static-pie": [
        "-buildmode=pie",
        "-ldflags=-linkmode=external -extldflags '-fuse-ld=lld -static-pie'",
    ],
}


@pytest.fixture(scope="session", params=sorted(_LINKS))
def go_external(built: Path, request: pytest.FixtureRequest) -> Path:
    """The Go program linked by an external linker: no .gopclntab section is left."""
    link = str(request.param)
    if link.startswith("lld") and shutil.which("ld.lld") is None:
        pytest.skip("lld is not installed")
    out = built / f"go-ext-{link}"
    if not out.exists():
        _build(
            ["go", "build", "-trimpath", *_LINKS[link], "-o", str(out), "."],
            f"a Go program linked externally ({link})",
            cwd=SOURCES / "go-ext",
        )
    return out


@pytest.fixture(scope="module")
def tls_port_and_ca() -> Iterator[tuple[int, Path]]:
    with https_server() as (port, ca_pem):
        yield port, Path(ca_pem)


@dataclass(frozen=True)
class Proof:
    binary: Path
    argv: tuple[str, ...]
    kind: NeedKind
    expect: str
    prefix: bool = False
    tls: bool = False
    needs: NeedsOptions = field(default_factory=NeedsOptions)
    with_kinds: frozenset[NeedKind] = frozenset()
    without_kinds: frozenset[NeedKind] = frozenset()
    add_hosts: tuple[tuple[str, str], ...] = ()


def _plan(proof: Proof) -> Inspection:
    options = InspectOptions(
        needs=proof.needs, with_kinds=proof.with_kinds, without_kinds=proof.without_kinds
    )
    inspection = inspect_for_image((str(proof.binary),), options)
    assert not inspection.problems, inspection.problems
    return inspection


def _needs(report: BinaryReport, kind: NeedKind) -> list[RuntimeNeed]:
    found = [n for n, keep in zip(report.needs, report.included, strict=True) if n.kind is kind]
    assert found, f"{report.path}: no {kind.value} need in the plan: {report.needs}"
    return found


def _write(inspection: Inspection, tmp_path: Path, proof: Proof) -> Path:
    result = write_rootfs(
        inspection.plan,
        Root(inspection.root),
        Destination(str(tmp_path / "rootfs"), OutputKind.DIRECTORY),
    )
    tree = Path(result.destination.path)
    provide_runtime_files(str(tree), proof.add_hosts, runtime=proof.needs.runtime)
    return tree


def _run(tree: Path, inspection: Inspection, proof: Proof, port: int) -> tuple[int, str, str]:
    argv = [inspection.binaries[0].path, *(a.replace("{port}", str(port)) for a in proof.argv)]
    # The image's own environment (ENV lines: TZ, LANG, ...) and nothing else.
    env = dict(inspection.env)
    proc = run_in_root(tree, argv, env=env, options=SandboxOptions(share_net=proof.tls))
    return proc.returncode, proc.stdout, proc.stderr


def _ok(proof: Proof, code: int, stdout: str) -> bool:
    if code != 0:
        return False
    return stdout.startswith(proof.expect) if proof.prefix else stdout == proof.expect


def _remove(tree: Path, paths: list[str]) -> None:
    for path in paths:
        target = tree / path.lstrip("/")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_symlink() or target.exists():
            target.unlink()


def prove(
    proof: Proof,
    tmp_path: Path,
    tls: tuple[int, Path] | None = None,
    removed: list[str] | None = None,
) -> list[RuntimeNeed]:
    """The need is detected and planned, the job works with its files and fails without."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    inspection = _plan(proof)
    found = _needs(inspection.binaries[0], proof.kind)
    tree = _write(inspection, tmp_path, proof)
    port = 0
    if tls is not None:
        port, ca = tls
        # The builder's bundle stands for one that trusts the test CA: same path, its content.
        bundles = [f for n in found for f in n.files if f.type == "file"]
        assert bundles
        for bundle in bundles:
            shutil.copyfile(ca, tree / bundle.path.lstrip("/"))
    code, stdout, stderr = _run(tree, inspection, proof, port)
    assert _ok(proof, code, stdout), (code, stdout, stderr)
    gone = removed if removed is not None else sorted({f.path for n in found for f in n.files})
    assert gone, "nothing to remove: the detection would not be tested"
    _remove(tree, gone)
    code, stdout, stderr = _run(tree, inspection, proof, port)
    assert not _ok(proof, code, stdout), f"still works without {gone}: {stdout!r}"
    return found


# ------------------------------------------------------------ 5. externally linked Go


def test_external_go_has_no_pclntab_section_yet_lists_its_needs(go_external: Path) -> None:
    elf = read_elf(str(go_external))
    # The premise: the external linker left no .gopclntab section.
    assert ".gopclntab" not in elf.section_names
    assert ".data.rel.ro" in elf.section_names
    inspection = inspect_for_image((str(go_external),), InspectOptions())
    (report,) = inspection.binaries
    needs = {n.kind: n for n in report.needs}
    ca = needs[NeedKind.CA_CERTIFICATES]
    assert [f.path for f in ca.files] == ["/etc/ssl/certs/ca-certificates.crt"]
    assert any("crypto/x509.loadSystemRoots" in e for e in ca.evidence)
    zone = needs[NeedKind.ZONEINFO]
    assert any("time.LoadLocation" in e for e in zone.evidence)
    assert [f.path for f in zone.files] == ["/usr/share/zoneinfo"]
    tmp = needs[NeedKind.TMP]
    assert any("os.CreateTemp" in e for e in tmp.evidence)


@pytest.mark.sandbox
def test_external_go_ca_bundle_is_proven(
    go_external: Path, tmp_path: Path, tls_port_and_ca: tuple[int, Path]
) -> None:
    proof = Proof(go_external, ("get", "https://127.0.0.1:{port}/"), NeedKind.CA_CERTIFICATES,
                  "status 200", prefix=True, tls=True)  # fmt: skip
    prove(proof, tmp_path, tls=tls_port_and_ca)


@pytest.mark.sandbox
def test_external_go_zoneinfo_is_proven(go_external: Path, tmp_path: Path) -> None:
    proof = Proof(go_external, ("zone", "Europe/Paris"), NeedKind.ZONEINFO,
                  "2024-01-02T04:04:05 +0100 CET\n")  # fmt: skip
    prove(proof, tmp_path)


@pytest.mark.sandbox
def test_external_go_tmp_is_proven(go_external: Path, tmp_path: Path) -> None:
    prove(Proof(go_external, ("temp",), NeedKind.TMP, "ok\n"), tmp_path)


# ------------------------------------------------------------ 7. runtimes that provide nothing


@pytest.mark.sandbox
def test_bare_runtime_gets_hosts_with_localhost(tmp_path: Path) -> None:
    from tests.conftest import TESTBINS

    binary = TESTBINS / "runtime" / "c-getaddrinfo"
    if not binary.exists():
        pytest.skip(f"{binary} is not built")
    bare = NeedsOptions(runtime=ContainerRuntime.BARE)
    proof = Proof(binary, ("localhost",), NeedKind.NAME_SERVICE, "127.0.0.1\n", needs=bare)
    (need,) = [n for n in prove(proof, tmp_path, removed=["/etc/hosts"]) if n.files]
    assert need.runtime_provided == ()
    assert "/etc/hosts" in [f.path for f in need.files]
    # The default runtime leaves /etc/hosts to the runtime: nothing in the plan.
    docker = _plan(Proof(binary, ("localhost",), NeedKind.NAME_SERVICE, ""))
    paths = [f.path for f in docker.plan.files]
    assert "/etc/hosts" not in paths
    assert "/etc/nsswitch.conf" in paths


# ------------------------------------------------------------ 6. Rust from distribution builds


@pytest.mark.parametrize(("package", "program"), [("ripgrep", "rg"), ("fd-find", "fdfind")])
def test_distribution_rust_is_recognised_with_its_version(package: str, program: str) -> None:
    """Debian builds the standard library itself and remaps it to /usr/src/rustc-VERSION;
    the oracle is the package's own Built-Using field (the rustc it was built with)."""
    path = Path("/usr/bin") / program
    if not path.exists() or shutil.which("dpkg-query") is None:
        pytest.skip(f"{package} is not installed (apt-get install {package})")
    built_using = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Built-Using}", package],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"\brustc \(= (\d+\.\d+\.\d+)", built_using)
    assert match, built_using
    facts = detect_toolchain(read_elf(str(path)))
    assert facts.kind is Toolchain.RUST
    assert facts.rust is not None
    assert facts.rust.rustc_commits == ()
    assert facts.rust.rustc_source_versions[0] == match.group(1)
    assert facts.description == f"Rust {match.group(1)} (distribution build)"


# ------------------------------------------------------------ 2. locales


def _gcc(built: Path, name: str, *flags: str) -> Path:
    out = built / name
    if not out.exists():
        source = SOURCES / f"{name}.c"
        _build(["gcc", "-O2", "-o", str(out), str(source), *flags], name)
    return out


@pytest.fixture(scope="session")
def c_locale(built: Path) -> Path:
    return _gcc(built, "c-locale")


@pytest.mark.sandbox
def test_setlocale_gets_the_utf8_locale_and_lang(c_locale: Path, tmp_path: Path) -> None:
    proof = Proof(c_locale, (), NeedKind.LOCALE, "UTF-8 11\n")
    (need,) = prove(proof, tmp_path)
    assert need.env == (("LANG", "C.UTF-8"),)
    assert [f.path for f in need.files] == ["/usr/lib/locale/C.utf8"]
    assert "calls setlocale" in need.evidence


def test_locale_option_and_where_glibc_finds_it(c_locale: Path, tmp_path: Path) -> None:
    """A crafted root: the compiled directory (codeset normalised) wins, then the archive,
    else a problem that says what to install."""
    root = tmp_path / "root"
    for library in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        if not Path(library).exists():
            pytest.skip(f"{library} is not on this machine")
        target = root / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(library, target)
    locales = root / "usr/lib/locale"
    (locales / "de_DE.utf8").mkdir(parents=True)
    (locales / "de_DE.utf8" / "LC_CTYPE").write_bytes(b"ctype")
    (locales / "locale-archive").write_bytes(b"archive")

    def need(name: str) -> RuntimeNeed:
        options = InspectOptions(root=str(root), needs=NeedsOptions(locale=name))
        (report,) = inspect_for_image((str(c_locale),), options).binaries
        (found,) = [n for n in report.needs if n.kind is NeedKind.LOCALE]
        return found

    german = need("de_DE.UTF-8")
    assert [f.path for f in german.files] == ["/usr/lib/locale/de_DE.utf8"]
    assert german.env == (("LANG", "de_DE.UTF-8"),)
    french = need("fr_FR.UTF-8")
    assert [f.path for f in french.files] == ["/usr/lib/locale/locale-archive"]
    (locales / "locale-archive").unlink()
    missing = need("fr_FR.UTF-8")
    assert missing.files == ()
    assert missing.env == ()
    assert "the root has no locale fr_FR.UTF-8" in missing.problems[0]


# ------------------------------------------------------------ 3. charsets named at run time


@pytest.fixture(scope="session")
def c_iconv_runtime(built: Path) -> Path:
    return _gcc(built, "c-iconv-runtime")


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("charset", "text", "expect"),
    [
        ("ISO-8859-15", "\u20ac", "ISO-8859-15: a4\n"),
        ("SJIS", "\u65e5\u672c", "SJIS: 93 fa 96 7b\n"),
        # EUC-JP.so needs libJIS.so from beside it (RUNPATH $ORIGIN).
        ("EUC-JP", "\u65e5\u672c", "EUC-JP: c6 fc cb dc\n"),
    ],
)
def test_run_time_charset_gets_the_common_modules(
    c_iconv_runtime: Path, tmp_path: Path, charset: str, text: str, expect: str
) -> None:
    proof = Proof(c_iconv_runtime, (charset, text), NeedKind.GCONV, expect)
    inspection = _plan(proof)
    (report,) = inspection.binaries
    planned = [n for n, keep in zip(report.needs, report.included, strict=True) if keep]
    (need,) = [n for n in planned if n.kind is NeedKind.GCONV]
    # The common set, not the whole directory.
    assert all(f.type == "file" for f in need.files)
    assert any(f.path.endswith("/gconv-modules.cache") for f in need.files)
    prove(proof, tmp_path)


@pytest.mark.sandbox
def test_utf16_named_at_run_time_gets_its_module(c_iconv_runtime: Path, tmp_path: Path) -> None:
    """UTF-16 is no glibc built-in (UTF-16.so): the common set holds it (WHATWG's UTF-16LE
    and UTF-16BE), and the program fails without that one module."""
    proof = Proof(c_iconv_runtime, ("UTF-16LE", "\u20ac"), NeedKind.GCONV, "UTF-16LE: ac 20\n")
    (need, *_rest) = _needs(_plan(proof).binaries[0], NeedKind.GCONV)
    (module,) = [f.path for f in need.files if f.path.endswith("/UTF-16.so")]
    prove(proof, tmp_path, removed=[module])


@pytest.mark.sandbox
def test_utf16_named_in_the_program_is_planned_by_name(built: Path, tmp_path: Path) -> None:
    """A program whose data names UTF-16LE gets that module as a named charset, not the
    run-time common set."""
    out = built / "c-iconv-utf16"
    if not out.exists():
        source = REPO / "testbins" / "src" / "runtime" / "c-iconv.c"
        flags = ['-DTARGET_CHARSET="UTF-16LE"']
        _build(["gcc", "-O2", *flags, "-o", str(out), str(source)], "c-iconv-utf16")
    proof = Proof(out, (), NeedKind.GCONV, "UTF-16LE: 68 00 e9 00 6c 00 6c 00 6f 00\n")
    inspection = _plan(proof)
    (report,) = inspection.binaries
    need, whole = _needs(report, NeedKind.GCONV)
    assert "UTF-16LE is not built into glibc and loads a gconv module" in need.summary
    modules = [f.path for f in need.files if f.path.endswith(".so")]
    assert [m.rsplit("/", 1)[1] for m in modules] == ["UTF-16.so"], modules
    # Other charsets may still come at run time: the directory is offered, not planned.
    assert whole.confidence is Confidence.POSSIBLE
    assert [f.type for f in whole.files] == ["directory"]
    assert report.included == tuple(n is not whole for n in report.needs)
    prove(proof, tmp_path, removed=modules)


@pytest.mark.sandbox
def test_rarer_run_time_charset_needs_strict(c_iconv_runtime: Path, tmp_path: Path) -> None:
    """EBCDIC is outside the common set: the default image refuses it, --strict has it."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    argv = ("IBM037", "hello")
    default = Proof(c_iconv_runtime, argv, NeedKind.GCONV, "IBM037: 88 85 93 93 96\n")
    inspection = _plan(default)
    (tmp_path / "default").mkdir()
    tree = _write(inspection, tmp_path / "default", default)
    code, stdout, _stderr = _run(tree, inspection, default, 0)
    assert not _ok(default, code, stdout)
    strict = Proof(c_iconv_runtime, argv, NeedKind.GCONV, "IBM037: 88 85 93 93 96\n",
                   with_kinds=frozenset({NeedKind.GCONV}))  # fmt: skip
    inspection = _plan(strict)
    (tmp_path / "strict").mkdir()
    tree = _write(inspection, tmp_path / "strict", strict)
    code, stdout, stderr = _run(tree, inspection, strict, 0)
    assert _ok(strict, code, stdout), (code, stdout, stderr)


# ------------------------------------------------------------ 4. CA stores found by path search


@pytest.fixture(scope="session")
def rust_ca_probe(built: Path) -> Path:
    """openssl-probe from Debian's source package, its path remapped so the file names no
    crate: only the probe's directory and file-name literals are left as evidence."""
    out = built / "rust-ca-probe"
    if out.exists():
        return out
    sources = sorted(Path("/usr/share/cargo/registry").glob("openssl-probe-*/src/lib.rs"))
    if not sources:
        pytest.skip("librust-openssl-probe-dev is not installed")
    crate = sources[-1].parent.parent
    _build(
        ["rustc", "--edition", "2015", "--crate-type", "rlib", "--crate-name", "openssl_probe",
         "-O", f"--remap-path-prefix={crate}=openssl-probe", str(crate / "src/lib.rs"),
         "--out-dir", str(built)],
        "openssl-probe",
    )  # fmt: skip
    _build(
        ["rustc", "--edition", "2021", "-O", "-C", "strip=symbols", "-L", str(built),
         "--extern", f"openssl_probe={built / 'libopenssl_probe.rlib'}",
         str(SOURCES / "rust-ca-probe/main.rs"), "-o", str(out)],
        "rust-ca-probe",
    )  # fmt: skip
    return out


@pytest.mark.sandbox
def test_ca_path_search_gets_the_bundle_where_it_looks(
    rust_ca_probe: Path, tmp_path: Path, tls_port_and_ca: tuple[int, Path]
) -> None:
    facts = detect_toolchain(read_elf(str(rust_ca_probe)))
    assert facts.rust is not None
    # The premise: no crate metadata names openssl-probe.
    assert not [c for c in facts.rust.crates + facts.rust.path_crates if "probe" in c.name]
    proof = Proof(rust_ca_probe, (), NeedKind.CA_CERTIFICATES, "roots=1\n")
    (need,) = prove(proof, tmp_path, tls=tls_port_and_ca)
    assert [f.path for f in need.files] == ["/etc/ssl/certs/ca-certificates.crt"]
    assert any("/usr/lib/ssl" in e for e in need.evidence)


def test_a_few_bundle_paths_are_not_a_path_search() -> None:
    """A program naming OpenSSL's directory and one bundle (curl) is not a probe."""
    inspection = inspect_for_image(("/usr/bin/curl",), InspectOptions())
    for need in inspection.binaries[0].needs:
        assert "conventional directories" not in need.summary


# ------------------------------------------------------------ 1. data beside the program


@pytest.fixture(scope="session")
def relocatable(built: Path) -> Path:
    """c-relocatable installed in a prefix of its own, with its data where it looks."""
    binary = _gcc(built, "c-relocatable")
    prefix = built / "opt" / "relocdemo"
    if not prefix.exists():
        (prefix / "bin").mkdir(parents=True)
        shutil.copy(binary, prefix / "bin" / "relocdemo")
        (prefix / "share" / "relocdemo-1.0").mkdir(parents=True)
        (prefix / "share" / "relocdemo-1.0" / "greeting.txt").write_text("hello from share\n")
        (prefix / "lib" / "tables").mkdir(parents=True)
        (prefix / "lib" / "tables" / "words.txt").write_text("hello from lib\n")
        # A directory nothing names: it must stay out of the image.
        (prefix / "share" / "unrelated").mkdir()
        (prefix / "share" / "unrelated" / "x").write_text("x\n")
    return prefix / "bin" / "relocdemo"


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("mode", "expect", "planned"),
    [
        ("share", "hello from share\n", "share/relocdemo-1.0"),
        ("tables", "hello from lib\n", "lib/tables"),
    ],
)
def test_data_beside_the_program_is_proven(
    relocatable: Path, tmp_path: Path, mode: str, expect: str, planned: str
) -> None:
    prefix = relocatable.parent.parent
    proof = Proof(relocatable, (mode,), NeedKind.DATA_DIRECTORY, expect)
    found = prove(proof, tmp_path, removed=[str(prefix / planned)])
    paths = [f.path for n in found for f in n.files]
    assert str(prefix / planned) in paths
    assert str(prefix / "share" / "unrelated") not in paths
    (need,) = [n for n in found if n.files and n.files[0].path == str(prefix / planned)]
    assert need.evidence[0] == 'string "/proc/self/exe" in the program'
    assert "verify --trace" in need.summary


def test_a_system_program_with_proc_self_exe_gets_no_shared_tree() -> None:
    """busybox reads /proc/self/exe and names lib/firmware and lib/<multiarch>: shared
    directories of every system, not its own data."""
    busybox = Path("/usr/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox is not installed")
    inspection = inspect_for_image((str(busybox),), InspectOptions())
    assert not [n for n in inspection.binaries[0].needs if n.kind is NeedKind.DATA_DIRECTORY]


@pytest.fixture(scope="session")
def cmake_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMake from its PyPI wheel: a relocatable build whose share/cmake-X.Y sits beside
    bin/ and is found from /proc/self/exe (CMAKE_ROOT). Downloaded once per session."""
    directory = tmp_path_factory.mktemp("cmake-wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-q", "cmake", "-d", str(directory)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    wheels = sorted(directory.glob("cmake-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip(f"cannot download the cmake wheel from PyPI: {proc.stderr[-200:]}")
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extractall(directory / "x")
    binary = directory / "x" / "cmake" / "data" / "bin" / "cmake"
    if not binary.exists():
        pytest.skip("the cmake wheel has no cmake/data/bin/cmake")
    binary.chmod(0o755)
    return binary


@pytest.mark.sandbox
def test_cmake_wheel_finds_its_modules_beside_bin(cmake_wheel: Path, tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    share = sorted((cmake_wheel.parent.parent / "share").glob("cmake-*"))
    assert share, "the wheel has no share/cmake-X.Y"
    proof = Proof(cmake_wheel, ("-P", "/job.cmake"), NeedKind.DATA_DIRECTORY, "")
    inspection = _plan(proof)
    found = _needs(inspection.binaries[0], NeedKind.DATA_DIRECTORY)
    assert [f.path for n in found for f in n.files] == [str(share[0])]
    tree = _write(inspection, tmp_path, proof)
    # A real job: a script that includes one of CMake's own modules.
    (tree / "job.cmake").write_text(
        "include(CMakePrintHelpers)\ncmake_print_variables(CMAKE_MAJOR_VERSION)\n"
    )
    code, stdout, stderr = _run(tree, inspection, proof, 0)
    assert code == 0, (stdout, stderr)
    assert "CMAKE_MAJOR_VERSION=" in stdout + stderr
    _remove(tree, [str(share[0])])
    code, stdout, stderr = _run(tree, inspection, proof, 0)
    assert code != 0
    assert "CMAKE_MAJOR_VERSION=" not in stdout + stderr


# ------------------------------------------------------------ precision: zoneinfo


def test_time_crate_alone_is_not_zone_evidence() -> None:
    """The `time` crate asks libc for the local offset (localtime_r, seen by the C rule);
    chrono reads TZ files itself (fd-find opens /usr/share/zoneinfo/$TZ under strace)."""
    from scratchprobe.needs.rust import RustView

    assert RustView(None, frozenset({"time", "serde"})).zone_crates == frozenset()
    assert RustView(None, frozenset({"time", "chrono"})).zone_crates == frozenset({"chrono"})


@pytest.fixture(scope="session")
def go_root_layout(built: Path) -> Path:
    """go-root built with -trimpath, installed as ROOT/bin/go-root in a Go root layout."""
    root = built / "goroot"
    binary = root / "bin" / "go-root"
    if not binary.exists():
        (root / "bin").mkdir(parents=True, exist_ok=True)
        _build(["go", "build", "-trimpath", "-o", str(binary), "."], "go-root",
               cwd=SOURCES / "go-root")  # fmt: skip
        (root / "pkg" / "tool" / "linux_amd64").mkdir(parents=True)
        (root / "pkg" / "tool" / "linux_amd64" / "compile").write_text("")
        (root / "src" / "runtime").mkdir(parents=True)
        (root / "src" / "runtime" / "extern.go").write_text("package runtime\n")
        (root / "VERSION").write_text("go1.19.8")
    return binary


@pytest.mark.sandbox
def test_trimpath_go_finds_its_root_beside_bin(go_root_layout: Path, tmp_path: Path) -> None:
    root = go_root_layout.parent.parent
    proof = Proof(go_root_layout, (), NeedKind.DATA_DIRECTORY, "root go1.19.8\n")
    (need,) = prove(proof, tmp_path)
    assert [f.path for f in need.files] == [str(root / p) for p in ("src", "pkg", "VERSION")]
    assert "build setting -trimpath=true (no Go root baked in)" in need.evidence


@pytest.mark.sandbox
def test_verify_honours_the_bare_runtime() -> None:
    """`verify --runtime bare` mounts no /etc/hosts: only the image's own one resolves."""
    from scratchprobe.verify import VerifyOptions, verify
    from tests.conftest import TESTBINS

    binary = TESTBINS / "runtime" / "c-getaddrinfo"
    if not binary.exists() or shutil.which("bwrap") is None:
        pytest.skip("needs testbins/built/runtime/c-getaddrinfo and bubblewrap")

    def run(without: frozenset[NeedKind]) -> int | None:
        plan = InspectOptions(
            needs=NeedsOptions(runtime=ContainerRuntime.BARE), without_kinds=without
        )
        result = verify(str(binary), VerifyOptions(args=("localhost",), plan=plan))
        return result.image_run.exit_status

    assert run(frozenset()) == 0
    assert run(frozenset({NeedKind.NAME_SERVICE})) != 0
