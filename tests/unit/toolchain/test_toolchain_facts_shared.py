"""One set of toolchain facts per binary, read once, and what every stage says of it.

The toolchain line, each need's evidence, and the SBOM's embedded modules all come from the
report's ToolchainFacts; the build info is not read a second time (annotate), and the Go
facts the detectors see are the report's own (docs/runtime-facts.md, "Go": CGO_ENABLED=1 with
osusergo or netgo may link no cgo at all; the setting and what is linked are two facts).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from scratchprobe.annotate import annotate
from scratchprobe.elf import image as image_module
from scratchprobe.model import InspectOptions
from scratchprobe.needs.model import NeedKind
from scratchprobe.needs.rust import RustView
from scratchprobe.pipeline import inspect
from scratchprobe.root import open_regular
from scratchprobe.toolchain.rust import CrateEvidence, CrateKind, RustCrate, RustFacts
from scratchprobe.toolchain.signs import GO_BUILDINFO_MAGIC, NET_CGO, USER_PURE
from tests.conftest import TESTBINS

RUNTIME = TESTBINS / "runtime"
MANIFEST: dict[str, dict[str, Any]] = json.loads((RUNTIME / "MANIFEST-go-rust.json").read_text())
GO = sorted(name for name, record in MANIFEST.items() if record["toolchain"] == "go")
_CGO = re.compile(r"CGO_ENABLED=(\d)")


def _report(path: Path) -> Any:
    result = inspect((str(path),), InspectOptions())
    assert result.problems == ()
    (report,) = result.binaries
    return report


@pytest.mark.parametrize("name", GO)
def test_toolchain_line_and_evidence_agree_on_cgo(name: str) -> None:
    """Every Go need's evidence states CGO_ENABLED as the toolchain line does (the build
    setting), for every Go testbin, osusergo and netgo builds with CGO_ENABLED=1 included."""
    report = _report(RUNTIME / name)
    assert report.toolchain is not None
    line = _CGO.findall(report.toolchain)
    assert line == [str(int(MANIFEST[name]["cgo_enabled"]))]
    said = [m for need in report.needs for e in need.evidence for m in _CGO.findall(e)]
    assert set(said) <= set(line), (report.toolchain, said)


def test_osusergo_with_cgo_linked() -> None:
    """CGO_ENABLED=1 -tags osusergo with net's cgo resolver: libc is linked (the toolchain
    line says so), os/user is still pure Go (the users need reads /etc/passwd itself), and
    the users evidence names the same setting and markers as the facts."""
    report = _report(RUNTIME / "go119-user-osusergo-cgo")
    facts = report.toolchain_facts
    assert facts is not None
    assert facts.go is not None
    go = facts.go
    assert go.cgo_enabled is True
    assert go.cgo_linked is True
    assert go.osusergo
    assert go.pure_go_user
    assert go.found(NET_CGO)
    assert report.toolchain == "Go 1.19.8, CGO_ENABLED=1, tags osusergo, cgo linked"
    (users,) = [n for n in report.needs if n.kind is NeedKind.USERS]
    assert users.evidence == go.evidence(
        "os/user in pure Go reads /etc/passwd and /etc/group", USER_PURE
    )
    assert users.evidence[1] == "Go 1.19.8; CGO_ENABLED=1; tags osusergo"


def test_osusergo_without_cgo_says_so() -> None:
    """CGO_ENABLED=1 -tags osusergo linking no cgo: the evidence keeps the setting and says
    that no cgo is linked, where it once said CGO_ENABLED=0."""
    report = _report(RUNTIME / "go-user-osusergo")
    (users,) = [n for n in report.needs if n.kind is NeedKind.USERS]
    assert "CGO_ENABLED=1" in report.toolchain
    assert users.evidence[1].endswith("; CGO_ENABLED=1; tags osusergo; no cgo linked")


def test_annotate_reads_the_modules_from_the_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """annotate lists the Go modules of the report's facts: reading the build info again
    would fail here."""
    result = inspect((str(RUNTIME / "go-tempfile"),), InspectOptions())
    (report,) = result.binaries
    assert report.toolchain_facts is not None
    assert report.toolchain_facts.go is not None
    expected = report.toolchain_facts.go.buildinfo
    assert expected is not None
    assert expected.deps

    def refuse(*_args: object) -> None:
        raise AssertionError("the build info was read a second time")

    monkeypatch.setattr("scratchprobe.toolchain.go._read_buildinfo", refuse)
    annotations = annotate(result)
    entry = annotations.file(report.path)
    assert entry is not None
    names = {m.name for m in entry.modules}
    assert {d.path for d in expected.deps} <= names
    assert "stdlib" in names


@pytest.mark.parametrize(
    "path", [RUNTIME / "go-https-get", TESTBINS / "c-glibc-static", Path("/usr/bin/curl")]
)
def test_one_open_per_file_per_run(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reader of a file shares the run's image: the binary and each library are
    opened by the images once per run, and nothing stays open after it."""
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    opened: list[str] = []
    closed: list[str] = []
    real_open = open_regular
    real_close = image_module.FileImage.close

    def counting_open(host_path: str, devices: bool = False) -> int:
        opened.append(host_path)
        return real_open(host_path, devices)

    def counting_close(self: image_module.FileImage) -> None:
        if self.is_open:
            closed.append(self.path)
        real_close(self)

    monkeypatch.setattr("scratchprobe.elf.image.open_regular", counting_open)
    monkeypatch.setattr(image_module.FileImage, "close", counting_close)
    result = inspect((str(path),), InspectOptions())
    assert result.problems == ()
    assert opened, "no reader used the run's images"
    assert str(path) in opened
    repeated = {p for p in opened if opened.count(p) > 1}
    assert repeated == set(), repeated
    assert sorted(closed) == sorted(opened)


def test_rust_detectors_read_runtime_crates() -> None:
    """A build-only crate (a build script's chrono) or a standard-library dependency
    decides nothing at run time: the Rust view holds the linked crates only."""
    audit = RustFacts(
        rustc_version="1.95.0",
        rustc_version_line=None,
        rustc_commits=(),
        crates=(
            RustCrate("app", "0.1.0", CrateEvidence.AUDIT_DATA, root=True),
            RustCrate("chrono", "0.4.0", CrateEvidence.AUDIT_DATA, kind=CrateKind.BUILD),
            RustCrate("webpki-roots", "0.26.0", CrateEvidence.AUDIT_DATA),
        ),
        audit_format=0,
        path_crates=(RustCrate("gimli", "0.31.0", CrateEvidence.STD_DEPENDENCY),),
    )
    view = RustView(audit.rustc_version, audit.runtime_crate_names)
    assert view.crates == frozenset({"app", "webpki-roots"})
    assert view.zone_crates == frozenset()
    assert view.embedded_roots


def test_unreadable_metadata_is_a_warning(tmp_path: Path) -> None:
    """A corrupt build info or audit data leaves the rest of the facts, and the inspection
    says what could not be read (the facts' warnings are its warnings)."""
    data = bytearray((RUNTIME / "go-user").read_bytes())
    at = data.index(GO_BUILDINFO_MAGIC)
    data[at + 32 : at + 42] = b"\xff" * 10  # the version's length: a uvarint that never ends
    broken = tmp_path / "go-user-broken"
    broken.write_bytes(bytes(data))
    crasher = Path(__file__).parents[2] / "data" / "crashers" / "deep-dep-v0.elf"
    result = inspect((str(broken), str(crasher)), InspectOptions())
    go_report, rust_report = result.binaries
    assert go_report.toolchain_facts is not None
    assert go_report.toolchain_facts.go is not None
    assert go_report.toolchain_facts.go.buildinfo is None
    assert go_report.toolchain_facts.go.pure_go_user  # the function table still read
    said = [w for w in result.warnings if w.startswith(f"{broken}: ")]
    assert said == [f"{broken}: {w}" for w in go_report.toolchain_facts.warnings]
    assert "Go build info unreadable" in said[0]
    assert any(w.startswith(f"{crasher}: cargo-auditable data unreadable") for w in result.warnings)
    assert rust_report.toolchain_facts is not None
