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
use crate::dialect::Flavor;
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
pub const MARK_READ_SQL: &str =
    "SELECT gtids FROM `keepalived_mysql`.`diverged` WHERE server_id = @@server_id";
/// A failover's old master may take long to come back; the watcher waits this long.
const WATCH_FOR: Duration = Duration::from_secs(24 * 3600);

/// At promotion, after catch-up and before writes open: stop fetching from the peer
/// and record where we are. `Ok(None)`: nothing to hold (no replica, no peer-host).
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
    conn.query(d.io_thread_sql(false))
        .map_err(|e| format!("cannot stop fetching from the peer: {e}"))?;
    let pos = conn
        .query(d.executed_gtid_sql())
        .map_err(|e| format!("cannot read our GTID position: {e}"))?;
    Ok(Some(PeerChannel {
        state: "held".into(),
        promoted_at: pos.get(0, "pos").unwrap_or("").to_string(),
        since: now_unix(),
        peer_extra: None,
    }))
}

/// Marks (`Some(gtids)`) or unmarks the peer `server_id` as diverged, on this node,
/// whence it replicates to the peer. Written on the master, so never errant itself.
fn mark(local: &mut Connection, server_id: u64, gtids: Option<&str>) -> Result<(), String> {
    let sql = match gtids {
        Some(g) => format!(
            "CREATE DATABASE IF NOT EXISTS `keepalived_mysql`; \
             CREATE TABLE IF NOT EXISTS {MARK_TABLE} (server_id INT UNSIGNED PRIMARY KEY, \
             gtids TEXT NOT NULL, since TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)); \
             REPLACE INTO {MARK_TABLE} (server_id, gtids) VALUES ({server_id}, '{}')",
            g.replace(['\'', '\\'], "")
        ),
        None => format!("DELETE FROM {MARK_TABLE} WHERE server_id = {server_id}"),
    };
    let mut r = local.query(&sql).map(|_| ());
    while let Some(next) = local.next_result() {
        r = r.and(next.map(|_| ()));
    }
    match r {
        // Nothing was ever marked: nothing to remove.
        Err(crate::wire::WireError::Server {
            code: 1146 | 1049, ..
        }) if gtids.is_none() => Ok(()),
        r => r.map_err(|e| {
            format!(
                "cannot {} the diverged marker: {e}",
                if gtids.is_some() { "write" } else { "remove" }
            )
        }),
    }
}

/// What the peer has that this node lacks, by the server's own arithmetic on MySQL
/// and per domain on MariaDB, and the peer's server id. `Err`: either side could not
/// be read.
fn peer_extra(local: &mut Connection, peer: &mut Connection) -> Result<(String, u64), ConnError> {
    let classify = |e: crate::wire::WireError| crate::connection::classify(&e);
    let d = local.dialect.clone();
    let theirs = match d.flavor {
        // The peer's binary log: what it would send us.
        Flavor::MariaDB => "SELECT @@gtid_binlog_pos AS pos",
        Flavor::MySQL => "SELECT @@gtid_executed AS pos",
    };
    let id = peer.query("SELECT @@server_id AS id").map_err(classify)?;
    let id = id.get(0, "id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let theirs = peer.query(theirs).map_err(classify)?;
    let theirs = theirs.get(0, "pos").unwrap_or("").to_string();
    match d.flavor {
        Flavor::MySQL => {
            let q = format!(
                "SELECT GTID_SUBTRACT('{}', @@gtid_executed) AS d",
                theirs.replace(['\'', '\\'], "")
            );
            let r = local.query(&q).map_err(classify)?;
            Ok((r.get(0, "d").unwrap_or("").trim().to_string(), id))
        }
        Flavor::MariaDB => {
            let ours = local.query(d.executed_gtid_sql()).map_err(classify)?;
            let ours = ours.get(0, "pos").unwrap_or("").to_string();
            let bad = |e: String| ConnError::new(Class::Protocol, e);
            let ahead = gtid::mariadb_ahead(
                &gtid::parse_mariadb(&theirs).map_err(bad)?,
                &gtid::parse_mariadb(&ours).map_err(bad)?,
            );
            Ok((ahead.join(", "), id))
        }
    }
}

/// The watcher: runs detached after a promotion that held the channel, one at a time,
/// until the channel is resumed, this node is no longer the master, or a day passed.
pub fn watch(s: &NotifySettings, log: &Logger) -> Result<(), String> {
    let Some(peer_login) = s.peer_login() else {
        return Ok(());
    };
    let _only = match lock::try_lock(&s.state_path(WATCH_LOCK), &s.runtime_dir) {
        Ok(l) => l,
        Err(_) => return Ok(()), // another watcher is at it
    };
    let until = Instant::now() + WATCH_FOR;
    let peer_name = peer_login.endpoint.to_string();
    let mut said = String::new();
    while Instant::now() < until {
        let rec = state::notify::file(s).load().unwrap_or_default();
        let Some(ch) = rec.peer_channel.clone() else {
            return Ok(());
        };
        let master = rec.state.eq_ignore_ascii_case("MASTER")
            && s.vip
                .is_none_or(|vip| role::local_addresses().contains(&vip));
        if !master || ch.state == "resumed" {
            return Ok(());
        }
        let checked = s.login().connect(s.connect_timeout).and_then(|mut local| {
            let mut peer = peer_login.connect(s.connect_timeout)?;
            peer_extra(&mut local, &mut peer).map(|extra| (local, extra))
        });
        match checked {
            Ok((mut local, (extra, peer_id))) if extra.is_empty() => {
                mark(&mut local, peer_id, None)?;
                let d = local.dialect.clone();
                local
                    .query(d.io_thread_sql(true))
                    .map_err(|e| format!("cannot resume fetching from the peer: {e}"))?;
                crate::notify::record(s, |r| {
                    if let Some(c) = r.peer_channel.as_mut() {
                        c.state = "resumed".into();
                        c.peer_extra = None;
                        c.since = now_unix();
                    }
                })?;
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
            Ok((mut local, (extra, peer_id))) => {
                if extra != said {
                    if let Err(e) = mark(&mut local, peer_id, Some(&extra)) {
                        log.log(Severity::Err, &e);
                    }
                    said = extra.clone();
                    let msg = format!(
                        "DIVERGED: peer {peer_name} has transactions this node never applied: \
                         {extra}; replication from it stays stopped, so they are not applied \
                         here. Discard them on the peer (re-clone it from this node) or apply \
                         them by hand, then it resumes by itself (see keepalived-mysql-notify(8))"
                    );
                    log.log(Severity::Err, &msg);
                    crate::notify::record(s, |r| {
                        if let Some(c) = r.peer_channel.as_mut() {
                            c.state = "diverged".into();
                            c.peer_extra = Some(extra.clone());
                        }
                    })?;
                    crate::alert::raise(
                        s,
                        log,
                        crate::notify::PROGRAM,
                        "peer-diverged",
                        &msg,
                        serde_json::json!({ "peer": peer_name, "gtids": extra }),
                    );
                }
            }
            // Not back yet, or refusing us: nothing learned, keep holding.
            Err(_) => {}
        }
        sleep(Duration::from_secs(1));
    }
    Ok(())
}
