//! `keepalived-mysql status`: what the pair is doing, and whether it is safe.
//!
//! Reads only: the state files the hooks write, the drain file, and one short read-only
//! request to each server (this node's with the check's credentials, the peer and the
//! VIP with the notify hook's, over the same path its promotion uses). It takes no lock
//! and writes nothing, so it can run beside keepalived at any time.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{CheckSettings, Endpoint, NotifySettings, RestartSettings};
use crate::connection::Login;
use crate::dialect::{ReplicaStatus, ThreadState};
use crate::role;
use crate::state::check::CheckState;
use crate::state::notify::HistoryEntry;
use crate::state::restart::{Phase, RestartState};
use crate::state::{self, now_unix, rfc3339};
use crate::verdict::Class;

/// keepalived-mysql's check runs every second or two; a check.json this much older
/// means keepalived is not running the check on this node.
const CHECK_STALE_SECS: f64 = 15.0;

/// One server, as one short request saw it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerView {
    pub endpoint: String,
    /// Why it could not be read; `class` says whether it is down or refusing us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The flavour the connection's handshake announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<crate::dialect::Flavor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Everything it has applied (`gtid_current_pos` / `gtid_executed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// `None` with no error: not configured as a replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
}

impl ServerView {
    pub fn reachable(&self) -> bool {
        self.error.is_none()
    }

    /// Replication problems, as the check would see them on a standby.
    pub fn replication_problems(&self, max_lag: Duration) -> Vec<String> {
        if !self.reachable() {
            return Vec::new();
        }
        let Some(r) = &self.replica else {
            return vec!["no replication configured".into()];
        };
        let mut p: Vec<String> = r.sql_problem().into_iter().collect();
        p.extend(r.io_problem());
        if let Some(lag) = r.seconds_behind {
            if lag > max_lag.as_secs() && !r.applied_all_received() {
                p.push(format!("replication lag {lag} s"));
            }
        }
        p
    }

    pub fn writable(&self) -> bool {
        self.read_only == Some(false)
    }
}

/// Reads one server: identity, read_only, GTID position and replica status, in one
/// request, within `timeout`.
pub fn read_server(login: &Login, timeout: Duration) -> ServerView {
    let mut v = ServerView {
        endpoint: login.endpoint.to_string(),
        ..ServerView::default()
    };
    let fail = |mut v: ServerView, class: Class, msg: String| {
        v.class = Some(class);
        v.error = Some(msg);
        v
    };
    let mut conn = match login.connect(timeout) {
        Ok(c) => c,
        Err(e) => return fail(v, e.class, e.msg),
    };
    conn.set_read_timeout(timeout);
    let d = conn.dialect.clone();
    v.flavor = Some(d.flavor);
    let sql = format!(
        "SELECT @@server_id AS id, @@read_only AS ro, @@version AS v; {}; {}",
        d.executed_gtid_sql(),
        d.replica_status_sql()
    );
    let vars = match conn.query(&sql) {
        Ok(r) => r,
        Err(e) => {
            let c = crate::connection::classify(&e);
            let msg = format!("{}: {}", v.endpoint, c.msg);
            return fail(v, c.class, msg);
        }
    };
    v.server_id = vars.get(0, "id").and_then(|x| x.parse().ok());
    v.read_only = vars.get(0, "ro").map(|x| x == "1");
    v.version = vars.get(0, "v").map(String::from);
    for i in 0..2 {
        match conn.next_result() {
            Some(Ok(set)) if i == 0 => v.gtid = set.get(0, "pos").map(String::from),
            Some(Ok(set)) => v.replica = d.status_from(&set),
            Some(Err(e)) => {
                let c = crate::connection::classify(&e);
                let msg = format!("{}: {}", v.endpoint, c.msg);
                return fail(v, c.class, msg);
            }
            None => break,
        }
    }
    v
}

/// What this node's files say.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LocalFiles {
    /// State files that exist but cannot be read: what they would say is unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// `None`: no `vip` configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds_vip: Option<bool>,
    pub maintenance_file: String,
    pub draining: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartState>,
    pub restart_budget: String,
    /// The VRRP state the notify hook last acted on, and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp_since: Option<String>,
    pub demotion_pending: bool,
    /// Since when the promotion brake keeps MASTER events read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_brake_since: Option<String>,
    /// Replication from the peer since the last promotion (held, diverged, resumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_channel: Option<crate::state::notify::PeerChannel>,
    pub last_transitions: Vec<HistoryEntry>,
}

/// The value of a state file read, or `None` with the error kept for the verdict.
fn keep<T>(unreadable: &mut Vec<String>, r: Result<Option<T>, String>) -> Option<T> {
    r.unwrap_or_else(|e| {
        unreadable.push(e);
        None
    })
}

pub fn read_files(check: &CheckSettings, restart: &RestartSettings) -> LocalFiles {
    let now = now_unix();
    let mut unreadable = Vec::new();
    let rs = keep(&mut unreadable, state::restart::file(restart).read());
    let nr = keep(&mut unreadable, state::notify::file(check).read());
    let cs = keep(&mut unreadable, state::check::file(check).read());
    let used = rs
        .as_ref()
        .map(|r| {
            r.attempts
                .iter()
                .filter(|t| now - **t < restart.restart_window.as_secs_f64())
                .count()
        })
        .unwrap_or(0);
    LocalFiles {
        unreadable,
        holds_vip: check.vip.map(|vip| role::local_addresses().contains(&vip)),
        maintenance_file: check.maintenance_file.display().to_string(),
        draining: check.maintenance_file.exists(),
        check: cs,
        restart: rs,
        restart_budget: format!(
            "{used} of {} restarts used in {}",
            restart.max_restarts,
            humantime::format_duration(restart.restart_window)
        ),
        vrrp_state: nr.as_ref().map(|r| r.state.clone()),
        vrrp_since: nr.as_ref().map(|r| rfc3339(r.since)),
        demotion_pending: nr.as_ref().is_some_and(|r| r.demotion_pending),
        promotion_brake_since: nr.as_ref().and_then(|r| r.brake_since).map(rfc3339),
        peer_channel: nr.as_ref().and_then(|r| r.peer_channel.clone()),
        last_transitions: nr
            .map(|r| {
                let n = r.history.len();
                r.history[n.saturating_sub(5)..].to_vec()
            })
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Healthy,
    Degraded,
    Danger,
}

impl Level {
    /// The documented exit codes of `status`.
    pub fn code(self) -> u8 {
        match self {
            Level::Healthy => 0,
            Level::Degraded => super::DEGRADED,
            Level::Danger => super::DANGER,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PairStatus {
    pub level: Level,
    /// "healthy pair", "degraded: ...", "DANGER: ...".
    pub summary: String,
    pub problems: Vec<String>,
    /// Worth knowing, not a problem (no peer configured, ...).
    pub notes: Vec<String>,
    pub vip: Option<IpAddr>,
    pub local: ServerView,
    pub files: LocalFiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<ServerView>,
    /// The server that answers on the VIP (at `port`, the same on both nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_vip: Option<ServerView>,
    pub time: String,
}

/// Everything `status` shows, and the verdict on it.
pub fn collect(
    check: &CheckSettings,
    restart: &RestartSettings,
    notify: &NotifySettings,
) -> PairStatus {
    let t = notify.connect_timeout;
    let local = read_server(&check.login(), t);
    let peer = notify.peer_login().map(|l| read_server(&l, t));
    let via_vip = notify
        .vip
        .map(|vip| read_server(&notify.login_at(Endpoint::Tcp(vip, notify.port)), t));
    let files = read_files(check, restart);
    judge(check, local, files, peer, via_vip)
}

pub fn judge(
    check: &CheckSettings,
    local: ServerView,
    files: LocalFiles,
    peer: Option<ServerView>,
    via_vip: Option<ServerView>,
) -> PairStatus {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut danger = Vec::new();
    let max_lag = check.max_lag;
    // A replica whose source answers us must be connected to it: an IO thread that
    // cannot reach a live source is not keeping up, whatever its error class.
    let server =
        |who: &str, v: &ServerView, source: Option<&ServerView>, problems: &mut Vec<String>| {
            if let Some(e) = &v.error {
                problems.push(format!("{who}: {e}"));
            }
            for p in v.replication_problems(max_lag) {
                problems.push(format!("{who}: {p}"));
            }
            if let (Some(r), Some(src)) = (&v.replica, source) {
                if src.reachable() && r.io_running != ThreadState::Yes && r.io_problem().is_none() {
                    problems.push(format!(
                        "{who}: replication IO thread not connected to its source ({})",
                        if r.last_io_error.is_empty() {
                            "no error given"
                        } else {
                            &r.last_io_error
                        }
                    ));
                }
                if src.reachable()
                    && src.server_id.is_some()
                    && r.source_server_id.is_some()
                    && r.source_server_id != src.server_id
                {
                    problems.push(format!(
                        "{who}: replicates from server {}, not from server {}",
                        opt(r.source_server_id),
                        opt(src.server_id)
                    ));
                }
            }
        };
    server("this node", &local, peer.as_ref(), &mut problems);
    match &peer {
        Some(p) => server("peer", p, Some(&local), &mut problems),
        None => notes.push("peer not checked: set peer-host".into()),
    }
    for e in &files.unreadable {
        problems.push(e.clone());
    }
    if let Some(p) = &peer {
        if local.writable() && p.writable() {
            danger.push(format!(
                "two writable nodes (server ids {} and {})",
                opt(local.server_id),
                opt(p.server_id)
            ));
        }
        if local.reachable() && p.reachable() && !local.writable() && !p.writable() {
            problems.push("no writable node: both servers are read-only".into());
        }
    }
    match files.holds_vip {
        Some(true) if local.read_only == Some(true) => {
            problems.push("this node holds the VIP but is read-only".into())
        }
        Some(false) if local.writable() => {
            problems.push("this node is writable without the VIP".into())
        }
        _ => {}
    }
    let known = [local.server_id, peer.as_ref().and_then(|p| p.server_id)];
    match &via_vip {
        Some(v) if v.reachable() && v.server_id.is_some() && !known.contains(&v.server_id) => {
            problems.push(format!(
                "the VIP answers from server {}, which is neither this node nor the peer",
                opt(v.server_id)
            ))
        }
        Some(v) if !v.reachable() => problems.push(format!(
            "nothing answers on the VIP: {}",
            v.error.as_deref().unwrap_or("")
        )),
        Some(v) if v.read_only == Some(true) => problems.push(format!(
            "the server on the VIP (id {}) is read-only: writes fail",
            opt(v.server_id)
        )),
        _ => {}
    }
    if files.draining {
        problems.push(format!("drain file present: {}", files.maintenance_file));
    }
    match files.restart.as_ref().map(|r| r.phase) {
        Some(Phase::GaveUp) => problems.push(format!(
            "the restart hook gave up{} (clear with: keepalived-mysql reset)",
            files
                .restart
                .as_ref()
                .and_then(|r| r.reason.as_deref())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        Some(Phase::Restarting) => problems.push("a mysqld restart is in progress".into()),
        _ => {}
    }
    if let (Some(holds), Some(st)) = (files.holds_vip, files.vrrp_state.as_deref()) {
        let master = st.eq_ignore_ascii_case("MASTER");
        if holds != master {
            problems.push(format!(
                "the notify hook last acted on {st}, but this node {} the VIP",
                if holds { "holds" } else { "does not hold" }
            ));
        }
    }
    match &files.peer_channel {
        Some(c) if c.state == "diverged" => problems.push(format!(
            "DIVERGED: the peer has transactions this node never applied: {}; replication \
             from it stays stopped until they are discarded or applied by hand",
            c.peer_extra.as_deref().unwrap_or("?")
        )),
        Some(c) if c.state == "held" && peer.as_ref().is_some_and(|p| p.reachable()) => problems.push(format!(
            "replication from the peer is held since {} until it is verified (is the watcher running?)",
            rfc3339(c.since)
        )),
        _ => {}
    }
    if files.demotion_pending {
        problems.push("a demotion is pending (the server was unreachable)".into());
    }
    if let Some(t) = &files.promotion_brake_since {
        problems.push(format!(
            "the promotion brake is engaged since {t}: MASTER events stay read-only until \
             keepalived-mysql reset"
        ));
    }
    match &files.check {
        None => problems.push("no check.json: keepalived has not run the check here".into()),
        Some(c) => {
            let age = now_unix() - c.checked_at;
            if age > CHECK_STALE_SECS {
                problems.push(format!(
                    "the check last ran {age:.0} s ago: is keepalived running it?"
                ));
            } else if c.verdict.class != Class::Ok {
                problems.push(format!(
                    "check: {} since {}: {}",
                    c.verdict.class.name(),
                    c.since_rfc3339,
                    c.verdict.reason
                ));
            }
        }
    }
    let (level, summary) = if !danger.is_empty() {
        (Level::Danger, format!("DANGER: {}", danger.join("; ")))
    } else if !problems.is_empty() {
        (
            Level::Degraded,
            format!("degraded: {}", problems.join("; ")),
        )
    } else if peer.is_some() {
        (Level::Healthy, "healthy pair".into())
    } else {
        (Level::Healthy, "healthy node (peer not checked)".into())
    };
    problems.splice(0..0, danger);
    PairStatus {
        level,
        summary,
        problems,
        notes,
        vip: check.vip,
        local,
        files,
        peer,
        via_vip,
        time: rfc3339(now_unix()),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "?".into())
}

fn on_off(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "ON",
        Some(false) => "OFF",
        None => "?",
    }
}

fn replication_line(v: &ServerView) -> String {
    match &v.replica {
        None => "not configured".into(),
        Some(r) => format!(
            "io {:?}, sql {}, {} behind, from server {}{}",
            r.io_running,
            if r.sql_running { "Yes" } else { "No" },
            r.seconds_behind
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "? s".into()),
            opt(r.source_server_id),
            [r.io_problem(), r.sql_problem()]
                .into_iter()
                .flatten()
                .map(|p| format!("; {p}"))
                .collect::<String>()
        ),
    }
}

fn server_lines(out: &mut String, title: &str, v: &ServerView) {
    out.push_str(&format!("{title} ({})\n", v.endpoint));
    if let Some(e) = &v.error {
        out.push_str(&format!(
            "  unreachable         {} ({})\n",
            e,
            v.class.map(|c| c.name()).unwrap_or("?")
        ));
        return;
    }
    out.push_str(&format!(
        "  server              id {}, {}\n",
        opt(v.server_id),
        v.version.as_deref().unwrap_or("?")
    ));
    out.push_str(&format!("  read_only           {}\n", on_off(v.read_only)));
    out.push_str(&format!("  replication         {}\n", replication_line(v)));
    out.push_str(&format!(
        "  GTID                {}\n",
        v.gtid.as_deref().filter(|g| !g.is_empty()).unwrap_or("-")
    ));
}

/// The human-readable report.
pub fn text(s: &PairStatus) -> String {
    let mut out = format!("{}\n", s.summary);
    for p in s
        .problems
        .iter()
        .skip(if s.problems.len() == 1 { 1 } else { 0 })
    {
        out.push_str(&format!("  - {p}\n"));
    }
    for n in &s.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    server_lines(&mut out, "this node", &s.local);
    let f = &s.files;
    out.push_str(&format!(
        "  VIP                 {}\n",
        match (s.vip, f.holds_vip) {
            (Some(v), Some(true)) => format!("{v} held here"),
            (Some(v), _) => format!("{v} not here"),
            (None, _) => "not configured (vip)".into(),
        }
    ));
    out.push_str(&format!(
        "  VRRP (notify hook)  {}{}\n",
        match (&f.vrrp_state, &f.vrrp_since) {
            (Some(st), Some(t)) => format!("{st} since {t}"),
            _ => "no event received yet".into(),
        },
        if f.demotion_pending {
            ", demotion pending"
        } else {
            ""
        }
    ));
    if let Some(c) = &f.peer_channel {
        out.push_str(&format!(
            "  from the peer       {} since {} (promoted at {}; of the peer's: {}){}\n",
            c.state,
            rfc3339(c.since),
            c.promoted_at,
            if c.from_peer.is_empty() {
                "?"
            } else {
                &c.from_peer
            },
            c.peer_extra
                .as_deref()
                .map(|x| format!(": peer has {x}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "  last check          {}\n",
        match &f.check {
            Some(c) => format!(
                "{} since {}: {}",
                c.verdict.class.name(),
                c.since_rfc3339,
                c.verdict.reason
            ),
            None => "none recorded".into(),
        }
    ));
    out.push_str(&format!(
        "  restart hook        {}; {}\n",
        match &f.restart {
            Some(r) => r.phase.name().to_string(),
            None => "idle".into(),
        },
        f.restart_budget
    ));
    out.push_str(&format!(
        "  drain file          {} ({})\n",
        if f.draining { "PRESENT" } else { "absent" },
        f.maintenance_file
    ));
    for h in f.last_transitions.iter().rev() {
        out.push_str(&format!(
            "  transition          {} {} -> {}\n",
            h.time, h.event, h.action
        ));
    }
    if let Some(p) = &s.peer {
        server_lines(&mut out, "peer", p);
    }
    if let Some(v) = &s.via_vip {
        out.push_str(&format!(
            "VIP answers ({}): {}\n",
            v.endpoint,
            match &v.error {
                Some(e) => format!("nothing: {e}"),
                None => format!(
                    "server id {}, read_only {}",
                    opt(v.server_id),
                    on_off(v.read_only)
                ),
            }
        ));
    }
    out
}
