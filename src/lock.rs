//! Non-blocking single-instance locks. keepalived 2.2.7 lets runs of a script overlap;
//! a run that finds the lock held must never wait for it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug)]
pub enum LockError {
    /// Another copy holds it.
    Busy,
    Io(io::Error),
}

/// Holds an exclusive flock until dropped (or the process dies: the kernel releases it,
/// so a SIGKILLed run never leaves a stale lock). The file is never unlinked: another
/// process may be holding or about to lock it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

pub fn try_lock(path: &Path) -> Result<Lock, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(LockError::Io)?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Busy),
        Err(TryLockError::Error(e)) => Err(LockError::Io(e)),
    }
}

/// Creates the runtime directory if missing (the package ships it via tmpfiles.d; this
/// covers a hand install). 0755: the state files in it are meant to be read by humans.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
