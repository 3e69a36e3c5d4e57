#!/usr/bin/env bash
# Build the C "runtime needs" test binaries from testbins/src/runtime/c-*.c into
# testbins/built/runtime/.
#
#   bash testbins/build-runtime-c.sh
#
# Each program does one real job that needs a file outside the binary at run time
# (NSS data, gconv modules, zoneinfo, libgcc_s, /tmp, a CA bundle, a dlopen'd
# library).  What each one really needs was measured under bubblewrap+strace
# (tests/sandbox_probe.py) and is recorded in built/runtime/MANIFEST-c.json, which
# this script does NOT regenerate: it holds evidence, not build output.  After a
# rebuild, re-measure it with `python3 -m tests.sandbox_probe record` (as root, with
# bwrap and strace) and check with `pytest tests/proof/runtime/test_runtime_c_evidence.py`.
#
# Idempotent: every target is deleted and rebuilt.  A missing toolchain (gcc,
# static glibc, musl-gcc, OpenSSL headers) is skipped with a message and its
# committed outputs are left as they are.  Overridable: CC, MUSL_CC.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$ROOT/src/runtime"
OUT="$ROOT/built/runtime"

export SOURCE_DATE_EPOCH=0
export LC_ALL=C
export TZ=UTC
umask 022

CC="${CC:-gcc}"
MUSL_CC="${MUSL_CC:-musl-gcc}"

# Same reproducibility flags as build.sh: source paths mapped to "." and -s strips.
CFLAGS_REPRO=(-O2 "-ffile-prefix-map=$ROOT=." -s -Wall -Wextra)

SKIPPED=()
log()  { printf '==> %s\n' "$*"; }
skip() { printf '!!! SKIP: %s\n' "$*" >&2; SKIPPED+=("$*"); }
have() { command -v "$1" >/dev/null 2>&1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Can this compiler link a trivial program with these extra flags/libraries?
can_link() {
    local cc="$1"; shift
    printf 'int main(void){return 0;}\n' >"$TMP/t.c"
    "$cc" -o "$TMP/t" "$TMP/t.c" "$@" >/dev/null 2>&1
}

# build COMPILER OUTPUT SOURCE [flags...]
build() {
    local cc="$1" out="$2" src="$3"; shift 3
    rm -f "$OUT/$out"
    "$cc" "${CFLAGS_REPRO[@]}" -o "$OUT/$out" "$SRC/$src" "$@"
    log "built $out"
}

mkdir -p "$OUT"
cd "$ROOT"

# ---------------------------------------------------------------- gcc / glibc
if have "$CC"; then
    log "gcc: $($CC --version | head -n1)"
    build "$CC" c-getaddrinfo     c-getaddrinfo.c
    build "$CC" c-getpwnam        c-getpwnam.c
    build "$CC" c-iconv           c-iconv.c
    build "$CC" c-iconv-ebcdic    c-iconv.c -DTARGET_CHARSET='"IBM037"'
    build "$CC" c-localtime       c-localtime.c
    build "$CC" c-pthread-cancel  c-pthread-cancel.c -pthread
    build "$CC" c-mkstemp         c-mkstemp.c
    build "$CC" c-dlopen          c-dlopen.c

    if can_link "$CC" -static; then
        # Expected linker warnings here: "Using 'getaddrinfo' (and 'getpwnam') in
        # statically linked applications requires at runtime the shared libraries
        # from the glibc version used for linking".  iconv_open gets no such warning
        # although it dlopens gconv modules too.  These run-time needs are what the
        # binaries exist to exercise.
        build "$CC" c-getaddrinfo-static c-getaddrinfo.c -static
        build "$CC" c-getpwnam-static    c-getpwnam.c -static
        build "$CC" c-iconv-static       c-iconv.c -static
        build "$CC" c-localtime-static   c-localtime.c -static
    else
        skip "static glibc (libc6-dev's libc.a): c-*-static"
    fi

    if can_link "$CC" -lssl -lcrypto && [[ -r /usr/include/openssl/ssl.h ]]; then
        build "$CC" c-openssl-client c-openssl-client.c -lssl -lcrypto
    else
        skip "OpenSSL headers/libraries (libssl-dev): c-openssl-client"
    fi
else
    skip "gcc ($CC): all glibc runtime binaries"
fi

# ---------------------------------------------------------------- musl
if have "$MUSL_CC"; then
    log "musl: $MUSL_CC ($(dpkg-query -W -f='${Version}' musl-dev 2>/dev/null || echo unknown))"
    build "$MUSL_CC" c-getaddrinfo-musl       c-getaddrinfo.c
    build "$MUSL_CC" c-getpwnam-musl-static   c-getpwnam.c -static
    build "$MUSL_CC" c-localtime-musl         c-localtime.c
    build "$MUSL_CC" c-mkstemp-musl-static    c-mkstemp.c -static
else
    skip "musl-gcc ($MUSL_CC, package musl-tools): c-*-musl*"
fi

if ((${#SKIPPED[@]})); then
    printf '\nSkipped (committed outputs left in place):\n' >&2
    printf '  - %s\n' "${SKIPPED[@]}" >&2
fi
log "done: $OUT (MANIFEST-c.json is evidence from tests/sandbox_probe.py, not rebuilt here)"
