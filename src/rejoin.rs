//! Rejoin without forking the data: a promoted node stops fetching from its peer, and
//! fetches again only once the peer holds nothing this node lacks.
//!
//! After a crash failover the old master comes back with whatever it committed that
//! never reached us (asynchronous replication), or that crash recovery committed
//! without a replica's acknowledgement (semi-sync "ghosts"). In a dual-master pair our
//! replication channel from it would fetch and apply those silently. So at promotion,
//! once caught up, the channel's IO thread is stopped ("held") and its position
//! recorded; a detached watcher (`keepalived-mysql-notify --watch-peer`) then compares
//! the peer's position with ours whenever the peer answers:
//! - nothing beyond ours: the IO thread is started again ("resumed"), logged;
//! - transactions we lack: they are never fetched ("diverged"): logged as an error with
//!   the exact GTID set, alerted, shown by `keepalived-mysql status`; the watcher keeps
//!   looking, so a peer repaired by the documented procedure is resumed by itself.
//!
//! Only with `peer-host` set: without it the peer cannot be verified, and the channel
//! is left as it was (logged).

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::config::NotifySettings;
use crate::connection::{ConnError, Connection};
use crate::dialect::{Flavor, ReplicaStatus, ThreadState};
use crate::gtid;
use crate::lock;
use crate::log::{Logger, Severity};
use crate::role;
use crate::state::notify::PeerChannel;
use crate::state::{self, now_unix};
use crate::verdict::Class;

pub const WATCH_LOCK: &str = "peer-watch.lock";
/// The marker the active node writes for a diverged peer; it replicates to that peer,
/// whose check then reports it not eligible (exit 21) until the marker is removed.
const MARK_TABLE: &str = "`keepalived_mysql`.`diverged`";
/// The check's read of it, last in its batch (on a standby).
pub const MARK_READ_SQL: &str = "SELECT gtids FROM `keepalived_mysql`.`diverged` \
     WHERE server_id = @@server_id ORDER BY id DESC LIMIT 1";
/// How long a peer that lacks only its own transactions gets to fetch them back from
/// us before it is called diverged.
const LOST_GRACE: Duration = Duration::from_secs(5);
/// A failover's old master may take long to come back; the watcher waits this long.
const WATCH_FOR: Duration = Duration::from_secs(24 * 3600);

/// How long a promotion waits for the reply to its STOP of the IO thread. The server
/// stops fetching as soon as it reads the statement, but its reply waits for the IO
/// thread to let go of its connection: up to 2 s measured when the peer is cut off
/// (packets dropped), the case a failover is most often in. Not waited for: the stop is
/// recorded as pending and the watcher confirms it.
const HOLD_REPLY: Duration = Duration::from_millis(300);

/// At promotion, before writes open: stop fetching from the peer and record where we
/// are. `Ok(None)`: nothing to hold (no replica, no peer-host). The STOP goes on a
/// session of its own, so a slow reply (see HOLD_REPLY) never breaks `conn`.
pub fn hold(s: &NotifySettings, conn: &mut Connection) -> Result<Option<PeerChannel>, String> {
    if s.peer_host.is_none() {
        return Ok(None);
    }
    let d = conn.dialect.clone();
    let status = conn
        .query(d.replica_status_sql())
        .map_err(|e| format!("replica status: {e}"))?;
    if d.status_from(&status).is_none() {
        return Ok(None);
    }
    let fail = |e: String| format!("cannot stop fetching from the peer: {e}");
    let stop_pending = match s.login().connect(s.connect_timeout) {
        Ok(mut own) => {
            own.set_read_timeout(HOLD_REPLY);
            match own.query(d.io_thread_sql(false)) {
                Ok(_) => false,
                // Sent and read by the server, its reply not back yet: the IO thread is
                // being stopped (the server finishes a STOP whose client has gone).
                Err(e) if e.is_timeout() => true,
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        // No second session (too many connections, say): on this one, reply awaited.
        Err(_) => {
            conn.set_read_timeout(Duration::from_secs(10));
            conn.query(d.io_thread_sql(false))
                .map_err(|e| fail(e.to_string()))?;
            false
        }
    };
    // Stopped now: from here on the channel is held whatever else fails.
    let mut ch = PeerChannel {
        state: "held".into(),
        since: now_unix(),
        server_started: server_started(conn),
        stop_pending,
        ..PeerChannel::default()
    };
    position(conn, &mut ch);
    Ok(Some(ch))
}

/// Records in `ch` where this node is (applied, the peer's part of it, received): at
/// the hold, and again once caught up when the hold came before the catch-up. Only ever
/// shown, never decided on.
pub fn position(conn: &mut Connection, ch: &mut PeerChannel) {
    let d = conn.dialect.clone();
    let Some(channel) = conn
        .query(d.replica_status_sql())
        .ok()
        .and_then(|st| d.status_from(&st))
    else {
        return;
    };
    let applied = conn
        .query(d.executed_gtid_sql())
        .ok()
        .and_then(|r| r.get(0, "pos").map(String::from))
        .unwrap_or_default();
    ch.from_peer = peers_part(d.flavor, &applied, &channel);
    ch.promoted_at = applied;
    ch.received = channel.received_gtids;
}

/// Whether this mysqld restarted since the hold recorded in `ch` (its replica threads
/// then started by themselves): told by the server's start time; unknown counts as a
/// restart, never as a person's choice.
pub fn restarted_since_hold(ch: &PeerChannel, conn: &mut Connection) -> bool {
    match (ch.server_started, server_started(conn)) {
        (Some(then), Some(now)) => now > then + 5.0,
        _ => true,
    }
}

/// When this mysqld started (now minus its uptime), to a second or so.
pub fn server_started(conn: &mut Connection) -> Option<f64> {
    let r = conn.query("SHOW GLOBAL STATUS LIKE 'Uptime'").ok()?;
    let up: f64 = r.get(0, "Value")?.parse().ok()?;
    Some(now_unix() - up)
}

/// The peer's part of our position: its `server_uuid`'s intervals (MySQL), or the
/// domains whose last transaction came from its server id (MariaDB: each node writes
/// its own domain). Empty when it cannot be told; only ever shown, never decided on.
fn peers_part(flavor: Flavor, applied: &str, channel: &ReplicaStatus) -> String {
    match flavor {
        Flavor::MySQL if !channel.source_uuid.is_empty() => gtid::Set::parse(applied)
            .map(|s| s.of_source(&channel.source_uuid).to_string())
            .unwrap_or_default(),
        Flavor::MySQL => String::new(),
        Flavor::MariaDB => match (gtid::parse_mariadb(applied), channel.source_server_id) {
            (Ok(pos), Some(id)) => pos
                .iter()
                .filter(|(_, (server, _))| u64::from(*server) == id)
                .map(|(d, (server, seq))| format!("{d}-{server}-{seq}"))
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        },
    }
}

/// Marks (`Some(gtids)`) or clears (`None`) the peer `server_id` as diverged, on this
/// node, whence it replicates to the peer. Rows are only ever inserted (the newest per
/// server counts): an update or delete replicated in row format would stop a peer that
/// lacks the row (error 1032). Only while this node is writable (the master): a row
/// written on a demoted node would itself be an errant transaction. The notify account
/// may write through read_only, so the statements check it themselves, and the schema
/// is created only when missing (`IF NOT EXISTS` is binlogged even when it exists).
fn mark(local: &mut Connection, server_id: u64, gtids: Option<&str>) -> Result<(), String> {
    let what = if gtids.is_some() { "write" } else { "clear" };
    let fail = |e: String| format!("cannot {what} the diverged marker: {e}");
    let r = local
        .query(
            "SELECT @@global.read_only AS ro, (SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'keepalived_mysql' AND TABLE_NAME = 'diverged') AS t",
        )
        .map_err(|e| fail(e.to_string()))?;
    if r.get(0, "ro") != Some("0") {
        return Err(fail("this node is read-only (no longer the master)".into()));
    }
    let mut sql = String::new();
    if r.get(0, "t") != Some("1") {
        sql.push_str(&format!(
            "CREATE DATABASE IF NOT EXISTS `keepalived_mysql`; \
             CREATE TABLE IF NOT EXISTS {MARK_TABLE} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
             server_id INT UNSIGNED NOT NULL, gtids TEXT NOT NULL, \
             since TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (server_id, id)); "
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO {MARK_TABLE} (server_id, gtids) SELECT {server_id}, '{}' FROM DUAL \
         WHERE @@global.read_only = 0",
        gtids.unwrap_or("").replace(['\'', '\\'], "")
    ));
    let mut r = local.query(&sql).map(|_| ());
    while let Some(next) = local.next_result() {
        r = r.and(next.map(|_| ()));
    }
    r.map_err(|e| fail(e.to_string()))
}

/// The newest marker for the peer says it is diverged (a missing table: no).
fn marked(local: &mut Connection, server_id: u64) -> Result<bool, String> {
    match local.query(&format!(
        "SELECT gtids FROM {MARK_TABLE} WHERE server_id = {server_id} ORDER BY id DESC LIMIT 1"
    )) {
        Ok(r) => Ok(r.get(0, "gtids").is_some_and(|g| !g.is_empty())),
        Err(crate::wire::WireError::Server {
            code: 1146 | 1049, ..
        }) => Ok(false),
        Err(e) => Err(format!("cannot read the diverged marker: {e}")),
    }
}

fn classify_wire(e: &crate::wire::WireError) -> ConnError {
    crate::connection::classify(e)
}

/// How the peer's data stands against ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Transactions the peer has that this node lacks (orphans, ghosts, errant writes).
    pub extra: String,
    /// The peer's own transactions that this node applied and the peer no longer has
    /// (cut by its crash recovery, or lost with its binary log): it will not fetch them
    /// back, they carry its own server id. Empty when that cannot be told.
    pub lost: String,
    pub peer_id: u64,
}

impl Comparison {
    pub fn clean(&self) -> bool {
        self.extra.is_empty() && self.lost.is_empty()
    }

    /// The GTIDs for the marker and the record: what makes the peer ineligible.
    pub fn gtids(&self) -> String {
        match (self.extra.is_empty(), self.lost.is_empty()) {
            (_, true) => self.extra.clone(),
            (true, false) => format!("lacks its own {}", self.lost),
            (false, false) => format!("{}; lacks its own {}", self.extra, self.lost),
        }
    }

    /// One sentence on what is wrong, for logs and refusals.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.extra.is_empty() {
            parts.push(format!(
                "has transactions this node never applied: {}",
                self.extra
            ));
        }
        if !self.lost.is_empty() {
            parts.push(format!(
                "lacks transactions it wrote itself that this node applied: {} (cut by its \
                 crash recovery, or lost with its binary log; it will not fetch them back)",
                self.lost
            ));
        }
        parts.join("; and ")
    }
}

/// What the peer has that this node lacks, and what of its own it lost that we have:
/// by the server's arithmetic cross-checked with ours on MySQL, per domain on MariaDB.
/// `Err`: either side could not be read, or the answer cannot be trusted: never taken
/// for "clean". The one comparison behind both a rejoin and a switchover's refusal.
pub fn compare(local: &mut Connection, peer: &mut Connection) -> Result<Comparison, ConnError> {
    let classify = |e: crate::wire::WireError| crate::connection::classify(&e);
    let unreadable =
        |what: &str| ConnError::new(Class::Protocol, format!("no {what} in the reply"));
    let bad = |e: String| ConnError::new(Class::Protocol, e);
    let d = local.dialect.clone();
    let theirs = match d.flavor {
        // The peer's binary log: what it would send us.
        Flavor::MariaDB => {
            "SELECT @@server_id AS id, @@gtid_domain_id AS dom, @@gtid_binlog_pos AS pos"
        }
        Flavor::MySQL => "SELECT @@server_id AS id, @@server_uuid AS dom, @@gtid_executed AS pos",
    };
    let r = peer.query(theirs).map_err(classify)?;
    let peer_id = r
        .get(0, "id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unreadable("server id"))?;
    let theirs = r
        .get(0, "pos")
        .ok_or_else(|| unreadable("GTID position"))?
        .to_string();
    let their_domain = r
        .get(0, "dom")
        .ok_or_else(|| unreadable("GTID domain or server uuid"))?
        .to_string();
    // An empty position is an answer, not a failure to learn one: the peer's binary
    // log holds nothing, so our channel has nothing to fetch from it. (A binary log
    // reset on purpose hides any evidence: then the data is the operator's to compare.)
    let own_id: u64 = local
        .query("SELECT @@server_id AS id")
        .map_err(classify)?
        .get(0, "id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unreadable("server id"))?;
    if own_id == peer_id {
        return Err(ConnError::new(
            Class::Config,
            format!(
                "peer-host reaches this server itself (server_id {own_id}): point it at the \
                 peer's own address, never the VIP"
            ),
        ));
    }
    match d.flavor {
        Flavor::MySQL => {
            // The server's arithmetic and ours must agree: a disagreement (a format
            // this code does not know) is "cannot tell", never "nothing extra".
            let q = format!(
                "SELECT GTID_SUBTRACT('{}', @@gtid_executed) AS d, @@gtid_executed AS ours",
                theirs.replace(['\'', '\\'], "")
            );
            let r = local.query(&q).map_err(classify)?;
            let said = r
                .get(0, "d")
                .ok_or_else(|| unreadable("GTID_SUBTRACT result"))?;
            let ours = gtid::Set::parse(
                r.get(0, "ours")
                    .ok_or_else(|| unreadable("gtid_executed"))?,
            )
            .map_err(bad)?;
            let theirs = gtid::Set::parse(&theirs).map_err(bad)?;
            let extra = theirs.subtract(&ours);
            if gtid::Set::parse(said).map_err(bad)? != extra {
                return Err(bad(format!(
                    "the server's GTID_SUBTRACT gave '{}', this tool computed '{extra}'",
                    said.trim()
                )));
            }
            let lost = ours.of_source(&their_domain).subtract(&theirs);
            Ok(Comparison {
                extra: extra.to_string(),
                lost: lost.to_string(),
                peer_id,
            })
        }
        Flavor::MariaDB => {
            let ours = local
                .query("SELECT @@gtid_domain_id AS dom, @@gtid_current_pos AS pos")
                .map_err(classify)?;
            // One domain for both nodes: sequence numbers no longer tell whose a
            // transaction is, so nothing can be verified (mysql-pair.cnf says why).
            if ours.get(0, "dom") == Some(their_domain.as_str()) {
                return Err(ConnError::new(
                    Class::Config,
                    format!(
                        "both nodes write GTID domain {their_domain}: the peer's transactions \
                         cannot be told apart; give each node its own gtid_domain_id"
                    ),
                ));
            }
            let ours = gtid::parse_mariadb(
                ours.get(0, "pos")
                    .ok_or_else(|| unreadable("GTID position"))?,
            )
            .map_err(bad)?;
            let theirs = gtid::parse_mariadb(&theirs).map_err(bad)?;
            let extra = gtid::mariadb_ahead(&theirs, &ours);
            // Its own domain only, and only while its binary log has that domain at all
            // (a node re-cloned from a backup starts with an empty one: not a loss).
            let dom: u32 = their_domain
                .parse()
                .map_err(|_| unreadable("GTID domain"))?;
            let lost = match (ours.get(&dom), theirs.get(&dom)) {
                (Some(&here), Some(_)) => {
                    gtid::mariadb_ahead(&std::iter::once((dom, here)).collect(), &theirs)
                }
                _ => Vec::new(),
            };
            Ok(Comparison {
                extra: extra.join(", "),
                lost: lost.join(", ").replace("(here:", "(the peer:"),
                peer_id,
            })
        }
    }
}

/// Whether a standby may fetch from its peer again after a hold: the peer holds nothing
/// this node lacks, or, if it has taken over (writable: its new writes would read as
/// extra), it has everything this node has and lacks none of its own transactions that
/// this node has (cut by its crash recovery, it would write those numbers again).
/// `Ok` with a clean comparison: resume. An error of class Down or Timeout: the peer
/// did not answer.
pub fn verify_for_standby(
    s: &NotifySettings,
    conn: &mut Connection,
) -> Result<Comparison, ConnError> {
    let Some(login) = s.peer_login() else {
        return Err(ConnError::new(Class::Config, "peer-host is not set"));
    };
    let mut peer = login.connect(s.connect_timeout.min(Duration::from_secs(2)))?;
    let writable = peer
        .query("SELECT @@global.read_only AS ro")
        .map_err(|e| classify_wire(&e))?
        .get(0, "ro")
        .ok_or_else(|| ConnError::new(Class::Protocol, "no read_only in the reply"))?
        == "0";
    if !writable {
        return compare(conn, &mut peer);
    }
    let back = compare(&mut peer, conn)?;
    let lost = compare(conn, &mut peer)?.lost;
    if back.extra.is_empty() && lost.is_empty() {
        return Ok(back);
    }
    Err(ConnError::new(
        Class::Config,
        format!(
            "the peer is writable (it has taken over), and {}",
            if lost.is_empty() {
                format!("this node has what it lacks: {}", back.extra)
            } else {
                format!("lacks its own {lost}, which this node has")
            }
        ),
    ))
}

/// A standby's watcher round (its channel held while the peer was gone): once the
/// peer answers, fetch again if it is verified; otherwise record that it answered,
/// which keeps this node ineligible (said and alerted). `true`: done watching.
fn standby_round(
    s: &NotifySettings,
    log: &Logger,
    peer_name: &str,
    ch: &PeerChannel,
    start_failed: &mut bool,
) -> bool {
    let Ok(mut local) = s.login().connect(s.connect_timeout) else {
        return false;
    };
    let d = local.dialect.clone();
    let running = local
        .query(d.replica_status_sql())
        .ok()
        .and_then(|st| d.status_from(&st))
        .is_some_and(|r| r.io_running != ThreadState::No);
    if running {
        let restarted = restarted_since_hold(ch, &mut local);
        if !restarted {
            // Started by a person: the next event records it (a demotion leaves it
            // running); the check judges it as any running channel meanwhile.
            return true;
        }
        // A restart of this mysqld started it: stopped again, still held.
        if local.query(d.io_thread_sql(false)).is_ok() {
            log.log(
                Severity::Warning,
                "peer watch: mysqld restarted and started fetching from the peer: stopped \
                 again (held)",
            );
            let started = server_started(&mut local);
            let _ = crate::notify::record(s, |r| {
                if let Some(c) = r.peer_channel.as_mut() {
                    c.server_started = started;
                }
            });
        }
        return false;
    }
    let verified = verify_for_standby(s, &mut local);
    let alert = |kind: &str, msg: &str| {
        log.log(Severity::Err, msg);
        crate::alert::raise(
            s,
            log,
            crate::notify::PROGRAM,
            kind,
            msg,
            serde_json::json!({ "peer": peer_name }),
        );
    };
    match verified {
        Err(e) if matches!(e.class, Class::Down | Class::Timeout) => false,
        Ok(c) if c.clean() => {
            // Still a standby, looked at right before the START: a promotion under way
            // holds the channel itself.
            let standby = state::notify::file(s)
                .load()
                .is_some_and(|r| !r.state.eq_ignore_ascii_case("MASTER"))
                && s.vip
                    .is_none_or(|vip| !role::local_addresses().contains(&vip));
            if !standby {
                // Looked at again next round (as a master, the other branch watches).
                return false;
            }
            if let Err(e) = local.query(d.io_thread_sql(true)) {
                if std::mem::replace(start_failed, true) {
                    return false;
                }
                alert(
                    "peer-channel",
                    &format!("peer watch: {peer_name} verified, but fetching from it could not start: {e}"),
                );
                return false;
            }
            // Said before the record clears: whoever sees it cleared finds why.
            log.log(
                Severity::Notice,
                &format!(
                    "peer watch: {peer_name} is back and verified: this standby fetches from \
                     it again"
                ),
            );
            // Only the hold this round resumed: a promotion since then records its own.
            let cleared = crate::notify::record(s, |r| {
                if r.peer_channel.as_ref().is_some_and(|c| c.since == ch.since) {
                    r.peer_channel = None;
                }
            });
            if let Err(e) = cleared {
                log.log(
                    Severity::Err,
                    &format!("peer watch: resumed, but the record still says held: {e}"),
                );
            }
            true
        }
        other => {
            let why = match &other {
                Ok(c) => c.describe(),
                Err(e) => e.msg.clone(),
            };
            let _ = crate::notify::record(s, |r| {
                if let Some(c) = r.peer_channel.as_mut() {
                    c.peer_answered = true;
                    if let Ok(c2) = &other {
                        c.state = "diverged".into();
                        c.peer_extra = Some(c2.gtids());
                    }
                }
            });
            alert(
                "peer-channel",
                &format!(
                    "peer watch: {peer_name} is back but cannot be verified ({why}): \
                     replication from it stays held, and this node is not an eligible \
                     standby until a person resumes it (see keepalived-mysql-notify(8), REJOIN)"
                ),
            );
            true
        }
    }
}

/// The watcher: runs detached after a promotion that held the channel, one at a time,
/// until the channel is resumed or this node is no longer the master; a day at most,
/// and it says so when it gives up.
pub fn watch(s: &NotifySettings, log: &Logger) -> Result<(), String> {
    let Some(peer_login) = s.peer_login() else {
        return Ok(());
    };
    let _only = match lock::try_lock(&s.state_path(WATCH_LOCK), &s.runtime_dir) {
        Ok(l) => l,
        Err(lock::LockError::Busy) => return Ok(()), // another watcher is at it
        Err(lock::LockError::Io(e)) => {
            let msg = format!("cannot watch the peer: {e}; replication from it stays held");
            still_held(s, log, &msg);
            return Err(msg);
        }
    };
    let until = Instant::now() + WATCH_FOR;
    let peer_name = peer_login.endpoint.to_string();
    // What was last reported, so a persisting state is said once.
    let mut said = String::new();
    let say = |said: &mut String, sev: Severity, msg: String, alert: Option<&str>| {
        if msg != *said {
            log.log(sev, &msg);
            if let Some(kind) = alert {
                crate::alert::raise(
                    s,
                    log,
                    crate::notify::PROGRAM,
                    kind,
                    &msg,
                    serde_json::json!({ "peer": peer_name }),
                );
            }
            *said = msg;
        }
    };
    let mut by_hand = false;
    // A standby round's START failure, said once.
    let mut start_failed = false;
    // The extra set the marker was last written for, and the last marker or record
    // failure said (each said once, tried again every round).
    let mut marked_for = String::new();
    let mut mark_said = String::new();
    // Since when the peer has lacked only its own transactions (see LOST_GRACE).
    let mut lost_since: Option<Instant> = None;
    while Instant::now() < until {
        let rec = match state::notify::file(s).read() {
            Ok(r) => r.unwrap_or_default(),
            // Cannot learn where we stand: keep holding, keep looking.
            Err(e) => {
                say(&mut said, Severity::Err, format!("peer watch: {e}"), None);
                sleep(Duration::from_secs(1));
                continue;
            }
        };
        let Some(ch) = rec.peer_channel.clone() else {
            return Ok(());
        };
        let master = rec.state.eq_ignore_ascii_case("MASTER")
            && s.vip
                .is_none_or(|vip| role::local_addresses().contains(&vip));
        if ch.state == "resumed" {
            return Ok(());
        }
        if !master {
            // A standby whose channel was held while the peer was gone (it stays
            // eligible meanwhile): watched until the peer answers.
            if ch.state != "held"
                || ch.peer_answered
                || standby_round(s, log, &peer_name, &ch, &mut start_failed)
            {
                return Ok(());
            }
            sleep(Duration::from_secs(1));
            continue;
        }
        let checked = s.login().connect(s.connect_timeout).and_then(|mut local| {
            // Held means stopped, whatever restarted mysqld meanwhile (a restarted
            // server starts its replica threads again). Started by a person, on a
            // server that has not restarted since the hold: applied on purpose (the
            // by-hand repair), left running.
            let d = local.dialect.clone();
            let st = local
                .query(d.replica_status_sql())
                .map_err(|e| classify_wire(&e))?;
            let running = d
                .status_from(&st)
                .is_some_and(|r| r.io_running != ThreadState::No);
            if ch.stop_pending {
                // The promotion's STOP, still on its way: seen through here, never read
                // as a person's START.
                if running {
                    local.set_read_timeout(Duration::from_secs(10));
                    if let Err(e) = local.query(d.io_thread_sql(false)) {
                        say(
                            &mut said,
                            Severity::Err,
                            format!(
                                "peer watch: the promotion's stop of fetching from the peer \
                                 is not confirmed ({e}): tried again"
                            ),
                            Some("peer-channel"),
                        );
                        return Err(classify_wire(&e));
                    }
                }
                let _ = crate::notify::record(s, |r| {
                    if let Some(c) = r.peer_channel.as_mut() {
                        c.stop_pending = false;
                    }
                });
            } else if running {
                let restarted = restarted_since_hold(&ch, &mut local);
                if restarted {
                    local
                        .query(d.io_thread_sql(false))
                        .map_err(|e| classify_wire(&e))?;
                    log.log(
                        Severity::Warning,
                        "peer watch: mysqld restarted and started fetching from the peer: \
                         stopped again (held)",
                    );
                    // From this start on, a running channel is a person's doing again.
                    let started = server_started(&mut local);
                    let _ = crate::notify::record(s, |r| {
                        if let Some(c) = r.peer_channel.as_mut() {
                            c.server_started = started;
                        }
                    });
                } else if !by_hand {
                    by_hand = true;
                    log.log(
                        Severity::Notice,
                        "peer watch: fetching from the peer was started by hand: its \
                         transactions are applied here on purpose",
                    );
                }
            }
            let mut peer = peer_login.connect(s.connect_timeout)?;
            compare(&mut local, &mut peer).map(|c| (local, c))
        });
        match checked {
            Ok((mut local, c)) if c.clean() => {
                lost_since = None;
                // The marker first: a peer must not stay ineligible once it is clean,
                // whichever promotion marked it. A failure is tried again next round.
                // The marker first, then fetching: either failure is tried again.
                let d = local.dialect.clone();
                let resumed = marked(&mut local, c.peer_id)
                    .and_then(|m| {
                        if m {
                            mark(&mut local, c.peer_id, None)
                        } else {
                            Ok(())
                        }
                    })
                    .and_then(|()| {
                        local
                            .query(d.io_thread_sql(true))
                            .map(|_| ())
                            .map_err(|e| format!("cannot resume fetching from it: {e}"))
                    });
                if let Err(e) = resumed {
                    say(
                        &mut said,
                        Severity::Err,
                        format!("peer watch: the peer is clean, but {e}: tried again"),
                        Some("peer-channel"),
                    );
                    sleep(Duration::from_secs(1));
                    continue;
                }
                if let Err(e) = crate::notify::record(s, |r| {
                    if let Some(c) = r.peer_channel.as_mut() {
                        c.state = "resumed".into();
                        c.peer_extra = None;
                        c.since = now_unix();
                    }
                }) {
                    log.log(
                        Severity::Err,
                        &format!("replication from the peer resumed, but {e}"),
                    );
                }
                log.log(
                    Severity::Notice,
                    &format!(
                        "peer {peer_name} holds nothing this node lacks (promoted at {}): \
                         replication from it resumed",
                        ch.promoted_at
                    ),
                );
                return Ok(());
            }
            // The peer lacks only some of its own transactions: its crash recovery cut
            // them, and its replication from us may be fetching them back right now (it
            // does with gtid_strict_mode). Nothing of it is applied here meanwhile.
            Ok((_, c))
                if c.extra.is_empty()
                    && lost_since.get_or_insert_with(Instant::now).elapsed() < LOST_GRACE => {}
            Ok((mut local, c)) => {
                let extra = c.gtids();
                let msg = format!(
                    "DIVERGED: peer {peer_name} {}; {}. Re-clone the peer from this node{}, \
                     then it resumes by itself (see keepalived-mysql-notify(8), REJOIN)",
                    c.describe(),
                    if by_hand {
                        "fetching from it was started by hand here"
                    } else {
                        "replication from it stays stopped, so nothing of it is applied here"
                    },
                    if c.lost.is_empty() {
                        ", or apply them here on purpose (START SLAVE IO_THREAD)"
                    } else {
                        ""
                    }
                );
                // Still the master, looked at right before the write (the marker
                // checks read_only itself too).
                let master_now = s
                    .vip
                    .is_none_or(|vip| role::local_addresses().contains(&vip));
                if !master_now {
                    sleep(Duration::from_secs(1));
                    continue;
                }
                // Recorded and said first: status, the check's JSON and the alert never
                // wait for the marker. A failed record is tried again next round.
                if msg != said {
                    match crate::notify::record(s, |r| {
                        if let Some(c) = r.peer_channel.as_mut() {
                            c.marked &= c.peer_extra.as_deref() == Some(&extra);
                            c.state = "diverged".into();
                            c.peer_extra = Some(extra.clone());
                        }
                    }) {
                        Ok(()) => say(&mut said, Severity::Err, msg, Some("peer-diverged")),
                        Err(e) => say(
                            &mut mark_said,
                            Severity::Err,
                            format!("{msg}; but {e}"),
                            None,
                        ),
                    }
                }
                // The marker tells the peer's own check. A promotion that kept writes
                // closed holds the channel too, but a read-only node cannot write it
                // (the row would be an errant transaction of its own): marked once
                // writes open here. Failures are said once, and tried again.
                if marked_for != extra {
                    let read_only = local
                        .query("SELECT @@global.read_only AS ro")
                        .map(|r| r.get(0, "ro") != Some("0"))
                        .unwrap_or(true);
                    if read_only {
                        say(
                            &mut mark_said,
                            Severity::Warning,
                            "peer watch: this node is read-only (its promotion kept writes \
                             closed): no diverged marker is written, so the peer's check is \
                             not told until writes open here"
                                .into(),
                            None,
                        );
                    } else {
                        match mark(&mut local, c.peer_id, Some(&extra)) {
                            Ok(()) => {
                                // Recorded before it counts: a failed record is tried
                                // again (the marker is insert-only, a second row is
                                // harmless).
                                let rec = crate::notify::record(s, |r| {
                                    if let Some(c) = r.peer_channel.as_mut() {
                                        c.marked = c.peer_extra.as_deref() == Some(&extra);
                                    }
                                });
                                if rec.is_ok() {
                                    marked_for = extra;
                                }
                            }
                            Err(e) => say(
                                &mut mark_said,
                                Severity::Err,
                                format!("peer watch: {e}: the peer's check is not told yet"),
                                Some("peer-channel"),
                            ),
                        }
                    }
                }
            }
            // Refused, or an answer that cannot be trusted: said, still held.
            Err(e) if e.class != Class::Down && e.class != Class::Timeout => {
                say(
                    &mut said,
                    Severity::Err,
                    format!(
                        "peer watch: {}: replication from the peer stays held",
                        e.msg
                    ),
                    Some("peer-channel"),
                );
            }
            // Not back yet: keep holding.
            Err(_) => {}
        }
        sleep(Duration::from_secs(1));
    }
    let msg = format!(
        "peer watch gave up after {}: replication from {peer_name} stays held; resume it by hand \
         (START SLAVE IO_THREAD) once the peer is verified",
        humantime::format_duration(WATCH_FOR)
    );
    still_held(s, log, &msg);
    Ok(())
}

/// The channel stays held and nobody is watching any more: logged and alerted.
fn still_held(s: &NotifySettings, log: &Logger, msg: &str) {
    log.log(Severity::Err, msg);
    crate::alert::raise(
        s,
        log,
        crate::notify::PROGRAM,
        "peer-channel",
        msg,
        serde_json::json!({}),
    );
}
