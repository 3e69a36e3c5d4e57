// rust-ca-probe: find the system's CA bundle with the openssl-probe crate (Debian's
// librust-openssl-probe-dev source, built by the test with its path remapped, so the file
// carries no crate metadata) and count the certificates in it: the loading step of a
// TLS client that trusts the system roots.
extern crate openssl_probe;

fn main() {
    let found = openssl_probe::probe();
    match found.cert_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let roots = text.matches("-----BEGIN CERTIFICATE-----").count();
            if roots == 0 {
                println!("no certificate in {}", path.display());
                std::process::exit(1);
            }
            println!("roots={}", roots);
        }
        None => {
            println!("no CA bundle found");
            std::process::exit(1);
        }
    }
}
