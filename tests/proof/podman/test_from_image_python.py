"""Slimming a Python image: Debian bookworm's python3 (mmdebstrap, once per test session)
with `CMD ["python3", "/app/job.py"]`. Static analysis gives the slim image python3, its
libraries and the script (an argument of the entry point that is a file of the image), but
not the standard library: Debian's python3.11 has libpython built in, so nothing in the ELF
closure names /usr/lib/python3.11. `verify --from-image --trace --learn FILE --compare` learns
it; `image --from-image --include-from FILE` then gives an image that runs the job like the
original (loaded by podman, exported, run under bubblewrap). Skips with the reason when
mmdebstrap, podman, bwrap or the mirror is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.from_image_helpers import exported_root, run_tool
from tests.helpers_sandbox import needs_bwrap, needs_podman
from tests.sandbox_probe import run_in_root

pytestmark = [needs_podman, needs_bwrap, pytest.mark.podman, pytest.mark.sandbox, pytest.mark.slow]

JOB = """\
import datetime
import hashlib
import json

record = {"day": datetime.date(2024, 2, 29).isoformat(), "sum": hashlib.sha256(b"job").hexdigest()}
print(json.dumps(record, sort_keys=True))
"""
EXPECTED = json.dumps(
    {"day": "2024-02-29", "sum": __import__("hashlib").sha256(b"job").hexdigest()},
    sort_keys=True,
)


@pytest.fixture(scope="session")
def python_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(the image saved as an OCI archive, its podman name)."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    work = tmp_path_factory.mktemp("python-image")
    base_tar = work / "base.tar"
    build = subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=essential",
            "--include=python3",
            "bookworm",
            str(base_tar),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if build.returncode != 0:
        last = (build.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"mmdebstrap could not build a bookworm root (mirror unreachable?): {last}")
    tag = uuid.uuid4().hex[:12]
    base, name = f"localhost/sp-py-base:{tag}", f"localhost/sp-py-job:{tag}"
    try:
        run_tool("podman", "import", "-q", str(base_tar), base)
        base_tar.unlink()
        context = work / "context"
        context.mkdir()
        (context / "job.py").write_text(JOB)
        (context / "Containerfile").write_text(
            f'FROM {base}\nCOPY job.py /app/job.py\nCMD ["python3", "/app/job.py"]\n'
        )
        run_tool(
            "podman",
            "build",
            "-q",
            "--isolation=chroot",
            "-t",
            name,
            "-f",
            str(context / "Containerfile"),
            str(context),
        )
        archive = work / "job-oci.tar"
        run_tool("podman", "save", "-q", "--format", "oci-archive", "-o", str(archive), name)
        yield archive, name
    finally:
        for image in (name, base):
            subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)


def test_a_python_job_slims_to_a_working_image_after_a_trace(
    python_image: tuple[Path, str], tmp_path: Path
) -> None:
    archive, name = python_image
    planned = run_cli("inspect", "--from-image", str(archive), "--format", "json")
    assert planned.returncode == 0, planned.stderr
    files = {f["path"]: f for f in json.loads(planned.stdout)["files"]}
    assert files["/app/job.py"]["kind"] == "included"
    assert not [path for path in files if path.startswith("/usr/lib/python3.11/")]

    # Static analysis alone: python3 starts without its standard library.
    alone = run_cli("verify", "--from-image", str(archive), "--compare")
    assert alone.returncode != 0
    assert "No module named 'encodings'" in alone.stdout

    learned = tmp_path / "learned.toml"
    traced = run_cli(
        "verify",
        "--from-image",
        str(archive),
        "--compare",
        "--trace",
        "--learn",
        str(learned),
        "--rounds",
        "8",
    )
    assert traced.returncode == 0, traced.stdout[-3000:] + traced.stderr
    assert "comparison: exit status matches, stdout matches, stderr matches" in traced.stdout
    assert 'path = "/usr/lib/python3.11"' in learned.read_text()

    out = tmp_path / "slim.tar"
    tag = f"sp-py-slim:{uuid.uuid4().hex[:12]}"
    made = run_cli(
        "image",
        "--from-image",
        str(archive),
        "--include-from",
        str(learned),
        "--format",
        "docker-archive",
        "--output",
        str(out),
        "--tag",
        tag,
    )
    assert made.returncode == 0, made.stderr
    # libcrypto.so.3 (hashlib) is learned as /lib/x86_64-linux-gnu/libcrypto.so.3; libssl3
    # lists it under /usr/lib (merged /usr): the report still finds its package.
    kept = next(line for line in made.stdout.splitlines() if "packages kept" in line)
    assert "libpython3.11-stdlib" in kept
    assert "/lib/x86_64-linux-gnu/libcrypto.so.3" in learned.read_text()
    assert "libssl3" in kept
    loaded = run_tool("podman", "load", "-q", "-i", str(out)).strip().rsplit(" ", 1)[-1]
    try:
        config = json.loads(run_tool("podman", "image", "inspect", loaded))[0]["Config"]
        slim = exported_root(loaded, tmp_path / "slim-root")
    finally:
        subprocess.run(["podman", "rmi", "-f", loaded], capture_output=True, check=False)
    original = exported_root(name, tmp_path / "original-root")
    assert config["Cmd"] == ["python3", "/app/job.py"]
    env = dict(str(item).split("=", 1) for item in config.get("Env") or [])
    runs = [
        run_in_root(root, ["/usr/bin/python3", "/app/job.py"], env=env, timeout=60)
        for root in (slim, original)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout == EXPECTED + "\n"
    assert not (slim / "usr/bin/perl").exists()
