//! The state files, one module each (`check.json`, `restart.json`, `notify.json`), and
//! how all of them are read and written: atomically, as JSON, never through a symlink.
//!
//! One policy for all three:
//! - reading (`load`, the hooks): a file that is missing, unreadable or not valid reads
//!   as "no state" (`None`): state is advisory, never by itself a reason to fail a run;
//!   `read` keeps the error apart, for the operator's status, which must say so;
//! - writing: the whole file is replaced (temp file + rename, so a reader or a run
//!   killed mid-write never sees half a file), or the write fails with a message naming
//!   the path and the user. What a failed write means is decided where `save` is called,
//!   and said there.

use std::fs;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::files;

pub mod check;
pub mod notify;
pub mod restart;

/// One state file of type `T`.
pub struct StateFile<T> {
    path: PathBuf,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> StateFile<T> {
    pub fn new(path: PathBuf) -> Self {
        StateFile {
            path,
            _t: PhantomData,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Option<T> {
        self.read().ok().flatten()
    }

    /// For readers that must tell "not there" (`Ok(None)`) from "there but unreadable
    /// or not ours to parse" (`Err`, naming the file): the operator's status.
    pub fn read(&self) -> Result<Option<T>, String> {
        read_json(&self.path).map_err(|e| format!("cannot read {}: {e}", self.path.display()))
    }

    pub fn save(&self, value: &T) -> Result<(), String> {
        write_json(&self.path, value).map_err(|e| files::unusable("cannot write", &self.path, &e))
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
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

/// `Ok(None)` when missing. Never through a symlink, and never from anything but a
/// regular file (a FIFO there would block the reader). The hooks treat an error as
/// missing (state is advisory to them); the operator's status reports it.
fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    use std::io::Read;
    let mut f = match files::no_follow().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| io::Error::other(format!("not valid state: {e}")))
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
    humantime::format_rfc3339_seconds(system_time(unix)).to_string()
}

/// The same with milliseconds, for log lines: a failover takes one to three seconds,
/// and its steps on two hosts must be put in order afterwards.
pub fn rfc3339_millis(unix: f64) -> String {
    humantime::format_rfc3339_millis(system_time(unix)).to_string()
}

fn system_time(unix: f64) -> std::time::SystemTime {
    std::time::Duration::try_from_secs_f64(unix.clamp(0.0, 253_402_300_799.0))
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
        .unwrap_or(UNIX_EPOCH)
}
