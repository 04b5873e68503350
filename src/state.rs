//! Atomic JSON state files: written to a temp file in the same directory and renamed
//! over the old one, so a reader (or a run killed mid-write) never sees half a file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::files;

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, 0o644)
}

pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{}.{}.tmp", name, std::process::id()));
    let result = (|| {
        // A new file, never whatever (a symlink) sits at that name: root writes here
        // in a directory the script user owns. One left by a killed run is replaced.
        let create = || {
            files::no_follow()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
        };
        let mut f = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                create()?
            }
            r => r?,
        };
        f.write_all(bytes)?;
        // keepalived runs us with umask 0177, which filters the mode above; and a file
        // root writes must stay replaceable and readable by the script user.
        files::adopt(&f, dir, dir, mode)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `None` when missing or unreadable: state is advisory, never a reason to fail.
/// Never through a symlink, and never from anything but a regular file (a FIFO there
/// would block the reader).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    use std::io::Read;
    let mut f = files::no_follow().read(true).open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 3339 (UTC, seconds) for humans reading the state files.
/// Values come from state files too: a nonsensical one prints as the epoch, never
/// panics.
pub fn rfc3339(unix: f64) -> String {
    let t = std::time::Duration::try_from_secs_f64(unix.clamp(0.0, 253_402_300_799.0))
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
        .unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t).to_string()
}
