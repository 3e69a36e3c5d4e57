"""Skip conditions and small helpers for tests that run binaries in a sandbox or build images.

Each condition is probed for real (a tool on PATH may still be unusable, e.g. bwrap without
user namespaces), once per test session.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest


@functools.cache
def bwrap_works() -> bool:
    """bwrap can build the sandbox verify uses: as the unprivileged user 65534 (when we are
    root), a new user namespace with nested ones disabled, and the other namespaces."""
    if shutil.which("bwrap") is None:
        return False
    user = 65534 if os.geteuid() == 0 else None
    command = ["bwrap", "--unshare-user", "--uid", "65534", "--gid", "65534"]
    command += ["--disable-userns", "--cap-drop", "ALL", "--unshare-pid", "--unshare-ipc"]
    command += ["--unshare-uts", "--unshare-cgroup", "--unshare-net", "--ro-bind", "/", "/"]
    command += ["--dev", "/dev", "--proc", "/proc", "--", "/bin/true"]
    probe = subprocess.run(
        command,
        capture_output=True,
        check=False,
        user=user,
        group=user,
        extra_groups=None if user is None else [],
    )
    return probe.returncode == 0


@functools.cache
def unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--", "/bin/true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@functools.cache
def podman_works() -> bool:
    if shutil.which("podman") is None:
        return False
    probe = subprocess.run(["podman", "info"], capture_output=True, check=False)
    return probe.returncode == 0


needs_bwrap = pytest.mark.skipif(
    not bwrap_works(), reason="bubblewrap (bwrap) is not installed or cannot create namespaces"
)
needs_unshare = pytest.mark.skipif(
    not unshare_works(), reason="unshare + chroot needs root and mount/PID namespaces"
)
needs_podman = pytest.mark.skipif(not podman_works(), reason="podman is not installed or unusable")


def tree_of(directory: Path) -> dict[str, str]:
    """Every entry below `directory` as {image path: 'dir' | 'file' | '->target'}."""
    out: dict[str, str] = {}
    for current, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(current) / name
            inner = "/" + str(path.relative_to(directory))
            if path.is_symlink():
                out[inner] = "->" + os.readlink(path)
            elif path.is_dir():
                out[inner] = "dir"
            else:
                out[inner] = "file"
    return out


def extract(archive: Path, into: Path) -> Path:
    """Unpack a tar the way a container runtime would (symlinks and modes as stored)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        # Extraction filters arrived in 3.11.4 (PEP 706); Debian 12's Python is 3.11.2.
        # Without them, extractall keeps what is stored, which is what "tar" asks for too
        # apart from refusing absolute and ../ names, checked here instead.
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(into, filter="tar")
        else:
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    raise ValueError(f"{archive}: unsafe member name {member.name!r}")
            tar.extractall(into)
    return into
