// rust-rustls-native-certs: load the system roots with rustls-native-certs and
// print how many were loaded; with a URL, also GET it over rustls and print the
// status line and body. rustls-native-certs 0.6 reads $SSL_CERT_FILE, else the
// file openssl-probe finds (/etc/ssl/certs/ca-certificates.crt on Debian), so a
// scratch image needs the CA bundle copied in.
//
//   rust-rustls-native-certs                       roots=N
//   rust-rustls-native-certs https://HOST:PORT/P   roots=N, then the response
//
// webpki 0.22 verifies DNS names only: use a host name (e.g. from /etc/hosts).
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;

fn roots() -> Result<rustls::RootCertStore, String> {
    let certs = rustls_native_certs::load_native_certs().map_err(|e| format!("load: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in certs {
        store
            .add(&rustls::Certificate(cert.0))
            .map_err(|e| format!("add: {e}"))?;
    }
    Ok(store)
}

fn get(url: &str, store: rustls::RootCertStore) -> Result<(), String> {
    let rest = url.strip_prefix("https://").ok_or("URL must start with https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| format!("port: {e}"))?),
        None => (authority, 443),
    };
    let config = rustls::ClientConfig::builder()
        .with_safe_defaults()
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls::ServerName::try_from(host).map_err(|e| format!("name: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("tls: {e}"))?;
    let sock = TcpStream::connect((host, port)).map_err(|e| format!("connect: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without close_notify still sent a full HTTP/1.0 response.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    println!("{}", head.lines().next().unwrap_or(""));
    print!("{body}");
    Ok(())
}

fn main() -> ExitCode {
    let store = match roots() {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("roots={}", store.len());
    if let Some(url) = std::env::args().nth(1) {
        if let Err(e) = get(&url, store) {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
