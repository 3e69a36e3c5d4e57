"""verify --trace --learn on real programs that static analysis misses today.

Each proof runs the whole loop: the plan → `verify --compare` fails or differs from the
builder run → `verify --trace --learn` (rounds) → `--include-from` the learned file in the
plan → `verify --compare` matches. The programs: Debian's python3 running a script that
imports json, sqlite3 and ssl; a C program (compiled here) that sets the locale named on its
command line; Debian's cmake, which finds its data tree from its own path; a #! shell
script that runs another program; a foreign binary under qemu-user.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TESTBINS, run_cli
from tests.helpers_sandbox import needs_bwrap

needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)"
)
pytestmark = [pytest.mark.sandbox, needs_bwrap, needs_strace]


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """The module's files live outside /tmp: the sandbox gives both runs a fresh, empty /tmp
    (the builder's is hidden, and the image's is a tmpfs), so a script or data file passed
    as an argument must sit elsewhere to be seen."""
    with tempfile.TemporaryDirectory(prefix="scratchprobe-trace-test-", dir="/var/tmp") as work:
        os.chmod(work, 0o755)
        yield Path(work)


MATCHES = "comparison: exit status matches, stdout matches, stderr matches"


def _learned(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = tomllib.loads(path.read_text())["include"]
    return entries


def _misses(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for r in doc["trace"]["rounds"] for m in r["misses"]]


def _loop(
    binary: str,
    args: tuple[str, ...],
    learn: Path,
    rounds: int = 10,
    planned_as: str = "",
    plan: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The whole proof loop; returns the traced run's JSON and the learned entries.
    `planned_as`: the ELF file inspect plans (a script's interpreter); `plan`: planning
    options of every run (`--without KIND` where static analysis already finds the file,
    so that the trace has something to learn)."""
    before = run_cli("verify", "--compare", *plan, binary, "--", *args)
    assert before.returncode == 1, before.stdout + before.stderr
    traced = run_cli(
        "verify",
        "--trace",
        "--compare",
        "--rounds",
        str(rounds),
        "--learn",
        str(learn),
        "--format",
        "json",
        *plan,
        binary,
        "--",
        *args,
    )
    assert traced.returncode == 0, traced.stdout[-3000:] + traced.stderr
    doc = traced.json()
    assert doc["passed"]
    assert doc["comparison"]["matches"]
    learned = _learned(learn)
    assert learned
    planned = run_cli(
        "inspect", "--format", "json", *plan, "--include-from", str(learn), planned_as or binary
    )
    assert planned.returncode == 0, planned.stderr
    included = {f["path"]: f for f in planned.json()["files"] if f["kind"] == "included"}
    assert {e.get("dest", e["path"]) for e in learned} <= set(included)
    assert all(f["included_from"] == str(learn) for f in included.values())
    after = run_cli("verify", "--compare", *plan, "--include-from", str(learn), binary, "--", *args)
    assert after.returncode == 0, after.stdout + after.stderr
    assert MATCHES in after.stdout
    return doc, learned


PYTHON = "/usr/bin/python3"
SCRIPT = """\
import json, sqlite3, ssl
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.execute("insert into t values (?)", (json.dumps({"answer": 42}),))
print(db.execute("select x from t").fetchone()[0], ssl.OPENSSL_VERSION.split()[0])
"""


def test_python_script_importing_json_sqlite3_and_ssl(tmp_path: Path) -> None:
    real = os.path.realpath(PYTHON)
    version = re.fullmatch(r"python(3\.\d+)", os.path.basename(real))
    if version is None or not os.path.isfile(f"/usr/lib/python{version.group(1)}/os.py"):
        pytest.skip("needs Debian's python3 with its standard library in /usr/lib/python3.X")
    stdlib = f"/usr/lib/python{version.group(1)}"
    app = tmp_path / "app"
    app.mkdir()
    script = app / "main.py"
    script.write_text(SCRIPT)
    doc, learned = _loop(PYTHON, (str(script),), tmp_path / "learn.toml")
    assert b'{"answer": 42} OpenSSL' in doc["image_run"]["stdout"].encode()
    entries = {e.get("dest", e["path"]): e for e in learned}
    # The standard library is a directory Python lists: learned whole.
    assert entries[stdlib].get("tree", True)
    assert entries[stdlib]["kind"] == "module"
    # The script itself, and the libraries of the extension modules it imports (dlopen).
    assert str(script) in entries
    for soname in ("libsqlite3.so.0", "libssl.so.3", "libcrypto.so.3"):
        found = [p for p, e in entries.items() if p.endswith(f"/{soname}")]
        assert found, soname
        assert entries[found[0]]["kind"] == "shared-library"
    misses = _misses(doc)
    sqlite = next(m for m in misses if m["path"].endswith("/libsqlite3.so.0"))
    assert "ENOENT" in sqlite["evidence"]
    assert "pid" in sqlite["evidence"]
    last = doc["trace"]["rounds"][-1]
    confirmed = {c["path"] for c in last["confirmed"]}
    assert PYTHON in confirmed
    assert any(p.endswith("/libsqlite3.so.0") for p in confirmed)
    assert "/lib64/ld-linux-x86-64.so.2" in confirmed
    # Nothing of the builder's library directory is learned whole.
    assert not any(e.get("tree", True) and p.endswith("-linux-gnu") for p, e in entries.items())


LOCALE_PROGRAM = r"""
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2 || !setlocale(LC_ALL, argv[1])) {
        fprintf(stderr, "cannot set locale %s\n", argc < 2 ? "(none)" : argv[1]);
        return 3;
    }
    wchar_t wide[16];
    size_t n = mbstowcs(wide, "\xc3\xa9t\xc3\xa9", 16);
    printf("%s %zu\n", nl_langinfo(CODESET), n);
    return 0;
}
"""


def compile_locale_program(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    if not os.path.isdir("/usr/lib/locale/C.utf8"):
        pytest.skip("glibc's C.UTF-8 locale is not installed (/usr/lib/locale/C.utf8)")
    source = tmp_path / "setlocale.c"
    source.write_text(LOCALE_PROGRAM)
    binary = tmp_path / "bin" / "setlocale"
    binary.parent.mkdir()
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def test_a_locale_named_on_the_command_line(tmp_path: Path) -> None:
    binary = compile_locale_program(tmp_path)
    # The static locale need plans C.UTF-8 for a setlocale caller: without it, as for a
    # locale static analysis cannot know, the trace learns the directory.
    doc, learned = _loop(
        str(binary), ("C.UTF-8",), tmp_path / "learn.toml", plan=("--without", "locale")
    )
    assert doc["image_run"]["stdout"] == "UTF-8 3\n"
    first = doc["trace"]["rounds"][0]
    assert not first["passed"]
    locale = next(m for m in first["misses"] if m["path"] == "/usr/lib/locale/C.utf8")
    assert locale["kind"] == "locale"
    assert locale["include"]["directory"]
    assert locale["include"]["tree"]
    assert "= -1 ENOENT" in locale["evidence"]
    assert "/usr/lib/locale/C.utf8" in {e["path"] for e in learned}


def test_cmake_finds_its_data_from_its_own_path(tmp_path: Path) -> None:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed (apt-get install cmake)")
    cmake = os.path.realpath(cmake)
    version = subprocess.run([cmake, "--version"], capture_output=True, text=True, check=True)
    major_minor = re.search(r"(\d+\.\d+)", version.stdout)
    assert major_minor is not None
    data = os.path.join(os.path.dirname(os.path.dirname(cmake)), f"share/cmake-{major_minor[1]}")
    if not os.path.isdir(data):
        pytest.skip(f"cmake's data directory {data} is not beside the program")
    script = tmp_path / "probe.cmake"
    script.write_text(
        'include(ProcessorCount)\nstring(TOUPPER "scratch" up)\nmessage(STATUS "${up}")\n'
    )
    # The static data-directory need finds share/cmake-X.Y beside bin/: without it, the
    # trace learns only the files cmake opened.
    doc, learned = _loop(
        cmake, ("-P", str(script)), tmp_path / "learn.toml", plan=("--without", "data-directory")
    )
    assert doc["image_run"]["stdout"] == "-- SCRATCH\n"
    paths = {e["path"] for e in learned}
    # The smallest covering set: the files cmake opened, not its whole data tree.
    assert f"{data}/Modules/CMake.cmake" in paths
    assert f"{data}/Modules/ProcessorCount.cmake" in paths
    assert data not in paths
    assert str(script) in paths


def test_a_shebang_script_is_followed_to_its_interpreter(tmp_path: Path) -> None:
    cat = shutil.which("cat")
    if cat is None or not os.path.exists("/bin/sh"):
        pytest.skip("needs /bin/sh and cat")
    data = tmp_path / "data"
    data.mkdir()
    (data / "message.txt").write_text("from the data file\n")
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/sh\nread -r first < /etc/hosts\nexec cat "$1"\n')
    script.chmod(0o755)
    args = (str(data / "message.txt"),)
    doc, learned = _loop(str(script), args, tmp_path / "learn.toml", planned_as="/bin/sh")
    assert doc["image_path"] == "/bin/sh"
    assert doc["image_run"]["stdout"] == "from the data file\n"
    misses = _misses(doc)
    program = next(m for m in misses if m["kind"] == "program")
    assert os.path.basename(program["path"]) == "cat"
    assert str(data / "message.txt") in {e["path"] for e in learned}
    provided = {p["path"] for r in doc["trace"]["rounds"] for p in r["runtime_provided"]}
    assert "/etc/hosts" in provided
    # /etc/hosts comes from the container runtime: never learned.
    assert "/etc/hosts" not in {e["path"] for e in learned}


def test_text_report_names_each_finding(tmp_path: Path) -> None:
    binary = compile_locale_program(tmp_path)
    result = run_cli("verify", "--trace", "--without", "locale", str(binary), "--", "C.UTF-8")
    assert result.returncode == 1
    out = result.stdout
    assert "round 1: image run exit 3, failed;" in out
    assert "+ /usr/lib/locale/C.utf8 (whole directory): locale data" in out
    assert "evidence: openat(/usr/lib/locale/C.utf8/" in out
    assert f"= {binary}: execve({binary}) = 0" in out
    assert "= /lib64/ld-linux-x86-64.so.2: " in out
    assert "untouched (" in out
    assert "rounds: 1; stopped: nothing new was learned" not in out


def test_foreign_binary_under_qemu_user(tmp_path: Path) -> None:
    sysroot = "/usr/aarch64-linux-gnu"
    if shutil.which("qemu-aarch64-static") is None or not os.path.isdir(sysroot):
        pytest.skip("needs qemu-user-static and libc6-arm64-cross")
    binary = str(TESTBINS / "foreign/hello-aarch64")
    result = run_cli("verify", "--trace", "--root", sysroot, "--format", "json", binary)
    assert result.returncode == 0, result.stderr
    only = result.json()["trace"]["rounds"][0]
    confirmed = {c["path"]: c["evidence"] for c in only["confirmed"]}
    # qemu opens the guest's loader and libc itself: the trace sees the guest's files.
    assert confirmed["/lib/ld-linux-aarch64.so.1"].startswith("openat(/lib/ld-linux-aarch64.so.1)")
    assert "/lib/libc.so.6" in confirmed
    assert any("qemu-aarch64-static" in note for note in only["notes"])


def test_missing_strace_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    result = run_cli("verify", "--trace", "/bin/true", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "scratchprobe: error: verify --trace needs strace: install strace "
        "(apt-get install strace)\n"
    )


def test_learn_without_trace_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("verify", "--learn", str(tmp_path / "x.toml"), "/bin/true")
    assert result.returncode == 2
    assert result.stderr == "scratchprobe: error: --learn and --rounds need --trace\n"
    assert not (tmp_path / "x.toml").exists()


SERVER = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Serves one request on 127.0.0.1:PORT: a file name, answered with that file of DIR. */
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("bind"); return 1; }
    int c = accept(s, NULL, NULL);
    char name[256] = {0};
    if (read(c, name, sizeof name - 1) <= 0) return 1;
    name[strcspn(name, "\r\n")] = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", argv[2], name);
    FILE *f = fopen(path, "r");
    if (!f) { dprintf(c, "ERROR no %s\n", name); return 0; }
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, f);
    if (write(c, buf, got) < 0) return 1;
    return 0;
}
"""

PROBE = """\
import socket, sys, time
for attempt in range(600):  # the server needs a moment to listen: retry, bounded
    try:
        conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("the server never listened")
conn.sendall(b"greeting.txt\\n")
reply = b""
while chunk := conn.recv(4096):
    reply += chunk
print(reply.decode().strip())
sys.exit(0 if reply.startswith(b"hello") else 1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_probe_exercises_a_server_while_it_is_traced(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / "server.c"
    source.write_text(SERVER)
    server = tmp_path / "bin/server"
    server.parent.mkdir()
    subprocess.run(["gcc", "-O2", "-o", str(server), str(source)], check=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "greeting.txt").write_text("hello from the data file\n")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    learn = tmp_path / "learn.toml"

    def run(*extra: str) -> Any:
        port = str(_free_port())
        command = f"{sys.executable} {probe} {port}"
        return run_cli(
            "verify",
            *extra,
            "--network",
            "host",
            "--probe",
            command,
            str(server),
            "--",
            port,
            str(data),
        )

    before = run()
    assert before.returncode == 1, before.stdout + before.stderr
    assert "ERROR no greeting.txt" in before.stdout
    traced = run("--trace", "--rounds", "3", "--learn", str(learn), "--format", "json")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    first = traced.json()["trace"]["rounds"][0]
    miss = next(m for m in first["misses"] if m["path"] == str(data / "greeting.txt"))
    assert miss["kind"] == "data-file"
    assert "openat(" in miss["evidence"]
    after = run("--include-from", str(learn))
    assert after.returncode == 0, after.stdout + after.stderr
    assert "hello from the data file" in after.stdout


def test_probe_and_compare_do_not_mix() -> None:
    result = run_cli("verify", "--network", "host", "--probe", "true", "--compare", "/bin/true")
    assert result.returncode == 2
    assert result.stderr.startswith("scratchprobe: error: --probe cannot be combined")
