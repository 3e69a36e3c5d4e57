#!/usr/bin/env bash
# Rebuild the scratchprobe test-binary corpus from testbins/src into testbins/built.
#
#   bash testbins/build.sh
#
# Idempotent: every target is deleted and rebuilt in place.  A toolchain that is
# absent is skipped with a message (its previously committed outputs are left
# untouched), so contributors without e.g. zig or Go can still rebuild the rest.
# At the end testbins/record.py regenerates built/MANIFEST.json from readelf.
#
# Overridable: CC, CXX, MUSL_CC, GO, RUSTC, PYTHON, READELF.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$ROOT/src"
OUT="$ROOT/built"

export SOURCE_DATE_EPOCH=0
export LC_ALL=C
export TZ=UTC
umask 022

CC="${CC:-gcc}"
CXX="${CXX:-g++}"
MUSL_CC="${MUSL_CC:-musl-gcc}"
RUSTC="${RUSTC:-rustc}"
PYTHON="${PYTHON:-python3}"
READELF="${READELF:-readelf}"
# Prefer Debian's Go 1.19 (what the committed build used) over whatever is on PATH.
if [[ -z "${GO:-}" ]]; then
    for g in /usr/lib/go-1.19/bin/go /usr/bin/go; do
        if [[ -x "$g" ]]; then GO="$g"; break; fi
    done
    GO="${GO:-go}"
fi

# Reproducibility: source paths are mapped to "." and everything is stripped.
CFLAGS_REPRO=(-O2 "-ffile-prefix-map=$ROOT=." -s)

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

SKIPPED=()
log()  { printf '==> %s\n' "$*"; }
skip() { printf '!!! SKIP: %s\n' "$*" >&2; SKIPPED+=("$*"); }
have() { command -v "$1" >/dev/null 2>&1; }
# Remove a target (file or directory) before rebuilding it.
fresh() { rm -rf "$@"; }

mkdir -p "$OUT"
cd "$ROOT"   # relative paths below are relative to testbins/

# ---------------------------------------------------------------- gcc / glibc
if have "$CC"; then
    log "gcc: $($CC --version | head -n1)"

    fresh "$OUT/c-glibc-dynamic"
    $CC "${CFLAGS_REPRO[@]}" -DNAME='"c-glibc-dynamic"' -o "$OUT/c-glibc-dynamic" "$SRC/hello.c"

    fresh "$OUT/c-glibc-static"
    $CC "${CFLAGS_REPRO[@]}" -static -DNAME='"c-glibc-static"' -o "$OUT/c-glibc-static" "$SRC/hello.c"

    fresh "$OUT/c-glibc-static-pie"
    $CC "${CFLAGS_REPRO[@]}" -static-pie -fPIE -DNAME='"c-glibc-static-pie"' -o "$OUT/c-glibc-static-pie" "$SRC/hello.c"

    # DF_1_NODEFLIB: ld.so must not search the default dirs / ld.so.cache, so
    # libc.so.6 is NOT found at run time. That is the point of this file.
    fresh "$OUT/c-nodeflib"
    $CC "${CFLAGS_REPRO[@]}" -Wl,-z,nodefaultlib -DNAME='"c-nodeflib"' -o "$OUT/c-nodeflib" "$SRC/hello.c"

    # $ORIGIN RUNPATH: bin/app -> ../lib/libgreet.so.1
    fresh "$OUT/c-runpath-origin"
    mkdir -p "$OUT/c-runpath-origin/bin" "$OUT/c-runpath-origin/lib"
    $CC "${CFLAGS_REPRO[@]}" -shared -fPIC -Wl,-soname,libgreet.so.1 \
        -o "$OUT/c-runpath-origin/lib/libgreet.so.1" "$SRC/greet.c"
    $CC "${CFLAGS_REPRO[@]}" -o "$OUT/c-runpath-origin/bin/app" "$SRC/greet_app.c" \
        -L "$OUT/c-runpath-origin/lib" -l:libgreet.so.1 \
        -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN/../lib'

    # app (DT_RPATH or DT_RUNPATH = $ORIGIN/libs) -> libA.so.1 (no rpath) -> libB.so.1
    #   rpath-inherit:          DT_RPATH of the executable is used for libA's
    #                           NEEDED too -> libB found, runs.
    #   runpath-not-inherited:  DT_RUNPATH only applies to app's own NEEDED ->
    #                           libB.so.1 => not found.
    for variant in rpath-inherit:--disable-new-dtags runpath-not-inherited:--enable-new-dtags; do
        dir="${variant%%:*}"; dtags="${variant#*:}"
        fresh "$OUT/$dir"
        mkdir -p "$OUT/$dir/libs"
        $CC "${CFLAGS_REPRO[@]}" -shared -fPIC -Wl,-soname,libB.so.1 \
            -o "$OUT/$dir/libs/libB.so.1" "$SRC/libB.c"
        $CC "${CFLAGS_REPRO[@]}" -shared -fPIC -Wl,-soname,libA.so.1 \
            -o "$OUT/$dir/libs/libA.so.1" "$SRC/libA.c" \
            -L "$OUT/$dir/libs" -l:libB.so.1
        $CC "${CFLAGS_REPRO[@]}" -DNAME="\"$dir\"" -o "$OUT/$dir/app" "$SRC/chain_app.c" \
            -L "$OUT/$dir/libs" -l:libA.so.1 -Wl,-rpath-link,"$OUT/$dir/libs" \
            -Wl,"$dtags" -Wl,-rpath,'$ORIGIN/libs'
    done

    # A plain shared library (ET_DYN, SONAME, no PT_INTERP, no DF_1_PIE).
    fresh "$OUT/c-lib-only"
    mkdir -p "$OUT/c-lib-only"
    $CC "${CFLAGS_REPRO[@]}" -shared -fPIC -Wl,-soname,libplain.so.1 \
        -o "$OUT/c-lib-only/libplain.so.1" "$SRC/plain.c"
else
    skip "gcc ($CC) not found: c-glibc-*, c-nodeflib, c-runpath-origin, rpath-inherit, runpath-not-inherited, c-lib-only"
fi

# ---------------------------------------------------------------- g++
if have "$CXX"; then
    log "g++: $($CXX --version | head -n1)"
    fresh "$OUT/cpp-dynamic"
    $CXX "${CFLAGS_REPRO[@]}" -o "$OUT/cpp-dynamic" "$SRC/hello.cpp"
    # The thrown exception needs the unwinder, so libgcc_s.so.1 should be
    # NEEDED.  If this g++ dropped it (--as-needed / static libgcc), force it.
    if have "$READELF" && [[ "$("$READELF" -dW "$OUT/cpp-dynamic")" != *"[libgcc_s.so.1]"* ]]; then
        log "cpp-dynamic: libgcc_s.so.1 not NEEDED, relinking with --no-as-needed -lgcc_s"
        $CXX "${CFLAGS_REPRO[@]}" -o "$OUT/cpp-dynamic" "$SRC/hello.cpp" \
            -Wl,--push-state,--no-as-needed -lgcc_s -Wl,--pop-state
    fi
else
    skip "g++ ($CXX) not found: cpp-dynamic"
fi

# ---------------------------------------------------------------- musl
if have "$MUSL_CC"; then
    log "musl-gcc: $($MUSL_CC --version | head -n1)"
    fresh "$OUT/c-musl-dynamic"
    $MUSL_CC "${CFLAGS_REPRO[@]}" -DNAME='"c-musl-dynamic"' -o "$OUT/c-musl-dynamic" "$SRC/hello.c"
    fresh "$OUT/c-musl-static"
    $MUSL_CC "${CFLAGS_REPRO[@]}" -static -DNAME='"c-musl-static"' -o "$OUT/c-musl-static" "$SRC/hello.c"
    # The verify sandbox's probe: reports what a hostile program may do there
    # (tests/proof/sandbox/test_sandbox_hardening.py). Static, so it runs in an otherwise empty image.
    fresh "$OUT/c-musl-sandbox-probe"
    $MUSL_CC "${CFLAGS_REPRO[@]}" -static -o "$OUT/c-musl-sandbox-probe" "$SRC/sandbox_probe.c"
else
    skip "musl-gcc ($MUSL_CC) not found: c-musl-dynamic, c-musl-static, c-musl-sandbox-probe"
fi

# ---------------------------------------------------------------- Go
if have "$GO"; then
    log "go: $("$GO" version)"
    export GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" GOTOOLCHAIN=local \
           GO111MODULE=on GOFLAGS= GOENV=off GOPROXY=off GOAMD64=v1
    GO_BUILD=("$GO" build -trimpath -buildvcs=false -ldflags='-s -w -buildid=')

    fresh "$OUT/go-static"
    (cd "$SRC/go-static" && CGO_ENABLED=0 "${GO_BUILD[@]}" -o "$OUT/go-static" .)

    if have "$CC"; then
        fresh "$OUT/go-cgo"
        (cd "$SRC/go-cgo" && CGO_ENABLED=1 CC="$CC" CGO_CFLAGS="-O2 -ffile-prefix-map=$ROOT=." \
            "${GO_BUILD[@]}" -o "$OUT/go-cgo" .)
    else
        skip "go-cgo needs a C compiler ($CC)"
    fi
else
    skip "Go ($GO) not found: go-static, go-cgo"
fi

# ---------------------------------------------------------------- Rust
if have "$RUSTC"; then
    log "rustc: $("$RUSTC" --version)"
    fresh "$OUT/rust-hello"
    "$RUSTC" -O -C strip=symbols -C codegen-units=1 -C debuginfo=0 \
        --remap-path-prefix="$ROOT=." --edition 2021 \
        -o "$OUT/rust-hello" "$SRC/hello.rs"
    rm -f "$OUT"/rust-hello.*.rcgu.o "$OUT"/*.rmeta 2>/dev/null || true
else
    skip "rustc ($RUSTC) not found: rust-hello"
fi

# ---------------------------------------------------------------- zig (foreign arches)
if have "$PYTHON" && "$PYTHON" -m ziglang version >/dev/null 2>&1; then
    log "zig: $("$PYTHON" -m ziglang version)"
    mkdir -p "$OUT/foreign"
    # name : zig target (glibc 2.36 = Debian 12's cross sysroots)
    for t in \
        aarch64:aarch64-linux-gnu.2.36 \
        armhf:arm-linux-gnueabihf.2.36 \
        i386:x86-linux-gnu.2.36 \
        riscv64:riscv64-linux-gnu.2.36 \
        ppc64le:powerpc64le-linux-gnu.2.36 \
        s390x:s390x-linux-gnu.2.36 \
        mips:mips-linux-gnueabihf.2.36
    do
        name="hello-${t%%:*}"; target="${t#*:}"
        fresh "$OUT/foreign/$name"
        # Run from $SRC with a relative source path so no absolute path leaks in.
        if ! (cd "$SRC" && "$PYTHON" -m ziglang cc -target "$target" -O2 -s \
                -ffile-prefix-map="$ROOT=." -DNAME="\"$name\"" \
                -o "$OUT/foreign/$name" hello.c); then
            skip "zig could not build foreign/$name for target $target"
        fi
    done
    # A native binary that needs GLIBC_2.38 (strlcpy): newer than Debian 12's glibc 2.36.
    fresh "$OUT/c-glibc-2.38"
    if ! (cd "$SRC" && "$PYTHON" -m ziglang cc -target x86_64-linux-gnu.2.38 -O2 -s \
            -ffile-prefix-map="$ROOT=." -o "$OUT/c-glibc-2.38" strlcpy.c); then
        skip "zig could not build c-glibc-2.38"
    fi
else
    skip "zig (python3 -m ziglang) not found: foreign/*, c-glibc-2.38"
fi

# ---------------------------------------------------------------- runtime-needs cases
# Programs that open runtime files (CA bundle, zoneinfo, passwd, ...), in testbins/built/runtime.
bash "$ROOT/build-runtime-c.sh"
bash "$ROOT/build-runtime-go-rust.sh"

# ---------------------------------------------------------------- broken files
if have "$PYTHON"; then
    if [[ -f "$OUT/c-glibc-dynamic" ]]; then
        log "broken/: make_broken.py"
        fresh "$OUT/broken"
        mkdir -p "$OUT/broken"
        "$PYTHON" "$ROOT/make_broken.py" "$OUT/c-glibc-dynamic" "$OUT/broken"
        # Symlink loop and dangling symlink (relative targets).
        ln -sfn symlink-loop-b "$OUT/broken/symlink-loop-a"
        ln -sfn symlink-loop-a "$OUT/broken/symlink-loop-b"
        ln -sfn does-not-exist "$OUT/broken/dangling-link"
    else
        skip "broken/: needs built/c-glibc-dynamic"
    fi
else
    skip "python3 not found: broken/, MANIFEST.json"
fi

# ---------------------------------------------------------------- manifest
if have "$PYTHON" && have "$READELF"; then
    log "MANIFEST.json: record.py (readelf: $("$READELF" --version | head -n1))"
    READELF="$READELF" "$PYTHON" "$ROOT/record.py" "$OUT" > "$TMP/MANIFEST.json"
    mv "$TMP/MANIFEST.json" "$OUT/MANIFEST.json"
else
    skip "python3/readelf not found: MANIFEST.json not regenerated"
fi

if ((${#SKIPPED[@]})); then
    printf '\nSkipped (%d):\n' "${#SKIPPED[@]}" >&2
    printf '  - %s\n' "${SKIPPED[@]}" >&2
fi
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
