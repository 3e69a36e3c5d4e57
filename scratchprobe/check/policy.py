"""The policy `check` enforces: read from TOML, overridden by command-line flags.

Where it comes from, first match wins:
1. `--policy FILE` (a `pyproject.toml` is read from its `[tool.scratchprobe]` table, any
   other file from its top level);
2. `scratchprobe.toml` in the working directory;
3. the nearest `pyproject.toml` with a `[tool.scratchprobe]` table, from the working directory
   upward (the way ruff and mypy find theirs, so a monorepo can keep one policy at its top).

Keys are spelt like the command-line flags. An unknown key is an error, never ignored: a
misspelt `requre-static = true` silently passing every dynamic binary is exactly the failure
a CI gate must not have.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, replace

from scratchprobe.check.rules import FOREIGN_ARCH, RULES_BY_CODE, Rule, Severity
from scratchprobe.errors import UsageError
from scratchprobe.root import read_regular

POLICY_FILE = "scratchprobe.toml"
PYPROJECT = "pyproject.toml"

KEYS: tuple[str, ...] = (
    "require-static",
    "allow-libraries",
    "max-glibc",
    "deny-runtime",
    "arch",
    "severity",
)

# Architecture names as scratchprobe prints them (scratchprobe.elf.arch.arch_name).
KNOWN_ARCHES = frozenset(
    {
        "i386", "x86_64", "aarch64", "aarch64_be", "m68k", "ia64", "sh4", "loongarch64",
        "loongarch32", "sparc64", "sparc", "hppa", "armeb", "armhf", "arm", "riscv64",
        "riscv32", "ppc64", "ppc64le", "ppc", "ppcle", "s390x", "s390", "mips64", "mips64el",
        "mips", "mipsel",
    }
)  # fmt: skip

# Other spellings people use for the same machines: Docker/Go platform names and
# `uname -m` (platform.machine()) output. 32-bit ARM hosts are taken as Debian's armhf, the
# common case; the host comparison is only a warning, so the rare armel host is not failed.
ARCH_ALIASES: dict[str, str] = {
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "armv8l": "armhf",
    "armv7l": "armhf",
    "armv7": "armhf",
    "armv6l": "armhf",
    "armel": "arm",
    "386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "x86": "i386",
    "ppc64el": "ppc64le",
    "loong64": "loongarch64",
    "mips64le": "mips64el",
    "mipsle": "mipsel",
}

_VERSION = re.compile(r"(?:GLIBC_)?(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class Policy:
    """What `check` requires of every binary."""

    require_static: bool = False
    """Fail binaries that need a loader (SP001)."""
    allow_libraries: tuple[str, ...] | None = None
    """fnmatch patterns a needed library's name must match (SP003); None: no allow-list."""
    max_glibc: tuple[int, ...] | None = None
    """Highest GLIBC_x.y a binary may need (SP004); None: no floor."""
    deny_runtime: tuple[str, ...] = ()
    """Plan file kinds a binary must not need (SP007); any string, kinds grow over time."""
    arch: str | None = None
    """Expected architecture, normalised (SP009); None: the host's, at warning level."""
    severity: tuple[tuple[str, Severity], ...] = ()
    """Per-rule severity overrides, (code, severity), in the order given."""
    source: str | None = None
    """The file the policy was read from, for the report; None: defaults and flags only."""

    def severity_of(self, rule: Rule) -> Severity:
        """The severity a rule is checked at under this policy.

        SP009 compares with the host only as a hint (a CI runner need not be the target
        platform), but an `arch` the user wrote down is a requirement, so it is an error.
        """
        for code, severity in reversed(self.severity):
            if code == rule.code:
                return severity
        if rule is FOREIGN_ARCH and self.arch is not None:
            return Severity.ERROR
        return rule.default_severity

    def enables(self, rule: Rule) -> bool:
        """Whether the policy asks for the rule at all (its `enabled_by` key is set)."""
        key = rule.enabled_by
        if key is None:
            return True
        if key == "require-static":
            return self.require_static
        if key == "allow-libraries":
            return self.allow_libraries is not None
        if key == "max-glibc":
            return self.max_glibc is not None
        if key == "deny-runtime":
            return bool(self.deny_runtime)
        raise AssertionError(f"rule {rule.code} is enabled by unknown key {key}")


@dataclass(frozen=True)
class PolicyOverrides:
    """Command-line flags; None means the flag was not given and the file's value stands."""

    require_static: bool | None = None
    allow_libraries: tuple[str, ...] | None = None
    max_glibc: tuple[int, ...] | None = None
    deny_runtime: tuple[str, ...] | None = None
    arch: str | None = None
    severity: tuple[tuple[str, Severity], ...] = ()


def merge(policy: Policy, overrides: PolicyOverrides) -> Policy:
    """Flags win: a list flag replaces the file's list; severities are merged per rule."""
    o = overrides
    return replace(
        policy,
        require_static=policy.require_static if o.require_static is None else o.require_static,
        allow_libraries=policy.allow_libraries if o.allow_libraries is None else o.allow_libraries,
        max_glibc=policy.max_glibc if o.max_glibc is None else o.max_glibc,
        deny_runtime=policy.deny_runtime if o.deny_runtime is None else o.deny_runtime,
        arch=policy.arch if o.arch is None else o.arch,
        # Later entries win in `severity_of`, so the flags go last.
        severity=policy.severity + o.severity,
    )


def parse_glibc_version(text: str, where: str) -> tuple[int, ...]:
    """`2.31` (or `GLIBC_2.31`) -> (2, 31); compared as tuples so 2.4 < 2.31."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{where}: {text!r} is not a glibc version like 2.31")
    return tuple(int(part) for part in match.group(1).split("."))


def normalize_arch(name: str, where: str) -> str:
    lowered = name.strip().lower()
    lowered = ARCH_ALIASES.get(lowered, lowered)
    if lowered in KNOWN_ARCHES or re.fullmatch(r"em-\d+", lowered):
        return lowered
    raise UsageError(
        f"{where}: unknown architecture {name!r} (one of {', '.join(sorted(KNOWN_ARCHES))})"
    )


def parse_severity(text: str, where: str) -> Severity:
    try:
        return Severity(text.strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Severity)
        raise UsageError(f"{where}: {text!r} is not a severity ({choices})") from None


def parse_rule_code(code: str, where: str) -> str:
    normalized = code.strip().upper()
    if normalized not in RULES_BY_CODE:
        raise UsageError(f"{where}: unknown rule {code!r} (see scratchprobe check --explain all)")
    return normalized


def _unknown_key(key: str, where: str, choices: tuple[str, ...]) -> UsageError:
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(choices)})"
    return UsageError(f"{where}: unknown key '{key}'{hint}")


def _string_list(value: object, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def parse_policy(table: dict[str, object], where: str) -> Policy:
    """A policy from one TOML table; `where` names the file (and table) in messages."""
    policy = Policy(source=where)
    for key, value in table.items():
        if key == "require-static":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: require-static must be true or false")
            policy = replace(policy, require_static=value)
        elif key == "allow-libraries":
            policy = replace(policy, allow_libraries=_string_list(value, key, where))
        elif key == "max-glibc":
            # A TOML float would turn "2.30" into 2.3, so only a string is accepted.
            if not isinstance(value, str):
                raise UsageError(f'{where}: max-glibc must be a string such as "2.31"')
            policy = replace(policy, max_glibc=parse_glibc_version(value, f"{where}: max-glibc"))
        elif key == "deny-runtime":
            policy = replace(policy, deny_runtime=_string_list(value, key, where))
        elif key == "arch":
            if not isinstance(value, str):
                raise UsageError(f'{where}: arch must be a string such as "x86_64"')
            policy = replace(policy, arch=normalize_arch(value, f"{where}: arch"))
        elif key == "severity":
            policy = replace(policy, severity=_severity_table(value, where))
        else:
            raise _unknown_key(key, where, KEYS)
    return policy


def _severity_table(value: object, where: str) -> tuple[tuple[str, Severity], ...]:
    if not isinstance(value, dict):
        raise UsageError(f'{where}: severity must be a table such as {{ SP008 = "error" }}')
    out: list[tuple[str, Severity]] = []
    for code, level in value.items():
        if code.upper() not in RULES_BY_CODE:
            raise _unknown_key(
                f"severity.{code}", where, tuple(f"severity.{c}" for c in RULES_BY_CODE)
            )
        if not isinstance(level, str):
            raise UsageError(f"{where}: severity.{code} must be a string")
        out.append((code.upper(), parse_severity(level, f"{where}: severity.{code}")))
    return tuple(out)


# A policy is a few dozen lines; a FIFO or a multi-GB file given as --policy is refused.
_MAX_POLICY_SIZE = 1 << 20


def _read_toml(path: str) -> dict[str, object]:
    import tomllib  # only a run with a policy file pays for the TOML parser

    try:
        # Never a FIFO (opening one for reading blocks until a writer comes); a character
        # device is read without blocking, so `--policy /dev/null` stays an empty policy.
        data = read_regular(path, _MAX_POLICY_SIZE, devices=True)
        return tomllib.loads(data.decode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the policy: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: invalid TOML: not UTF-8 text") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; a policy has two
        # levels, a crafted file thousands.
        raise UsageError(f"{path}: invalid TOML: nested too deeply") from None


def _tool_table(document: dict[str, object], path: str) -> dict[str, object] | None:
    tool = document.get("tool")
    if not isinstance(tool, dict):
        return None
    table = tool.get("scratchprobe")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: tool.scratchprobe must be a table")
    return table


def find_policy_file(cwd: str) -> str | None:
    """The policy file that applies in `cwd` when --policy is not given, or None."""
    local = os.path.join(cwd, POLICY_FILE)
    if os.path.isfile(local):
        return local
    directory = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(directory, PYPROJECT)
        if (
            os.path.isfile(candidate)
            and _mentions_scratchprobe(candidate)
            and _tool_table(_read_toml(candidate), candidate) is not None
        ):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _mentions_scratchprobe(path: str) -> bool:
    # Parse only pyproject files that can hold our table: an unrelated project's broken
    # pyproject.toml higher up must not fail a check that never needed it.
    try:
        with open(path, "rb") as handle:
            return b"scratchprobe" in handle.read()
    except OSError:
        return False


def load_policy(path: str | None, cwd: str) -> Policy:
    """The policy of --policy `path`, else the one found from `cwd`, else the defaults."""
    if path is None:
        path = find_policy_file(cwd)
        if path is None:
            return Policy()
    document = _read_toml(path)
    if os.path.basename(path) == PYPROJECT:
        table = _tool_table(document, path)
        if table is None:
            raise UsageError(f"{path}: no [tool.scratchprobe] table")
        return parse_policy(table, f"{path} [tool.scratchprobe]")
    return parse_policy(document, path)
