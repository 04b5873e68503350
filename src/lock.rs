//! Single-instance locks (flock). keepalived 2.2.7 lets runs of a script overlap, and
//! operators and monitors run the same programs beside it. A run that finds the lock
//! held waits for it within its own deadline: a healthy holder releases it within
//! milliseconds, and only a hung server keeps it, in which case the holder ends itself
//! at its deadline too. So runs never pile up on a server, and a busy lock alone never
//! decides a verdict.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::files;

#[derive(Debug)]
pub enum LockError {
    /// Another copy held it until the deadline.
    Busy,
    /// The lock file cannot be opened or created; the message names path and user.
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy => f.write_str("held by another run until the deadline"),
            LockError::Io(m) => f.write_str(m),
        }
    }
}

/// Holds an exclusive flock until dropped (or the process dies: the kernel releases it,
/// so a SIGKILLed run never leaves a stale lock). The file is never unlinked: another
/// process may be holding or about to lock it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Opens the lock file read-only (flock needs no write access, so a lock file made by
/// root stays usable by the script user), creating it 0644 with the directory's owner.
fn open(path: &Path) -> Result<File, LockError> {
    let err = |e: io::Error| LockError::Io(files::unusable("lock file", path, &e));
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(path)
            .map_err(err)?,
        Err(e) => return Err(err(e)),
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    files::adopt(&file, dir, 0o644).map_err(err)?;
    Ok(file)
}

/// Takes the lock, waiting for it until `deadline` at most (polling with a short
/// back-off: a healthy holder is gone within milliseconds).
pub fn lock_within(path: &Path, deadline: Instant) -> Result<Lock, LockError> {
    let file = open(path)?;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LockError::Busy);
                }
                sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LockError::Io(files::unusable("lock file", path, &e)))
            }
        }
    }
}

/// Takes the lock only if it is free right now.
pub fn try_lock(path: &Path) -> Result<Lock, LockError> {
    lock_within(path, Instant::now())
}

/// Creates the runtime directory if missing (the package ships it via tmpfiles.d; this
/// covers a hand install). 0755: the state files in it are meant to be read by humans.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(files::unusable("runtime-dir", dir, &e)),
    }
}
