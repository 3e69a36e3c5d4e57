#!/usr/bin/env bash
# Everything the full test suite needs, on Debian 12 (what CI runs, through .ci/run):
# the system packages with apt (as root), then scratchprobe itself with its test extra.
#
#   sudo scripts/setup-dev.sh          # apt packages + pip install -e '.[test]'
#   scripts/setup-dev.sh --print-apt   # only print the apt-get command
#
# Without root or apt-get the system packages are skipped with a message; the tests that
# need one of them then skip, each naming what to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Toolchains and sysroots the tests use (testbins are committed, but the tests build small
# roots from the host's libraries and run binaries under bubblewrap and qemu), the tools the
# tests compare against (ldd is in libc-bin; lddtree in pax-utils), setpriv (util-linux) to
# drop root's read override, the programs whose closures the verify tests prove (ffmpeg: a
# 200+ file closure, for the Dockerfile layer limit; ripgrep and fd-find: Rust from a
# distribution build), and the OCI tools the image tests read the written images with
# (umoci, skopeo, a local docker-registry on 127.0.0.1; mmdebstrap builds the real Debian
# images the --from-image tests slim).
APT_PACKAGES=(
    python3-venv python3-pip
    gcc libc6-dev binutils musl musl-tools libc-bin util-linux golang-go
    bubblewrap podman fuse-overlayfs uidmap qemu-user-static busybox-static
    libc6-arm64-cross libc6-armhf-cross libc6-i386-cross libc6-riscv64-cross
    libc6-ppc64el-cross libc6-s390x-cross libc6-mips-cross
    pax-utils libtree strace
    curl git openssh-client sqlite3 gdb ca-certificates openssl libssl-dev tzdata ffmpeg
    ripgrep fd-find rustc librust-openssl-probe-dev lld
    umoci skopeo docker-registry mmdebstrap python3 cmake
)

if [ "${1:-}" = "--print-apt" ]; then
    echo "apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
    exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
    echo "setup-dev: not root or no apt-get: system packages skipped; as root run:" >&2
    echo "  apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}" >&2
fi

# Debian's own python3 refuses pip installs outside a virtual environment (PEP 668's
# EXTERNALLY-MANAGED marker): install into ./.venv then, and say how to use it.
if python3 - <<'PY'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 1)
PY
then
    echo "setup-dev: $(command -v python3) is managed by apt: installing into .venv" >&2
    python3 -m venv .venv
    # shellcheck disable=SC1091
    . .venv/bin/activate
    echo "setup-dev: run the tests from it: . .venv/bin/activate" >&2
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
