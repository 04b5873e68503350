//! `keepalived-mysql-notify --fifo PATH`: the notify hook as keepalived's
//! `vrrp_notify_fifo_script`. keepalived starts it once, with the FIFO's path as the last
//! argument, and writes one line per event (`INSTANCE "VI_1" MASTER 150`) in the order
//! the events happen: unlike forked `notify` scripts, nothing runs concurrently or out
//! of order.
//!
//! keepalived writes without blocking and drops lines while the FIFO is full, so one
//! thread only reads: it records each event at once (its sequence number, and read_only
//! for a demotion whose VIP is gone, exactly as a forked hook does first) and queues it.
//! Another applies the queue one event at a time, each in a child of its own (see
//! `serve`). A promotion still waiting for its catch-up sees the newer event in the
//! record and gives way, as it does when hooks are forked; the queue then brings the
//! newer event next.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::command;
use crate::config::NotifySettings;
use crate::log::{Logger, Severity};
use crate::notify::{self, Event, VrrpState};

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
///
/// Each event is applied by a child (`--recorded`), in a process group of its own and
/// waited for before the next: keepalived SIGKILLs this process's group about a second
/// after its SIGTERM, on a stop and on a reload alike, and a promotion catching up or a
/// demotion waiting for mysqld must survive that, as forked hooks do. Each child reads
/// the option file afresh and starts its own clock. After the SIGTERM nothing is
/// waited for: the STOP lines that follow are started at once (a running promotion sees
/// them recorded and gives way), before the SIGKILL comes.
pub fn serve(
    s: &NotifySettings,
    log: &Logger,
    path: &Path,
    file_args: &[String],
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
    // The children get our own command line (option files and flags alike) without
    // --fifo and its path.
    let base = without_fifo(std::env::args().skip(1));
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
                    Ok(Line::Event(ev)) if !for_us(s, &ev) => log.log(
                        Severity::Info,
                        &format!(
                            "FIFO: {} {} is not vrrp-instance {}: ignored",
                            ev.instance.as_deref().unwrap_or("?"),
                            ev.state.name(),
                            s.vrrp_instance.as_deref().unwrap_or("?")
                        ),
                    ),
                    Ok(Line::Event(ev)) => {
                        notify::prepare(s, log);
                        // Stale or unrecordable: receive said why.
                        if let Ok(r) =
                            notify::receive(s, log, ev, false, Instant::now(), file_args, false)
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
        // Children no longer waited for (after a SIGTERM), reaped as they end.
        let mut stragglers: Vec<std::process::Child> = Vec::new();
        loop {
            stragglers.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            let r = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
            };
            let mut args = base.clone();
            args.extend(r.args());
            let mut child = match command::sibling_child(notify::PROGRAM, &args) {
                Ok(c) => c,
                Err(e) => {
                    // Not applied at all is worse than applied out of our process: the
                    // record has it, and a demotion must happen.
                    log.log(
                        Severity::Err,
                        &format!("FIFO: {}: {e}; acting in this process", r.state().name()),
                    );
                    notify::act(s, log, r, false, file_args);
                    continue;
                }
            };
            // In order: the next event starts once this one is done. After a SIGTERM
            // (the SIGKILL of our group follows within a second), a child gets 100 ms
            // before the next starts beside it.
            let mut termed_at: Option<Instant> = None;
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        match st.code() {
                            Some(0 | 30 | 31) => {}
                            // Usage, configuration, option file open to others: the
                            // child could not even start on it. The record has the
                            // event; act on it here, with the settings we have.
                            Some(c @ 2..=4) => {
                                log.log(
                                    Severity::Err,
                                    &format!(
                                        "FIFO: {} could not be applied by a child (exit {c}: \
                                         its option file or flags); acting in this process",
                                        r.state().name()
                                    ),
                                );
                                notify::act(s, log, r, false, file_args);
                            }
                            c => log.log(
                                Severity::Err,
                                &format!(
                                    "FIFO: the child applying {} ended with {}",
                                    r.state().name(),
                                    c.map_or("a signal".to_string(), |c| format!("exit {c}"))
                                ),
                            ),
                        }
                        break;
                    }
                    Err(_) => break,
                    Ok(None) if TERM.load(Ordering::SeqCst) => {
                        let t = *termed_at.get_or_insert_with(Instant::now);
                        if t.elapsed() >= Duration::from_millis(100) {
                            stragglers.push(child);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        for mut c in stragglers {
            let _ = c.try_wait();
        }
    });
    log.log(Severity::Notice, "keepalived closed the FIFO: exiting");
    Ok(())
}

fn without_fifo(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--fifo" {
            skip = true;
        } else if !a.starts_with("--fifo=") {
            out.push(a);
        }
    }
    out
}

/// With `vrrp-instance` set, only that instance's lines act: the FIFO carries every
/// instance of this keepalived.
fn for_us(s: &NotifySettings, ev: &Event) -> bool {
    match (&s.vrrp_instance, &ev.instance) {
        (Some(want), Some(i)) => i.strip_prefix("INSTANCE ") == Some(want.as_str()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_our_flags_without_the_fifo() {
        let a = |v: &[&str]| without_fifo(v.iter().map(|s| s.to_string()));
        assert_eq!(
            a(&[
                "--defaults-file=/x",
                "--catchup-timeout",
                "5s",
                "--fifo",
                "/run/f"
            ]),
            ["--defaults-file=/x", "--catchup-timeout", "5s"]
        );
        assert_eq!(a(&["--fifo=/run/f", "-v"]), ["-v"]);
    }

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
