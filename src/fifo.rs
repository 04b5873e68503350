//! `keepalived-mysql-notify --fifo PATH`: the notify hook as keepalived's
//! `vrrp_notify_fifo_script`. keepalived starts it once, with the FIFO's path as the last
//! argument, and writes one line per event (`INSTANCE "VI_1" MASTER 150`) in the order
//! the events happen: unlike forked `notify` scripts, nothing runs concurrently or out
//! of order.
//!
//! keepalived writes without blocking and drops lines while the FIFO is full, so one
//! thread only reads: it records each event at once (its sequence number, and read_only
//! for a demotion whose VIP is gone, exactly as a forked hook does first) and queues it.
//! Another acts on the queue, one event at a time. A promotion still waiting for its
//! catch-up sees the newer event in the record and gives way, as it does when hooks are
//! forked; the queue then brings the newer event next.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::NotifySettings;
use crate::log::{Logger, Severity};
use crate::notify::{self, Event, Outcome, VrrpState};

/// After keepalived's SIGTERM: it writes the STOP lines next and then closes the FIFO.
/// Should it not close it, we end this long after the TERM anyway.
const AFTER_TERM: Duration = Duration::from_secs(3);

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// What a FIFO line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Event(Event),
    /// A line that changes nothing for us, and why.
    Ignore(String),
}

/// Parses one line as keepalived writes it: `INSTANCE|GROUP "NAME" STATE PRIORITY`.
/// `MASTER_RX_LOWER_PRI` (a MASTER hearing a lower-priority MASTER) re-asserts, as
/// `notify_master_rx_lower_pri` does; priority changes and GROUP lines (an instance of a
/// sync group gets its own line too) change nothing.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.trim_end();
    let (kind, rest) = line
        .split_once(' ')
        .ok_or_else(|| format!("not a keepalived FIFO line: '{line}'"))?;
    let rest = rest
        .strip_prefix('"')
        .ok_or_else(|| format!("no quoted name in '{line}'"))?;
    let (name, rest) = rest
        .split_once('"')
        .ok_or_else(|| format!("no quoted name in '{line}'"))?;
    let mut words = rest.split_whitespace();
    let state = words
        .next()
        .ok_or_else(|| format!("no state in '{line}'"))?;
    let priority = words
        .next()
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("bad priority in '{line}'"))
        })
        .transpose()?;
    match kind {
        "INSTANCE" => {}
        "GROUP" => {
            return Ok(Line::Ignore(format!(
                "sync group {name} {state}: acted on through its instances' own lines"
            )))
        }
        _ => return Err(format!("expected INSTANCE or GROUP in '{line}'")),
    }
    let state = match state {
        "MASTER_RX_LOWER_PRI" => VrrpState::Master,
        "MASTER_PRIORITY" | "BACKUP_PRIORITY" => {
            return Ok(Line::Ignore(format!("{name}: priority now {priority:?}")))
        }
        s => VrrpState::parse(s).ok_or_else(|| format!("unknown state in '{line}'"))?,
    };
    Ok(Line::Event(Event {
        state,
        instance: Some(format!("INSTANCE {name}")),
        priority,
    }))
}

/// Serves the FIFO until keepalived closes it. `Err`: it could not be read at all.
pub fn serve(
    s: &NotifySettings,
    log: &Logger,
    path: &Path,
    restart_args: &[String],
) -> Result<(), String> {
    // Refuse anything but a FIFO (a regular file there would be read once and "closed").
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_fifo() {
        return Err(format!("{}: not a FIFO", path.display()));
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
    }
    notify::prepare(s, log);
    let fifo = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    log.log(
        Severity::Notice,
        &format!("reading keepalived's events from {}", path.display()),
    );
    let (tx, rx) = mpsc::channel::<notify::Received>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut reader = BufReader::new(fifo);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break, // keepalived closed it
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log.log(Severity::Err, &format!("FIFO read: {e}"));
                        break;
                    }
                }
                match parse_line(&line) {
                    Ok(Line::Event(ev)) => {
                        notify::prepare(s, log);
                        // Stale or unrecordable: receive said why.
                        if let Ok(r) =
                            notify::receive(s, log, ev, false, Instant::now(), restart_args)
                        {
                            if tx.send(r).is_err() {
                                break;
                            }
                        }
                    }
                    Ok(Line::Ignore(why)) => log.log(Severity::Info, &format!("FIFO: {why}")),
                    Err(e) => log.log(Severity::Err, &format!("FIFO: {e}")),
                }
            }
            drop(tx);
        });
        let mut term_at: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => {
                    let state = r.state();
                    let outcome = notify::act(s, log, r, false, restart_args);
                    if outcome != Outcome::Done && outcome != Outcome::Ignored {
                        log.log(
                            Severity::Info,
                            &format!("FIFO: {} ended: {outcome:?}", state.name()),
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if TERM.load(Ordering::SeqCst) {
                let t = *term_at.get_or_insert_with(Instant::now);
                if t.elapsed() >= AFTER_TERM {
                    log.log(
                        Severity::Notice,
                        "FIFO: keepalived asked us to stop and did not close the FIFO: exiting",
                    );
                    // The reader blocks on the FIFO: leave without joining it.
                    std::process::exit(0);
                }
            }
        }
    });
    log.log(Severity::Notice, "keepalived closed the FIFO: exiting");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_keepalived_writes_them() {
        let ev = |l: &str| match parse_line(l).unwrap() {
            Line::Event(e) => (e.state, e.instance.unwrap(), e.priority),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ev("INSTANCE \"VI_1\" MASTER 150\n"),
            (VrrpState::Master, "INSTANCE VI_1".into(), Some(150))
        );
        assert_eq!(ev("INSTANCE \"VI 2\" BACKUP 100").0, VrrpState::Backup);
        assert_eq!(ev("INSTANCE \"VI_1\" FAULT 0").0, VrrpState::Fault);
        assert_eq!(ev("INSTANCE \"VI_1\" STOP 150").0, VrrpState::Stop);
        assert_eq!(ev("INSTANCE \"VI_1\" DELETED 150").0, VrrpState::Deleted);
        assert_eq!(
            ev("INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150").0,
            VrrpState::Master
        );
        assert!(matches!(
            parse_line("INSTANCE \"VI_1\" MASTER_PRIORITY 148"),
            Ok(Line::Ignore(_))
        ));
        assert!(matches!(
            parse_line("GROUP \"G1\" MASTER 0"),
            Ok(Line::Ignore(_))
        ));
        for bad in [
            "",
            "INSTANCE VI_1 MASTER 1",
            "INSTANCE \"VI_1\"",
            "FOO \"x\" MASTER 1",
            "INSTANCE \"x\" MASTER high",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
