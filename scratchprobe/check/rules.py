"""The rules `scratchprobe check` enforces: stable codes, what each means, how to fix it.

A code is a public contract, like the JSON manifest's field names: CI configurations,
SARIF alerts on GitHub and `[severity]` tables in policy files refer to it, so a code is
never renumbered or reused. docs/rules.md documents every rule; a test compares that page
with `RULES` so the two cannot drift. The page ships in the package (check/rules.md, a link
to it in the source tree that the wheel stores as a file), so `scratchprobe check --explain`
works after a pip install, where docs/ does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from importlib import resources

PROJECT_URL = "https://github.com/scratchprobe/scratchprobe"
"""Where the project lives; SARIF's informationUri and the base of every rule's help link."""

RULES_DOC_URL = f"{PROJECT_URL}/blob/main/docs/rules.md"


class Severity(Enum):
    """How much a broken rule matters. Only ERROR changes the exit code."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"
    OFF = "off"
    """Not checked at all."""


@dataclass(frozen=True)
class Rule:
    code: str
    """Stable identifier, `SP` and three digits."""
    name: str
    """Stable kebab-case slug; with the code it forms the docs/rules.md heading and anchor."""
    title: str
    """One line saying what is wrong, as a finding's heading."""
    meaning: str
    """Why it matters for a FROM scratch image."""
    fix: str
    """What to do about it."""
    default_severity: Severity
    enabled_by: str | None
    """The policy key that switches the rule on, or None when it always runs."""

    @property
    def anchor(self) -> str:
        """GitHub's heading anchor for `## SP001 not-static` in docs/rules.md."""
        return f"{self.code.lower()}-{self.name}"

    @property
    def help_uri(self) -> str:
        return f"{RULES_DOC_URL}#{self.anchor}"


NOT_STATIC = Rule(
    code="SP001",
    name="not-static",
    title="Binary is not statically linked",
    meaning=(
        "The policy requires static binaries, but this one has a program interpreter or "
        "DT_NEEDED entries, so the image must also carry a loader and shared libraries."
    ),
    fix=(
        "Link statically: `-static` (or `-static-pie`) for C/C++, `CGO_ENABLED=0` for Go, "
        "`-C target-feature=+crt-static` or a musl target for Rust; or drop --require-static "
        "and ship the files `scratchprobe inspect` lists."
    ),
    default_severity=Severity.ERROR,
    enabled_by="require-static",
)

LIBRARY_NOT_FOUND = Rule(
    code="SP002",
    name="library-not-found",
    title="A needed library is not found",
    meaning=(
        "A DT_NEEDED entry of the binary or of one of its libraries cannot be found by the "
        "loader's search rules inside the root: the program would fail to start with "
        "'cannot open shared object file'."
    ),
    fix=(
        "Install the library in the builder (--root), point --library-path at the directory "
        "holding it, or fix the RUNPATH of the object that needs it (RUNPATH applies only to "
        "that object's own DT_NEEDED, unlike RPATH)."
    ),
    default_severity=Severity.ERROR,
    enabled_by=None,
)

LIBRARY_NOT_ALLOWED = Rule(
    code="SP003",
    name="library-not-allowed",
    title="A needed library is not on the allow-list",
    meaning=(
        "The binary's library closure needs a shared library whose name matches no entry of "
        "the policy's allow-list (entries may be globs such as `libc.so.*`)."
    ),
    fix=(
        "Remove the dependency (link that code statically or drop it), or add the library "
        "to `allow-libraries` in the policy or --allow-library on the command line."
    ),
    default_severity=Severity.ERROR,
    enabled_by="allow-libraries",
)

GLIBC_TOO_NEW = Rule(
    code="SP004",
    name="glibc-too-new",
    title="Requires a glibc newer than the floor",
    meaning=(
        "The binary, or a non-glibc library in its closure, needs a GLIBC_x.y symbol version "
        "above the policy's max-glibc, so it will not start on a system whose glibc is at "
        "the floor."
    ),
    fix=(
        "Build against an older glibc (an older builder image, or a sysroot such as "
        "manylinux's), avoid the newer symbols, or raise max-glibc."
    ),
    default_severity=Severity.ERROR,
    enabled_by="max-glibc",
)

VERSION_MISSING = Rule(
    code="SP005",
    name="version-missing",
    title="A resolved library lacks a needed symbol version",
    meaning=(
        "An object needs a symbol version (such as GLIBC_2.34) that the library the loader "
        "found does not define: the program would fail with 'version ... not found'."
    ),
    fix=(
        "Build the binary against the same library release the builder (--root) ships, or "
        "update that library in the builder."
    ),
    default_severity=Severity.ERROR,
    enabled_by=None,
)

INTERPRETER_MISSING = Rule(
    code="SP006",
    name="interpreter-missing",
    title="The program interpreter is missing in the root",
    meaning=(
        "The binary's PT_INTERP names a loader that does not exist in the root, so the kernel "
        "cannot start it ('no such file or directory' for a file that exists)."
    ),
    fix=(
        "Install the loader for the binary's architecture and libc in the builder, check "
        "--root, or link statically."
    ),
    default_severity=Severity.ERROR,
    enabled_by=None,
)

RUNTIME_DENIED = Rule(
    code="SP007",
    name="runtime-denied",
    title="Needs a runtime file of a denied kind",
    meaning=(
        "The plan contains a file of a kind the policy denies (deny-runtime, e.g. "
        "`library`, `zoneinfo` or `ca-certificates`) that this binary needs."
    ),
    fix=(
        "Remove the need (link statically, embed the data, or set the environment variable "
        "that makes the program skip the file), or remove the kind from deny-runtime."
    ),
    default_severity=Severity.ERROR,
    enabled_by="deny-runtime",
)

DLOPEN = Rule(
    code="SP008",
    name="dlopen",
    title="Uses dlopen, which static analysis cannot follow",
    meaning=(
        "The binary calls dlopen or dlmopen (imported, or linked into a static binary), or a "
        "library that ships with it (found through RPATH, RUNPATH or --library-path) imports "
        "it; what it loads that way is chosen at run time and is not in the plan. Libraries "
        "named by a .note.dlopen are placed by scratchprobe and reported only when left out. "
        "A system library's own dlopen (libselinux, libc) is not reported: it serves that "
        "library's optional features, not the program's."
    ),
    fix=(
        "Find out what it loads (`scratchprobe verify BINARY -- ARGS` on its real workload, "
        "or strace in the builder) and add those files to the image; `--with dlopen` adds "
        "the libraries a .note.dlopen names. Then set this rule's severity to `off`, or to "
        "`error` to forbid dlopen."
    ),
    default_severity=Severity.WARNING,
    enabled_by=None,
)

FOREIGN_ARCH = Rule(
    code="SP009",
    name="foreign-arch",
    title="Built for another architecture",
    meaning=(
        "The binary's ELF machine differs from the expected architecture: the policy's `arch` "
        "(--arch) when set, otherwise the machine running the check. An image for the wrong "
        "platform fails with 'exec format error'."
    ),
    fix=(
        "Build for the target platform, or set `arch` (--arch) to the platform the image is "
        "for when cross-building."
    ),
    default_severity=Severity.WARNING,
    enabled_by=None,
)

RULES: tuple[Rule, ...] = (
    NOT_STATIC,
    LIBRARY_NOT_FOUND,
    LIBRARY_NOT_ALLOWED,
    GLIBC_TOO_NEW,
    VERSION_MISSING,
    INTERPRETER_MISSING,
    RUNTIME_DENIED,
    DLOPEN,
    FOREIGN_ARCH,
)

RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}


def rules_text() -> str:
    """The rules page as shipped in the package."""
    return resources.files("scratchprobe.check").joinpath("rules.md").read_text(encoding="utf-8")


def explain(topic: str) -> str | None:
    """The rules page's section for a rule code (`SP008`, any case) or name (`dlopen`);
    `all` gives the whole page. None when nothing matches."""
    text = rules_text()
    if topic.lower() == "all":
        return text
    wanted = topic.upper()
    rule = RULES_BY_CODE.get(wanted) or next((r for r in RULES if r.name == topic.lower()), None)
    if rule is None:
        return None
    sections = re.split(r"^(?=## )", text, flags=re.MULTILINE)
    for section in sections:
        if section.startswith(f"## {rule.code} "):
            return section.rstrip() + "\n"
    return None
