"""README examples are executed: every `$ scratchprobe ...` line of a console block runs,
exits 0 and prints no traceback (docs that lie are worse than none)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

_CONSOLE = re.compile(r"```console\n(.*?)```", re.S)


def commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    found = []
    for block in _CONSOLE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(line[2:])
    return found


def test_readme_has_examples() -> None:
    assert len(commands()) >= 8


def _params() -> list[object]:
    # `verify` runs the binary in a sandbox: a sandbox test, like
    # tests/proof/sandbox/test_verify.py.
    return [
        pytest.param(c, marks=pytest.mark.sandbox) if c.split()[1:2] == ["verify"] else c
        for c in commands()
    ]


@pytest.mark.slow  # one process per example, some over curl's 38 files
@pytest.mark.parametrize("command", _params())
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    words = shlex.split(command)
    env_prefix = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        env_prefix[key] = value
    assert words[0] == "scratchprobe", command
    # Relative paths are the repository's; outputs go to a scratch directory.
    args = [str(REPO / w) if w.startswith("testbins/") else w for w in words[1:]]
    if "--root" in args:
        root = args[args.index("--root") + 1]
        if not Path(root).is_dir():
            pytest.skip(f"{root} is not installed here")
    # An example on a program of the machine (cmake for verify --trace) needs it installed.
    for word in args:
        if word.startswith("/usr/bin/") and not Path(word).exists():
            pytest.skip(f"{word} is not installed here")
    env = {**os.environ, **env_prefix}
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, (command, result.stderr)
    assert result.stdout or list(tmp_path.iterdir()), "the example printed or wrote nothing"
