"""A throw-away CA and a local HTTPS server, for tests of TLS clients' CA-bundle needs.

Not a test module. Usage::

    with https_server() as (port, ca_pem):
        ...  # a client that trusts ca_pem can GET https://127.0.0.1:{port}/

The CA and the server certificate (SAN IP:127.0.0.1 and DNS:localhost) are made with
the `openssl` CLI, using EC P-256 keys because they are generated in milliseconds.
The server binds to 127.0.0.1 only, answers every GET with status 200 and the body
"hello over tls\\n", and stops when the context exits. Every socket has a timeout, so
a stuck client cannot hang the server thread or the test.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

OPENSSL = shutil.which("openssl")
LOOPBACK = "127.0.0.1"
BODY = b"hello over tls\n"
SOCKET_TIMEOUT = 10.0
# Long enough for any test run, short enough that a leaked key is worthless.
VALID_DAYS = 2


@dataclass(frozen=True)
class TestPKI:
    """Paths of the PEM files made by make_pki."""

    __test__ = False  # not a pytest test class despite the name

    ca_pem: Path
    ca_key: Path
    server_pem: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    if OPENSSL is None:
        raise FileNotFoundError("the openssl CLI is not installed")
    subprocess.run(
        [OPENSSL, *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    )


def make_pki(directory: Path) -> TestPKI:
    """Create a CA and a server certificate for 127.0.0.1/localhost signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", str(VALID_DAYS),
        "-subj", "/CN=scratchprobe throw-away test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.pem",
        cwd=directory,
    )  # fmt: skip
    _openssl("genpkey", *ec, "-out", "server.key", cwd=directory)
    _openssl(
        "req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    # Verifiers check the SAN, not the CN; the IP entry is what a client dialling
    # 127.0.0.1 matches against.
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", str(secrets.randbits(63)), "-days", str(VALID_DAYS), "-sha256",
        "-extfile", "server.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return TestPKI(
        ca_pem=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_pem=directory / "server.pem",
        server_key=directory / "server.key",
    )


class _HelloHandler(BaseHTTPRequestHandler):
    # StreamRequestHandler applies this to the accepted socket.
    timeout = SOCKET_TIMEOUT

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class _TLSServer(HTTPServer):
    """HTTPServer whose accepted connections are wrapped in TLS with a timeout.

    The handshake happens in get_request, after the timeout is set, so a client that
    connects and says nothing cannot block the server thread. A failed handshake (for
    instance a client that rejects our certificate) raises ssl.SSLError, an OSError,
    which socketserver treats as "no request" and ignores.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.errors: list[str] = []
        super().__init__((LOOPBACK, 0), _HelloHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(SOCKET_TIMEOUT)
        try:
            return self.context.wrap_socket(sock, server_side=True), addr
        except BaseException:
            sock.close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Record instead of printing a traceback: a client that aborts mid-request is
        # an expected outcome in the "CA missing" tests.
        self.errors.append(repr(sys.exc_info()[1]))


@contextmanager
def https_server(pki: TestPKI | None = None) -> Iterator[tuple[int, Path]]:
    """Run the HTTPS server on 127.0.0.1:<free port>; yield (port, CA PEM path).

    Without ``pki`` a fresh one is made in a temporary directory that is removed on exit.
    """
    with tempfile.TemporaryDirectory(prefix="scratchprobe-tls-") as tmp:
        pki = pki or make_pki(Path(tmp))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.server_pem, pki.server_key)
        server = _TLSServer(context)
        port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield port, pki.ca_pem
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=SOCKET_TIMEOUT)


def fetch(port: int, ca_pem: Path) -> str:
    """GET / from the fixture with Python's ssl, trusting only ``ca_pem``; return the body.
    A self-check of the fixture, independent of the C client under test."""
    context = ssl.create_default_context(cafile=str(ca_pem))
    with (
        socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=LOOPBACK) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks: list[bytes] = []
        while chunk := tls.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode().split("\r\n\r\n", 1)[1]
