"""Apply the policy to an inspection: per binary, per rule, passed, failed or skipped.

The engine computes every fact a renderer shows (messages included), so the five output
formats cannot disagree about what failed or why.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

from scratchprobe.check.policy import ARCH_ALIASES, Policy
from scratchprobe.check.rules import (
    DLOPEN,
    FOREIGN_ARCH,
    GLIBC_TOO_NEW,
    INTERPRETER_MISSING,
    LIBRARY_NOT_ALLOWED,
    LIBRARY_NOT_FOUND,
    NOT_STATIC,
    RULES,
    RUNTIME_DENIED,
    VERSION_MISSING,
    Rule,
    Severity,
)
from scratchprobe.discover import InputProblem
from scratchprobe.elf.classify import Linkage
from scratchprobe.elf.reader import ElfFile, format_version, parse_glibc_version
from scratchprobe.errors import ELFError
from scratchprobe.loader.closure import FoundVia
from scratchprobe.model import BinaryReport, Inspection
from scratchprobe.needs.model import NeedKind

# The two entry points through which a program loads code the loader never saw;
# dlopen@GLIBC_2.34 lives in libc.so.6, older programs import it from libdl.so.2.
DLOPEN_SYMBOLS = ("dlopen", "dlmopen")


class Status(Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """The policy does not ask for this rule, or its severity is `off`."""


@dataclass(frozen=True)
class Finding:
    """One reason a rule is broken."""

    message: str
    """A sentence naming the object at fault, for every output format."""
    subject: str
    """What the finding is about (a library name, a version, a file path); with the rule and
    the binary it identifies the finding across runs (SARIF fingerprints)."""


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    severity: Severity
    """The severity under the policy (SKIPPED outcomes keep it for the report)."""
    status: Status
    findings: tuple[Finding, ...]
    """Empty unless FAILED."""
    skip_reason: str | None = None

    @property
    def is_error(self) -> bool:
        return self.status is Status.FAILED and self.severity is Severity.ERROR


@dataclass(frozen=True)
class BinaryCheck:
    label: str
    """The path as the user gave it (or as found in a directory they gave)."""
    file: str
    """Host path of the binary: where a CI annotation points."""
    path: str
    """Image path of the binary."""
    arch: str
    linkage: str
    outcomes: tuple[RuleOutcome, ...]
    """One per rule of `RULES`, in that order."""

    @property
    def passed(self) -> bool:
        return not any(outcome.is_error for outcome in self.outcomes)

    @property
    def failed(self) -> tuple[RuleOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status is Status.FAILED)


@dataclass(frozen=True)
class CheckResult:
    root: str
    policy: Policy
    expected_arch: str
    """The architecture SP009 compared with (the policy's, or the host's)."""
    binaries: tuple[BinaryCheck, ...]
    problems: tuple[InputProblem, ...]
    """Inputs that could not be checked at all."""

    @property
    def passed(self) -> bool:
        return not self.problems and all(b.passed for b in self.binaries)

    @property
    def exit_code(self) -> int:
        """2 for unusable input, 1 when a rule at error level is broken, else 0 (README.md,
        "Exit codes")."""
        if self.problems:
            return 2
        if not all(b.passed for b in self.binaries):
            return 1
        return 0


def host_arch() -> str:
    """The machine running the check, in scratchprobe's architecture names."""
    machine = platform.machine().lower()
    return ARCH_ALIASES.get(machine, machine)


class _SymbolCache:
    """dlopen imports by host path: libc is read once per run, not once per binary."""

    def __init__(self) -> None:
        self._imports: dict[str, bool | str] = {}

    def imports_dlopen(self, elf: ElfFile) -> bool | str:
        """True/False, or the reason the symbol tables could not be read."""
        cached = self._imports.get(elf.path)
        if cached is None:
            from scratchprobe.elf.dynsym import imported_symbols

            try:
                imported = imported_symbols(elf)
                cached = any(symbol in imported for symbol in DLOPEN_SYMBOLS)
            except ELFError as exc:
                cached = str(exc)
            self._imports[elf.path] = cached
        return cached


def run_check(inspection: Inspection, policy: Policy, host: str | None = None) -> CheckResult:
    """Check every inspected binary against `policy`; `host` overrides the host's arch."""
    expected = policy.arch or host or host_arch()
    symbols = _SymbolCache()
    kinds = {f.path: f.kind.value for f in inspection.plan.files}
    checks = tuple(
        _check_binary(
            report, inspection.plan.binary(report.path).files, policy, expected, kinds, symbols
        )
        for report in inspection.binaries
    )
    return CheckResult(
        root=inspection.root,
        policy=policy,
        expected_arch=expected,
        binaries=checks,
        problems=inspection.problems,
    )


def _check_binary(
    report: BinaryReport,
    files: tuple[str, ...],
    policy: Policy,
    expected_arch: str,
    kinds: dict[str, str],
    symbols: _SymbolCache,
) -> BinaryCheck:
    checkers: dict[Rule, Callable[[], list[Finding]]] = {
        NOT_STATIC: lambda: _not_static(report),
        LIBRARY_NOT_FOUND: lambda: _library_not_found(report),
        LIBRARY_NOT_ALLOWED: lambda: _library_not_allowed(report, policy.allow_libraries or ()),
        GLIBC_TOO_NEW: lambda: _glibc_too_new(report, policy.max_glibc or ()),
        VERSION_MISSING: lambda: _version_missing(report),
        INTERPRETER_MISSING: lambda: _interpreter_missing(report),
        RUNTIME_DENIED: lambda: _runtime_denied(files, policy.deny_runtime, kinds),
        DLOPEN: lambda: _dlopen(report, symbols),
        FOREIGN_ARCH: lambda: _foreign_arch(report, expected_arch),
    }
    outcomes: list[RuleOutcome] = []
    for rule in RULES:
        severity = policy.severity_of(rule)
        if severity is Severity.OFF:
            outcomes.append(RuleOutcome(rule, severity, Status.SKIPPED, (), "severity set to off"))
            continue
        if not policy.enables(rule):
            outcomes.append(
                RuleOutcome(rule, severity, Status.SKIPPED, (), f"{rule.enabled_by} is not set")
            )
            continue
        findings = tuple(checkers[rule]())
        status = Status.FAILED if findings else Status.PASSED
        outcomes.append(RuleOutcome(rule, severity, status, findings))
    return BinaryCheck(
        label=report.label,
        file=report.elf.path,
        path=report.path,
        arch=report.elf.arch.name,
        linkage=report.linkage.value,
        outcomes=tuple(outcomes),
    )


def _not_static(report: BinaryReport) -> list[Finding]:
    # A static PIE relocates itself and has no interpreter: it is as self-contained as a
    # plain static executable, so it passes.
    if report.linkage is not Linkage.DYNAMIC:
        return []
    elf = report.elf
    needs = []
    if elf.interpreter:
        needs.append(f"the interpreter {elf.interpreter}")
    if elf.needed:
        needs.append(f"{len(elf.needed)} shared librar{'y' if len(elf.needed) == 1 else 'ies'}")
    what = " and ".join(needs) or "the dynamic loader"
    return [Finding(f"dynamically linked: needs {what}", report.linkage.value)]


def _library_not_found(report: BinaryReport) -> list[Finding]:
    if report.closure is None:
        return []
    return [
        Finding(
            f"{missing.name} (needed by {missing.needed_by}) not found; searched "
            f"{', '.join(missing.searched) or 'nothing'}",
            missing.name,
        )
        for missing in report.closure.missing
    ]


def _library_not_allowed(report: BinaryReport, allowed: tuple[str, ...]) -> list[Finding]:
    closure = report.closure
    if closure is None:
        return []
    # The interpreter is governed by SP006 and the libc choice, not by the allow-list;
    # rust's literal DT_NEEDED on ld-linux-x86-64.so.2 must not fail `libc.so.*` lists.
    interpreter = closure.interpreter.path if closure.interpreter else None
    sonames = {obj.path: obj.soname for obj in closure.libraries}
    out: list[Finding] = []
    seen: set[str] = set()
    for dep in closure.dependencies:
        if dep.path is not None and dep.path == interpreter:
            continue
        if dep.name in seen:
            continue
        seen.add(dep.name)
        names = [dep.name]
        soname = sonames.get(dep.path) if dep.path is not None else None
        if soname:
            names.append(soname)
        if any(fnmatchcase(name, pattern) for name in names for pattern in allowed):
            continue
        out.append(
            Finding(f"{dep.name} (needed by {dep.needer}) is not on the allow-list", dep.name)
        )
    return out


def _is_glibc_itself(elf: ElfFile) -> bool:
    # libc.so.6, libm.so.6, ld.so ... define the GLIBC_x.y versions and need their own
    # release's ones from each other; that says nothing about what the program asks of glibc.
    return any(parse_glibc_version(v) is not None for v in elf.version_defs)


def _glibc_too_new(report: BinaryReport, floor: tuple[int, ...]) -> list[Finding]:
    objects: list[tuple[str, ElfFile]] = [(report.path, report.elf)]
    if report.closure is not None:
        objects += [
            (obj.path, obj.elf) for obj in report.closure.libraries if not _is_glibc_itself(obj.elf)
        ]
    out = []
    for path, elf in objects:
        needed = elf.max_glibc
        if needed is not None and needed > floor:
            who = "the binary" if path == report.path else path
            out.append(
                Finding(
                    f"{who} needs GLIBC_{format_version(needed)}, above the floor "
                    f"{format_version(floor)}",
                    f"{path}@GLIBC_{format_version(needed)}",
                )
            )
    return out


def _version_missing(report: BinaryReport) -> list[Finding]:
    if report.closure is None:
        return []
    return [
        Finding(
            f"{missing.needed_by} needs version {missing.version} of {missing.library}, "
            "which the resolved library does not define",
            f"{missing.library}@{missing.version}",
        )
        for missing in report.closure.missing_versions
    ]


def _interpreter_missing(report: BinaryReport) -> list[Finding]:
    closure = report.closure
    if closure is None or not closure.interpreter_missing:
        return []
    name = report.elf.interpreter or "the program interpreter"
    return [Finding(f"{name} does not exist in the root", name)]


def _runtime_denied(
    files: tuple[str, ...], denied: tuple[str, ...], kinds: dict[str, str]
) -> list[Finding]:
    """`files`: image paths of every file the binary needs (the plan's record)."""
    out = []
    for path in files:
        kind = kinds.get(path)
        if kind is not None and kind in denied:
            out.append(Finding(f"needs {path}, a file of denied kind '{kind}'", path))
    return out


# Libraries found through the program's own search paths ship with the application, so their
# dlopen calls are the application's; a library of the system's directories (libselinux,
# libc itself) imports dlopen for its own optional features, which a user cannot act on.
_APPLICATION_VIA = frozenset(
    {FoundVia.PATH, FoundVia.RPATH, FoundVia.RUNPATH, FoundVia.LIBRARY_PATH}
)


def _dlopen(report: BinaryReport, symbols: _SymbolCache) -> list[Finding]:
    out = []
    dlopen_needs = [
        (need, keep)
        for need, keep in zip(report.needs, report.included, strict=True)
        if need.kind is NeedKind.DLOPEN
    ]
    for need, keep in dlopen_needs:
        # inspect's own dlopen evidence, including a static binary's linked dlopen.
        names = ", ".join(f.path for f in need.files)
        if need.files and keep and not need.problems:
            continue  # what it loads is known and in the plan
        if need.files:
            out.append(
                Finding(
                    f"{report.path} dlopens {names} ({need.summary}), not in the plan: add "
                    "them with --with dlopen",
                    report.path,
                )
            )
        elif need.problems:
            out.append(
                Finding(f"{report.path}: {need.summary}: {'; '.join(need.problems)}", report.path)
            )
        else:
            out.append(
                Finding(
                    f"{report.path} {'; '.join(need.evidence)} with names chosen at run time: "
                    "what it loads is not in the plan",
                    report.path,
                )
            )
    objects: list[tuple[str, ElfFile, str]] = []
    if not dlopen_needs:
        # No runtime-needs pass (--no-runtime) or nothing found there: the binary's imports.
        objects.append((report.path, report.elf, ""))
    if report.closure is not None:
        objects += [
            (obj.path, obj.elf, f" (found through {obj.via.value}: it ships with the program)")
            for obj in report.closure.libraries
            if obj.via in _APPLICATION_VIA
        ]
    for path, elf, where in objects:
        verdict = symbols.imports_dlopen(elf)
        if verdict is True:
            out.append(
                Finding(
                    f"{path}{where} imports dlopen: what it loads at run time is not in the plan",
                    path,
                )
            )
        elif isinstance(verdict, str):
            out.append(Finding(f"{path}: dlopen use unknown, {verdict}", path))
    return out


def _foreign_arch(report: BinaryReport, expected: str) -> list[Finding]:
    actual = report.elf.arch.name
    if actual == expected:
        return []
    return [Finding(f"built for {actual}, expected {expected}", actual)]
