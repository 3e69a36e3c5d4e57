"""Real unstripped Go programs of over 40 MB and over 100 MB, built at bench time.

The speed issue's table has a >40 MB and a >100 MB unstripped Go program; a machine rarely
has them. This builds them with the machine's `go` (standard library only, no network)
into a cache directory, once per source and Go version, and never into the repository: a
program importing many standard packages (net/http, crypto/*, encoding/*, the templates,
go/parser, go/types, image/*, database/sql, archive/*, compress/*, debug/*) with a table
embedded by `//go:embed` (Go 1.16+; `any` needs 1.18; the bytes land in the read-only
data the runtime-needs scan reads), `go build` without -s -w, so .symtab, DWARF,
.gopclntab and the build info stay in. CGO_ENABLED=0: the static kind a FROM scratch
image usually holds.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

PROGRAM = """\
package main

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/flate"
	"compress/gzip"
	"compress/lzw"
	"compress/zlib"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"debug/macho"
	"debug/pe"
	"debug/plan9obj"
	_ "embed"
	"encoding/asn1"
	"encoding/base32"
	"encoding/csv"
	"encoding/gob"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"go/ast"
	"go/doc"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	htmltemplate "html/template"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/rpc"
	"net/smtp"
	"os"
	"regexp"
	"text/template"
	"time"
	"unicode"
)

//go:embed table.bin
var table string

var uses = []any{
	tar.NewReader, zip.NewReader, bzip2.NewReader, flate.NewReader, gzip.NewReader,
	lzw.NewReader, zlib.NewReader, aes.NewCipher, ecdsa.GenerateKey, ed25519.GenerateKey,
	elliptic.P256, rsa.GenerateKey, sha512.New, tls.Dial, x509.ParseCertificate, sql.Open,
	dwarf.New, elf.Open, gosym.NewTable, macho.Open, pe.Open, plan9obj.Open, asn1.Marshal,
	base32.NewEncoding, csv.NewReader, gob.NewEncoder, json.Marshal, xml.Marshal, ast.Print,
	doc.New, format.Source, importer.Default, parser.ParseFile, token.NewFileSet,
	types.NewPackage, htmltemplate.New, image.NewRGBA, gif.Decode, jpeg.Decode, png.Decode,
	http.ListenAndServe, httptest.NewServer, mail.ParseAddress, rpc.NewServer, smtp.Dial,
	regexp.MustCompile, template.New, time.LoadLocation, unicode.IsUpper,
}

func main() {
	fmt.Println(len(uses), len(table), os.Args)
}
"""

# Embedded table sizes: the program is ~11 MB without it.
TABLE_MB = {40: 36, 100: 96}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scratchprobe-bench"


def _go_version(go: str) -> str | None:
    try:
        done = subprocess.run(
            [go, "version"], check=False, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def build(floor_mb: int, timeout: float = 600.0) -> tuple[str | None, str]:
    """The path of an unstripped Go program over `floor_mb` MB (built now, or cached), and
    a note saying where it came from or why there is none."""
    go = shutil.which("go")
    if go is None:
        return None, f"no `go` on PATH: no built Go program over {floor_mb} MB"
    version = _go_version(go)
    if version is None:
        return None, f"`{go} version` failed: no built Go program over {floor_mb} MB"
    table_mb = TABLE_MB[floor_mb]
    tag = hashlib.sha256(f"{PROGRAM}\0{table_mb}\0{version}".encode()).hexdigest()[:16]
    work = cache_root() / f"go-{floor_mb}mb-{tag}"
    binary = work / "big"
    if binary.is_file() and binary.stat().st_size > floor_mb * 1_000_000:
        return str(binary), f"Go program over {floor_mb} MB: {binary} (cached build, {version})"
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.go").write_text(PROGRAM)
    (work / "go.mod").write_text("module example.com/big\n\ngo 1.18\n")
    # Deterministic bytes (not compressible, like real tables): the same program each build.
    # Written a MiB at a time: generated whole, the table (100+ MB) would be this process's
    # peak RSS, and every process the bench starts afterwards inherits its parent's peak
    # (subprocess uses vfork, and exec keeps the old mm's high-water mark in ru_maxrss), so
    # every RSS of that run would read above 200 MB.
    rng = random.Random(floor_mb)
    with open(work / "table.bin", "wb") as table:
        for _ in range(table_mb):
            table.write(rng.randbytes(1 << 20))
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOCACHE": str(cache_root() / "gocache"),
    }
    try:
        done = subprocess.run(
            [go, "build", "-trimpath", "-o", str(binary), "."],
            check=False,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"go build of the {floor_mb} MB program failed: {exc}"
    finally:
        (work / "table.bin").unlink(missing_ok=True)
    if done.returncode != 0 or not binary.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"go build of the {floor_mb} MB program failed: {last}"
    size = binary.stat().st_size
    if size <= floor_mb * 1_000_000:
        return None, f"the built Go program is {size / 1e6:.0f} MB, not over {floor_mb} MB"
    return str(binary), f"Go program over {floor_mb} MB: {binary} (built now, {version})"
