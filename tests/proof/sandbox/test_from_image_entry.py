"""--from-image and the files the entry point names: a script entry point's own file, an
argument that is a file of the image, and `verify --from-image --trace` learning what static
analysis cannot see. The images are crafted with tarfile from real ELF files (Debian's dash
and glibc from the test machine, the committed static test program)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, run_cli
from tests.from_image_helpers import Image, Member, binary_members, layer_tar, oci_archive
from tests.helpers_sandbox import needs_bwrap

DASH = Path("/bin/dash")
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
LOADER = Path("/lib64/ld-linux-x86-64.so.2")
needs_dash = pytest.mark.skipif(
    not (DASH.exists() and LIBC.exists() and LOADER.exists()),
    reason="needs Debian's /bin/dash and x86-64 glibc on the test machine",
)

SCRIPT = b'#!/bin/sh\necho "started as $0 with $*"\nexec /app/hello "$@"\n'


def _cli(tmp_path: Path, *args: str) -> CliResult:
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    result = run_cli(*args, env={**os.environ, "TMPDIR": str(work), "SOURCE_DATE_EPOCH": "0"})
    assert list(work.iterdir()) == []
    return result


def _shell_members() -> list[Member]:
    """Debian's dash as /bin/sh with the glibc it links, as real files of the layer."""
    return [
        Member("bin/sh", data=DASH.read_bytes(), mode=0o755),
        Member("lib/x86_64-linux-gnu/libc.so.6", data=LIBC.resolve().read_bytes(), mode=0o755),
        Member("lib64/ld-linux-x86-64.so.2", data=LOADER.resolve().read_bytes(), mode=0o755),
    ]


def _script_image(tmp_path: Path, config: dict[str, Any]) -> Path:
    layer = layer_tar(
        [
            *_shell_members(),
            *binary_members("app/hello"),
            Member("usr/local/bin/docker-entrypoint.sh", data=SCRIPT, mode=0o750),
            Member("srv/job.conf", data=b"mode = batch\n"),
            Member("srv/a[1].txt", data=b"a name that is also a glob\n"),
            Member("srv/data", type=b"5", mode=0o755),
        ]
    )
    return oci_archive(tmp_path / "img.tar", Image([layer], config=config))


def _plan(result: CliResult) -> dict[str, dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return {f["path"]: f for f in json.loads(result.stdout)["files"]}


@needs_dash
def test_a_script_entry_point_is_in_the_plan_with_its_mode(tmp_path: Path) -> None:
    config = {
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["--config=/srv/job.conf", "/srv/data", "missing.txt", "/srv/a[1].txt"],
        "Env": ["PATH=/usr/local/bin:/bin"],
        "WorkingDir": "/srv",
    }
    archive = _script_image(tmp_path, config)
    result = _cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json")
    files = _plan(result)
    script = files["/usr/local/bin/docker-entrypoint.sh"]
    assert script["kind"] == "included"
    assert script["reason"] == "the image's entry point script"
    # `--opt=/PATH` names a file; a directory and a name the image lacks are no files.
    assert files["/srv/job.conf"]["reason"] == (
        "an argument of the image's entry point: a regular file in the image"
    )
    assert "/srv/data" not in files
    assert "/srv/missing.txt" not in files
    # A name with glob characters is that one file (`/srv/a1.txt` would be the glob's).
    assert [path for path in files if path.startswith("/srv")] == ["/srv/a[1].txt", "/srv/job.conf"]
    assert "the interpreter and the script" in result.stderr
    # What the script runs (/app/hello) is only known to a trace.
    assert "/app/hello" not in files

    out = tmp_path / "rootfs"
    written = _cli(tmp_path, "rootfs", "--from-image", str(archive), "--output", str(out))
    assert written.returncode == 0, written.stderr
    copied = out / "usr/local/bin/docker-entrypoint.sh"
    assert copied.read_bytes() == SCRIPT
    assert stat.S_IMODE(copied.stat().st_mode) & 0o111
    assert (out / "srv/job.conf").read_bytes() == b"mode = batch\n"
    assert (out / "srv/a[1].txt").read_bytes() == b"a name that is also a glob\n"


@needs_dash
def test_a_relative_argument_is_taken_from_workdir(tmp_path: Path) -> None:
    config = {"Entrypoint": ["/bin/sh"], "Cmd": ["job.conf", "-x"], "WorkingDir": "/srv"}
    archive = _script_image(tmp_path, config)
    files = _plan(_cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json"))
    assert "/srv/job.conf" in files
    assert "/usr/local/bin/docker-entrypoint.sh" not in files


@needs_dash
@needs_bwrap
@pytest.mark.sandbox
def test_verify_runs_the_script_entry_point_in_the_slim_root(tmp_path: Path) -> None:
    # The script only uses the shell's builtins before it execs /app/hello, which static
    # analysis cannot see: the slim root runs the script (it is there) and then fails.
    config = {"Entrypoint": ["/usr/local/bin/docker-entrypoint.sh"], "Cmd": ["one"]}
    archive = _script_image(tmp_path, config)
    result = _cli(tmp_path, "verify", "--from-image", str(archive), "--compare")
    assert "started as /usr/local/bin/docker-entrypoint.sh with one" in result.stdout
    assert "/app/hello" in result.stdout + result.stderr
    assert result.returncode != 0

    # The trace learns the binary the script execs; with it the slim root behaves the same.
    learned = tmp_path / "learned.toml"
    traced = _cli(
        tmp_path,
        "verify",
        "--from-image",
        str(archive),
        "--compare",
        "--trace",
        "--learn",
        str(learned),
    )
    assert learned.exists(), traced.stdout + traced.stderr
    assert "/app/hello" in learned.read_text()
    again = _cli(
        tmp_path,
        "verify",
        "--from-image",
        str(archive),
        "--compare",
        "--include-from",
        str(learned),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "comparison: exit status matches, stdout matches, stderr matches" in again.stdout


READER = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    /* The path is put together at run time: no string of the binary names the file. */
    char path[64];
    snprintf(path, sizeof path, "/%s/%s/%s.%s", "srv", "reader", "greeting", "txt");
    FILE *f = fopen(path, "r");
    if (f == NULL) { perror(path); return 3; }
    char line[128];
    while (fgets(line, sizeof line, f) != NULL) fputs(line, stdout);
    return fclose(f);
}
"""


@needs_bwrap
@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_verify_from_image_trace_learns_a_data_file(tmp_path: Path) -> None:
    source = tmp_path / "reader.c"
    source.write_text(READER)
    binary = tmp_path / "reader"
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(binary), str(source)], check=True, timeout=300
    )
    layer = layer_tar(
        [
            *binary_members("app/reader", binary),
            Member("srv/reader/greeting.txt", data=b"hello from the image\n"),
            Member("srv/reader/unused.txt", data=b"never opened\n"),
        ]
    )
    archive = oci_archive(tmp_path / "img.tar", Image([layer], config={"Cmd": ["/app/reader"]}))
    planned = _plan(_cli(tmp_path, "inspect", "--from-image", str(archive), "--format", "json"))
    assert not [path for path in planned if path.startswith("/srv")]

    learned = tmp_path / "learned.toml"
    traced = _cli(
        tmp_path,
        "verify",
        "--from-image",
        str(archive),
        "--compare",
        "--trace",
        "--learn",
        str(learned),
    )
    assert traced.returncode != 0
    assert "greeting.txt: No such file or directory" in traced.stdout
    text = learned.read_text()
    assert 'path = "/srv/reader/greeting.txt"' in text
    assert "unused.txt" not in text

    again = _cli(
        tmp_path,
        "verify",
        "--from-image",
        str(archive),
        "--compare",
        "--include-from",
        str(learned),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "hello from the image" in again.stdout
    assert "comparison: exit status matches, stdout matches, stderr matches" in again.stdout
