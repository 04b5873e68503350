//! `keepalived-mysql switchover`: a planned move of the VIP to the peer, with the same
//! mechanism as a drain (the maintenance file fails this node's check, keepalived moves
//! the VIP, the notify hooks demote and promote), checked before and watched after.
//!
//! Run on the node that holds the VIP. The drain file is the only thing it changes,
//! and it is removed on every way out (done, timed out, refused after creating it,
//! interrupted): with it gone both nodes are eligible again, keepalived keeps the VIP
//! wherever it is by then, and the notify hooks keep read_only in step with it. So
//! Ctrl-C at any point leaves a consistent pair.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{CheckSettings, Endpoint, NotifySettings};
use crate::dialect::ThreadState;
use crate::log::{Logger, Severity};
use crate::rejoin;
use crate::role;
use crate::state::{now_unix, rfc3339};

use super::status::{read_server, ServerView};

pub struct Options {
    /// From the drain to a writable peer on the VIP.
    pub timeout: Duration,
    /// How long the VIP must stay on the peer after the drain file is removed.
    pub settle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Refused,
    TimedOut,
    Interrupted,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Refused => super::REFUSED,
            Outcome::TimedOut => super::TIMED_OUT,
            Outcome::Interrupted => super::INTERRUPTED,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Milliseconds since the drain file was created (negative: before).
    pub at_ms: f64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub message: String,
    pub started: String,
    pub timeline: Vec<Step>,
    /// Writes through the VIP were refused or unanswered for at most this long (the
    /// time between the last poll that found the VIP writable on this node and the
    /// first that found it writable on the peer; polls are 50 ms apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_unavailable_ms: Option<f64>,
}

const POLL: Duration = Duration::from_millis(50);
/// With the VIP gone from here and nothing answering on it this long, the peer is not
/// taking over (its check fails, its keepalived is down): undo.
const NOBODY_LIMIT: Duration = Duration::from_secs(5);

/// Why the peer may not take over now; empty when it may.
pub fn refusals(
    check: &CheckSettings,
    notify: &NotifySettings,
) -> (Vec<String>, Option<ServerView>, Option<ServerView>) {
    let mut no = Vec::new();
    let Some(vip) = check.vip else {
        return (
            vec!["vip is not set: cannot tell which node holds the VIP".into()],
            None,
            None,
        );
    };
    let Some(peer_login) = notify.peer_login() else {
        return (
            vec!["peer-host is not set: cannot check the peer".into()],
            None,
            None,
        );
    };
    if !role::local_addresses().contains(&vip) {
        no.push(format!(
            "this node does not hold the VIP {vip}: run the switchover on the node that does"
        ));
    }
    if check.maintenance_file.exists() {
        let said = fs::read_to_string(&check.maintenance_file).unwrap_or_default();
        no.push(format!(
            "the drain file {} is already present: a drain or switchover is under way, or \
             one was killed{} (remove the file once that is over)",
            check.maintenance_file.display(),
            match said.trim() {
                "" => String::new(),
                s => format!(" ({s})"),
            }
        ));
    }
    let t = notify.connect_timeout;
    let local = read_server(&check.login(), t);
    let peer = read_server(&peer_login, t);
    // Whatever cannot be learned refuses: a switchover is never urgent.
    if let Some(e) = &local.error {
        no.push(format!("this node's server cannot be read: {e}"));
    }
    if let Some(e) = &peer.error {
        no.push(format!("the peer cannot be read: {e}"));
    } else {
        if peer.read_only != Some(true) {
            no.push(
                "the peer is writable already: two writers (see keepalived-mysql status)".into(),
            );
        }
        for p in peer.replication_problems(check.max_lag) {
            no.push(format!("the peer is not an eligible standby: {p}"));
        }
        // This node is up: the peer must be receiving from it now, or the promotion's
        // catch-up could not finish and the peer would stay read-only.
        if let Some(r) = &peer.replica {
            if r.io_running != ThreadState::Yes {
                no.push(format!(
                    "the peer is not receiving from this node (IO thread {:?}{})",
                    r.io_running,
                    if r.last_io_error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.last_io_error)
                    }
                ));
            }
            if local.server_id.is_some() && r.source_server_id != local.server_id {
                no.push(format!(
                    "the peer replicates from server {}, not from this node (server {})",
                    r.source_server_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "?".into()),
                    local.server_id.unwrap_or(0)
                ));
            }
        }
        if local.reachable() {
            match compare_with_peer(check, notify) {
                Ok(c) if c.clean() => {}
                Ok(c) => no.push(format!("diverged: the peer {}", c.describe())),
                Err(e) => no.push(format!("cannot compare GTID positions: {e}")),
            }
        }
    }
    (no, Some(local), Some(peer))
}

/// Transactions the peer has that this node lacks (errant on the peer, or our
/// replication from it is behind), or its own that it lost: either way, promoting it
/// would fork the data.
fn compare_with_peer(
    check: &CheckSettings,
    notify: &NotifySettings,
) -> Result<rejoin::Comparison, String> {
    let peer_login = notify.peer_login().ok_or("peer-host is not set")?;
    let t = notify.connect_timeout;
    let mut local = check.login().connect(t).map_err(|e| e.msg)?;
    let mut peer = peer_login.connect(t).map_err(|e| e.msg)?;
    rejoin::compare(&mut local, &mut peer).map_err(|e| e.msg)
}

/// Runs the switchover. `interrupted` is polled between steps.
pub fn run(
    check: &CheckSettings,
    notify: &NotifySettings,
    opts: &Options,
    log: &Logger,
    interrupted: &dyn Fn() -> bool,
) -> Report {
    let started = now_unix();
    let mut report = Report {
        outcome: Outcome::Refused,
        message: String::new(),
        started: rfc3339(started),
        timeline: Vec::new(),
        write_unavailable_ms: None,
    };
    let (no, local, peer) = refusals(check, notify);
    if !no.is_empty() {
        report.message = format!("refused: {}", no.join("; "));
        return report;
    }
    if interrupted() {
        report.outcome = Outcome::Interrupted;
        report.message = "interrupted before anything changed".into();
        return report;
    }
    let (local, peer) = (local.unwrap_or_default(), peer.unwrap_or_default());
    let vip = check.vip.expect("checked by refusals");
    let drain = &check.maintenance_file;
    let body = format!(
        "switchover by keepalived-mysql (pid {}, user {}) at {}\n",
        std::process::id(),
        crate::files::whoami(),
        rfc3339(started)
    );
    // create_new: two operators starting a switchover at once cannot both own it.
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(drain)
        .and_then(|mut f| f.write_all(body.as_bytes()));
    if let Err(e) = created {
        report.message = format!(
            "refused: cannot create the drain file {}: {e}",
            drain.display()
        );
        return report;
    }
    let t0 = Instant::now();
    let step = |report: &mut Report, what: String| {
        report.timeline.push(Step {
            at_ms: t0.elapsed().as_secs_f64() * 1000.0,
            what,
        });
    };
    log.log(
        Severity::Notice,
        &format!(
            "switchover started by {}: drain file {} created; the VIP should move to server {}",
            crate::files::whoami(),
            drain.display(),
            peer.server_id.unwrap_or(0)
        ),
    );
    step(
        &mut report,
        format!("drain file created ({})", drain.display()),
    );
    let t = Duration::from_millis(300).min(notify.connect_timeout);
    let peer_login = notify.peer_login().expect("checked by refusals");
    let vip_login = notify.login_at(Endpoint::Tcp(vip, notify.port));
    let (mut vip_left, mut local_ro, mut peer_rw, mut vip_on_peer) = (false, false, false, false);
    let mut last_writable_here: Option<Instant> = local.writable().then_some(t0);
    let mut nobody_since: Option<Instant> = None;
    let deadline = t0 + opts.timeout;
    let outcome = loop {
        if interrupted() {
            break Outcome::Interrupted;
        }
        if Instant::now() >= deadline {
            break Outcome::TimedOut;
        }
        let polled = Instant::now();
        if !vip_left && !role::local_addresses().contains(&vip) {
            vip_left = true;
            step(&mut report, "the VIP left this node".into());
        }
        if !local_ro && read_server(&check.login(), t).read_only == Some(true) {
            local_ro = true;
            step(&mut report, "this node is read-only".into());
        }
        if !peer_rw && read_server(&peer_login, t).writable() {
            peer_rw = true;
            step(&mut report, "the peer is writable".into());
        }
        let v = read_server(&vip_login, t);
        if v.writable() && v.server_id.is_some() {
            if v.server_id == local.server_id {
                last_writable_here = Some(polled);
            } else if v.server_id == peer.server_id && !vip_on_peer {
                vip_on_peer = true;
                report.write_unavailable_ms = last_writable_here
                    .map(|l| polled.saturating_duration_since(l).as_secs_f64() * 1000.0);
                step(
                    &mut report,
                    "writes open on the peer through the VIP".into(),
                );
            }
        }
        if vip_left && local_ro && peer_rw && vip_on_peer {
            break Outcome::Done;
        }
        // The VIP left but nobody took it: do not leave the pair without a writer for
        // the rest of the wait; undo the drain so this node takes it back.
        if vip_left && !vip_on_peer {
            if v.error.is_none() {
                nobody_since = None;
            } else if polled.duration_since(*nobody_since.get_or_insert(polled)) >= NOBODY_LIMIT {
                step(&mut report, "nobody answers on the VIP: giving up".into());
                break Outcome::TimedOut;
            }
        }
        std::thread::sleep(POLL.saturating_sub(polled.elapsed()));
    };
    // Only our own drain file: one an operator made meanwhile is theirs to remove.
    let removed = match fs::read_to_string(drain) {
        Ok(now) if now == body => fs::remove_file(drain),
        Ok(_) => Err(std::io::Error::other(
            "it was replaced by someone else: left in place",
        )),
        Err(e) => Err(e),
    };
    step(
        &mut report,
        match &removed {
            Ok(()) => "drain file removed".into(),
            Err(e) => format!("cannot remove the drain file {}: {e}", drain.display()),
        },
    );
    report.outcome = outcome;
    report.message = match outcome {
        Outcome::Done => {
            // Without nopreempt (or with a higher priority here) keepalived would take
            // the VIP straight back once this node is eligible again: say so.
            let settle_end = Instant::now() + opts.settle;
            let mut back = false;
            while Instant::now() < settle_end && !interrupted() {
                if role::local_addresses().contains(&vip) {
                    back = true;
                    break;
                }
                std::thread::sleep(POLL);
            }
            if interrupted() && !back {
                report.outcome = Outcome::Interrupted;
                format!(
                    "the peer (server {}) holds the VIP and is writable, this node is read-only; \
                     interrupted while checking that the VIP stays there",
                    peer.server_id.unwrap_or(0)
                )
            } else if back {
                report.outcome = Outcome::TimedOut;
                step(&mut report, "the VIP came back to this node".into());
                "the VIP came back to this node once it was eligible again: keepalived \
                 preempts (set nopreempt and state BACKUP on both nodes)"
                    .to_string()
            } else {
                format!(
                    "done: server {} holds the VIP and is writable, this node is read-only{}",
                    peer.server_id.unwrap_or(0),
                    report
                        .write_unavailable_ms
                        .map(|ms| format!("; writes were unavailable for at most {ms:.0} ms"))
                        .unwrap_or_default()
                )
            }
        }
        Outcome::TimedOut => format!(
            "not completed ({}): {}; drain file removed, keepalived keeps the VIP where it is; \
             now: {}. If the VIP never left or nobody took it, is the peer's check failing \
             (its drain file, replication) or its keepalived stopped?",
            humantime::format_duration(opts.timeout),
            pending(vip_left, local_ro, peer_rw, vip_on_peer),
            now_state(check, notify, vip)
        ),
        Outcome::Interrupted => format!(
            "interrupted: {}; drain file removed; now: {}",
            pending(vip_left, local_ro, peer_rw, vip_on_peer),
            now_state(check, notify, vip)
        ),
        Outcome::Refused => unreachable!("refusals return early"),
    };
    if removed.is_err() {
        report.message.push_str(&format!(
            "; the drain file {} is still there: remove it by hand",
            drain.display()
        ));
    }
    let sev = if report.outcome == Outcome::Done {
        Severity::Notice
    } else {
        Severity::Warning
    };
    log.log(sev, &format!("switchover {}", report.message));
    report
}

/// Where the pair stands, read again: what a switchover that did not finish leaves.
fn now_state(check: &CheckSettings, notify: &NotifySettings, vip: std::net::IpAddr) -> String {
    let t = notify.connect_timeout;
    let here = role::local_addresses().contains(&vip);
    let local = read_server(&check.login(), t);
    let peer = notify
        .peer_login()
        .map(|l| read_server(&l, t))
        .unwrap_or_default();
    let ro = |v: &ServerView| match (v.read_only, &v.error) {
        (Some(true), _) => "read-only".to_string(),
        (Some(false), _) => "WRITABLE".to_string(),
        (None, Some(e)) => format!("unreadable ({e})"),
        (None, None) => "unknown".to_string(),
    };
    let mut s = format!(
        "the VIP is {}, this node is {}, the peer is {}",
        if here { "here" } else { "not here" },
        ro(&local),
        ro(&peer)
    );
    if local.writable() && peer.writable() {
        s.push_str(": DANGER, two writable nodes: make the one without the VIP read-only");
    }
    s
}

fn pending(vip_left: bool, local_ro: bool, peer_rw: bool, vip_on_peer: bool) -> String {
    let waiting: Vec<&str> = [
        (vip_left, "the VIP to leave this node"),
        (local_ro, "this node to be read-only"),
        (peer_rw, "the peer to be writable"),
        (vip_on_peer, "writes through the VIP on the peer"),
    ]
    .into_iter()
    .filter(|(done, _)| !done)
    .map(|(_, w)| w)
    .collect();
    format!("still waiting for {}", waiting.join(", "))
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    for s in &r.timeline {
        out.push_str(&format!("{:>8.0} ms  {}\n", s.at_ms, s.what));
    }
    out.push_str(&r.message);
    out.push('\n');
    out
}
