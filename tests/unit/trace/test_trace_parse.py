"""The strace output parser: real traces of real programs (hostile file names, listings,
failures, threads) and the line shapes strace(1) documents (unfinished/resumed, signals)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchprobe.trace.strace import (
    BoundedSink,
    command_prefix,
    decode_string,
    parse,
    path_events,
    split_args,
)

needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)"
)


def _trace(tmp_path: Path, argv: list[str]) -> Path:
    strace = shutil.which("strace")
    assert strace is not None
    output = tmp_path / "trace.txt"
    subprocess.run(
        [*command_prefix(strace, str(output)), *argv],
        capture_output=True,
        check=False,
        env={},
    )
    return output


@needs_strace
def test_hostile_names_listing_and_misses_from_a_real_run(tmp_path: Path) -> None:
    hostile = tmp_path / 'q"uote, comma = equals\nnewline \\ back'
    hostile.mkdir()
    (hostile / "inner").write_text("x")
    ls = os.path.realpath("/bin/ls")
    trace = _trace(tmp_path, [ls, str(hostile), str(tmp_path / "absent")])
    events, started = path_events(parse(str(trace)), ls)
    assert started
    listed = [e for e in events if e.path == str(hostile) and e.syscall.startswith("getdents")]
    assert listed, "the listing of the hostile directory is attributed to its path"
    assert all(e.directory and e.opened for e in listed)
    absent = [e for e in events if e.path == str(tmp_path / "absent")]
    assert absent
    assert all(e.errno == "ENOENT" for e in absent)
    assert events[0].executed
    assert events[0].path == ls


@needs_strace
def test_relative_paths_follow_chdir_and_dirfds(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/f").write_text("x")
    sh = os.path.realpath("/bin/sh")
    cat = shutil.which("cat")
    assert cat is not None
    trace = _trace(tmp_path, [sh, "-c", f"cd {tmp_path}/d && {cat} f missing-one; true"])
    events, started = path_events(parse(str(trace)), sh)
    assert started
    paths = {(e.path, e.errno) for e in events if e.syscall.startswith("open")}
    assert (f"{tmp_path}/d/f", None) in paths
    assert (f"{tmp_path}/d/missing-one", "ENOENT") in paths


@needs_strace
def test_the_runner_before_the_program_does_not_count(tmp_path: Path) -> None:
    """Everything before the program's own execve (here: env's own start-up and its PATH
    search) belongs to the runner."""
    env = os.path.realpath("/usr/bin/env")
    true = os.path.realpath("/bin/true")
    trace = _trace(tmp_path, [env, true])
    log = parse(str(trace))
    events, started = path_events(log, true)
    assert started
    assert events[0].path == true
    assert events[0].executed
    assert not any(e.path == env for e in events)
    assert any(c.name == "execve" and decode_string(c.args[0]) == env.encode() for c in log.calls)


@needs_strace
def test_a_trace_over_its_limit_is_truncated(tmp_path: Path) -> None:
    trace = _trace(tmp_path, [os.path.realpath("/bin/ls"), "/usr/bin"])
    full = parse(str(trace))
    assert not full.truncated
    cut = parse(str(trace), limit=200)
    assert cut.truncated
    assert len(cut.calls) < len(full.calls)


def _hex(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def test_unfinished_and_resumed_lines_are_joined(tmp_path: Path) -> None:
    lines = [
        f'10  execve("{_hex(b"/p")}", [], 0x0 /* 0 vars */) = 0',
        f'10  openat(AT_FDCWD, "{_hex(b"/etc/a b")}", O_RDONLY|O_CLOEXEC <unfinished ...>',
        "11  --- SIGCHLD {si_signo=SIGCHLD} ---",
        "11  clone(child_stack=NULL, flags=SIGCHLD) = 12",
        "10  <... openat resumed>) = -1 ENOENT (No such file or directory)",
        "12  +++ exited with 0 +++",
        '10  newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=1, ...}, AT_EMPTY_PATH) = 0',
        "10  exit_group(0) = ?",
    ]
    path = tmp_path / "t"
    path.write_text("\n".join(lines) + "\n")
    log = parse(str(path))
    assert [c.name for c in log.calls] == ["execve", "clone", "openat", "newfstatat", "exit_group"]
    events, started = path_events(log, "/p")
    assert started
    assert [(e.path, e.errno) for e in events] == [("/p", None), ("/etc/a b", "ENOENT")]


def test_argument_splitting_and_strings() -> None:
    assert split_args('AT_FDCWD, "\\x2f", {a=1, b=[2, 3]}, O_RDONLY') == (
        "AT_FDCWD",
        '"\\x2f"',
        "{a=1, b=[2, 3]}",
        "O_RDONLY",
    )
    assert decode_string('"\\x2f\\x0a"') == b"/\n"
    assert decode_string('"\\x2f"...') == b"/"
    assert decode_string("AT_FDCWD") is None


@needs_strace
def test_the_sink_bounds_the_trace_and_never_blocks_the_program(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    assert strace is not None
    limit = 4096
    with BoundedSink(str(tmp_path), limit) as sink:
        proc = subprocess.run(
            [*command_prefix(strace, sink.fifo), os.path.realpath("/bin/ls"), "-R", "/usr/share"],
            capture_output=True,
            check=False,
            timeout=120,
        )
    assert proc.returncode == 0
    assert sink.truncated
    assert os.path.getsize(sink.path) == limit
    # What was kept parses (its last, cut line is simply not a complete call).
    assert parse(sink.path).calls
