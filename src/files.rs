//! Files that several users share. keepalived runs our programs as `keepalived_script`,
//! an operator runs them as root, the restart hook runs as root: whoever creates a lock,
//! state or log file first, every later run by either user must still be able to use it.
//!
//! So when root creates or finds one of our files, it hands it to the owner of
//! `runtime-dir` (the script user on a packaged install), with the group of the file's
//! own directory, and sets its mode explicitly (keepalived's umask is 0177).
//!
//! Root works inside directories the script user owns: every open here refuses to
//! follow a symlink, and only a regular file with one link is ever chowned, so the
//! script user cannot point root at /etc/passwd.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub fn running_as_root() -> bool {
    euid() == 0
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Options that open `path` only if it is not a symlink (ELOOP otherwise).
/// Non-blocking too: a FIFO planted at the path must not hang the open.
pub fn no_follow() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    o
}

/// Hands `file` to the owner of `owner_dir` (with the group of `group_dir`) when root
/// runs us and `owner_dir` belongs to another user, and gives it `mode` when root or
/// its owner runs us. A root-owned `owner_dir` says nothing about who should own the
/// file: then nothing is chowned. Only regular files with a single link; anything else
/// (a device someone named as log-file, a hard link) is left alone or refused.
pub fn adopt(file: &File, owner_dir: &Path, group_dir: &Path, mode: u32) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(());
    }
    if meta.nlink() != 1 {
        return Err(io::Error::other(
            "a hard-linked file: refusing to change its owner or mode",
        ));
    }
    if running_as_root() {
        let owner = std::fs::metadata(owner_dir)?.uid();
        let group = std::fs::metadata(group_dir)?.gid();
        if owner != 0 && (meta.uid() != owner || meta.gid() != group) {
            std::os::unix::fs::fchown(file, Some(owner), Some(group))?;
        }
    }
    if meta.mode() & 0o7777 != mode && (running_as_root() || meta.uid() == euid()) {
        file.set_permissions(PermissionsExt::from_mode(mode))?;
    }
    Ok(())
}

/// Whether this user owns `dir` (so may rename or replace what is in it).
pub fn owns(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == euid())
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
