//! Restart-then-stop: bring a dead mysqld back once, wait until it really serves, and
//! if it cannot, withdraw this node (stop keepalived) so the VIP moves.
//!
//! Every invocation is short and idempotent. The whole story lives in a small state
//! machine in `runtime-dir/restart.json` (written atomically), so a run killed at any
//! point leaves a state the next run understands:
//!
//! ```text
//! idle --(server down, budget left)--> restarting --(serves again)--> idle
//!                                          |
//!   (budget exhausted) ---------------> gave-up <--(not ready by ready-timeout)
//! ```
//!
//! The attempt is recorded *before* the restart command starts: a run killed in between
//! costs at most one restart that never happened (caught by ready-timeout), never a
//! second restart.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::alert;
use crate::command;
use crate::config::{Program, RestartSettings, SYSTEMCTL};
use crate::connection::classify;
use crate::lock::{self, LockError};
use crate::log::{Logger, Severity};
use crate::state::restart::{Phase, RestartState};
use crate::state::{self, now_unix, rfc3339};
use crate::verdict::Class;

pub const PROGRAM: &str = RestartSettings::GROUP;
pub const LOCK_FILE: &str = "restart.lock";

/// What one invocation did; its exit code tells keepalived's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answers (or is alive but hung: not ours to kill).
    Serving,
    /// A restart is in flight (issued now or earlier).
    Restarting,
    /// This node gave up: the stop action has been issued.
    GaveUp,
    /// Another copy holds the lock.
    Busy,
    /// The attempt could not be recorded (runtime dir not writable): no restart issued.
    Unrecorded,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Serving => 0,
            Outcome::Restarting | Outcome::Busy => 20,
            Outcome::GaveUp => 21,
            Outcome::Unrecorded => 22,
        }
    }
}

/// Whether the server answers. Only "cannot connect" counts as dead: a server that
/// accepts but does not answer may be in crash recovery or a long flush, and killing it
/// is a human's call (the check moves the VIP meanwhile). Access denied or too many
/// connections also prove it is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Serving,
    /// Answers, but refuses us or answers badly: alive, so not ours to restart.
    Refusing(String),
    Hung(String),
    Dead(String),
}

pub fn liveness(s: &RestartSettings) -> Liveness {
    match s
        .login()
        .connect(s.connect_timeout)
        .and_then(|mut c| c.query("SELECT 1").map(|_| ()).map_err(|e| classify(&e)))
    {
        Ok(()) => Liveness::Serving,
        Err(e) if e.class == Class::Down => Liveness::Dead(e.msg),
        Err(e) if e.class == Class::Timeout => Liveness::Hung(e.msg),
        Err(e) => Liveness::Refusing(format!("{} ({})", e.msg, e.class.name())),
    }
}

/// `file_args`: our option-file flags, passed on to the notify hook when a restarted
/// server on the node holding the VIP must be promoted again.
pub fn run(s: &RestartSettings, log: &Logger, file_args: &[String]) -> Result<Outcome, String> {
    lock::ensure_dir(&s.runtime_dir)?;
    log.check_usable()?;
    // Single flight: a copy that finds the lock held reports what that one recorded.
    let _lock = match lock::try_lock(&s.state_path(LOCK_FILE), &s.runtime_dir) {
        Ok(l) => l,
        Err(LockError::Busy) => return Ok(Outcome::Busy),
        Err(LockError::Io(e)) => return Err(e),
    };
    let mut st = state::restart::file(s).load().unwrap_or_default();
    let now = now_unix();
    let window = s.restart_window.as_secs_f64();
    st.attempts.retain(|t| now - t < window);

    let live = liveness(s);
    if let Liveness::Refusing(why) = &live {
        log.log_persisting(
            &mut st.last_logged,
            now,
            Severity::Warning,
            &format!("mysqld answers but refuses us: alive, not restarting it: {why}"),
        );
    }
    if let Liveness::Serving | Liveness::Refusing(_) = live {
        if st.phase != Phase::Idle {
            let took = st.restart_issued.map(|t| now - t).unwrap_or(0.0);
            let msg = match st.phase {
                Phase::Restarting => format!("mysqld serves again {took:.1}s after the restart"),
                _ => "mysqld serves again after this node gave up; budget kept (--reset clears it)"
                    .into(),
            };
            log.log(Severity::Notice, &msg);
            if st.phase == Phase::Restarting && holds_vip(s) {
                repromote(log, file_args);
            }
            st.phase = Phase::Idle;
            st.restart_issued = None;
            st.ready_deadline = None;
            st.stop_issued = None;
            st.reason = Some(msg);
            st.last_logged = now;
        }
        save_or_log(s, log, &mut st, now);
        return Ok(Outcome::Serving);
    }
    if let Liveness::Hung(why) = &live {
        log.log_persisting(
            &mut st.last_logged,
            now,
            Severity::Warning,
            &format!("mysqld does not answer, not restarting a hung server: {why}"),
        );
        save_or_log(s, log, &mut st, now);
        return Ok(Outcome::Serving);
    }
    let Liveness::Dead(why) = live else {
        unreachable!()
    };

    match st.phase {
        Phase::Idle => {
            if st.attempts.len() as u32 >= s.max_restarts {
                let reason = format!(
                    "mysqld is down and {} restarts in the last {} used the budget (max-restarts {}): crash loop? {why}",
                    st.attempts.len(),
                    humantime::format_duration(Duration::from_secs_f64(window)),
                    s.max_restarts
                );
                return Ok(give_up(s, log, &mut st, now, reason));
            }
            let argv = match restart_argv(s) {
                Ok(a) => a,
                Err(e) => {
                    return Ok(give_up(
                        s,
                        log,
                        &mut st,
                        now,
                        format!("mysqld is down and {e}"),
                    ))
                }
            };
            st.phase = Phase::Restarting;
            st.attempts.push(now);
            st.restart_issued = Some(now);
            st.ready_deadline = Some(now + s.ready_timeout.as_secs_f64());
            st.command = Some(command::display(&argv));
            st.reason = Some(why.clone());
            st.stop_issued = None;
            // Recorded first: whatever happens next, no second restart for this attempt.
            // Not recorded, not restarted: every later run would restart it again.
            if let Err(e) = save(s, &mut st, now) {
                let msg = format!(
                    "mysqld is down ({why}) but the attempt cannot be recorded ({e}): NOT restarting it"
                );
                log.log(Severity::Err, &msg);
                alert::raise(s, log, PROGRAM, "state-unwritable", &msg, json!({}));
                return Ok(Outcome::Unrecorded);
            }
            let started = command::spawn_detached(&argv, None, &[]);
            let msg = match &started {
                Ok(pid) => format!(
                    "mysqld is down ({why}); restart {}/{} issued: {} (pid {pid})",
                    st.attempts.len(),
                    s.max_restarts,
                    command::display(&argv)
                ),
                Err(e) => format!(
                    "mysqld is down ({why}); restart command {} failed to start: {e}",
                    command::display(&argv)
                ),
            };
            log.log(Severity::Warning, &msg);
            st.last_logged = now;
            save_or_log(s, log, &mut st, now);
            Ok(Outcome::Restarting)
        }
        Phase::Restarting => {
            let deadline = st.ready_deadline.unwrap_or(now);
            if now < deadline {
                return Ok(Outcome::Restarting);
            }
            let reason = format!(
                "mysqld not serving {} after the restart ({}): {why}",
                humantime::format_duration(Duration::from_secs(s.ready_timeout.as_secs())),
                st.command.clone().unwrap_or_default()
            );
            Ok(give_up(s, log, &mut st, now, reason))
        }
        Phase::GaveUp if st.stop_issued.is_none() => {
            log.log(
                Severity::Err,
                "previous run died while giving up: issuing the stop action again",
            );
            Ok(issue_stop(s, log, &mut st, now))
        }
        Phase::GaveUp => {
            // The stop action ran; running it again would fight an operator who started
            // keepalived by hand.
            let before = st.last_logged;
            let msg = format!(
                "still down, gave up at {}: fix mysqld, then keepalived-mysql-restart --reset",
                rfc3339(st.stop_issued.unwrap_or(st.updated))
            );
            log.log_persisting(&mut st.last_logged, now, Severity::Err, &msg);
            if st.last_logged != before {
                save_or_log(s, log, &mut st, now);
            }
            Ok(Outcome::GaveUp)
        }
    }
}

/// Whether this node is the active one: the VIP when configured, else the role the
/// notify hook recorded.
fn holds_vip(s: &RestartSettings) -> bool {
    crate::role::detect(s).0 == crate::role::Role::Active
}

/// A server restarted while this node kept the VIP (hold-vip-during-restart) comes back
/// read-only, as its my.cnf says, and no VRRP transition will call the notify hook: run
/// its promotion (catch-up, then writes on) ourselves, detached, since it may wait.
fn repromote(log: &Logger, file_args: &[String]) {
    let mut args = file_args.to_vec();
    args.push("master".into());
    match command::spawn_sibling("keepalived-mysql-notify", &args) {
        Ok(_) => log.log(
            Severity::Notice,
            "this node holds the VIP: promoting the restarted server again (notify master)",
        ),
        Err(e) => log.log(Severity::Err, &e),
    }
}

/// Logs, alerts, records, and runs the stop action: the last thing this run does, since
/// stopping keepalived kills its scripts.
///
/// At least once, unlike the restart: the give-up is recorded, the stop started, and
/// only then confirmed (`stop_issued`). A run killed in between leaves an unconfirmed
/// give-up, and the next run issues the stop again: a second `systemctl stop` is
/// harmless, a missing one is not.
fn give_up(
    s: &RestartSettings,
    log: &Logger,
    st: &mut RestartState,
    now: f64,
    reason: String,
) -> Outcome {
    let stop = command::display(&s.stop_command);
    let msg = format!("{reason}; withdrawing this node: {stop}");
    log.log(Severity::Err, &msg);
    alert::raise(
        s,
        log,
        PROGRAM,
        "gave-up",
        &msg,
        json!({ "attempts": st.attempts.len(), "stop_command": stop }),
    );
    st.phase = Phase::GaveUp;
    st.stop_issued = None;
    st.reason = Some(reason);
    st.last_logged = now;
    save_or_log(s, log, st, now);
    issue_stop(s, log, st, now)
}

fn issue_stop(s: &RestartSettings, log: &Logger, st: &mut RestartState, now: f64) -> Outcome {
    if let Err(e) = command::spawn_detached(&s.stop_command, None, &[]) {
        let stop = command::display(&s.stop_command);
        log.log(
            Severity::Err,
            &format!("stop-command {stop} failed to start: {e}"),
        );
    }
    st.stop_issued = Some(now);
    save_or_log(s, log, st, now);
    Outcome::GaveUp
}

/// Writes restart.json. Only the record before a restart must succeed (its caller
/// checks); elsewhere a failure is logged and the run goes on.
fn save(s: &RestartSettings, st: &mut RestartState, now: f64) -> Result<(), String> {
    st.updated = now;
    state::restart::file(s).save(st)
}

fn save_or_log(s: &RestartSettings, log: &Logger, st: &mut RestartState, now: f64) {
    if let Err(e) = save(s, st, now) {
        log.log(Severity::Err, &e);
    }
}

/// The configured restart command, or `systemctl --no-block restart` of the MariaDB or
/// MySQL unit installed here. `--no-block`: we do not wait inside keepalived's process
/// group for a restart that may take longer than the script timeout.
pub fn restart_argv(s: &RestartSettings) -> Result<Vec<String>, String> {
    if let Some(a) = &s.restart_command {
        return Ok(a.clone());
    }
    let unit =
        find_unit().ok_or("no restart-command set and no mariadb/mysql systemd unit found")?;
    Ok(vec![
        SYSTEMCTL.into(),
        "--no-block".into(),
        "restart".into(),
        unit,
    ])
}

fn find_unit() -> Option<String> {
    const DIRS: [&str; 4] = [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ];
    const UNITS: [&str; 3] = ["mariadb.service", "mysql.service", "mysqld.service"];
    UNITS
        .iter()
        .find(|u| DIRS.iter().any(|d| Path::new(d).join(u).exists()))
        .map(|u| u.to_string())
}

/// Clears the give-up and the budget, after an operator fixed the cause; returns what
/// was cleared.
pub fn reset(s: &RestartSettings, log: &Logger) -> Result<RestartState, String> {
    lock::ensure_dir(&s.runtime_dir)?;
    // A running copy finishes in well under a second; wait for it rather than race it.
    let wait = std::time::Instant::now() + Duration::from_secs(5);
    let _lock = match lock::lock_within(
        &s.state_path(LOCK_FILE),
        &s.runtime_dir,
        lock::PRIVATE,
        wait,
    ) {
        Ok(l) => l,
        Err(LockError::Busy) => {
            return Err("another keepalived-mysql-restart keeps the lock".into())
        }
        Err(LockError::Io(e)) => return Err(e),
    };
    let before = state::restart::file(s).load().unwrap_or_default();
    let now = now_unix();
    let mut st = RestartState {
        reason: Some("reset by operator".into()),
        ..RestartState::default()
    };
    save(s, &mut st, now)?;
    log.log(
        Severity::Notice,
        &format!(
            "restart budget and state reset by operator (was {}, {} attempts recorded)",
            before.phase.name(),
            before.attempts.len()
        ),
    );
    Ok(before)
}

/// `--status` for humans.
pub fn status_text(s: &RestartSettings, st: &RestartState) -> String {
    let now = now_unix();
    let window = s.restart_window.as_secs_f64();
    let used = st.attempts.iter().filter(|t| now - **t < window).count();
    let mut out = vec![format!("phase: {}", st.phase.name())];
    out.push(format!(
        "budget: {used} of {} restarts used in the last {}",
        s.max_restarts,
        humantime::format_duration(Duration::from_secs(s.restart_window.as_secs()))
    ));
    if let Some(t) = st.restart_issued {
        out.push(format!(
            "restart issued: {} ({})",
            rfc3339(t),
            st.command.clone().unwrap_or_default()
        ));
    }
    if let Some(t) = st.ready_deadline {
        out.push(format!("ready deadline: {}", rfc3339(t)));
    }
    if let Some(t) = st.stop_issued {
        out.push(format!("stop issued: {}", rfc3339(t)));
    }
    if let Some(r) = &st.reason {
        out.push(format!("reason: {r}"));
    }
    out.join("\n")
}
