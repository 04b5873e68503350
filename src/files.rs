//! Files that several users share. keepalived runs our programs as `keepalived_script`,
//! an operator runs them as root, the restart hook runs as root: whoever creates a lock,
//! state or log file first, every later run by either user must still be able to use it.
//! So a file root creates (or finds) in a directory owned by someone else is handed to
//! that directory's owner and group, and modes are set explicitly (keepalived's umask
//! is 0177).

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Gives `file` (just opened or created in `dir`) the owner and group of `dir` when root
/// runs us and `dir` belongs to another user (the script user's runtime and log
/// directories), and the mode `mode` when we own it. Regular files only.
pub fn adopt(file: &File, dir: &Path, mode: u32) -> io::Result<()> {
    let meta = file.metadata()?;
    // Never a device or anything else someone pointed a path at (log-file = /dev/full).
    if !meta.is_file() {
        return Ok(());
    }
    if running_as_root() {
        let d = std::fs::metadata(dir)?;
        // A root-owned directory says nothing about who should own the file: leave a
        // file an administrator made for the script user (or root's own) as it is.
        if d.uid() != 0 && (meta.uid() != d.uid() || meta.gid() != d.gid()) {
            std::os::unix::fs::fchown(file, Some(d.uid()), Some(d.gid()))?;
        }
    }
    if meta.mode() & 0o7777 != mode && (running_as_root() || meta.uid() == euid()) {
        file.set_permissions(PermissionsExt::from_mode(mode))?;
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// `uid 998 (keepalived_script)`, for error messages that must say who could not do it.
/// Static glibc has no NSS: /etc/passwd is read directly, which is where system users
/// such as keepalived_script live.
pub fn whoami() -> String {
    let uid = euid();
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("uid {uid} ({n})"),
        None => format!("uid {uid}"),
    }
}

/// Whether this process may write `path` (or create it in its directory), by the
/// effective ids, as the kernel will judge it.
pub fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let probe = if path.exists() {
        path
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    let Ok(c) = std::ffi::CString::new(probe.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
}

/// The error for a path this user cannot use, naming both.
pub fn unusable(what: &str, path: &Path, e: &io::Error) -> String {
    format!("{what} {}: {e} (running as {})", path.display(), whoami())
}
