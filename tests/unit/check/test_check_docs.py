"""Keep the documentation and the CI integration files honest about `check`.

docs/rules.md must list exactly the rules of the registry, with the same names, titles and
default levels; .pre-commit-hooks.yaml and action.yml must run a real scratchprobe command
with options that exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from scratchprobe.check.rules import RULES, Rule
from scratchprobe.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[3]
RULES_MD = REPO / "docs" / "rules.md"
HOOKS = REPO / ".pre-commit-hooks.yaml"
ACTION = REPO / "action.yml"


def documented_rules() -> list[tuple[str, str, str, str]]:
    """(code, name, title, default level) of every `## SPnnn name` section of docs/rules.md."""
    text = RULES_MD.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    out = []
    for section in sections:
        heading = section.splitlines()[0]
        match = re.fullmatch(r"(SP\d{3}) ([a-z0-9-]+)", heading)
        if match is None:
            continue
        title = re.search(r"^\*\*(.+)\*\*$", section, re.MULTILINE)
        level = re.search(r"^- Default level: `(\w+)`$", section, re.MULTILINE)
        assert title is not None, f"{heading}: no **title** line"
        assert level is not None, f"{heading}: no 'Default level' line"
        out.append((match.group(1), match.group(2), title.group(1), level.group(1)))
    return out


def registry(rule: Rule) -> tuple[str, str, str, str]:
    return (rule.code, rule.name, rule.title, rule.default_severity.value)


def test_rules_md_matches_the_registry() -> None:
    assert documented_rules() == [registry(rule) for rule in RULES]


def test_rule_codes_are_stable_and_unique() -> None:
    codes = [rule.code for rule in RULES]
    assert codes == sorted(set(codes))
    assert all(re.fullmatch(r"SP\d{3}", code) for code in codes)
    names = [rule.name for rule in RULES]
    assert len(set(names)) == len(names)


def test_every_rule_explains_itself() -> None:
    for rule in RULES:
        assert rule.title
        assert not rule.title.endswith(".")
        assert rule.meaning.endswith(".")
        assert rule.fix.endswith(".")


def test_help_anchors_exist_in_the_page() -> None:
    # GitHub's anchor for "## SP001 not-static" is "sp001-not-static".
    text = RULES_MD.read_text()
    anchors = {
        heading.lower().replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", text, re.MULTILINE)
    }
    for rule in RULES:
        assert rule.anchor in anchors


def _check_command() -> click.Command:
    command = main.get_command(click.Context(main), "check")
    assert command is not None
    return command


def _assert_real_invocation(words: list[str]) -> None:
    """`scratchprobe check --opt ...` names a real command and real options."""
    assert words[0] == "scratchprobe"
    assert words[1] in COMMANDS
    assert words[1] == "check"
    options = {
        opt for param in _check_command().params for opt in param.opts + param.secondary_opts
    }
    for word in words[2:]:
        if word.startswith("--") and word != "--":
            assert word.split("=", 1)[0] in options, f"{word} is not an option of check"


def test_pre_commit_hook_runs_check() -> None:
    text = HOOKS.read_text()
    assert re.search(r"^- id: scratchprobe-check$", text, re.MULTILINE)
    entry = re.search(r"^  entry: (.+)$", text, re.MULTILINE)
    assert entry is not None
    _assert_real_invocation(shlex.split(entry.group(1)))
    assert re.search(r"^  language: python$", text, re.MULTILINE)
    assert re.search(r"^  pass_filenames: true$", text, re.MULTILINE)
    assert re.search(r"^  types: \[binary, executable\]$", text, re.MULTILINE)


def test_pre_commit_hook_selects_programs_not_text(tmp_path: Path) -> None:
    """pre-commit passes a file when it has every tag of `types` (identify's tags)."""
    yaml = pytest.importorskip("yaml")
    identify = pytest.importorskip("identify.identify")
    (hook,) = yaml.safe_load(HOOKS.read_text())
    wanted = set(hook["types"])
    program = tmp_path / "app"
    program.write_bytes((REPO / "testbins" / "built" / "c-glibc-dynamic").read_bytes())
    program.chmod(0o755)
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\nmake\n")
    script.chmod(0o755)
    notes = tmp_path / "NOTES.txt"
    notes.write_text("release notes\n")
    files = (program, script, notes)
    selected = {path.name for path in files if wanted <= identify.tags_from_path(str(path))}
    assert selected == {"app"}


def test_pre_commit_hook_is_valid_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load(HOOKS.read_text())
    assert isinstance(hooks, list)
    (hook,) = hooks
    assert hook["id"] == "scratchprobe-check"
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["pass_filenames"] is True


def test_action_runs_check_with_real_options() -> None:
    text = ACTION.read_text()
    assert re.search(r"^  using: composite$", text, re.MULTILINE)
    for name in ("binaries", "root", "args", "format"):
        assert re.search(rf"^  {name}:$", text, re.MULTILINE), f"input {name} missing"
    invocation = re.search(r"set -- (scratchprobe check .+?)\n\s+status=", text, re.DOTALL)
    assert invocation is not None
    words = invocation.group(1).replace("\\\n", " ").split()
    _assert_real_invocation(words)
    assert '"$ACTION_PATH"' in text, "the action must install scratchprobe from its own path"
    # Inputs reach the script through env only: ${{ inputs.x }} inside `run:` is an
    # injection hole.
    for block in re.findall(r"run: \|\n((?:        .*\n|\n)+)", text):
        assert "${{" not in block


def test_action_is_valid_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"binaries", "root", "args", "format"}
    assert action["inputs"]["binaries"]["required"] is True
    formats = {
        choice
        for param in _check_command().params
        if param.name == "output_format"
        for choice in getattr(param.type, "choices", ())
    }
    assert action["inputs"]["format"]["default"] in formats
    for step in action["runs"]["steps"]:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"]


def test_check_help_mentions_every_format() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["check", "--help"])
    assert result.exit_code == 0
    for fmt in ("text", "json", "sarif", "junit", "github"):
        assert fmt in result.stdout
