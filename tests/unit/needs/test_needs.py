"""Runtime-need selection and options, on real testbins (the running proof is in
test_runtime_proof.py; this file covers what a run cannot: choices, text, edge cases)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.model import InspectOptions
from scratchprobe.needs.context import NeedsOptions
from scratchprobe.needs.model import Confidence, NeedKind
from scratchprobe.needs.users import generated_passwd_group, parse_user
from scratchprobe.pipeline import inspect
from tests.conftest import TESTBINS, RootBuilder, glibc_base, run_cli

RUNTIME = TESTBINS / "runtime"


def kinds(path: Path, **options: object) -> dict[NeedKind, bool]:
    result = inspect((str(path),), InspectOptions(**options))  # type: ignore[arg-type]
    (report,) = result.binaries
    return {n.kind: keep for n, keep in zip(report.needs, report.included, strict=True)}


def test_possible_needs_are_reported_but_not_planned() -> None:
    found = kinds(RUNTIME / "c-dlopen")
    assert found == {NeedKind.DLOPEN: False}


def test_strict_with_and_without() -> None:
    assert kinds(RUNTIME / "c-openssl-client")[NeedKind.OPENSSL_CONFIG] is False
    assert kinds(RUNTIME / "c-openssl-client", strict=True)[NeedKind.OPENSSL_CONFIG] is True
    with_config = kinds(
        RUNTIME / "c-openssl-client", with_kinds=frozenset({NeedKind.OPENSSL_CONFIG})
    )
    assert with_config[NeedKind.OPENSSL_CONFIG] is True
    without = kinds(RUNTIME / "c-mkstemp", without_kinds=frozenset({NeedKind.TMP}))
    assert without[NeedKind.TMP] is False
    result = inspect(
        (str(RUNTIME / "c-mkstemp"),), InspectOptions(without_kinds=frozenset({NeedKind.TMP}))
    )
    assert "/tmp" not in {f.path for f in result.plan.files}


def test_no_runtime_gives_the_closure_only() -> None:
    result = inspect((str(RUNTIME / "c-mkstemp"),), InspectOptions(runtime_needs=False))
    assert result.binaries[0].needs == ()
    assert {f.kind.value for f in result.plan.files} == {"binary", "interpreter", "library"}


def test_every_need_has_evidence_and_a_sentence() -> None:
    for path in sorted(RUNTIME.iterdir()):
        if path.suffix == ".json":
            continue
        result = inspect((str(path),), InspectOptions())
        for need in result.binaries[0].needs:
            assert need.evidence, (path.name, need)
            assert all(e.strip() for e in need.evidence)
            assert need.summary.strip()


def test_no_junk_paths_from_go_strings() -> None:
    """Go strings are not NUL-terminated: only dictionary paths may come out."""
    for name in ("go-https-get", "go-user", "go-lookup", "go-tempfile"):
        result = inspect((str(RUNTIME / name),), InspectOptions(strict=True))
        for need in result.binaries[0].needs:
            for needed in need.files:
                assert needed.path in {
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/usr/share/zoneinfo",
                    "/etc/passwd",
                    "/etc/group",
                    "/etc/nsswitch.conf",
                    "/tmp",
                    "/etc/mime.types",
                }, needed.path


def test_tz_copies_only_the_zone_and_sets_tz() -> None:
    result = inspect(
        (str(RUNTIME / "c-localtime"),), InspectOptions(needs=NeedsOptions(tz=("Europe/Paris",)))
    )
    files = {f.path: f for f in result.plan.files}
    assert "/usr/share/zoneinfo" not in files
    assert files["/usr/share/zoneinfo/Europe/Paris"].type.value == "file"
    localtime = files["/etc/localtime"]
    assert localtime.type.value == "symlink"
    assert localtime.target == "/usr/share/zoneinfo/Europe/Paris"
    assert result.env == (("TZ", "Europe/Paris"),)
    dockerfile = run_cli(
        "inspect", "--format", "dockerfile", "--tz", "Europe/Paris", str(RUNTIME / "c-localtime")
    ).stdout
    assert "ENV TZ=Europe/Paris" in dockerfile
    assert "ln -s /usr/share/zoneinfo/Europe/Paris" in dockerfile


def test_unknown_zone_is_a_problem() -> None:
    result = inspect(
        (str(RUNTIME / "c-localtime"),), InspectOptions(needs=NeedsOptions(tz=("Mars/Olympus",)))
    )
    assert any("Mars/Olympus" in w for w in result.warnings)


def test_user_and_generated_etc() -> None:
    assert parse_user("app:staff") == ("app", None, "staff", None)
    assert parse_user("1000:1000") == (None, 1000, None, 1000)
    passwd, group = generated_passwd_group("app")
    assert "nonroot:x:65532:65532:" in passwd
    assert "app:x:10001:10001:app:/home/app:/sbin/nologin" in passwd
    assert "app:x:10001:" in group
    result = run_cli(
        "inspect",
        "--format",
        "json",
        "--generate-etc",
        "--user",
        "app",
        str(RUNTIME / "c-getpwnam"),
    ).json()
    passwd_entry = next(f for f in result["files"] if f["path"] == "/etc/passwd")
    assert "source" not in passwd_entry
    assert "app:x:10001" in passwd_entry["content"]
    assert result["user"] == "app"


def test_user_missing_from_the_builder_is_reported() -> None:
    result = inspect(
        (str(RUNTIME / "c-getpwnam"),),
        InspectOptions(needs=NeedsOptions(user="no-such-user-here", copy_etc=True)),
    )
    assert any("no-such-user-here" in w for w in result.warnings)
    (need,) = [n for n in result.binaries[0].needs if n.kind is NeedKind.USERS]
    assert need.confidence is Confidence.CERTAIN


def test_root_without_ca_bundle_is_a_problem(make_root: RootBuilder) -> None:
    root = make_root({"/app": RUNTIME / "go-https-get"})
    result = inspect(("/app",), InspectOptions(root=str(root)))
    (need,) = [n for n in result.binaries[0].needs if n.kind is NeedKind.CA_CERTIFICATES]
    assert need.files == ()
    assert any("ca-certificates" in p for p in need.problems)


def test_openssl_bundle_path_comes_from_the_roots_libcrypto() -> None:
    result = inspect((str(RUNTIME / "c-openssl-client"),), InspectOptions())
    (need,) = [n for n in result.binaries[0].needs if n.kind is NeedKind.CA_CERTIFICATES]
    assert [f.path for f in need.files] == ["/usr/lib/ssl/cert.pem"]
    assert any('OPENSSLDIR "/usr/lib/ssl"' in e for e in need.evidence)


def test_glibc_before_2_34_needs_nss_modules(make_root: RootBuilder, tmp_path: Path) -> None:
    """A root whose libc.so.6 defines no GLIBC_2.34: files/dns come from modules."""
    from scratchprobe.needs.evidence import gather
    from scratchprobe.needs.nssmodules import detect as _nss_modules

    root = make_root({**glibc_base(), "/app": RUNTIME / "c-getpwnam"})
    result = inspect(("/app",), InspectOptions(root=str(root)))
    report = result.binaries[0]
    from dataclasses import replace

    from scratchprobe.loader.closure import ElfCache, Resolver
    from scratchprobe.needs.context import Context
    from scratchprobe.root import Root

    in_root = Root(str(root))
    with Context(in_root, Resolver(in_root, (), ElfCache()), NeedsOptions()) as ctx:
        with ctx.images.use(report.elf) as image:
            subject = gather(
                report.path, image, report.linkage, report.libc, report.closure, ctx.evidence
            )
        old = replace(subject, root_glibc=(2, 31))
        (need,) = _nss_modules(old, ctx)
    assert need.kind is NeedKind.NSS_MODULES
    assert any("libnss_files.so.2" in p for p in need.problems)
    assert _nss_modules(subject, ctx) == []


def test_dlopen_note_names_the_library(tmp_path: Path) -> None:
    """systemd's .note.dlopen: the soname it names is located and planned."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("binutils objcopy is not installed")
    payload = (
        json.dumps(
            [{"feature": "greeting", "priority": "required", "soname": ["libgcc_s.so.1"]}]
        ).encode()
        + b"\0"
    )
    name = b"FDO\0"
    desc = payload + b"\0" * (-len(payload) % 4)
    note = (
        len(name).to_bytes(4, "little")
        + len(payload).to_bytes(4, "little")
        + (0x407C0C0A).to_bytes(4, "little")
        + name
        + desc
    )
    note_file = tmp_path / "note.bin"
    note_file.write_bytes(note)
    binary = tmp_path / "app"
    subprocess.run(
        [
            objcopy,
            "--add-section",
            f".note.dlopen={note_file}",
            "--set-section-flags",
            ".note.dlopen=alloc,readonly",
            str(TESTBINS / "c-glibc-dynamic"),
            str(binary),
        ],
        check=True,
    )
    result = inspect((str(binary),), InspectOptions())
    (need,) = [n for n in result.binaries[0].needs if n.kind is NeedKind.DLOPEN]
    assert need.confidence is Confidence.CERTAIN
    assert [f.path for f in need.files] == ["/lib/x86_64-linux-gnu/libgcc_s.so.1"]
    assert "/lib/x86_64-linux-gnu/libgcc_s.so.1" in {f.path for f in result.plan.files}


def test_with_adds_a_kind_no_evidence_showed() -> None:
    """--with tmp on a program whose temp_dir use left no trace (Rust) adds /tmp, saying
    why; kinds whose files depend on the program (gconv) are not invented."""
    requested = frozenset({NeedKind.TMP, NeedKind.GCONV})
    result = inspect((str(RUNTIME / "rust-std-env"),), InspectOptions(with_kinds=requested))
    needs = {n.kind: n for n in result.binaries[0].needs}
    assert needs[NeedKind.TMP].evidence == ("--with tmp",)
    assert NeedKind.GCONV not in needs
    assert "/tmp" in {f.path for f in result.plan.files}
    plain = inspect((str(RUNTIME / "rust-std-env"),), InspectOptions())
    assert NeedKind.TMP not in {n.kind for n in plain.binaries[0].needs}


@pytest.mark.parametrize("zone", ["../../etc/passwd", "/etc/passwd", "Europe/../../../etc"])
def test_tz_cannot_leave_zoneinfo(zone: str) -> None:
    result = inspect(
        (str(RUNTIME / "c-localtime"),), InspectOptions(needs=NeedsOptions(tz=(zone,)))
    )
    assert all(".." not in f.path for f in result.plan.files)
    assert "/etc/passwd" not in {f.path for f in result.plan.files}
    assert result.env == ()
    assert any("not a time zone name" in w for w in result.warnings)


def test_user_spec_cannot_inject_dockerfile_lines() -> None:
    result = run_cli(
        "inspect", "--format", "dockerfile", "--user", "x\nRUN rm -rf /", "/usr/bin/id"
    )
    assert result.returncode == 2
    assert "RUN rm" not in result.stdout
