//! Logging to syslog (RFC 3164 on /dev/log) and/or a size-rotated file.
//!
//! A failure to log never changes a verdict or delays an exit, but it is never silent
//! either: a line the log file refuses goes to syslog (or stderr) with the reason, and
//! the programs refuse at start a log file their user cannot write (`check_usable`).
//! Each line is one `write(2)` with O_APPEND, which keeps lines whole when several
//! processes log at once.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::config::Common;
use crate::files;
use crate::lock;
use crate::state::{now_unix, rfc3339_millis};

/// A failure that persists is logged again at most this often, by every program.
pub const REPEAT_SECS: f64 = 60.0;

/// Whether a condition that persists, last logged at `last`, is due to be logged again
/// (a clock stepped back counts as due, not as silence until it catches up).
pub fn due_again(last: f64, now: f64) -> bool {
    now - last >= REPEAT_SECS || now < last
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

#[derive(Debug, Clone)]
pub struct Logger {
    tag: String,
    facility: Option<u8>,
    syslog_path: PathBuf,
    file: Option<PathBuf>,
    /// Whose files ours are: the owner of runtime-dir (see `files`).
    owner_dir: PathBuf,
    max_size: u64,
    keep: u32,
}

impl Logger {
    pub fn new(tag: &str, s: &Common) -> Logger {
        Logger {
            tag: tag.to_string(),
            facility: s.syslog_facility,
            syslog_path: PathBuf::from("/dev/log"),
            file: s.log_file.clone(),
            owner_dir: s.runtime_dir.clone(),
            max_size: s.log_max_size,
            keep: s.log_keep,
        }
    }

    /// The log file must be writable by whoever runs us: a config error otherwise (named
    /// with path and user), never lines silently lost. One access(2), no file opened.
    /// A log file left unwritable in a directory this user owns (by root under an
    /// older version, or a logrotate rule) is moved aside, not fatal.
    pub fn check_usable(&self) -> Result<(), String> {
        let Some(p) = &self.file else {
            return Ok(());
        };
        if files::writable(p) {
            return Ok(());
        }
        let dir = p.parent().unwrap_or(Path::new("/"));
        if p.exists() && files::owns(dir) {
            let aside = sibling(p, &format!(".unwritable.{}", now_unix() as u64));
            if fs::rename(p, &aside).is_ok() {
                self.log(
                    Severity::Warning,
                    &format!(
                        "log-file {} was not writable by {}: moved aside to {}",
                        p.display(),
                        files::whoami(),
                        aside.display()
                    ),
                );
                return Ok(());
            }
        }
        Err(format!(
            "log-file {} is not writable by {} (owner/mode of the file or its directory)",
            p.display(),
            files::whoami()
        ))
    }

    /// Logs a condition that persists across runs at most once a minute; `last` is
    /// when it was last logged, kept by the caller in its state file.
    pub fn log_persisting(&self, last: &mut f64, now: f64, sev: Severity, msg: &str) {
        if due_again(*last, now) {
            self.log(sev, msg);
            *last = now;
        }
    }

    pub fn log(&self, sev: Severity, msg: &str) {
        // One line per event, whatever the message carries.
        let msg = msg.replace('\n', " ");
        if let Some(fac) = self.facility {
            self.to_syslog(fac, sev, &msg);
        }
        if let Some(file) = &self.file {
            self.to_file(file, sev, &msg);
        }
    }

    fn to_syslog(&self, facility: u8, sev: Severity, msg: &str) {
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        let pri = (facility as u32) * 8 + sev as u32;
        let line = format!(
            "<{pri}>{} {}[{}]: {msg}",
            syslog_timestamp(),
            self.tag,
            std::process::id()
        );
        let _ = sock.send_to(line.as_bytes(), &self.syslog_path);
    }

    fn to_file(&self, path: &Path, sev: Severity, msg: &str) {
        let level = match sev {
            Severity::Err => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
        };
        let line = format!(
            "{} {}[{}] {level}: {msg}\n",
            rfc3339_millis(now_unix()),
            self.tag,
            std::process::id()
        );
        let dir = path.parent().unwrap_or(Path::new("/"));
        let written = files::no_follow()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .and_then(|mut f| {
                // A file root creates (the restart hook, an operator) must stay writable
                // by the script user, and rotatable by both.
                files::adopt(&f, &self.owner_dir, dir, 0o640)?;
                f.write_all(line.as_bytes())?;
                Ok(f.metadata().map(|m| m.len()).unwrap_or(0))
            });
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                // Never lose the line silently: say so where it can still be read.
                let why = files::unusable("cannot write log-file", path, &e);
                match self.facility {
                    Some(fac) => {
                        self.to_syslog(fac, Severity::Err, &format!("{why}; lost line: {msg}"))
                    }
                    None => eprintln!("{}: {why}; lost line: {msg}", self.tag),
                }
                return;
            }
        };
        if size > self.max_size {
            self.rotate(path);
        }
    }

    /// `log` -> `log.1` -> ... -> `log.<keep>`. Only one process rotates (try-lock); the
    /// others skip it. A writer that still has the old file open finishes its line
    /// into `log.1`, which loses nothing.
    fn rotate(&self, path: &Path) {
        let lock_path = sibling(path, ".lock");
        let Ok(_guard) = lock::try_lock(&lock_path, &self.owner_dir) else {
            return;
        };
        // Someone may have rotated between our write and the lock.
        match fs::metadata(path) {
            Ok(m) if m.len() > self.max_size => {}
            _ => return,
        }
        if self.keep == 0 {
            let _ = fs::remove_file(path);
            return;
        }
        for i in (1..self.keep).rev() {
            let _ = fs::rename(
                sibling(path, &format!(".{i}")),
                sibling(path, &format!(".{}", i + 1)),
            );
        }
        let _ = fs::rename(path, sibling(path, ".1"));
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// "Mmm dd hh:mm:ss" in local time, as RFC 3164 wants.
fn syslog_timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time/localtime_r only fill the struct we pass.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::from("Jan  1 00:00:00");
        }
        format!(
            "{} {:2} {:02}:{:02}:{:02}",
            MONTHS[tm.tm_mon.clamp(0, 11) as usize],
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}
