// rust-std-env: std::env::temp_dir() ($TMPDIR or /tmp), create, read back and
// remove a file there, then std::env::home_dir() ($HOME, else getpwuid_r in
// libc, i.e. glibc NSS and /etc/passwd). Built with rustc alone.
//
//   rust-std-env          both
//   rust-std-env temp     only the temp-file check
//   rust-std-env home     only home_dir
#![allow(deprecated)] // std::env::home_dir is deprecated but still present, and its fallback is the point

use std::fs;
use std::process::ExitCode;

fn temp() -> Result<(), String> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("rust-std-env-{}", std::process::id()));
    fs::write(&path, b"scratchprobe").map_err(|e| format!("write {}: {e}", path.display()))?;
    let back = fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    if back != b"scratchprobe" {
        return Err("read back different bytes".to_string());
    }
    println!("temp_dir={} ok", dir.display());
    Ok(())
}

fn home() {
    match std::env::home_dir() {
        Some(h) => println!("home_dir={}", h.display()),
        None => println!("home_dir=none"),
    }
}

fn main() -> ExitCode {
    let what = std::env::args().nth(1).unwrap_or_default();
    if what.is_empty() || what == "temp" {
        if let Err(e) = temp() {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if what.is_empty() || what == "home" {
        home();
    }
    ExitCode::SUCCESS
}
