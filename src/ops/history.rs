//! `keepalived-mysql history`: what happened on this node, oldest first.
//!
//! The log file is the record: the check logs each verdict change, the hooks each
//! transition, restart and alert. The state files add what a log may have lost (it
//! rotates, or is not configured): the notify hook's event history, the restart
//! attempts, and the verdict the check holds now.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::config::{CheckSettings, RestartSettings};
use crate::state::{self, rfc3339_millis};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    /// RFC 3339, UTC, with milliseconds as the log lines have them: sorts as text
    /// (a log written before they had milliseconds sorts within its second).
    pub time: String,
    /// `log`, `notify.json`, `restart.json` or `check.json`.
    pub source: String,
    pub text: String,
}

/// The last `limit` events, oldest first.
pub fn collect(
    check: &CheckSettings,
    restart: &RestartSettings,
    limit: usize,
) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut notes = Vec::new();
    match &check.log_file {
        Some(p) => {
            // `log.1` is the newest rotated file (see `log`).
            let rotated = std::path::PathBuf::from(format!("{}.1", p.display()));
            for f in [rotated.as_path(), p.as_path()] {
                if let Err(e) = log_events(f, &mut events) {
                    if f == p.as_path() {
                        notes.push(format!("cannot read {}: {e}", f.display()));
                    }
                }
            }
        }
        None => notes.push("no log-file configured: state files only (see also syslog)".into()),
    }
    let from_log = !events.is_empty();
    // Without the log, the notify hook's own record tells the transitions.
    if !from_log {
        if let Some(n) = state::notify::file(check).load() {
            for h in n.history {
                events.push(Event {
                    time: h.time,
                    source: "notify.json".into(),
                    text: format!(
                        "{}{} -> {}{}",
                        h.event,
                        h.instance.map(|i| format!(" ({i})")).unwrap_or_default(),
                        h.action,
                        h.took_ms
                            .map(|t| format!(" in {t:.0} ms"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
    }
    if let Some(r) = state::restart::file(restart).load() {
        for t in &r.attempts {
            events.push(Event {
                time: rfc3339_millis(*t),
                source: "restart.json".into(),
                text: "restart issued (within the budget window)".into(),
            });
        }
        if r.phase != state::restart::Phase::Idle {
            events.push(Event {
                time: rfc3339_millis(r.updated),
                source: "restart.json".into(),
                text: format!(
                    "restart hook {}{}",
                    r.phase.name(),
                    r.reason.map(|x| format!(": {x}")).unwrap_or_default()
                ),
            });
        }
    }
    if let Some(c) = state::check::file(check).load() {
        events.push(Event {
            time: rfc3339_millis(c.since),
            source: "check.json".into(),
            text: format!(
                "check verdict {} (still holds): {}",
                c.verdict.class.name(),
                c.verdict.reason
            ),
        });
    }
    events.sort();
    events.dedup();
    let skip = events.len().saturating_sub(limit);
    (events.split_off(skip), notes)
}

/// Lines `TIME TAG[PID] LEVEL: MESSAGE` of our log file.
fn log_events(path: &Path, out: &mut Vec<Event>) -> std::io::Result<()> {
    let text = fs::read_to_string(path)?;
    for line in text.lines() {
        let Some((time, rest)) = line.split_once(' ') else {
            continue;
        };
        let (source, msg) = match rest.split_once(' ') {
            Some((tag, msg)) => (tag.split('[').next().unwrap_or(tag), msg),
            None => ("log", rest),
        };
        out.push(Event {
            time: time.to_string(),
            source: source.trim_start_matches("keepalived-mysql-").to_string(),
            text: msg.to_string(),
        });
    }
    Ok(())
}

pub fn text(events: &[Event], notes: &[String]) -> String {
    let mut out = String::new();
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if events.is_empty() {
        out.push_str("nothing recorded yet\n");
    }
    for e in events {
        out.push_str(&format!("{} {:<12} {}\n", e.time, e.source, e.text));
    }
    out
}
