//! The check's verdict: may this node hold (or take) the VIP?

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Settings, TooManyConnections};
use crate::dialect::{Dialect, ReplicaStatus};
use crate::lock::{self, LockError};
use crate::log::{Logger, Severity};
use crate::probe::{self, Observation, Plan, ProbeError, Stage, StageCell};
use crate::restart;
use crate::role::{self, Role, RoleSource};
use crate::state::{self, now_unix, rfc3339};
use crate::verdict::Class;

pub const PROGRAM: &str = "keepalived-mysql-check";
pub const STATE_FILE: &str = "check.json";
pub const LOCK_FILE: &str = "check.lock";
/// Written by keepalived-mysql-notify.
pub const NOTIFY_STATE_FILE: &str = "notify.json";
/// A failure that persists is logged again at most this often.
const REPEAT_LOG_SECS: f64 = 60.0;
/// MariaDB/MySQL "server is running with --read-only".
const ER_OPTION_PREVENTS_STATEMENT: &str = "error 1290:";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub class: Class,
    pub code: u8,
    pub reason: String,
    pub role: Role,
    pub role_source: RoleSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicaStatus>,
    /// Things worth knowing that do not change the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub elapsed_ms: f64,
}

/// What check.json holds: the verdict plus its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckState {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub since: f64,
    pub since_rfc3339: String,
    pub checked_at: f64,
    pub last_logged: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// Since when the server has not been answering (for hold-vip-during-restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<f64>,
}

impl Verdict {
    fn new(class: Class, reason: impl Into<String>, role: (Role, RoleSource)) -> Verdict {
        Verdict {
            class,
            code: class.code(),
            reason: reason.into(),
            role: role.0,
            role_source: role.1,
            server_id: None,
            read_only: None,
            lag_seconds: None,
            replication: None,
            notes: Vec::new(),
            elapsed_ms: 0.0,
        }
    }
}

/// One run: lock, decide, log changes, record state. Never blocks on the lock and never
/// runs past `timeout` (the probe runs in a worker the deadline abandons).
pub fn run(s: &Settings, log: &Logger) -> Verdict {
    let start = Instant::now();
    let unknown_role = (Role::Standby, RoleSource::Default);
    if let Err(e) = lock::ensure_dir(&s.runtime_dir) {
        let v = Verdict::new(
            Class::Config,
            format!("runtime-dir {}: {e}", s.runtime_dir.display()),
            unknown_role,
        );
        log.log(Severity::Err, &v.reason);
        return v;
    }
    let _lock = match lock::try_lock(&s.state_path(LOCK_FILE)) {
        Ok(l) => l,
        // The run holding the lock will report; keepalived's own log shows this code.
        Err(LockError::Busy) => {
            return Verdict::new(Class::Timeout, "previous check still running", unknown_role)
        }
        Err(LockError::Io(e)) => {
            let v = Verdict::new(Class::Config, format!("lock file: {e}"), unknown_role);
            log.log(Severity::Err, &v.reason);
            return v;
        }
    };
    let prev: Option<CheckState> = state::read_json(&s.state_path(STATE_FILE));
    let role = role::detect(s.vip, &s.state_path(NOTIFY_STATE_FILE));

    let (mut verdict, dialect) = if s.maintenance_file.exists() {
        let reason = format!(
            "maintenance: drain file {} exists",
            s.maintenance_file.display()
        );
        (Verdict::new(Class::Maintenance, reason, role), None)
    } else {
        probe_within_deadline(s, role, start)
    };
    // When the server first stopped answering, whatever the verdict made of it.
    let down_since = if verdict.class.unanswered() {
        Some(
            prev.as_ref()
                .and_then(|p| p.down_since)
                .unwrap_or_else(now_unix),
        )
    } else {
        None
    };
    hold_during_restart(s, &mut verdict, down_since);
    verdict.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    record(s, log, prev, &verdict, dialect, down_since);
    verdict
}

fn probe_within_deadline(
    s: &Settings,
    role: (Role, RoleSource),
    start: Instant,
) -> (Verdict, Option<Dialect>) {
    // Leave a little of the deadline for logging and the state file.
    let margin = (s.timeout / 10).min(Duration::from_millis(100));
    let probe_deadline = start + s.timeout - margin;
    let stage = StageCell::default();
    let (tx, rx) = mpsc::channel();
    {
        let s = s.clone();
        let stage = stage.clone();
        let active = role.0 == Role::Active;
        thread::spawn(move || {
            let budget = probe_deadline.saturating_duration_since(Instant::now());
            let result = probe::connect(&s, budget).and_then(|mut conn| {
                let plan = Plan {
                    active,
                    heartbeat: s.heartbeat_table.as_ref(),
                    // Most of the deadline: a semi-synchronous master whose peer is gone
                    // stalls each commit once for rpl_semi_sync_master_timeout before
                    // falling back to asynchronous; that must not read as "blocked".
                    write_budget: s.timeout.mul_f64(0.75),
                };
                probe::observe(&mut conn, &plan, &stage)
            });
            let _ = tx.send(result);
        });
    }
    let wait = probe_deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(Ok(obs)) => {
            let dialect = obs.dialect.clone();
            (judge(s, role, obs), dialect)
        }
        Ok(Err(e)) => (from_probe_error(s, role, e), None),
        Err(_) => {
            let ms = s.timeout.as_millis();
            let v = match stage.get() {
                Stage::WriteProbe => Verdict::new(
                    Class::WritesBlocked,
                    format!("write probe did not commit within {ms}ms (read lock, full disk or stalled storage?)"),
                    role,
                ),
                Stage::Connecting => Verdict::new(
                    Class::Timeout,
                    format!("no answer within {ms}ms while connecting"),
                    role,
                ),
                _ => Verdict::new(
                    Class::Timeout,
                    format!("no answer within {ms}ms to the status query"),
                    role,
                ),
            };
            (v, None)
        }
    }
}

/// With `hold-vip-during-restart = on`, the node holding the VIP stays healthy while
/// mysqld comes back (the classic behaviour), for up to `ready-timeout` from the first
/// failure: the check (every second) sees a dead server before the restart hook (every
/// few seconds) has recorded its restart, so the hold starts at the failure, not at the
/// restart. No hold once the restart hook gave up, and never on a standby: a node whose
/// server is restarting must not be offered the VIP.
fn hold_during_restart(s: &Settings, v: &mut Verdict, down_since: Option<f64>) {
    if v.role != Role::Active || !v.class.unanswered() {
        return;
    }
    let st = restart::load(s);
    let now = now_unix();
    let deadline = if st.phase == restart::Phase::GaveUp {
        return;
    } else if st.hold_vip && st.in_flight(now) {
        st.ready_deadline.unwrap_or(now)
    } else if s.hold_vip_during_restart {
        down_since.unwrap_or(now) + s.ready_timeout.as_secs_f64()
    } else {
        return;
    };
    if now < deadline {
        v.notes.push(format!("{} ({})", v.reason, v.class.name()));
        v.class = Class::Ok;
        v.code = 0;
        v.reason = format!(
            "mysqld restarting, VIP held until {} (hold-vip-during-restart = on)",
            rfc3339(deadline)
        );
    }
}

fn from_probe_error(s: &Settings, role: (Role, RoleSource), e: ProbeError) -> Verdict {
    if e.class == Class::Saturated && s.on_too_many_connections == TooManyConnections::Healthy {
        // Alive but saturated: the peer would be swamped by the same clients, so moving
        // the VIP would not help.
        let mut v = Verdict::new(
            Class::Ok,
            "alive but saturated (on-too-many-connections = healthy)",
            role,
        );
        v.notes.push(e.msg);
        return v;
    }
    Verdict::new(e.class, e.msg, role)
}

/// The rules, given what the probe saw.
pub fn judge(s: &Settings, role: (Role, RoleSource), obs: Observation) -> Verdict {
    let mut v = Verdict::new(Class::Ok, "", role);
    v.server_id = Some(obs.server_id);
    v.read_only = Some(obs.read_only);
    v.replication = obs.replica.clone();
    let fail = |mut v: Verdict, class: Class, reason: String| {
        v.class = class;
        v.code = class.code();
        v.reason = reason;
        v
    };

    if role.0 == Role::Active {
        if let Some(r) = &obs.replica {
            // Replication trouble on the active node is the standby's problem to report:
            // failing here would move the VIP to the node that is behind.
            v.notes.extend(r.sql_problem());
            v.notes.extend(r.io_problem());
        }
        match &obs.write {
            Some(Err(msg)) if obs.read_only && msg.contains(ER_OPTION_PREVENTS_STATEMENT) => {
                // notify keeps a promoted node read-only until it has caught up (and may
                // keep it so by policy); moving the VIP away would not make it writable.
                v.notes
                    .push("read_only=ON on the node holding the VIP: writes not opened".into());
            }
            Some(Err(msg)) => return fail(v, Class::WritesBlocked, msg.clone()),
            Some(Ok(())) if obs.read_only => v
                .notes
                .push("read_only=ON on the node holding the VIP".into()),
            _ => {}
        }
        v.reason = if obs.write.is_some() {
            "active: server answers and commits".into()
        } else {
            "active: server answers (heartbeat disabled: no write probe)".into()
        };
        return v;
    }

    let Some(r) = &obs.replica else {
        return fail(
            v,
            Class::Replication,
            "standby has no replication configured: its data cannot be current".into(),
        );
    };
    if let Some(p) = r.sql_problem() {
        return fail(v, Class::Replication, p);
    }
    if let Some(p) = r.io_problem() {
        return fail(v, Class::Replication, p);
    }
    if !obs.read_only {
        v.notes
            .push("read_only=OFF on a node without the VIP (demotion not done?)".into());
    }
    let caught_up = r.applied_all_received();
    let lag = match (s.heartbeat_table.is_some(), obs.heartbeat_age) {
        (true, Some(age)) => Some(age),
        _ => r.seconds_behind.map(|x| x as f64),
    };
    v.lag_seconds = lag;
    v.notes.extend(obs.heartbeat_note.clone());
    if r.io_running != crate::dialect::ThreadState::Yes {
        v.notes
            .push("replication IO thread is not connected to the peer".into());
    }
    let max = s.max_lag.as_secs_f64();
    match lag {
        Some(l) if l > max && !caught_up => {
            return fail(
                v,
                Class::Lag,
                format!("replication lag {l:.1}s over max-lag {max}s with unapplied events"),
            )
        }
        // A heartbeat ages without lag when the peer stops writing it (down, demoted):
        // having applied everything received is what matters then.
        Some(l) if l > max => v.notes.push(
            "heartbeat is old but everything received is applied: the peer stopped writing it"
                .into(),
        ),
        _ => {}
    }
    v.reason = "standby: replication running".into();
    v
}

fn record(
    s: &Settings,
    log: &Logger,
    prev: Option<CheckState>,
    v: &Verdict,
    dialect: Option<Dialect>,
    down_since: Option<f64>,
) {
    let now = now_unix();
    let changed = prev.as_ref().is_none_or(|p| p.verdict.class != v.class);
    let notes_changed = prev.as_ref().is_none_or(|p| p.verdict.notes != v.notes);
    let last_logged = prev.as_ref().map(|p| p.last_logged).unwrap_or(0.0);
    let repeat = v.class != Class::Ok && now - last_logged >= REPEAT_LOG_SECS;
    let since = match &prev {
        Some(p) if !changed => p.since,
        _ => now,
    };
    let mut logged = last_logged;
    if changed || repeat || notes_changed {
        let (sev, msg) = if v.class == Class::Ok {
            (
                Severity::Notice,
                format!("healthy ({}): {}", role_word(v), v.reason),
            )
        } else if changed {
            (
                Severity::Err,
                format!(
                    "FAIL {} (exit {}, {}): {}",
                    v.class.name(),
                    v.code,
                    role_word(v),
                    v.reason
                ),
            )
        } else if repeat {
            (
                Severity::Err,
                format!(
                    "still failing since {}: {} (exit {}): {}",
                    rfc3339(since),
                    v.class.name(),
                    v.code,
                    v.reason
                ),
            )
        } else {
            (
                Severity::Warning,
                format!("{} ({})", v.reason, role_word(v)),
            )
        };
        let msg = if v.notes.is_empty() {
            msg
        } else {
            format!("{msg}; {}", v.notes.join("; "))
        };
        log.log(sev, &msg);
        logged = now;
    }
    let st = CheckState {
        verdict: v.clone(),
        since,
        since_rfc3339: rfc3339(since),
        checked_at: now,
        last_logged: logged,
        // Keep the last known server version across failures, for humans.
        dialect: dialect.or_else(|| prev.and_then(|p| p.dialect)),
        down_since,
    };
    let _ = state::write_json(&s.state_path(STATE_FILE), &st);
}

fn role_word(v: &Verdict) -> &'static str {
    match v.role {
        Role::Active => "active",
        Role::Standby => "standby",
    }
}

/// The Nagios plugin line: status, text, perfdata.
pub fn nagios_line(s: &Settings, v: &Verdict) -> String {
    let status = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][v.class.nagios() as usize];
    let mut perf = format!("time={:.3}s;;;0", v.elapsed_ms / 1000.0);
    if let Some(l) = v.lag_seconds {
        perf.push_str(&format!(" lag={l:.3}s;{};;0", s.max_lag.as_secs_f64()));
    }
    format!("KEEPALIVED-MYSQL {status} - {} | {perf}", text_reason(v))
}

pub fn text_line(v: &Verdict) -> String {
    format!("{} ({}): {}", v.class.name(), role_word(v), text_reason(v))
}

fn text_reason(v: &Verdict) -> String {
    if v.notes.is_empty() {
        v.reason.clone()
    } else {
        format!("{} ({})", v.reason, v.notes.join("; "))
    }
}
