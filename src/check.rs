//! The check's verdict: may this node hold (or take) the VIP?

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::command;
use crate::config::{CheckSettings, Program, TooManyConnections};
use crate::connection::ConnError;
use crate::dialect::{Dialect, ThreadState};
use crate::lock::{self, LockError};
use crate::log::{self, Logger, Severity};
use crate::probe::{self, Observation, Plan, SemiSync, Stage, StageCell};
use crate::reach::{self, Reach};
use crate::role::{self, Role, RoleSource};
use crate::state::check::CheckState;
use crate::state::restart::Phase;
use crate::state::{self, now_unix, rfc3339};
use crate::verdict::{Class, Verdict};

pub const PROGRAM: &str = CheckSettings::GROUP;
pub const LOCK_FILE: &str = "check.lock";
/// Observer runs (`--format text|json|nagios`) serialize on their own lock, never on
/// keepalived's: a monitor can then never make keepalived's run wait or fail.
pub const OBSERVER_LOCK_FILE: &str = "check-observer.lock";
/// A standby seen writable on two runs in a row is demoted again at most this often.
const REDEMOTE_EVERY_SECS: f64 = 10.0;
/// The warning, word for word: `record` finds it in the previous verdict.
pub const SEMI_SYNC_FALLBACK: &str = "semi-sync is enabled but has fallen back to \
     asynchronous replication (Rpl_semi_sync_master_status OFF): commits no longer wait \
     for the peer, so a failover now can lose acknowledged writes";
/// MariaDB/MySQL "server is running with --read-only".
const ER_OPTION_PREVENTS_STATEMENT: &str = "error 1290:";

/// Who runs the check. Only keepalived's runs decide, log and record; runs for humans
/// and monitors observe, on a lock of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `--format quiet` (the default) with stdout not a terminal: keepalived's
    /// vrrp_script (or a script or cron job running it that way: those serialize with
    /// keepalived's runs, so pollers should use a `--format`).
    Keepalived,
    /// `--format text|json|nagios`, or typed at a terminal: prints its own live
    /// verdict, changes nothing.
    Observer,
}

/// One run: lock, decide, and (keepalived's runs only) log changes and record state.
/// A busy lock is waited for within the run's own deadline, never longer: the probe
/// then gets what is left. `file_args` are passed on to a demotion the check starts.
pub fn run(s: &CheckSettings, log: &Logger, caller: Caller, file_args: &[String]) -> Verdict {
    let v = decide(s, log, caller, file_args);
    if caller == Caller::Keepalived {
        publish_metrics(s, log, &v);
    }
    v
}

/// Writes `metrics-file` for this run. A failure is logged once a minute at most (a
/// textfile directory the script user may not write is a setup error that would
/// otherwise fill the log), and never changes the verdict.
fn publish_metrics(s: &CheckSettings, log: &Logger, v: &Verdict) {
    let Some(path) = &s.metrics_file else {
        return;
    };
    let restart = state::restart::file(s).load();
    let notify = state::notify::file(s).load();
    let text = crate::metrics::render(v, restart.as_ref(), notify.as_ref(), now_unix());
    if let Err(e) = crate::metrics::write(path, &text) {
        let mark = s.state_path("metrics-error");
        let last = std::fs::metadata(&mark)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        if log::due_again(last, now_unix()) {
            log.log(Severity::Err, &format!("metrics-file: {e}"));
            let _ = crate::state::write_atomic(&mark, b"", 0o644);
        }
    }
}

fn decide(s: &CheckSettings, log: &Logger, caller: Caller, file_args: &[String]) -> Verdict {
    let start = Instant::now();
    let deadline = probe_deadline(s, start);
    let unknown_role = (Role::Standby, RoleSource::Default);
    let config_error = |msg: String| {
        let v = Verdict::new(Class::Config, msg, unknown_role);
        log.log(Severity::Err, &v.reason);
        v
    };
    if caller == Caller::Keepalived {
        if let Err(e) = lock::ensure_dir(&s.runtime_dir).and_then(|()| log.check_usable()) {
            return config_error(e);
        }
    }
    let (lock_file, mode) = match caller {
        Caller::Keepalived => (LOCK_FILE, lock::PRIVATE),
        Caller::Observer => (OBSERVER_LOCK_FILE, lock::OBSERVERS),
    };
    if caller == Caller::Keepalived && !s.state_path(OBSERVER_LOCK_FILE).exists() {
        // Made here, readable by all, so that observers of any user serialize on it.
        let _ = lock::lock_within(
            &s.state_path(OBSERVER_LOCK_FILE),
            &s.runtime_dir,
            lock::OBSERVERS,
            start,
        );
    }
    // Beside the lock wait and the server request, never after them.
    // Not the peer's MySQL port: a connection dropped before the handshake every
    // second counts against max_connect_errors there and would get this host blocked.
    // Nor an address of this host (see reach::beyond_this_host).
    let reach = (!s.witnesses.is_empty()).then(|| {
        reach::start(
            &reach::beyond_this_host(&s.witnesses),
            deadline.saturating_duration_since(Instant::now()),
        )
    });
    let lock = match lock::lock_within(&s.state_path(lock_file), &s.runtime_dir, mode, deadline) {
        Ok(l) => Some(l),
        Err(LockError::Busy) => {
            // The holder has been waiting on the server for our whole deadline: that
            // run reports the hung server itself.
            let ms = s.timeout.as_millis();
            return Verdict::new(
                Class::Timeout,
                format!(
                    "another check held {lock_file} for the whole {ms}ms deadline (server hung?)"
                ),
                unknown_role,
            );
        }
        Err(LockError::Io(e)) if caller == Caller::Keepalived => return config_error(e),
        // An observer that may not use the runtime dir (not made yet) still gets its
        // own answer: it cannot affect keepalived's runs either way.
        Err(LockError::Io(_)) => None,
    };
    let lock_wait = start.elapsed();
    // Held until the process exits, not until this function returns: a probe thread
    // abandoned at the deadline keeps its connection open until then, and the next run
    // must not connect beside it.
    std::mem::forget(lock);
    let prev: Option<CheckState> = state::check::file(s).load();
    let role = role::detect(s);

    let (mut verdict, dialect) = if s.maintenance_file.exists() {
        let reason = format!(
            "maintenance: drain file {} exists",
            s.maintenance_file.display()
        );
        (Verdict::new(Class::Maintenance, reason, role), None)
    } else {
        probe_within_deadline(s, role, deadline, reach.clone())
    };
    if lock_wait >= Duration::from_millis(10) && verdict.class != Class::Ok {
        verdict.notes.push(format!(
            "{} ms of the deadline went waiting for {lock_file}",
            lock_wait.as_millis()
        ));
    }
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
    if verdict.role == Role::Active {
        note_peer_channel(s, &mut verdict);
    }
    let (reached_at, isolated) = match reach {
        Some(p) => isolation(
            s,
            p.wait(deadline),
            prev.as_ref().and_then(|p| p.reached_at),
        ),
        None => (None, None),
    };
    let unheld = verdict.clone();
    let held = hold_during_restart(s, &mut verdict, down_since);
    // Last: neither a healthy server nor a restart hold keeps an isolated node eligible.
    match isolated {
        Some(Ok(reason)) if verdict.class == Class::Ok => {
            verdict.class = Class::Isolated;
            verdict.code = Class::Isolated.code();
            verdict.reason = reason;
        }
        Some(Ok(reason)) | Some(Err(reason)) => verdict.notes.push(reason),
        None => {}
    }
    verdict.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    if caller == Caller::Observer {
        return verdict;
    }
    let (writable_since, redemoted_at) = redemote_writable_standby(log, &prev, &verdict, file_args);
    let (fenced_since, reasserted_at) = reassert_fenced_master(s, log, &prev, &verdict, file_args);
    let next = CheckState {
        verdict: verdict.clone(),
        since: 0.0,
        since_rfc3339: String::new(),
        checked_at: now_unix(),
        last_logged: 0.0,
        dialect,
        down_since,
        writable_since,
        redemoted_at,
        reached_at,
        fenced_since,
        reasserted_at,
        semi_sync_fallback_since: None,
    };
    if let Err(e) = record(s, log, prev.clone(), next) {
        let mut msg = format!("cannot record the check state: {e}");
        if held {
            // Without a recorded start, every run would think the outage just began
            // and hold the VIP forever: no hold without a record.
            msg.push_str(": hold-vip-during-restart ends");
        }
        log.log(Severity::Err, &msg);
        if held {
            let mut v = unheld;
            v.notes.push(msg);
            v.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
            return v;
        }
    }
    verdict
}

/// The probe's share of the deadline: a little is left for logging and the state file.
fn probe_deadline(s: &CheckSettings, start: Instant) -> Instant {
    let margin = (s.timeout / 10).min(Duration::from_millis(100));
    start + s.timeout - margin
}

/// A node without the VIP must be read-only. Seen writable on two runs in a row (one
/// sighting can be a demotion under way), the notify hook died, was killed or failed:
/// start it again, detached, at most every 10 s. The check itself never writes here.
fn redemote_writable_standby(
    log: &Logger,
    prev: &Option<CheckState>,
    v: &Verdict,
    file_args: &[String],
) -> (Option<f64>, Option<f64>) {
    let definite = v.role_source != RoleSource::Default;
    if !(v.role == Role::Standby && definite && v.read_only == Some(false)) {
        return (None, None);
    }
    let now = now_unix();
    let prev_since = prev.as_ref().and_then(|p| p.writable_since);
    let last = prev.as_ref().and_then(|p| p.redemoted_at);
    let since = prev_since.unwrap_or(now);
    // A clock stepped back (last in the future) does not suppress it.
    let recent = last.is_some_and(|t| t <= now && now - t < REDEMOTE_EVERY_SECS);
    if prev_since.is_none() || recent {
        return (Some(since), last);
    }
    ask_notify(
        log,
        file_args,
        "backup",
        &format!(
            "read_only=OFF on a node without the VIP since {}",
            rfc3339(since)
        ),
        "demoting it again",
    );
    (Some(since), Some(now))
}

/// Starts `keepalived-mysql-notify --from-check EVENT` detached, and logs `what` was
/// seen and `action` (or that it could not start).
fn ask_notify(log: &Logger, file_args: &[String], event: &str, what: &str, action: &str) {
    let mut args = file_args.to_vec();
    args.extend(["--from-check".to_string(), event.to_string()]);
    let msg = match command::spawn_sibling(crate::notify::PROGRAM, &args) {
        Ok(argv) => format!("{what}: {action} ({})", command::display(&argv)),
        Err(e) => format!("{what}, and the notify hook cannot start: {e}"),
    };
    log.log(Severity::Err, &msg);
}

/// The VIP holder found read-only although its last promotion opened writes: its
/// peer's promotion fenced it during a split, and after the heal keepalived kept this
/// node MASTER without a new event (its peer yielded before this node heard it). After
/// 2 s the notify hook is asked to promote again, at most every 10 s; it does so only
/// if the peer is read-only too (nobody writes). Reads notify.json only in that state.
fn reassert_fenced_master(
    s: &CheckSettings,
    log: &Logger,
    prev: &Option<CheckState>,
    v: &Verdict,
    file_args: &[String],
) -> (Option<f64>, Option<f64>) {
    if !(v.role == Role::Active && v.role_source == RoleSource::Vip && v.read_only == Some(true)) {
        return (None, None);
    }
    let opened_here = state::notify::file(s)
        .load()
        .is_some_and(|r| r.state.eq_ignore_ascii_case("MASTER") && r.read_only == Some(false));
    if !opened_here {
        return (None, None);
    }
    let now = now_unix();
    let since = prev.as_ref().and_then(|p| p.fenced_since).unwrap_or(now);
    let last = prev.as_ref().and_then(|p| p.reasserted_at);
    let recent = last.is_some_and(|t| t <= now && now - t < REDEMOTE_EVERY_SECS);
    if now - since < 2.0 || recent {
        return (Some(since), last);
    }
    ask_notify(
        log,
        file_args,
        "master",
        &format!(
            "read_only=ON on the VIP holder since {} although writes were opened here \
             (fenced by the peer?)",
            rfc3339(since)
        ),
        "asking the notify hook to promote again",
    );
    (Some(since), Some(now))
}

fn probe_within_deadline(
    s: &CheckSettings,
    role: (Role, RoleSource),
    probe_deadline: Instant,
    reach: Option<reach::Pending>,
) -> (Verdict, Option<Dialect>) {
    let stage = StageCell::default();
    let (tx, rx) = mpsc::channel();
    {
        let s = s.clone();
        let stage = stage.clone();
        let active = role.0 == Role::Active;
        thread::spawn(move || {
            let budget = probe_deadline.saturating_duration_since(Instant::now());
            let result = s.login().connect(budget).and_then(|mut conn| {
                // The active node writes its heartbeat only once something beyond it
                // answered: on a healthy network that answer is in before the login.
                // A short wait only: on a healthy network the answer is in long before
                // this; without one, no heartbeat this run, and the verdict is the main
                // thread's (isolated or not), never a timeout of this probe.
                let gate = (Instant::now() + Duration::from_millis(100)).min(probe_deadline);
                let may_write =
                    !active || reach.is_none_or(|r| matches!(r.wait(gate), Reach::Reached(_)));
                let plan = Plan {
                    active,
                    may_write,
                    heartbeat: s.heartbeat_table.as_ref(),
                    // Most of the deadline: a semi-synchronous master whose peer is gone
                    // stalls each commit once for rpl_semi_sync_master_timeout before
                    // falling back to asynchronous; that must not read as "blocked".
                    // Of what is left: time spent waiting for the lock is not the
                    // server's to lose.
                    write_budget: s.timeout.mul_f64(0.75).min(budget.mul_f64(0.85)),
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
/// restart. Only for a server that is dead (cannot connect) or that the restart hook is
/// restarting: a hung one (accepts, never answers) is never restarted, so holding would
/// only delay the failover. No hold once the restart hook gave up, and never on a
/// standby: a node whose server is restarting must not be offered the VIP.
/// Returns whether it held.
fn hold_during_restart(s: &CheckSettings, v: &mut Verdict, down_since: Option<f64>) -> bool {
    if v.role != Role::Active || !v.class.unanswered() {
        return false;
    }
    let st = state::restart::file(s).load().unwrap_or_default();
    let now = now_unix();
    let restarting = st.in_flight(now);
    if st.phase == Phase::GaveUp || (v.class != Class::Down && !restarting) {
        return false;
    }
    // The setting as this program reads it is the one source of truth; the restart
    // hook's record only says whether a restart is in flight, and until when.
    if !s.hold_vip_during_restart {
        return false;
    }
    let deadline = match (restarting, st.ready_deadline) {
        (true, Some(d)) => d,
        _ => down_since.unwrap_or(now) + s.ready_timeout.as_secs_f64(),
    };
    if now >= deadline {
        return false;
    }
    v.notes.push(format!("{} ({})", v.reason, v.class.name()));
    v.class = Class::Ok;
    v.code = 0;
    v.reason = format!(
        "mysqld restarting, VIP held until {} (hold-vip-during-restart = on)",
        rfc3339(deadline)
    );
    true
}

fn from_probe_error(s: &CheckSettings, role: (Role, RoleSource), e: ConnError) -> Verdict {
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
pub fn judge(s: &CheckSettings, role: (Role, RoleSource), obs: Observation) -> Verdict {
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
        // Before any verdict: a run that fails for another reason still saw it.
        v.semi_sync = obs.semi_sync;
        v.notes.extend(obs.semi_sync_note.clone());
        if obs.semi_sync.is_some_and(SemiSync::fallen_back) {
            v.warnings.push(SEMI_SYNC_FALLBACK.into());
        }
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

    if let Some(gtids) = &obs.diverged {
        return fail(
            v,
            Class::Diverged,
            format!(
                "DIVERGED: the active node marked this node ({gtids}): it holds transactions \
                 the active node never applied, or lacks its own that the active node applied; \
                 not eligible until repaired (re-clone it; see keepalived-mysql-notify(8), REJOIN)"
            ),
        );
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
    // A channel the rejoin stopped decides, whatever error the IO thread last had (a
    // stop while it retried a dead peer keeps that connection error, which alone would
    // pass as "the peer is unreachable"). Held, unverified: this node does not fetch
    // the peer's writes, so it may not take over. Stopped because the peer DIVERGED,
    // and the peer told (the marker this node wrote fails its check): this node holds
    // the good copy and stays eligible, or neither node could serve; its promotion
    // opens only beside an unchanged, fenced peer. Read only while the thread is down.
    let held = (r.io_running == ThreadState::No)
        .then(|| state::notify::file(s).load().and_then(|n| n.peer_channel))
        .flatten()
        .filter(|c| c.state != "resumed");
    match held {
        // Held while the peer was gone (the IO thread was retrying it), and no
        // verification has reached it since: nothing to fetch, and the survivor must be
        // able to take over again (after a keepalived restart, say).
        Some(c)
            if c.state == "held"
                && !c.peer_answered
                && r.last_io_errno != 0
                && r.io_problem().is_none() =>
        {
            v.notes.push(format!(
                "replication from the peer held since the promotion at {}; the peer has \
                 not answered since (nothing to fetch)",
                rfc3339(c.since)
            ));
        }
        Some(c) if c.state == "diverged" && c.marked => {
            let extra = c.peer_extra.unwrap_or_default();
            v.notes.push(format!(
                "replication from the peer held: it DIVERGED ({extra}); this node stays \
                 eligible, the peer is not until repaired"
            ));
            v.peer_diverged = Some(extra);
        }
        Some(c) => {
            return fail(
                v,
                Class::Replication,
                format!(
                    "replication from the peer {} since the promotion at {}: this node does \
                     not fetch the peer's writes, so it is not an eligible standby until the \
                     peer is verified (see keepalived-mysql-notify(8), REJOIN)",
                    c.state,
                    rfc3339(c.since)
                ),
            )
        }
        None => {
            if let Some(p) = r.io_problem() {
                return fail(v, Class::Replication, p);
            }
        }
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
    v.heartbeat_age_seconds = obs.heartbeat_age;
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

/// The last time anything beyond this node answered, and what this run makes of it:
/// `Ok(reason)` isolated, `Err(note)` not reached but not isolated yet. With no earlier
/// success on record, one failed round is enough: nothing shows the network ever worked.
fn isolation(
    s: &CheckSettings,
    r: Reach,
    last: Option<f64>,
) -> (Option<f64>, Option<Result<String, String>>) {
    let now = now_unix();
    let why = match r {
        Reach::Reached(_) => return (Some(now), None),
        Reach::Unreachable(why) => why.join("; "),
    };
    let limit = s.isolation_timeout.as_secs_f64();
    let for_s = last.map(|t| (now - t).max(0.0));
    let verdict = match for_s {
        Some(f) if f < limit => Err(format!(
            "reached no witness for {f:.1}s (isolated at {limit:.0}s): {why}"
        )),
        _ => Ok(format!(
            "isolated: reached no witness {}: {why}; an isolated node \
             must not hold or take the VIP",
            match for_s {
                Some(f) => format!("for {f:.1}s"),
                None => "(and no earlier success on record)".into(),
            }
        )),
    };
    (last, Some(verdict))
}

/// On the active node whose channel from the peer is stopped: says why, if a promotion
/// held it (see `rejoin`). Reads notify.json only then, so a healthy pair pays nothing.
fn note_peer_channel(s: &CheckSettings, v: &mut Verdict) {
    if !v
        .replication
        .as_ref()
        .is_some_and(|r| r.io_running == ThreadState::No)
    {
        return;
    }
    let Some(ch) = state::notify::file(s).load().and_then(|r| r.peer_channel) else {
        return;
    };
    let why = match ch.state.as_str() {
        "diverged" => {
            let extra = ch.peer_extra.unwrap_or_else(|| "?".into());
            let note = format!(
                "peer DIVERGED: it has transactions never applied here ({extra}); replication \
                 from it stays stopped until they are discarded or applied by hand"
            );
            v.peer_diverged = Some(extra);
            note
        }
        "held" => format!(
            "replication from the peer held since the promotion at {} until the peer is \
             verified",
            rfc3339(ch.since)
        ),
        _ => return,
    };
    v.notes.retain(|n| n != "replication IO thread stopped");
    v.notes.push(why);
}

/// Logs a change (and a persisting failure once a minute) and writes check.json.
/// `next` comes with the verdict and the trackers; history fields are filled here.
fn record(
    s: &CheckSettings,
    log: &Logger,
    prev: Option<CheckState>,
    mut next: CheckState,
) -> Result<(), String> {
    let v = &next.verdict;
    let now = next.checked_at;
    let changed = prev.as_ref().is_none_or(|p| p.verdict.class != v.class);
    let notes_changed = prev.as_ref().is_none_or(|p| p.verdict.notes != v.notes);
    let last_logged = prev.as_ref().map(|p| p.last_logged).unwrap_or(0.0);
    let repeat = v.class != Class::Ok && log::due_again(last_logged, now);
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
    next.semi_sync_fallback_since = warning_transitions(
        s,
        log,
        prev.as_ref().and_then(|p| p.semi_sync_fallback_since),
        v,
        now,
    );
    next.since = since;
    next.since_rfc3339 = rfc3339(since);
    next.last_logged = logged;
    // Keep the last known server version across failures, for humans.
    if next.dialect.is_none() {
        next.dialect = prev.and_then(|p| p.dialect);
    }
    state::check::file(s).save(&next)
}

/// The semi-sync warning is logged and alerted once when it appears, and once when it
/// clears; returns since when it holds. Only a run that saw the server clears it: a
/// failed run knows nothing of it, and a standby has nothing to fall back from.
fn warning_transitions(
    s: &CheckSettings,
    log: &Logger,
    since: Option<f64>,
    v: &Verdict,
    now: f64,
) -> Option<f64> {
    let is = v.warnings.iter().any(|w| w == SEMI_SYNC_FALLBACK);
    // Seen only when the status was read (an active node's run that got that far), or
    // on a standby, which has nothing to fall back from.
    let saw = v.semi_sync.is_some() || (v.role == Role::Standby && v.server_id.is_some());
    let (sev, event, msg) = match (since, is) {
        (Some(t), true) => return Some(t),
        (None, false) => return None,
        (Some(t), false) if !saw => return Some(t),
        (None, true) => (
            Severity::Warning,
            "semi-sync-fallback",
            format!("WARNING: {SEMI_SYNC_FALLBACK}"),
        ),
        (Some(_), false) if v.role == Role::Standby => (
            Severity::Notice,
            "semi-sync-recovered",
            "semi-sync warning cleared: this node is a standby now".to_string(),
        ),
        (Some(_), false) if v.semi_sync.is_some_and(|s| !s.enabled) => (
            Severity::Notice,
            "semi-sync-recovered",
            "semi-sync warning cleared: semi-sync is disabled now".to_string(),
        ),
        (Some(_), false) => (
            Severity::Notice,
            "semi-sync-recovered",
            "semi-sync recovered: commits wait for the peer's acknowledgement again".to_string(),
        ),
    };
    log.log(sev, &msg);
    crate::alert::raise(
        &s.common,
        log,
        PROGRAM,
        event,
        &msg,
        serde_json::json!({ "semi_sync": v.semi_sync }),
    );
    is.then_some(now)
}

fn role_word(v: &Verdict) -> &'static str {
    match v.role {
        Role::Active => "active",
        Role::Standby => "standby",
    }
}

/// The Nagios plugin line: status, text, perfdata.
pub fn nagios_line(s: &CheckSettings, v: &Verdict) -> String {
    let status = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][v.nagios() as usize];
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
    let mut out = v.reason.clone();
    if !v.notes.is_empty() {
        out = format!("{out} ({})", v.notes.join("; "));
    }
    for w in &v.warnings {
        out = format!("{out}; WARNING: {w}");
    }
    out
}
