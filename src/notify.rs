//! Promotion and demotion on VRRP transitions.
//!
//! keepalived forks notify hooks concurrently, possibly out of order, and never waits
//! for them (except STOP: 1 s). So every event is first recorded under a short lock with
//! a sequence number; then the hook acts on the real current state (whether this node
//! holds the VIP), and a promotion, whose catch-up wait holds no lock, opens writes
//! only if, under the lock, its event is still the newest and the VIP still here. A
//! demotion recorded meanwhile can therefore never be undone by a stale promotion.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert;
use crate::command;
use crate::config::{NotifySettings, Program};
use crate::connection::{classify, ConnError, Connection};
use crate::dialect::{Flavor, ThreadState};
use crate::events;
use crate::files;
use crate::lock::{self, Lock, LockError};
use crate::log::{Logger, Severity};
use crate::rejoin;
use crate::role;
use crate::state::notify::{HistoryEntry, NotifyRecord, PeerChannel};
use crate::state::{self, now_unix, rfc3339};
use crate::verdict::Class;
use crate::wire::{Conn, ResultSet, WireError};

pub const PROGRAM: &str = NotifySettings::GROUP;
pub const LOCK_FILE: &str = "notify.lock";
const HISTORY: usize = 100;
/// keepalived SIGKILLs a STOP hook after 1 s; finish before that.
pub const STOP_BUDGET: Duration = Duration::from_millis(900);
/// A demotion that cannot reach mysqld keeps trying this long (unless superseded).
const DEMOTION_RETRY_FOR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    Master,
    Backup,
    Fault,
    Stop,
    Deleted,
}

impl VrrpState {
    pub fn parse(v: &str) -> Option<VrrpState> {
        match v.to_ascii_uppercase().as_str() {
            "MASTER" => Some(VrrpState::Master),
            "BACKUP" => Some(VrrpState::Backup),
            "FAULT" => Some(VrrpState::Fault),
            "STOP" => Some(VrrpState::Stop),
            "DELETED" => Some(VrrpState::Deleted),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
            VrrpState::Fault => "FAULT",
            VrrpState::Stop => "STOP",
            VrrpState::Deleted => "DELETED",
        }
    }

    fn demotes(self) -> bool {
        self != VrrpState::Master
    }
}

/// One keepalived event, from either argument style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub state: VrrpState,
    /// `INSTANCE VI_1` or `GROUP G1` with the generic `notify` hook.
    pub instance: Option<String>,
    pub priority: Option<u32>,
}

/// `master` (notify_master etc.) or `INSTANCE|GROUP NAME STATE [PRIORITY]` (notify).
pub fn parse_event(args: &[String]) -> Result<Event, String> {
    let bad_state = |v: &str| format!("unknown state '{v}' (MASTER, BACKUP, FAULT, STOP, DELETED)");
    match args {
        [state] => Ok(Event {
            state: VrrpState::parse(state).ok_or_else(|| bad_state(state))?,
            instance: None,
            priority: None,
        }),
        [kind, name, state, rest @ ..] if rest.len() <= 1 => {
            if !matches!(kind.as_str(), "INSTANCE" | "GROUP") {
                return Err(format!("expected INSTANCE or GROUP, got '{kind}'"));
            }
            let priority = match rest.first() {
                Some(p) => Some(p.parse().map_err(|_| format!("bad priority '{p}'"))?),
                None => None,
            };
            Ok(Event {
                state: VrrpState::parse(state).ok_or_else(|| bad_state(state))?,
                instance: Some(format!("{kind} {name}")),
                priority,
            })
        }
        _ => Err(
            "expected STATE, or INSTANCE|GROUP NAME STATE [PRIORITY] as keepalived's notify passes"
                .into(),
        ),
    }
}

/// What the run ended with; its exit code is for humans (keepalived ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Stale (contradicted by the VIP) or superseded by a newer event: nothing done.
    Ignored,
    /// Promotion: catch-up did not finish in time, writes stay off.
    StayedReadOnly,
    /// mysqld could not be reached: the demotion is recorded as pending.
    Unreachable,
    /// Our account may not do it (access denied, missing privilege).
    Refused,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done | Outcome::Ignored => 0,
            Outcome::Refused => Class::AccessDenied.code(),
            Outcome::StayedReadOnly => 30,
            Outcome::Unreachable => 31,
        }
    }
}

struct Ctx<'a> {
    s: &'a NotifySettings,
    log: &'a Logger,
    event: Event,
    /// Our event's number in the record; `None` when it could not be recorded.
    seq: Option<u64>,
    start: Instant,
    /// Started by the check, which found this node writable without the VIP.
    repair: bool,
    /// read_only was set before the event was recorded (vip set and gone).
    early_read_only: bool,
    /// The option-file flags, for the programs this hook starts.
    file_args: &'a [String],
}

/// How long to wait for the notify lock: holders keep it for milliseconds, but STOP has
/// only 1 s in all.
fn lock_wait(state: VrrpState, vip_set: bool) -> Duration {
    match state {
        VrrpState::Stop => Duration::from_millis(300),
        VrrpState::Master => Duration::from_secs(10),
        // With vip set, read_only is already on before any lock is taken.
        _ if vip_set => Duration::from_secs(10),
        // Without vip the record orders events, so a demotion waits for it, briefly
        // (holders keep it for milliseconds), then goes ahead without it.
        _ => Duration::from_secs(2),
    }
}

fn load(s: &NotifySettings) -> NotifyRecord {
    state::notify::file(s).load().unwrap_or_default()
}

/// Runs `f` on the record under the notify lock, then saves it. `Err`: the lock could
/// not be had and `f` did not run. The save's own result comes back beside `f`'s: `f`
/// may already have acted on the server, which a failed save must not hide.
fn with_record<T>(
    s: &NotifySettings,
    wait: Duration,
    f: impl FnOnce(&mut NotifyRecord) -> T,
) -> Result<(T, Result<(), String>), String> {
    let _lock = acquire(s, wait)?;
    Ok(update_record(s, f))
}

/// The same, for a caller that already holds the notify lock.
fn update_record<T>(
    s: &NotifySettings,
    f: impl FnOnce(&mut NotifyRecord) -> T,
) -> (T, Result<(), String>) {
    let mut rec = load(s);
    let out = f(&mut rec);
    if rec.history.len() > HISTORY {
        let cut = rec.history.len() - HISTORY;
        rec.history.drain(..cut);
    }
    let saved = state::notify::file(s).save(&rec);
    (out, saved)
}

/// Changes the record under the notify lock (for the rejoin watcher).
/// The operator's reset of the promotion brake: the count starts again. Says what it
/// cleared.
pub fn reset_brake(s: &NotifySettings, log: &Logger) -> Result<String, String> {
    let before = state::notify::file(s).read()?.unwrap_or_default();
    if before.brake_since.is_none() && before.promotions.is_empty() {
        return Ok("nothing to clear: the promotion brake was off with its full count".into());
    }
    record(s, |r| {
        r.brake_since = None;
        r.promotions.clear();
    })?;
    let msg = format!(
        "cleared {}{} promotion(s) from the brake's count",
        match before.brake_since {
            Some(t) => format!("the promotion brake (engaged at {}) and ", rfc3339(t)),
            None => String::new(),
        },
        before.promotions.len()
    );
    log.log(Severity::Notice, &format!("reset: {msg}"));
    Ok(msg)
}

pub fn record(s: &NotifySettings, f: impl FnOnce(&mut NotifyRecord)) -> Result<(), String> {
    let _lock = acquire(s, Duration::from_secs(5))?;
    update_record(s, f).1
}

fn acquire(s: &NotifySettings, wait: Duration) -> Result<Lock, String> {
    match lock::lock_within(
        &s.state_path(LOCK_FILE),
        &s.runtime_dir,
        lock::PRIVATE,
        Instant::now() + wait,
    ) {
        Ok(l) => Ok(l),
        Err(LockError::Busy) => Err("notify lock busy".into()),
        Err(LockError::Io(e)) => Err(e),
    }
}

impl Ctx<'_> {
    fn lock_wait(&self) -> Duration {
        lock_wait(self.event.state, self.s.vip.is_some())
    }

    /// `connect-timeout`, and for STOP no more than what is left of its budget.
    fn connect_budget(&self) -> Duration {
        if self.event.state == VrrpState::Stop {
            let left = STOP_BUDGET.saturating_sub(self.start.elapsed());
            self.s
                .connect_timeout
                .min(left.saturating_sub(Duration::from_millis(200)))
        } else {
            self.s.connect_timeout
        }
    }

    fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// Updates our history entry (and anything else) under the lock. Best effort: the
    /// server-side work is done; a record that cannot be written is logged as that.
    fn finish(&self, action: &str, update: impl FnOnce(&mut NotifyRecord)) {
        let took = self.ms();
        let Some(seq) = self.seq else {
            return;
        };
        let r = with_record(self.s, self.lock_wait(), |rec| {
            if let Some(h) = rec.history.iter_mut().rev().find(|h| h.seq == seq) {
                h.action = action.to_string();
                h.took_ms = Some(took);
            }
            update(rec);
        });
        if let Err(e) | Ok(((), Err(e))) = r {
            self.log.log(
                Severity::Err,
                &format!(
                    "{}: {action}; but not recorded: {e}",
                    self.event.state.name()
                ),
            );
        }
    }

    /// Whether a newer event was recorded since ours. An event we could not record,
    /// or a record we cannot read, tells nothing: `None`.
    fn newest(&self) -> Option<bool> {
        let seq = self.seq?;
        let rec = state::notify::file(self.s).load()?;
        Some(rec.act_seq == seq)
    }

    /// For waits that stop early when overtaken: only a known newer event counts.
    fn superseded(&self) -> bool {
        self.newest() == Some(false)
    }

    fn alert(&self, kind: &str, msg: &str) {
        let now = now_unix();
        let interval = self.s.alert_interval.as_secs_f64();
        let due = with_record(self.s, self.lock_wait(), |rec| {
            let last = rec.alerts.get(kind).copied().unwrap_or(0.0);
            if now - last >= interval {
                rec.alerts.insert(kind.to_string(), now);
                true
            } else {
                false
            }
        })
        .map(|(due, _)| due)
        // Better a duplicate alert than a lost one.
        .unwrap_or(true);
        if due {
            alert::raise(
                self.s,
                self.log,
                PROGRAM,
                kind,
                msg,
                json!({ "state": self.event.state.name(), "priority": self.event.priority, "instance": self.event.instance }),
            );
        }
    }
}

/// `repair`: the check started us (`--from-check`) because this node, without the
/// VIP, was writable; only a demotion, and only if this node is not the master by the
/// record either.
pub fn run(
    s: &NotifySettings,
    log: &Logger,
    event: Event,
    repair: bool,
    restart_args: &[String],
) -> Result<Outcome, String> {
    let start = Instant::now();
    prepare(s, log);
    if repair && event.state == VrrpState::Master {
        // The check found this VIP holder read-only although writes were opened here:
        // re-asserted only when nobody else may be writing (see reassert_refusal).
        if let Some(why) = reassert_refusal(s) {
            log.log(
                Severity::Notice,
                &format!("MASTER (from the check): not re-asserted: {why}"),
            );
            return Ok(Outcome::Ignored);
        }
        log.log(
            Severity::Err,
            "MASTER (from the check): this node holds the VIP but was made read-only, and \
             the peer is read-only too (a healed split: nobody writes): promoting again",
        );
    }
    if s.restart_on_fault && !files::running_as_root() {
        log.log(
            Severity::Err,
            &format!(
                "configuration error: restart-on-fault = on is refused: the restart hook needs \
                 root and this hook runs as {}; run keepalived-mysql-restart as its own \
                 vrrp_script with 'user root' (the sample keepalived.conf does)",
                files::whoami()
            ),
        );
    }
    match receive(s, log, event, repair, start, restart_args, true) {
        Ok(r) => Ok(act(s, log, r, repair, restart_args)),
        Err(outcome) => Ok(outcome),
    }
}

/// Before an event: the log and the runtime dir, made usable or said to be unusable.
/// Never a reason to skip a demotion: said loudly (the logger falls back to syslog).
pub fn prepare(s: &NotifySettings, log: &Logger) {
    if let Err(e) = log.check_usable() {
        log.log(Severity::Err, &format!("configuration error: {e}"));
    }
    if let Err(e) = lock::ensure_dir(&s.runtime_dir) {
        // No record, but a demotion still happens below.
        log.log(Severity::Err, &e);
    }
}

/// An event recorded in order (or known to be unrecordable), ready to be acted on.
pub struct Received {
    event: Event,
    seq: Option<u64>,
    start: Instant,
    early_read_only: bool,
}

impl Received {
    pub fn state(&self) -> VrrpState {
        self.event.state
    }

    /// The arguments that make another process act on this recorded event (the
    /// `--recorded` run the FIFO mode starts): `--recorded SEQ` (0: unrecorded), then
    /// the event as keepalived's notify passes it.
    pub fn args(&self) -> Vec<String> {
        let (kind, name) = self
            .event
            .instance
            .as_deref()
            .and_then(|i| i.split_once(' '))
            .unwrap_or(("INSTANCE", "?"));
        let mut a = vec![
            "--recorded".to_string(),
            self.seq.unwrap_or(0).to_string(),
            kind.to_string(),
            name.to_string(),
            self.event.state.name().to_string(),
        ];
        a.extend(self.event.priority.map(|p| p.to_string()));
        a
    }
}

/// Acts on an event another process recorded (`--recorded SEQ`; 0: it could not be
/// recorded). Its clock starts now: queue time does not eat its budgets.
pub fn act_recorded(
    s: &NotifySettings,
    log: &Logger,
    event: Event,
    seq: u64,
    restart_args: &[String],
) -> Outcome {
    prepare(s, log);
    let r = Received {
        event,
        seq: (seq > 0).then_some(seq),
        start: Instant::now(),
        // Set again in any case: the early read_only of the reader took no lock, and a
        // promotion may have opened writes after it.
        early_read_only: false,
    };
    act(s, log, r, false, restart_args)
}

/// Records the event with its sequence number, after setting read_only at once when
/// the event demotes and the VIP is gone. `Err`: nothing more to do (stale, or a
/// promotion that could not be recorded).
/// `early`: set read_only before recording a demotion whose VIP is gone (a forked
/// hook); the FIFO reader, which must never stall, leaves that to the child that acts.
pub fn receive(
    s: &NotifySettings,
    log: &Logger,
    event: Event,
    repair: bool,
    start: Instant,
    restart_args: &[String],
    early: bool,
) -> Result<Received, Outcome> {
    let now = now_unix();
    let wait = lock_wait(event.state, s.vip.is_some());
    // The real state: keepalived adds the VIP before MASTER hooks and removes it before
    // the others, so an event that contradicts the VIP was overtaken by a later one. A
    // stale event is recorded but supersedes nothing. Looked at under the lock (the VIP
    // may come or go while we wait for it), and again without it if the lock fails.
    let contradicts_vip = || {
        s.vip.and_then(|vip| {
            let holds = role::local_addresses().contains(&vip);
            (holds != (event.state == VrrpState::Master)).then(|| {
                format!(
                    "{} event ignored as stale: this node {} {vip}",
                    event.state.name(),
                    if holds { "holds" } else { "does not hold" }
                )
            })
        })
    };
    let mut stale = None;
    // With vip set and gone, that absence is the truth: read_only before anything else,
    // before any lock or record. What fails here is done again, in order, below.
    let early_read_only =
        early && event.state.demotes() && s.vip.is_some() && contradicts_vip().is_none() && {
            let pre = Ctx {
                s,
                log,
                event: event.clone(),
                seq: None,
                start,
                repair,
                early_read_only: false,
                file_args: restart_args,
            };
            connect(s, pre.connect_budget())
                .is_ok_and(|mut c| matches!(read_only_now(&pre, &mut c), Ok(true)))
        };
    let instance = if repair && event.state == VrrpState::Master {
        Some("keepalived-mysql-check: fenced VIP holder, peer read-only".to_string())
    } else if repair {
        Some("keepalived-mysql-check: writable without the VIP".to_string())
    } else {
        event.instance.clone()
    };
    let recorded = with_record(s, wait, |rec| {
        stale = contradicts_vip();
        // Without vip, the record is the truth: a MASTER event acted on (or still
        // catching up) owns this node; the check's word does not override it.
        let promoted = rec.state == "MASTER"
            || rec
                .history
                .iter()
                .rev()
                .find(|h| h.seq == rec.act_seq)
                .is_some_and(|h| h.event == "MASTER");
        if repair && s.vip.is_none() && promoted && stale.is_none() {
            stale = Some("check's demotion ignored: the notify record says MASTER".into());
        }
        rec.seq += 1;
        *rec.transitions
            .entry(event.state.name().to_string())
            .or_default() += 1;
        if stale.is_none() {
            rec.act_seq = rec.seq;
            if event.state == VrrpState::Stop {
                // keepalived SIGKILLs STOP at 1 s: what is left undone must already
                // read as pending.
                rec.state = event.state.name().into();
                rec.demotion_pending = true;
            }
        }
        rec.history.push(HistoryEntry {
            seq: rec.seq,
            time: rfc3339(now),
            event: event.state.name().into(),
            instance,
            priority: event.priority,
            action: if stale.is_some() { "stale" } else { "received" }.into(),
            took_ms: None,
        });
        rec.seq
    });
    let seq = match recorded {
        Ok((seq, Ok(()))) => Some(seq),
        Ok((_, Err(e))) | Err(e) => {
            // The order guard needs the record. A demotion goes on without it (read-only
            // is the safe side); a promotion must not open writes on an unknown order.
            let what = if event.state.demotes() {
                "demoting anyway, without the event-order guard"
            } else {
                "not promoting: writes stay as they are"
            };
            log.log(
                Severity::Err,
                &format!(
                    "{}: cannot record the event ({e}): {what}",
                    event.state.name()
                ),
            );
            if !event.state.demotes() {
                alert::raise(
                    s,
                    log,
                    PROGRAM,
                    "promotion-failed",
                    &format!("MASTER: cannot record the event ({e}): writes not opened"),
                    json!({ "state": "MASTER" }),
                );
                return Err(Outcome::StayedReadOnly);
            }
            if repair && s.vip.is_none() {
                // Without vip and without the record, nothing says this node is not
                // the master now.
                log.log(
                    Severity::Err,
                    "check's demotion not done: no record to order it by",
                );
                return Err(Outcome::Ignored);
            }
            stale = contradicts_vip();
            None
        }
    };
    if let Some(msg) = stale {
        log.log(Severity::Notice, &msg);
        return Err(Outcome::Ignored);
    }
    Ok(Received {
        event,
        seq,
        start,
        early_read_only,
    })
}

/// Promotes or demotes for an event `receive` recorded.
pub fn act(
    s: &NotifySettings,
    log: &Logger,
    r: Received,
    repair: bool,
    restart_args: &[String],
) -> Outcome {
    let ctx = Ctx {
        s,
        log,
        event: r.event,
        seq: r.seq,
        start: r.start,
        repair,
        early_read_only: r.early_read_only,
        file_args: restart_args,
    };
    if ctx.event.state.demotes() {
        demote(&ctx, restart_args)
    } else {
        promote(&ctx)
    }
}

fn connect(s: &NotifySettings, timeout: Duration) -> Result<Connection, ConnError> {
    s.login().connect(timeout)
}

/// Read-only first (so nothing new commits), then drop client sessions so applications
/// reconnect through the VIP. Retries while mysqld does not answer. Neither the lock
/// nor the record can stop read_only from being set: they only order events.
fn demote(ctx: &Ctx, restart_args: &[String]) -> Outcome {
    let s = ctx.s;
    let name = ctx.event.state.name();
    let mut announced = false;
    let retry_until = ctx.start + DEMOTION_RETRY_FOR;
    if ctx.event.state == VrrpState::Fault && s.restart_on_fault && files::running_as_root() {
        start_restart_hook(ctx, restart_args);
    }
    loop {
        let attempt = connect(s, ctx.connect_budget())
            .and_then(|mut conn| set_read_only(ctx, &mut conn).map(|done| (conn, done)));
        match attempt {
            Ok((_, false)) => {
                ctx.log.log(
                    Severity::Notice,
                    &format!("{name}: superseded by a newer event before demoting"),
                );
                ctx.finish("superseded", |_| {});
                return Outcome::Ignored;
            }
            Ok((mut conn, true)) => {
                let killed = kill_client_sessions(ctx, &mut conn).len();
                resume_peer_channel(ctx, &mut conn);
                follow_events(ctx, &mut conn, events::Switch::Park, name);
                let msg = format!(
                    "{name}: demoted: read_only=ON, {killed} client session(s) killed, took {:.0} ms{}",
                    ctx.ms(),
                    if ctx.repair {
                        " (started by the check: this node was writable without the VIP)"
                    } else {
                        ""
                    }
                );
                ctx.log.log(Severity::Notice, &msg);
                ctx.finish(
                    &format!("demoted: read_only=ON, {killed} sessions killed"),
                    |_| {},
                );
                if ctx.event.state == VrrpState::Fault || announced || ctx.repair {
                    ctx.alert("demoted", &msg);
                }
                return Outcome::Done;
            }
            Err(e) if matches!(e.class, Class::Down | Class::Timeout) => {
                if !announced {
                    announced = true;
                    let msg = format!(
                        "{name}: mysqld unreachable ({}); demotion pending: will be completed when it answers",
                        e.msg
                    );
                    ctx.log.log(Severity::Err, &msg);
                    ctx.finish("demotion pending: mysqld unreachable", |rec| {
                        rec.state = name.into();
                        rec.demotion_pending = true;
                        rec.since = now_unix();
                    });
                    ctx.alert("demotion-pending", &msg);
                }
                // STOP is killed after 1 s: a restarted server comes back read-only
                // (read_only = ON in my.cnf); nothing more can be done here.
                if ctx.event.state == VrrpState::Stop || Instant::now() > retry_until {
                    return Outcome::Unreachable;
                }
                // A hung server (Timeout) is asked again at once: our next login waits
                // in its queue, so read_only lands the moment it resumes, before the
                // clients queued behind us. A dead one (Down) is polled.
                if e.class == Class::Down {
                    sleep(Duration::from_millis(200));
                }
                if ctx.superseded() {
                    ctx.log.log(
                        Severity::Notice,
                        &format!("{name}: pending demotion superseded by a newer event"),
                    );
                    return Outcome::Ignored;
                }
            }
            Err(e) => {
                let msg = format!("{name}: cannot demote: {}", e.msg);
                ctx.log.log(Severity::Err, &msg);
                ctx.finish(&format!("failed: {}", e.msg), |rec| {
                    rec.state = name.into();
                    rec.demotion_pending = true;
                });
                ctx.alert("demotion-failed", &msg);
                return Outcome::Refused;
            }
        }
    }
}

/// A standby fetches from its master: a channel the last promotion held (see `rejoin`)
/// runs again, unless the peer was found diverged: its orphans are still not applied
/// here (said loudly; the repair is the operator's). After the sessions are killed, and
/// never for STOP, whose second is spent by then.
fn resume_peer_channel(ctx: &Ctx, conn: &mut Connection) {
    let Some(ch) = load(ctx.s).peer_channel else {
        return;
    };
    if ch.state == "resumed" || ctx.event.state == VrrpState::Stop {
        return;
    }
    let name = ctx.event.state.name();
    // Started by a person (the by-hand repair) on a server that has not restarted
    // since the hold, and not the promotion's own slow STOP: left running, and the
    // record says so, or every later event would stop it again.
    let d = conn.dialect.clone();
    let running = conn
        .query(d.replica_status_sql())
        .ok()
        .and_then(|st| d.status_from(&st))
        .is_some_and(|r| r.io_running != ThreadState::No);
    let restarted = rejoin::restarted_since_hold(&ch, conn);
    if running && !restarted && !ch.stop_pending {
        let _ = record(ctx.s, |r| {
            if let Some(c) = r.peer_channel.as_mut() {
                c.state = "resumed".into();
            }
        });
        ctx.log.log(
            Severity::Notice,
            &format!(
                "{name}: replication from the peer ({} since the last promotion) was started \
                 by hand: left running, its transactions applied here on purpose",
                ch.state
            ),
        );
        return;
    }
    // Whatever is not resumed is stopped again here: a restart of this mysqld (the
    // server of a pending demotion, a reboot) starts the replica threads by itself.
    let keep_stopped = |conn: &mut Connection| {
        let sql = conn.dialect.io_thread_sql(false);
        run_all(conn, sql)
            .map(|()| {
                // Confirmed here: a later watcher must not take a person's START for
                // the promotion's slow STOP.
                let _ = record(ctx.s, |r| {
                    if let Some(c) = r.peer_channel.as_mut() {
                        c.stop_pending = false;
                    }
                });
                "stays stopped".to_string()
            })
            .unwrap_or_else(|e| format!("could NOT be stopped ({e})"))
    };
    if ch.state == "diverged" {
        let stopped = keep_stopped(conn);
        let msg = format!(
            "{name}: DIVERGED: standby now, but replication from the diverged peer \
             {stopped}: its transactions {} were never applied here; repair before resuming \
             it (see keepalived-mysql-notify(8), REJOIN)",
            ch.peer_extra.as_deref().unwrap_or("?")
        );
        ctx.log.log(Severity::Err, &msg);
        ctx.alert("peer-diverged", &msg);
        return;
    }
    // Held: the peer was not verified yet (see rejoin::verify_for_standby).
    let verified = rejoin::verify_for_standby(ctx.s, conn);
    match verified {
        Ok(c) if c.clean() => {}
        Ok(c) => {
            let gtids = c.gtids();
            let _ = record(ctx.s, |r| {
                if let Some(ch) = r.peer_channel.as_mut() {
                    ch.state = "diverged".into();
                    ch.peer_extra = Some(gtids.clone());
                }
            });
            let stopped = keep_stopped(conn);
            let msg = format!(
                "{name}: DIVERGED: standby now, but the peer {}: replication from it \
                 {stopped}; repair before resuming it (see keepalived-mysql-notify(8), REJOIN)",
                c.describe()
            );
            ctx.log.log(Severity::Err, &msg);
            ctx.alert("peer-diverged", &msg);
            return;
        }
        Err(e) => {
            // A peer that answered (it refused, or lacks ours) is alive and may take
            // writes this node does not fetch: not an eligible standby. One that is
            // gone has nothing to send: the check lets this node take over again.
            let answered = !matches!(e.class, Class::Down | Class::Timeout);
            let _ = record(ctx.s, |r| {
                if let Some(c) = r.peer_channel.as_mut() {
                    c.peer_answered = answered;
                }
            });
            let stopped = keep_stopped(conn);
            if !answered {
                // Watched until it answers: verified then, or this node made ineligible.
                let mut args = ctx.file_args.to_vec();
                args.push("--watch-peer".into());
                if let Err(e) = command::spawn_sibling(PROGRAM, &args) {
                    ctx.log.log(
                        Severity::Err,
                        &format!("{name}: cannot watch the peer: {e}"),
                    );
                }
            }
            let msg = format!(
                "{name}: standby now, but replication from the peer, held since the last \
                 promotion, {stopped}: the peer could not be verified ({}). {}",
                e.msg,
                if answered {
                    "This node is not an eligible standby until it fetches again: once the \
                     peer is known to hold nothing this node lacks, START SLAVE IO_THREAD"
                } else {
                    "The peer is gone, so there is nothing to fetch: this node stays \
                     eligible, and is watched: fetching resumes once the peer answers and \
                     is verified, otherwise this node becomes ineligible"
                }
            );
            ctx.log.log(Severity::Err, &msg);
            ctx.alert("peer-channel", &msg);
            return;
        }
    }
    let sql = conn.dialect.io_thread_sql(true);
    let r = run_all(conn, sql);
    let _ = record(ctx.s, |r| r.peer_channel = None);
    ctx.log.log(
        match r {
            Ok(()) => Severity::Notice,
            Err(_) => Severity::Err,
        },
        &format!(
            "{}: replication from the peer, held since the last promotion, resumed: {}",
            ctx.event.state.name(),
            match r {
                Ok(()) => "done".to_string(),
                Err(e) => format!("FAILED: {e}"),
            }
        ),
    );
}

/// Sets read_only, unless this node is (again) the master: returns whether it did.
/// With `vip` set, its absence, looked at now, is the truth: read_only is set first and
/// the lock is taken only to record it. Without `vip`, the record orders events: under
/// the notify lock, so a promotion cannot interleave, when the lock can be had; without
/// it (logged) when it cannot. A lock or state-file failure never keeps a node writable.
fn set_read_only(ctx: &Ctx, conn: &mut Connection) -> Result<bool, ConnError> {
    let s = ctx.s;
    let name = ctx.event.state.name();
    let vip_gone = s.vip.map(|vip| !role::local_addresses().contains(&vip));
    if vip_gone == Some(false) {
        // The VIP came back: a newer MASTER event owns this node now.
        return Ok(false);
    }
    if vip_gone == Some(true) && !ctx.early_read_only && !read_only_now(ctx, conn)? {
        return Ok(false);
    }
    let guard = match ctx.seq {
        Some(_) => match acquire(s, ctx.lock_wait()) {
            Ok(l) => Some(l),
            Err(e) => {
                ctx.log.log(
                    Severity::Err,
                    &format!("{name}: notify lock unavailable ({e}): read_only set without it"),
                );
                None
            }
        },
        None => None,
    };
    if guard.is_some() && ctx.newest() == Some(false) {
        if vip_gone.is_some() {
            restore_overtaken_promotion(ctx, conn);
        }
        return Ok(false);
    }
    if vip_gone.is_none() {
        read_only_now(ctx, conn)?;
    }
    if guard.is_some() {
        let ((), saved) = update_record(s, |rec| {
            rec.state = name.into();
            rec.read_only = Some(true);
            rec.demotion_pending = false;
            rec.since = now_unix();
        });
        if let Err(e) = saved {
            ctx.log
                .log(Severity::Err, &format!("{name}: read_only=ON, but {e}"));
        }
    }
    Ok(true)
}

/// With `vip` set, read_only was set before the lock; if a newer MASTER event has
/// meanwhile opened writes on this node (the VIP is back, the record says so), our late
/// read_only undid its decision: open writes again. Called under the notify lock.
/// With `peer-host` set, never on this connection, which may be younger than a fence
/// by the peer's own promotion (its open would then stand beside ours): a detached
/// re-assertion (`--from-check master`, after this run releases the lock) fences the
/// peer first, and only if the peer answers read-only.
fn restore_overtaken_promotion(ctx: &Ctx, conn: &mut Connection) {
    let d = &conn.dialect.clone();
    let rec = load(ctx.s);
    let vip_here = ctx
        .s
        .vip
        .is_some_and(|vip| role::local_addresses().contains(&vip));
    if vip_here && rec.state == "MASTER" && rec.read_only == Some(false) {
        if ctx.s.peer_host.is_some() {
            let mut args = ctx.file_args.to_vec();
            args.extend(["--from-check".to_string(), "master".to_string()]);
            let how = match command::spawn_sibling(PROGRAM, &args) {
                Ok(argv) => format!("re-assertion started ({})", command::display(&argv)),
                Err(e) => format!("the re-assertion cannot start ({e}): the check asks again"),
            };
            ctx.log.log(
                Severity::Err,
                &format!(
                    "{}: overtaken by a promotion that had opened writes; left read-only, {how}",
                    ctx.event.state.name()
                ),
            );
            return;
        }
        let r = run_all(conn, d.writes_sql(true));
        ctx.log.log(
            Severity::Err,
            &format!(
                "{}: overtaken by a promotion that had opened writes; writes reopened: {}",
                ctx.event.state.name(),
                match r {
                    Ok(()) => "done".to_string(),
                    Err(e) => format!("FAILED: {e}"),
                }
            ),
        );
    }
}

/// `SET GLOBAL read_only = ON` with every wait bounded: the server-side lock wait, and
/// the socket read beyond it (a reply that comes after our read gave up would be taken
/// for the next statement's, so the connection is dropped then). An open transaction
/// or table lock makes it time out: the client sessions are killed and it is tried
/// again every 50 ms while they roll back, for 5 s (STOP: until its budget ends), unless
/// the VIP comes back meanwhile (a demotion then stops: `Ok(false)`). Any other
/// refusal is reported as it is.
fn read_only_now(ctx: &Ctx, conn: &mut Connection) -> Result<bool, ConnError> {
    let d = &conn.dialect.clone();
    let stop = ctx.event.state == VrrpState::Stop;
    // STOP has 1 s in all: no lock wait where the server allows none (MariaDB).
    let lock_wait = if stop && d.flavor == Flavor::MariaDB {
        0
    } else {
        1
    };
    let until = if stop {
        ctx.start + STOP_BUDGET.saturating_sub(Duration::from_millis(100))
    } else {
        Instant::now() + Duration::from_secs(5)
    };
    let read_bound = || {
        let wait = Duration::from_secs(lock_wait + 2);
        if stop {
            wait.min(until.saturating_duration_since(Instant::now()))
        } else {
            wait
        }
    };
    conn.set_read_timeout(read_bound());
    let mut r = run_all(
        conn,
        &format!(
            "SET SESSION lock_wait_timeout = {lock_wait}; {}",
            d.writes_sql(false)
        ),
    );
    let mut killed = false;
    let vip_back = || {
        ctx.event.state.demotes()
            && ctx
                .s
                .vip
                .is_some_and(|vip| role::local_addresses().contains(&vip))
    };
    while let Err(WireError::Server {
        code: ER_LOCK_WAIT_TIMEOUT,
        ..
    }) = r
    {
        if vip_back() {
            return Ok(false);
        }
        if killed && Instant::now() >= until {
            break;
        }
        if !killed {
            let _ = kill_client_sessions(ctx, conn);
            killed = true;
        } else {
            sleep(Duration::from_millis(50));
        }
        conn.set_read_timeout(read_bound());
        r = run_all(conn, d.writes_sql(false));
    }
    r.map(|()| true).map_err(|e| classify(&e))
}

const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;

fn run_all(conn: &mut Conn, sql: &str) -> Result<(), WireError> {
    conn.query(sql)?;
    while let Some(r) = conn.next_result() {
        r?;
    }
    Ok(())
}

/// Commands of threads that are not client sessions: replication on both sides,
/// server daemons.
const SYSTEM_COMMANDS: &[&str] = &[
    "Binlog Dump",
    "Binlog Dump GTID",
    "Daemon",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Connect",
    "Killed",
];
const SYSTEM_USERS: &[&str] = &["system user", "event_scheduler", "unauthenticated user"];

/// Scheduled events follow the writer (see `events`), after the step that matters:
/// a failure is logged and alerted, and changes nothing else.
fn follow_events(ctx: &Ctx, conn: &mut Connection, how: events::Switch, name: &str) {
    // STOP: keepalived kills the hook at 1 s; the next start's BACKUP parks them.
    if !ctx.s.handle_events || ctx.event.state == VrrpState::Stop {
        return;
    }
    // Asked before the lock is taken (a peer connect must not hold it): only when
    // enabling, and only when asked for (handle-events is off by default).
    let keep_off = if how == events::Switch::Resume && events::pending(conn, how) {
        peer_disabled_events(ctx, name)
    } else {
        None
    };
    // Under the lock, and only while our event is the newest and the VIP agrees: a late
    // promotion must not enable events on a node demoted meanwhile (a fork), nor a late
    // demotion park the new master's.
    let _lock = match acquire(ctx.s, ctx.lock_wait()) {
        Ok(l) => l,
        Err(e) => {
            ctx.log.log(
                Severity::Err,
                &format!("{name}: scheduled events left as they are: {e}"),
            );
            return;
        }
    };
    let vip_agrees = ctx.s.vip.is_none_or(|vip| {
        role::local_addresses().contains(&vip) == (how == events::Switch::Resume)
    });
    if ctx.superseded() || !vip_agrees {
        ctx.log.log(
            Severity::Notice,
            &format!("{name}: scheduled events left as they are: a newer event or the VIP moved"),
        );
        return;
    }
    match events::switch(conn, how, || keep_off.unwrap_or_default()) {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => ctx.log.log(
            Severity::Notice,
            &format!(
                "{name}: scheduled events {}: {}",
                match how {
                    events::Switch::Park => "disabled on this read-only node (DISABLE ON SLAVE)",
                    events::Switch::Resume => "enabled again",
                },
                changed.join(", ")
            ),
        ),
        Err(e) => {
            let msg = format!("{name}: {e}");
            ctx.log.log(Severity::Err, &msg);
            ctx.alert("events", &msg);
        }
    }
}

/// The events the peer has DISABLED (by a person), when it answers.
fn peer_disabled_events(ctx: &Ctx, name: &str) -> Option<Vec<String>> {
    let login = ctx.s.peer_login()?;
    match login
        .connect(ctx.s.connect_timeout.min(Duration::from_secs(1)))
        .map_err(|e| e.msg)
        .and_then(|mut p| events::disabled_by_hand(&mut p))
    {
        Ok(off) => Some(off),
        Err(e) => {
            ctx.log.log(
                Severity::Warning,
                &format!(
                    "{name}: the peer's disabled events cannot be read ({e}): every event \
                     replication left disabled here is enabled (disable an event on both \
                     nodes to keep it off)"
                ),
            );
            None
        }
    }
}

/// Kills every client session but ours; returns the ids killed.
fn kill_client_sessions(ctx: &Ctx, conn: &mut Conn) -> Vec<u64> {
    let Ok(list) = conn.query(
        "SELECT ID AS id, USER AS user, COMMAND AS cmd FROM information_schema.PROCESSLIST \
         WHERE ID <> CONNECTION_ID()",
    ) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for i in 0..list.rows.len() {
        let user = list.get(i, "user").unwrap_or("");
        let cmd = list.get(i, "cmd").unwrap_or("");
        if SYSTEM_COMMANDS.contains(&cmd)
            || SYSTEM_USERS.contains(&user)
            || ctx.s.keep_sessions_of.iter().any(|k| k == user)
        {
            continue;
        }
        let Some(id) = list.get(i, "id").and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        // One at a time: a session that ended meanwhile (error 1094) must not stop
        // the others from being killed, as it would in a multi-statement batch.
        if conn.query(&format!("KILL CONNECTION {id}")).is_ok() {
            killed.push(id);
        }
    }
    killed
}

/// Waits (until `until`) for killed sessions to be gone: a statement one was running
/// when it was killed still completes.
fn wait_gone(conn: &mut Conn, ids: &[u64], until: Instant) {
    if ids.is_empty() {
        return;
    }
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let sql =
        format!("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID IN ({list})");
    while Instant::now() < until {
        match conn.query(&sql) {
            Ok(r) if r.get(0, "n") == Some("0") => return,
            Ok(_) => sleep(Duration::from_millis(10)),
            Err(_) => return,
        }
    }
}

fn start_restart_hook(ctx: &Ctx, restart_args: &[String]) {
    if let Err(e) = command::spawn_sibling("keepalived-mysql-restart", restart_args) {
        ctx.log
            .log(Severity::Err, &format!("restart-on-fault: {e}"));
    }
}

/// Waits until this node has what it must have before taking writes, then opens them.
/// How the last step of a promotion ended.
enum Opening {
    Opened,
    /// Catch-up incomplete and `on-catchup-timeout = stay-read-only`.
    KeptClosed,
    /// A newer event, or the VIP left meanwhile.
    Superseded,
    /// Not opened: the lock or the record failed (`refused`: false), or the server
    /// refused the statement (`refused`: true).
    Failed {
        msg: String,
        refused: bool,
    },
}

fn promote(ctx: &Ctx) -> Outcome {
    let s = ctx.s;
    let fail = |msg: String, action: &str, outcome: Outcome| {
        ctx.log.log(Severity::Err, &msg);
        ctx.finish(action, |_| {});
        ctx.alert("promotion-failed", &msg);
        outcome
    };
    let mut conn = match connect(s, ctx.connect_budget()) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("MASTER: cannot promote, mysqld unreachable: {}", e.msg),
                "failed: mysqld unreachable",
                Outcome::Unreachable,
            )
        }
    };
    // A MASTER event on a node that is master already (keepalived's
    // notify_master_rx_lower_pri after a heal) re-asserts; it is not a promotion.
    let rec = load(s);
    let was_master = rec.state.eq_ignore_ascii_case("MASTER");
    // A writable master re-asserting keeps its writes open while it fences the peer:
    // a read-only window here is what a peer's own re-assertion would take for "nobody
    // writes" (see reassert_refusal), and both could then open.
    let writable_master =
        was_master && rec.read_only == Some(false) && matches!(read_only_on(&mut conn), Ok(false));
    // Writes stay off until caught up, whatever the node was before.
    if writable_master {
        ctx.log.log(
            Severity::Notice,
            "MASTER: re-asserting a writable master: writes stay open while the peer is fenced",
        );
    } else if let Err(e) = read_only_now(ctx, &mut conn) {
        return fail(
            format!("MASTER: cannot set read_only: {}", e.msg),
            &format!("failed: {}", e.msg),
            Outcome::Refused,
        );
    }
    if !was_master {
        if let Some(msg) = brake(ctx) {
            ctx.log.log(Severity::Err, &msg);
            ctx.finish("stayed read-only: promotion brake", |_| {});
            ctx.alert("promotion-brake", &msg);
            return Outcome::StayedReadOnly;
        }
    }
    let deadline = ctx.start + s.catchup_timeout;
    // A peer that refused us fails the wait, but the local relay log is still applied
    // first: `on-catchup-timeout = open` must not open on an unapplied backlog.
    let mut seen = PeerSeen::default();
    let mut waited_for_peer = wait_for_peer(ctx, &mut conn, deadline, &mut seen);
    if seen.gone {
        if let Some(extra) = diverged_peer(s) {
            // Whether it took writes since it was found diverged cannot be told, and
            // this node has fetched none of them.
            seen.diverged_moved = true;
            waited_for_peer = Err(format!(
                "the peer, found diverged ({extra}), cannot be reached: whether it took \
                 writes since cannot be told, and this node fetched none"
            ));
        }
    }
    // A peer that is gone has nothing to send us now, and if it comes back while the
    // relay log is still being applied here (our own restart hook restarts it within
    // seconds), what it fetched first would be its orphans: held before the catch-up,
    // not after it. The relay log already received is applied all the same.
    let held_early = if seen.gone {
        hold_or_alert(ctx, &mut conn, "before catching up")
    } else {
        None
    };
    if held_early.is_some() {
        ctx.log.log(
            Severity::Notice,
            "MASTER: the peer is gone: fetching from it stopped before catching up (the relay \
             log already received is applied)",
        );
    }
    let mut caught = match waited_for_peer {
        Ok(()) => wait_applied(ctx, &mut conn, deadline),
        Err(e) => wait_applied(ctx, &mut conn, deadline).and(Err(e)),
    };
    let waited = ctx.ms();
    if conn.is_broken() {
        // A wait that timed out leaves the connection unusable: its late reply would
        // be read as the next statement's.
        conn = match connect(s, ctx.connect_budget()) {
            Ok(c) => c,
            Err(e) => {
                return fail(
                    format!(
                        "MASTER: mysqld unreachable before opening writes: {}",
                        e.msg
                    ),
                    "failed: mysqld unreachable",
                    Outcome::Unreachable,
                )
            }
        };
        if seen.fenced {
            if let Err(e) = refence(ctx, &mut conn) {
                let e = format!("the peer could not be fenced again on a new session: {e}");
                ctx.alert("peer-unfenced", &format!("MASTER: {e}"));
                seen.alive_unfenced = true;
                caught = Err(e);
            }
        }
    }
    // on-catchup-timeout = open is about a slow catch-up, never about a peer that is
    // alive (its replication still sends) and could not be fenced: two writers.
    // A writable master re-asserting whose peer is fenced keeps its writes even if the
    // peer's position never arrives: our channel from it is held since our promotion,
    // so what it wrote meanwhile is its orphans (the rejoin names them), and going
    // read-only would leave the VIP holder unwritable beside a read-only peer.
    let keep = writable_master && seen.fenced && !seen.alive_unfenced;
    if keep && caught.is_err() {
        ctx.log.log(
            Severity::Notice,
            &format!(
                "MASTER: re-assertion: {}; the peer is fenced, so writes stay open here (what \
                 the peer has beyond us is for the rejoin to name)",
                caught.as_ref().err().map(String::as_str).unwrap_or("")
            ),
        );
    }
    let open = !seen.diverged_moved
        && (caught.is_ok() || keep || (s.open_on_catchup_timeout && !seen.alive_unfenced));
    if writable_master && !open {
        // The re-assertion failed (the peer could not be fenced or waited for): this
        // node must not stay writable beside it.
        if let Err(e) = read_only_now(ctx, &mut conn) {
            ctx.log.log(
                Severity::Err,
                &format!(
                    "MASTER: re-assertion failed and read_only could not be set: {}",
                    e.msg
                ),
            );
        }
    }
    // Caught up, writes about to open: stop fetching from the peer until it is known to
    // hold nothing we lack (rejoin), and record where we are now. Never a reason not to
    // promote. Held early, the channel stays held even if writes stay closed: this node
    // holds the VIP, and a person who opens writes here must not find the returning
    // old master's orphans applied already.
    let held = match held_early {
        Some(mut ch) => {
            rejoin::position(&mut conn, &mut ch);
            Some(ch)
        }
        None if open => hold_or_alert(ctx, &mut conn, "after catching up"),
        None => None,
    };
    let opening = open_writes(ctx, &mut conn, open, waited);
    // An earlier promotion's channel not resumed yet (a re-assertion, a second MASTER
    // event) is kept as it is: never restarted here, never overwritten ("diverged"
    // stays diverged).
    let prior = load(s).peer_channel.is_some_and(|c| c.state != "resumed");
    match (held, &opening) {
        (None, _) => {}
        (Some(_), Opening::Superseded) if !prior && !was_master => {
            // Not promoted after all, no write taken here since the hold: fetch from
            // the peer as before (a standby follows its master).
            let resume = conn.dialect.io_thread_sql(true);
            if let Err(e) = run_all(&mut conn, resume) {
                let msg = format!(
                    "MASTER: superseded, but fetching from the peer could not be started \
                     again ({e}): START SLAVE IO_THREAD"
                );
                ctx.log.log(Severity::Err, &msg);
                ctx.alert("peer-channel", &msg);
            }
        }
        // Superseded, but an earlier hold stands, or this node was the master (it may
        // hold writes of its own): fetching starts again only verified, as on a
        // demotion (or stays stopped, said and alerted).
        (Some(ch), Opening::Superseded) => {
            if prior {
                keep_stop_pending(s, &ch);
            } else {
                if let Err(e) = record(s, |r| r.peer_channel = Some(ch)) {
                    let msg = format!(
                        "MASTER: superseded; replication from the peer stays stopped and \
                         cannot be recorded ({e}): START SLAVE IO_THREAD once the peer is \
                         known to hold nothing this node lacks"
                    );
                    ctx.log.log(Severity::Err, &msg);
                    ctx.alert("peer-channel", &msg);
                }
            }
            resume_peer_channel(ctx, &mut conn);
        }
        // Opened, kept closed or failed with the VIP still here: held, watched.
        (Some(ch), _) => {
            let saved = if prior {
                keep_stop_pending(s, &ch);
                Ok(())
            } else {
                record(s, |r| r.peer_channel = Some(ch))
            };
            match saved.and_then(|()| {
                let mut args = ctx.file_args.to_vec();
                args.push("--watch-peer".into());
                command::spawn_sibling(PROGRAM, &args).map(|_| ())
            }) {
                Ok(()) => ctx.log.log(
                    Severity::Notice,
                    "MASTER: replication from the peer held until it is verified to hold nothing we lack",
                ),
                Err(e) => {
                    // Stopped it stays: fetching unverified could apply the old master's
                    // orphans here. Said loudly, since nobody watches it now.
                    let msg = format!(
                        "MASTER: cannot watch the peer ({e}): replication from it stays \
                         stopped; once the peer is known to hold nothing this node lacks, \
                         START SLAVE IO_THREAD"
                    );
                    ctx.log.log(Severity::Err, &msg);
                    ctx.alert("peer-channel", &msg);
                }
            }
        }
    }
    if matches!(opening, Opening::Opened) {
        follow_events(ctx, &mut conn, events::Switch::Resume, "MASTER");
    }
    if matches!(opening, Opening::Opened) && !was_master {
        let now = now_unix();
        if let Err(e) = record(s, |r| r.promotions.push(now)) {
            ctx.log.log(
                Severity::Err,
                &format!("MASTER: writes open, but the promotion brake did not count it: {e}"),
            );
        }
    }
    match (opening, caught) {
        (Opening::Opened, Ok(())) => {
            let msg = format!("MASTER: caught up in {waited:.0} ms, read_only=OFF");
            ctx.log.log(Severity::Notice, &msg);
            ctx.finish(
                &format!("promoted: caught up in {waited:.0} ms, writes open"),
                |_| {},
            );
            ctx.alert("promoted", &msg);
            Outcome::Done
        }
        (Opening::Opened, Err(why)) => {
            let because = if keep {
                "a writable master re-asserting, its peer fenced"
            } else {
                "on-catchup-timeout = open"
            };
            let msg = format!("MASTER: {why}; writes opened anyway ({because})");
            ctx.log.log(Severity::Err, &msg);
            ctx.finish(&format!("promoted without catch-up ({because})"), |_| {});
            ctx.alert("catchup-timeout", &msg);
            Outcome::Done
        }
        (Opening::KeptClosed, why) => {
            let why = why.err().unwrap_or_default();
            let msg =
                format!("MASTER: {why}; staying read-only (on-catchup-timeout = stay-read-only)");
            ctx.log.log(Severity::Err, &msg);
            ctx.finish("stayed read-only: catch-up incomplete", |_| {});
            ctx.alert("catchup-timeout", &msg);
            Outcome::StayedReadOnly
        }
        (Opening::Superseded, _) => {
            ctx.log.log(
                Severity::Notice,
                "MASTER: superseded by a newer event, or the VIP left, before opening writes",
            );
            ctx.finish("superseded", |_| {});
            Outcome::Ignored
        }
        (Opening::Failed { msg, refused }, _) => fail(
            format!("MASTER: {msg}: writes stay closed"),
            &format!("failed: {msg}"),
            if refused {
                Outcome::Refused
            } else {
                Outcome::StayedReadOnly
            },
        ),
    }
}

/// An earlier hold's record is kept, but this promotion's own STOP, if still on its
/// way, must not be read as a person's START later.
fn keep_stop_pending(s: &NotifySettings, ch: &PeerChannel) {
    if ch.stop_pending {
        let _ = record(s, |r| {
            if let Some(c) = r.peer_channel.as_mut() {
                c.stop_pending = true;
            }
        });
    }
}

/// Stops fetching from the peer (rejoin::hold); a failure is logged and alerted, since
/// a returning old master's unreplicated writes could then be applied here.
fn hold_or_alert(ctx: &Ctx, conn: &mut Connection, when: &str) -> Option<PeerChannel> {
    match rejoin::hold(ctx.s, conn) {
        Ok(h) => h,
        Err(e) => {
            let msg = format!(
                "MASTER: {e} ({when}): a returning old master's unreplicated writes could be \
                 applied here"
            );
            ctx.log.log(Severity::Err, &msg);
            ctx.alert("peer-channel", &msg);
            None
        }
    }
}

/// Opens writes (if `open`) under the notify lock, only while our event is still the
/// newest and the VIP still here. The record says MASTER before writes open: a node
/// that is writable is never recorded as a standby (the check would demote it again).
fn open_writes(ctx: &Ctx, conn: &mut Connection, open: bool, waited: f64) -> Opening {
    let d = &conn.dialect.clone();
    let s = ctx.s;
    let _lock = match acquire(s, ctx.lock_wait()) {
        Ok(l) => l,
        Err(e) => {
            return Opening::Failed {
                msg: format!("cannot take the notify lock ({e})"),
                refused: false,
            }
        }
    };
    let vip_here = s
        .vip
        .is_none_or(|vip| role::local_addresses().contains(&vip));
    match ctx.newest() {
        Some(true) if vip_here => {}
        Some(_) => return Opening::Superseded,
        None => {
            return Opening::Failed {
                msg: format!("cannot read {}", state::notify::file(s).path().display()),
                refused: false,
            }
        }
    }
    let ((), saved) = update_record(s, |rec| {
        rec.state = "MASTER".into();
        rec.read_only = Some(true);
        rec.demotion_pending = false;
        rec.since = now_unix();
        rec.last_catchup_ms = Some(waited);
    });
    if let Err(e) = saved {
        return Opening::Failed {
            msg: format!("cannot record the promotion ({e})"),
            refused: false,
        };
    }
    if !open {
        return Opening::KeptClosed;
    }
    if let Err(e) = run_all(conn, d.writes_sql(true)) {
        return Opening::Failed {
            msg: format!("cannot open writes: {e}"),
            refused: true,
        };
    }
    let ((), saved) = update_record(s, |rec| rec.read_only = Some(false));
    if let Err(e) = saved {
        ctx.log
            .log(Severity::Err, &format!("MASTER: writes open, but {e}"));
    }
    Opening::Opened
}

/// What a promotion learnt of its peer while waiting for it.
#[derive(Default)]
struct PeerSeen {
    /// It answered and was fenced.
    fenced: bool,
    /// It could not be reached, yet our replication still receives from it.
    alive_unfenced: bool,
    /// It could not be reached and nothing says it is alive: crashed, or gone.
    gone: bool,
    /// Found diverged earlier, it is gone or has changed since: this node, not fetching
    /// from it, may lack its writes (never opened, whatever on-catchup-timeout says).
    diverged_moved: bool,
}

/// The peer's extra GTIDs, when this node's record says it diverged.
fn diverged_peer(s: &NotifySettings) -> Option<String> {
    load(s)
        .peer_channel
        .filter(|c| c.state == "diverged")
        .and_then(|c| c.peer_extra)
}

/// Fences the peer again, for a promotion whose own session broke after the first
/// fence. Two promotions that fence each other stay exclusive only because each opens
/// writes on a session it held when it fenced: the other's fence kills that session
/// (the notify account's too), and its open then fails. A fresh session escapes the
/// other's fence, so it must be followed by a fence of our own before writes open.
fn refence(ctx: &Ctx, conn: &mut Connection) -> Result<(), String> {
    let Some(login) = ctx.s.peer_login() else {
        return Ok(());
    };
    let own_id = conn
        .query("SELECT @@server_id AS id")
        .map_err(|e| format!("cannot read this server's id: {e}"))?
        .get(0, "id")
        .map(String::from)
        .unwrap_or_default();
    let mut peer = match login.connect(ctx.s.connect_timeout.min(Duration::from_secs(2))) {
        Ok(p) => p,
        // Gone since the first fence (which left it read-only, as it restarts): as
        // in wait_for_peer, unless our replication still hears from it.
        Err(e) if matches!(e.class, Class::Down | Class::Timeout) => {
            return match still_receiving(ctx, conn) {
                Some(how) => Err(format!(
                    "cannot reach the peer again ({}), yet this node's replication still \
                     receives from it ({how})",
                    e.msg
                )),
                None => {
                    ctx.log.log(
                        Severity::Notice,
                        &format!(
                            "MASTER: the peer fenced earlier cannot be reached any more ({}): \
                             not fencing it again",
                            e.msg
                        ),
                    );
                    Ok(())
                }
            };
        }
        Err(e) => return Err(format!("the peer refuses us now: {}", e.msg)),
    };
    let killed = fence_peer(ctx, &own_id, &mut peer)?;
    ctx.log.log(
        Severity::Notice,
        &format!(
            "MASTER: this node's session broke after the fence (killed by the peer's own \
             promotion, or timed out): peer fenced again ({killed} client sessions killed) \
             on a new session before opening"
        ),
    );
    Ok(())
}

/// Planned switchover: when the peer's mysqld still answers, wait until this node has
/// received and applied the peer's whole binary log, so no acknowledged write is left
/// behind even with asynchronous replication. Only a peer that cannot be reached
/// (refused, no route, no answer in time: the failover case) is skipped. A peer that
/// answers but refuses us (access denied, a bad reply, a failing query) is alive and
/// may hold writes we have not seen: then the wait fails, and the promotion follows
/// `on-catchup-timeout` (read-only by default). Every decision is logged.
/// `Some(why)` when witnesses are configured and none answers now (within 500 ms).
fn isolated(s: &NotifySettings) -> Option<String> {
    if s.witnesses.is_empty() {
        return None;
    }
    let targets = crate::reach::beyond_this_host(&s.witnesses);
    let within = Duration::from_millis(500);
    match crate::reach::start(&targets, within)
        .wait(Instant::now() + within + Duration::from_millis(50))
    {
        crate::reach::Reach::Reached(_) => None,
        crate::reach::Reach::Unreachable(why) => Some(format!(
            "neither the peer nor any witness answers ({}): this node may be the one cut \
             off, so writes stay closed",
            why.join("; ")
        )),
    }
}

fn wait_for_peer(
    ctx: &Ctx,
    conn: &mut Connection,
    deadline: Instant,
    seen: &mut PeerSeen,
) -> Result<(), String> {
    let d = &conn.dialect.clone();
    let Some(login) = ctx.s.peer_login() else {
        return Ok(());
    };
    let peer_name = login.endpoint.to_string();
    let gone = |e: &ConnError| matches!(e.class, Class::Down | Class::Timeout);
    let skip = |e: &ConnError| {
        // Gone from here, or is it us who is cut off? With witnesses, one of them must
        // answer: an isolated node (its standby may become MASTER before its check
        // calls it isolated) must not open writes beside a master it cannot see.
        if let Some(why) = isolated(ctx.s) {
            ctx.alert("isolated", &format!("MASTER: {why}"));
            return Err(why);
        }
        ctx.log.log(
            Severity::Notice,
            &format!(
                "MASTER: peer {peer_name} unreachable ({}): not waiting for it",
                e.msg
            ),
        );
        Ok(())
    };
    let refused = |e: &ConnError| {
        Err(format!(
            "peer {peer_name} answers but refuses us ({}: {}), so its writes cannot be waited for",
            e.class.name(),
            e.msg
        ))
    };
    let bound = ctx.s.connect_timeout.min(Duration::from_secs(2));
    // A peer that answers at once needs no second opinion. One that is slow to (frozen,
    // or gone without a reset) gets the replica's view taken meanwhile, not after the
    // connect bound: that is most of a frozen master's failover time.
    let (connected, early_view) = std::thread::scope(|sc| {
        let h = sc.spawn(|| login.connect(bound));
        let t = Instant::now();
        while !h.is_finished() && t.elapsed() < Duration::from_millis(50) {
            sleep(Duration::from_millis(2));
        }
        // Cut short once the peer has answered: its fence decides then, not the view.
        let answered = || h.is_finished();
        let view = (!h.is_finished()).then(|| still_receiving_unless(ctx, conn, &answered));
        let connected = h
            .join()
            .unwrap_or_else(|_| Err(ConnError::new(Class::Internal, "the peer's connect failed")));
        (connected, view)
    });
    let mut peer = match connected {
        Ok(p) => p,
        // Unreachable from here is not dead: a replication channel that still
        // receives from it says the peer is alive, and then it cannot be fenced.
        Err(e) if gone(&e) => {
            return match early_view.unwrap_or_else(|| still_receiving(ctx, conn)) {
                Some(how) => {
                    seen.alive_unfenced = true;
                    Err(format!(
                        "peer {peer_name} cannot be reached ({}), yet this node's replication \
                     still receives from it ({how}): it is alive and cannot be fenced",
                        e.msg
                    ))
                }
                None => skip(&e)
                    .inspect(|()| seen.gone = true)
                    .inspect_err(|_| seen.alive_unfenced = true),
            }
        }
        // Alive and misconfigured (access denied, TLS, a bad reply): it cannot be
        // fenced, so on-catchup-timeout = open does not apply either.
        Err(e) => {
            seen.alive_unfenced = true;
            return refused(&e);
        }
    };
    // A live peer is fenced before its position is read: whatever it acknowledged is
    // then in that position, and nothing after it (the switchover order of MaxScale
    // and Orchestrator).
    let own_id = conn
        .query("SELECT @@server_id AS id")
        .ok()
        .and_then(|r| r.get(0, "id").map(String::from))
        .unwrap_or_default();
    let mut fenced = fence_peer(ctx, &own_id, &mut peer);
    if fenced.is_err() && peer.is_broken() {
        // Our session there was lost: the peer's own demotion (a healed split) drops
        // client sessions, ours included. Once more, on a new one.
        if let Ok(again) = login.connect(bound) {
            peer = again;
            fenced = fence_peer(ctx, &own_id, &mut peer);
        }
    }
    match fenced {
        Ok(killed) => {
            seen.fenced = true;
            ctx.log.log(
                Severity::Notice,
                &format!(
                    "MASTER: peer {peer_name} answers: fenced (read-only, {killed} client \
                     sessions killed) before reading its position"
                ),
            )
        }
        Err(e) => {
            // Alive and unfenced: on-catchup-timeout = open does not apply.
            seen.alive_unfenced = true;
            let e = format!("peer {peer_name} answers but cannot be fenced: {e}");
            ctx.alert("peer-unfenced", &format!("MASTER: {e}"));
            return Err(e);
        }
    }
    // A peer found diverged earlier, with nothing new since, has nothing we should wait
    // for: what it has beyond us is exactly what is kept off here (its own check says
    // diverged). Anything else it has is waited for as usual, and cannot arrive.
    if let Some(extra) = diverged_peer(ctx.s) {
        match rejoin::compare(conn, &mut peer) {
            Ok(c) if c.gtids() == extra => {
                ctx.log.log(
                    Severity::Notice,
                    &format!(
                        "MASTER: peer {peer_name} is the diverged one ({extra}) and has \
                         written nothing since: nothing of it to wait for"
                    ),
                );
                return Ok(());
            }
            // It moved since (a person repaired or promoted it): what it has now is
            // unknown here, and this node has not fetched any of it.
            r => {
                seen.diverged_moved = true;
                return Err(format!(
                    "peer {peer_name} was found diverged ({extra}) and is no longer as it was \
                     ({}): this node, not fetching from it, may lack its writes",
                    match r {
                        Ok(c) => c.describe(),
                        Err(e) => e.msg,
                    }
                ));
            }
        }
    }
    let pos = match peer.query(d.binlog_gtid_sql()) {
        Ok(r) => r.get(0, "pos").unwrap_or("").to_string(),
        Err(e) => {
            let e = classify(&e);
            return if gone(&e) {
                skip(&e)
                    .inspect(|()| seen.gone = true)
                    .inspect_err(|_| seen.alive_unfenced = true)
            } else {
                refused(&e)
            };
        }
    };
    let started = Instant::now();
    let pos = if d.flavor == Flavor::MariaDB {
        without_server(&pos, &own_id)
    } else {
        pos
    };
    if pos.is_empty() {
        return Ok(());
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "peer's position {pos} not applied within catchup-timeout"
            ));
        }
        let slice = left.min(Duration::from_millis(500));
        // The read outlasts the server-side wait it covers.
        conn.set_read_timeout(slice + Duration::from_secs(2));
        match conn.query(&d.gtid_wait_sql(&pos, slice.as_secs_f64())) {
            Ok(r) if r.get(0, "r") == Some("0") => {
                ctx.log.log(
                    Severity::Notice,
                    &format!(
                        "MASTER: peer {peer_name}'s position {pos} applied here after {} ms",
                        started.elapsed().as_millis()
                    ),
                );
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for the peer's position: {e}")),
        }
        if ctx.superseded() {
            return Ok(());
        }
    }
}

/// Why a fenced master must not take writes back by itself: it has to hold the VIP,
/// the record must say writes were opened here, and the peer must answer read-only.
/// A writable peer fenced us and is the master now; an unreachable one leaves unknown
/// who made this node read-only. `None`: re-assert.
fn reassert_refusal(s: &NotifySettings) -> Option<String> {
    let Some(vip) = s.vip else {
        return Some("vip is not set".into());
    };
    if !role::local_addresses().contains(&vip) {
        return Some(format!("this node does not hold {vip}"));
    }
    let rec = load(s);
    if !(rec.state.eq_ignore_ascii_case("MASTER") && rec.read_only == Some(false)) {
        return Some("writes were not opened here by the last promotion".into());
    }
    let Some(login) = s.peer_login() else {
        return Some("peer-host is not set: the peer cannot be checked".into());
    };
    let ro = login
        .connect(s.connect_timeout.min(Duration::from_secs(2)))
        .and_then(|mut p| read_only_on(&mut p));
    match ro {
        Ok(true) => None,
        Ok(false) => Some("the peer is writable: it fenced this node and is the master now".into()),
        Err(e) => Some(format!(
            "the peer cannot be checked ({}): who made this node read-only is unknown",
            e.msg
        )),
    }
}

/// Whether the server is read-only (on MySQL `super_read_only` implies it).
fn read_only_on(conn: &mut Connection) -> Result<bool, ConnError> {
    let r = conn
        .query("SELECT @@global.read_only AS ro")
        .map_err(|e| classify(&e))?;
    match r.get(0, "ro") {
        Some(v) => Ok(v == "1"),
        None => Err(ConnError::new(Class::Protocol, "no read_only in the reply")),
    }
}

/// The promotion brake (anti-flapping): past `max-promotions` promotions within
/// `promotion-window`, a MASTER event keeps the node read-only until an operator's
/// `keepalived-mysql reset`. `Some(why)` when engaged (recorded).
fn brake(ctx: &Ctx) -> Option<String> {
    let s = ctx.s;
    if s.max_promotions == 0 {
        return None;
    }
    let now = now_unix();
    let window = s.promotion_window.as_secs_f64();
    let rec = load(s);
    let recent = rec.promotions.iter().filter(|t| now - **t < window).count();
    if rec.brake_since.is_none() && recent < s.max_promotions as usize {
        return None;
    }
    let since = rec.brake_since.unwrap_or(now);
    if rec.brake_since.is_none() {
        // Unrecorded, it would let the next event through: said, and engaged anyway.
        if let Err(e) = record(s, |r| r.brake_since = Some(since)) {
            ctx.log
                .log(Severity::Err, &format!("MASTER: promotion brake: {e}"));
        }
    }
    Some(format!(
        "MASTER: promotion brake engaged since {} ({recent} promotions within {}, at most \
         {}): staying read-only; after finding why the VIP flaps, run keepalived-mysql reset",
        rfc3339(since),
        humantime::format_duration(s.promotion_window),
        s.max_promotions
    ))
}

/// Sets the peer read-only (`super_read_only` on MySQL) and kills its client sessions;
/// an open transaction that holds the lock is killed first, and the statement tried
/// again for up to 3 s. Returns how many sessions were killed.
fn fence_peer(ctx: &Ctx, own_id: &str, peer: &mut Connection) -> Result<usize, String> {
    let d = peer.dialect.clone();
    let id = peer
        .query("SELECT @@server_id AS id")
        .map_err(|e| format!("cannot read its server id: {e}"))?;
    if id.get(0, "id") == Some(own_id) {
        return Err(format!(
            "peer-host reaches this server itself (server_id {own_id}): point it at the \
             peer's own address, never the VIP"
        ));
    }
    let until = Instant::now() + Duration::from_secs(3);
    peer.set_read_timeout(Duration::from_secs(4));
    let mut r = run_all(
        peer,
        &format!("SET SESSION lock_wait_timeout = 1; {}", d.writes_sql(false)),
    );
    let mut killed = Vec::new();
    while let Err(WireError::Server {
        code: ER_LOCK_WAIT_TIMEOUT,
        ..
    }) = r
    {
        if Instant::now() >= until {
            break;
        }
        killed.extend(kill_client_sessions(ctx, peer));
        sleep(Duration::from_millis(50));
        r = run_all(peer, d.writes_sql(false));
    }
    r.map_err(|e| format!("cannot make it read-only: {e}"))?;
    // Sessions of users allowed through read_only (SUPER, READ_ONLY ADMIN) could
    // still write: none is left. One of them may be the peer's own promotion, whose
    // "read_only = OFF" can land between our SET and our KILL: once the killed are
    // gone, read-only is set again and read back.
    killed.extend(kill_client_sessions(ctx, peer));
    wait_gone(peer, &killed, Instant::now() + Duration::from_secs(1));
    run_all(peer, d.writes_sql(false)).map_err(|e| format!("cannot make it read-only: {e}"))?;
    let check = match d.flavor {
        Flavor::MariaDB => "SELECT @@global.read_only AS ro",
        Flavor::MySQL => "SELECT @@global.super_read_only AS ro",
    };
    match peer.query(check) {
        Ok(r) if r.get(0, "ro") == Some("1") => Ok(killed.len()),
        Ok(_) => Err("it is writable again right after the fence".into()),
        Err(e) => Err(format!("cannot read its read_only back: {e}")),
    }
}

/// Whether this node's replication channel still receives from the peer: its IO
/// thread connected, and heartbeats or events arriving within about a heartbeat
/// period (sampled twice, at most 3 s apart). `Some(what was seen)` when it does.
fn still_receiving(ctx: &Ctx, conn: &mut Connection) -> Option<String> {
    still_receiving_unless(ctx, conn, &|| false)
}

/// The same, giving up (`None`) as soon as `moot()` says the answer is not needed.
fn still_receiving_unless(
    ctx: &Ctx,
    conn: &mut Connection,
    moot: &dyn Fn() -> bool,
) -> Option<String> {
    let sql = match conn.dialect.flavor {
        Flavor::MariaDB => "SHOW ALL SLAVES STATUS",
        Flavor::MySQL => {
            "SELECT IF(s.SERVICE_STATE = 'ON', 'Yes', 'No') AS Slave_IO_Running, \
             s.COUNT_RECEIVED_HEARTBEATS AS Slave_received_heartbeats, \
             s.RECEIVED_TRANSACTION_SET AS Read_Master_Log_Pos, \
             c.HEARTBEAT_INTERVAL AS Slave_heartbeat_period \
             FROM performance_schema.replication_connection_status s \
             JOIN performance_schema.replication_connection_configuration c \
             USING (CHANNEL_NAME) WHERE CHANNEL_NAME = ''"
        }
    };
    let mut sample = || -> Option<(String, String, f64)> {
        let r = match conn.query(sql) {
            Ok(r) => r,
            Err(e) => {
                // The peer could not be reached: that stays the evidence. Said, since
                // the replica's view is then missing (MySQL: SELECT on
                // performance_schema, see accounts.sql).
                ctx.log.log(
                    Severity::Err,
                    &format!("MASTER: cannot ask replication whether the peer still sends: {e}"),
                );
                return None;
            }
        };
        // The default channel (MariaDB lists every named one too).
        let i =
            (0..r.rows.len()).find(|&i| r.get(i, "Connection_name").unwrap_or("").is_empty())?;
        if r.get(i, "Slave_IO_Running") != Some("Yes") {
            return None;
        }
        Some((
            r.get(i, "Slave_received_heartbeats")?.to_string(),
            r.get(i, "Read_Master_Log_Pos").unwrap_or("").to_string(),
            r.get(i, "Slave_heartbeat_period")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1.0),
        ))
    };
    let (beats, pos, period) = sample()?;
    let wait = Duration::from_secs_f64((period * 1.2).clamp(0.2, 3.0));
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if moot() {
            return None;
        }
        sleep(Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())));
    }
    let (beats2, pos2, _) = sample()?;
    (beats2 != beats || pos2 != pos).then(|| {
        format!(
            "heartbeats {beats} -> {beats2}, position {pos} -> {pos2} in {} ms",
            wait.as_millis()
        )
    })
}

/// MariaDB GTID positions list `domain-server-seq` per domain. Our own transactions come
/// back from the peer but are never applied here again: waiting for them would wait
/// forever, so drop the domains last written by this server.
pub fn without_server(pos: &str, server_id: &str) -> String {
    pos.split(',')
        .map(str::trim)
        .filter(|g| g.split('-').nth(1) != Some(server_id))
        .filter(|g| !g.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until replication has applied everything it received (or there is none).
fn wait_applied(ctx: &Ctx, conn: &mut Connection, deadline: Instant) -> Result<(), String> {
    let d = &conn.dialect.clone();
    loop {
        let status: Result<ResultSet, WireError> = conn.query(d.replica_status_sql());
        let status = status.map_err(|e| format!("replica status: {e}"))?;
        let Some(r) = d.status_from(&status) else {
            return Ok(());
        };
        if r.last_sql_errno != 0 {
            return Err(format!(
                "replication SQL thread error {}: {} (data diverged, catch-up impossible)",
                r.last_sql_errno, r.last_sql_error
            ));
        }
        if r.applied_all_received() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "relay log not applied within catchup-timeout ({}), SQL thread {}",
                humantime::format_duration(ctx.s.catchup_timeout),
                if r.sql_running { "running" } else { "stopped" }
            ));
        }
        if ctx.superseded() {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_argument_styles() {
        let e = parse_event(&args(&["master"])).unwrap();
        assert_eq!(
            (e.state, e.instance, e.priority),
            (VrrpState::Master, None, None)
        );
        let e = parse_event(&args(&["INSTANCE", "VI_1", "BACKUP", "100"])).unwrap();
        assert_eq!(e.state, VrrpState::Backup);
        assert_eq!(e.instance.as_deref(), Some("INSTANCE VI_1"));
        assert_eq!(e.priority, Some(100));
        assert!(parse_event(&args(&["GROUP", "G", "FAULT"])).is_ok());
        assert!(parse_event(&args(&["bogus"])).is_err());
        assert!(parse_event(&args(&["VRRP", "VI_1", "MASTER", "1"])).is_err());
        assert!(parse_event(&[]).is_err());
    }

    #[test]
    fn own_domains_dropped_from_peer_position() {
        assert_eq!(without_server("1-1-10,2-2-7", "1"), "2-2-7");
        assert_eq!(without_server("2-2-7", "1"), "2-2-7");
        assert_eq!(without_server("1-1-10", "1"), "");
        assert_eq!(without_server("", "1"), "");
    }
}
