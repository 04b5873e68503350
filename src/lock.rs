//! Single-instance locks (flock). keepalived 2.2.7 lets runs of a script overlap, and
//! operators and monitors run the same programs beside it. A run that finds the lock
//! held waits for it within its own deadline: a healthy holder releases it within
//! milliseconds, and only a hung server keeps it, in which case the holder ends itself
//! at its deadline too. So runs never pile up on a server, and a busy lock alone never
//! decides a verdict.

use std::fs::{File, TryLockError};
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

/// Lock files of keepalived's runs and of the hooks: only their owner (the script
/// user) and root may open them, so no other local user can hold them.
pub const PRIVATE: u32 = 0o600;
/// The observers' lock: any user who may read the option file may observe.
pub const OBSERVERS: u32 = 0o644;

/// Opens the lock file read-only (flock needs no write access), creating it with
/// `mode`, owned like every file of ours (see `files`; `owner_dir` is runtime-dir).
/// A lock file this user cannot open in a directory it owns (left by an older version
/// run as root) is replaced, one replacer at a time (flock on the directory), and a
/// holder checks after locking that its file is still the one at the path.
fn open(path: &Path, owner_dir: &Path, mode: u32) -> Result<File, LockError> {
    let err = |e: io::Error| LockError::Io(files::unusable("lock file", path, &e));
    let dir = path.parent().unwrap_or(Path::new("/"));
    let open_existing = || files::no_follow().read(true).open(path);
    let file = match open_existing() {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut o = files::no_follow();
            o.create(true).truncate(false).write(true).mode(mode);
            o.open(path).map_err(err)?
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && files::owns(dir) => {
            let d = File::open(dir).map_err(err)?;
            d.lock().map_err(err)?;
            match open_existing() {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    let fresh = dir.join(format!(
                        ".{}.{}.new",
                        path.file_name().unwrap_or_default().to_string_lossy(),
                        std::process::id()
                    ));
                    let _ = std::fs::remove_file(&fresh);
                    let mut o = files::no_follow();
                    o.create_new(true).write(true).mode(mode);
                    let f = o.open(&fresh).map_err(err)?;
                    std::fs::rename(&fresh, path).map_err(err)?;
                    f
                }
                Err(e) => return Err(err(e)),
            }
        }
        Err(e) => return Err(err(e)),
    };
    if !file.metadata().map_err(err)?.is_file() {
        return Err(err(io::Error::other("not a regular file")));
    }
    files::adopt(&file, owner_dir, dir, mode).map_err(err)?;
    Ok(file)
}

/// Whether `file` is still what `path` names (a replacement may have renamed another
/// file over it while we waited).
fn still_there(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Takes the lock, waiting for it until `deadline` at most (polling with a short
/// back-off: a healthy holder is gone within milliseconds). `owner_dir`: runtime-dir.
pub fn lock_within(
    path: &Path,
    owner_dir: &Path,
    mode: u32,
    deadline: Instant,
) -> Result<Lock, LockError> {
    let mut file = open(path, owner_dir, mode)?;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) if still_there(&file, path) => return Ok(Lock { _file: file }),
            Ok(()) => file = open(path, owner_dir, mode)?,
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

/// Takes a private lock only if it is free right now.
pub fn try_lock(path: &Path, owner_dir: &Path) -> Result<Lock, LockError> {
    lock_within(path, owner_dir, PRIVATE, Instant::now())
}

/// Creates the runtime directory if missing (the package ships it via tmpfiles.d; this
/// covers a hand install). 0755: the state files in it are meant to be read by humans.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    // keepalived's umask (0177) would make it, and any parent made on the way, 0600:
    // unusable even by its owner. No other thread runs yet when this is called.
    // SAFETY: umask has no preconditions.
    let old = unsafe { libc::umask(0o022) };
    let r = std::fs::create_dir_all(dir);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r.map_err(|e| files::unusable("runtime-dir", dir, &e))
}
