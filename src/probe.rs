//! The check's request to the local mysqld: one batched status request, and the write
//! probe on the active node. Connecting and error classes live in `connection`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::HeartbeatTable;
use crate::connection::{classify, ConnError, Connection};
use crate::dialect::{Dialect, Flavor, ReplicaStatus};
use crate::wire::{Conn, WireError};

/// What the probe is waiting for, so that a deadline can say what hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Connecting = 0,
    Status = 1,
    WriteProbe = 2,
    Done = 3,
}

#[derive(Debug, Default, Clone)]
pub struct StageCell(Arc<AtomicU8>);

impl StageCell {
    pub fn set(&self, s: Stage) {
        self.0.store(s as u8, Ordering::SeqCst);
    }
    pub fn get(&self) -> Stage {
        match self.0.load(Ordering::SeqCst) {
            0 => Stage::Connecting,
            1 => Stage::Status,
            2 => Stage::WriteProbe,
            _ => Stage::Done,
        }
    }
}

/// What one probe saw.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub dialect: Option<Dialect>,
    pub server_id: u64,
    pub read_only: bool,
    /// `None`: this server is not configured as a replica.
    pub replica: Option<ReplicaStatus>,
    /// Age in seconds of the newest heartbeat row written by another server.
    pub heartbeat_age: Option<f64>,
    /// Why the heartbeat could not be read (missing table, no privilege, ...).
    pub heartbeat_note: Option<String>,
    /// Active node only: `Some(Err)` when the write probe failed.
    pub write: Option<Result<(), String>>,
    /// Standby only: the GTIDs the active node marked this server for (see `rejoin`).
    pub diverged: Option<String>,
    /// Active node only: semi-synchronous replication as the source sees it.
    pub semi_sync: Option<SemiSync>,
    /// Why the semi-sync status could not be read (MySQL without performance_schema).
    pub semi_sync_note: Option<String>,
}

/// Semi-sync on the source side: `enabled` is the setting, `active` whether commits
/// really wait for a replica's acknowledgement (off after `rpl_semi_sync_master_timeout`
/// expired: the server fell back to asynchronous replication, silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SemiSync {
    pub enabled: bool,
    pub active: bool,
}

impl SemiSync {
    pub fn fallen_back(self) -> bool {
        self.enabled && !self.active
    }
}

fn on(v: Option<&str>) -> Option<bool> {
    v.map(|v| v.eq_ignore_ascii_case("ON") || v == "1")
}

const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_BAD_DB: u16 = 1049;

/// What the probe should do on this node.
pub struct Plan<'a> {
    pub active: bool,
    pub heartbeat: Option<&'a HeartbeatTable>,
    /// Statement time allowed to the write probe.
    pub write_budget: Duration,
    /// Whether the active node may write its heartbeat now: not while nothing beyond
    /// this node answers (a write the peer cannot receive would be an orphan).
    pub may_write: bool,
}

/// One request carries everything: variables, replica status, and the heartbeat read
/// (standby) or write probe (active). The dialect came with the connection, so no
/// round trip is spent asking for it.
pub fn observe(
    conn: &mut Connection,
    plan: &Plan,
    stage: &StageCell,
) -> Result<Observation, ConnError> {
    stage.set(Stage::Status);
    let dialect = conn.dialect.clone();
    // No write allowed on the active node: no heartbeat statement at all this run.
    let heartbeat = plan.heartbeat.filter(|_| !plan.active || plan.may_write);
    let mut semi_note = None;
    let mut sql = format!(
        "SELECT @@server_id AS id, @@read_only AS ro{}; {}",
        if plan.active {
            dialect.semi_sync_columns()
        } else {
            ""
        },
        dialect.replica_status_sql()
    );
    if let Some(t) = heartbeat {
        sql.push_str("; ");
        if plan.active {
            sql.push_str(&write_probe_sql(&dialect, t, plan.write_budget));
        } else {
            // Only rows written by another server measure lag; our own old row (from a
            // time we held the VIP) does not.
            sql.push_str(&format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) AS age_us FROM {} \
                 WHERE server_id <> @@server_id ORDER BY ts DESC LIMIT 1; {}",
                t.qualified(),
                crate::rejoin::MARK_READ_SQL
            ));
        }
    }

    let vars = match conn.query(&sql) {
        // MySQL: the status columns read performance_schema, which can be missing or
        // closed to us (an upgrade without its tables, a revoked grant). That must
        // never fail the check: the same request again without them, said in a note.
        Err(WireError::Server { code, msg })
            if plan.active
                && dialect.flavor == Flavor::MySQL
                && matches!(code, 1142 | 1143 | 1146 | 1682) =>
        {
            semi_note = Some(format!(
                "semi-sync status not readable (error {code}: {msg}): not watched"
            ));
            let plain = sql.replacen(dialect.semi_sync_columns(), "", 1);
            conn.query(&plain).map_err(|e| classify(&e))?
        }
        r => r.map_err(|e| classify(&e))?,
    };
    let status = match conn.next_result() {
        Some(r) => r.map_err(|e| classify(&e))?,
        None => {
            return Err(ConnError::new(
                crate::verdict::Class::ServerError,
                "replica status missing from reply",
            ))
        }
    };
    // The write probe is the last statement: with the status in, a deadline from here
    // on means the write hangs, not the server.
    if plan.active && heartbeat.is_some() {
        stage.set(Stage::WriteProbe);
    }
    let mut obs = Observation {
        semi_sync_note: semi_note,
        server_id: vars.get(0, "id").and_then(|v| v.parse().ok()).unwrap_or(0),
        read_only: vars.get(0, "ro") == Some("1"),
        // Both known, or nothing said: a missing status row is not a fallback.
        semi_sync: match (on(vars.get(0, "semi_on")), on(vars.get(0, "semi_status"))) {
            (Some(enabled), Some(active)) => Some(SemiSync { enabled, active }),
            _ => None,
        },
        replica: dialect.status_from(&status),
        dialect: Some(dialect.clone()),
        ..Observation::default()
    };
    if let Some(table) = heartbeat {
        let hb = conn.next_result();
        if plan.active {
            obs.write = Some(match hb {
                Some(Ok(_)) => Ok(()),
                Some(Err(WireError::Server { code, .. }))
                    if code == ER_NO_SUCH_TABLE || code == ER_BAD_DB =>
                {
                    create_heartbeat(conn, &dialect, table, plan.write_budget)
                }
                // The connection died under the probe: the server, not its commits.
                Some(Err(e @ WireError::Io { .. })) if !e.is_timeout() => return Err(classify(&e)),
                Some(Err(e)) => Err(write_error(&e)),
                None => Err("write probe got no reply".into()),
            });
        } else {
            match hb {
                Some(Ok(rows)) => {
                    obs.heartbeat_age = rows
                        .get(0, "age_us")
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|us| (us / 1e6).max(0.0));
                    if obs.heartbeat_age.is_none() {
                        obs.heartbeat_note = Some("no heartbeat row from the peer yet".into());
                    }
                }
                Some(Err(e)) => obs.heartbeat_note = Some(format!("heartbeat not readable: {e}")),
                None => obs.heartbeat_note = Some("heartbeat got no reply".into()),
            }
            // Last: a missing marker table (the usual case) is an error that ends the batch.
            // Any other failure to read it is not "not diverged": the check says so.
            match conn.next_result() {
                Some(Ok(m)) => {
                    obs.diverged = m
                        .get(0, "gtids")
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                }
                Some(Err(WireError::Server { code, .. }))
                    if code == ER_NO_SUCH_TABLE || code == ER_BAD_DB => {}
                Some(Err(e)) => return Err(classify(&e)),
                None => {}
            }
        }
    }
    stage.set(Stage::Done);
    Ok(obs)
}

fn write_error(e: &WireError) -> String {
    format!("write probe failed: {e}")
}

/// An upsert of this server's heartbeat row with short lock and statement limits, so a
/// server that answers SELECT but cannot commit fails here instead of hanging.
fn write_probe_sql(d: &Dialect, t: &HeartbeatTable, budget: Duration) -> String {
    let upsert = format!(
        "INSERT INTO {} (server_id, ts) VALUES (@@server_id, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
        t.qualified()
    );
    match d.flavor {
        Flavor::MariaDB => format!(
            "SET STATEMENT max_statement_time = {:.3}, lock_wait_timeout = 1, \
             innodb_lock_wait_timeout = 1 FOR {upsert}",
            budget.as_secs_f64().max(0.001)
        ),
        // MySQL has no statement time limit for writes; SET_VAR hints (8.0.3+, a plain
        // comment to 5.7) bound the lock waits, the process deadline covers the rest.
        Flavor::MySQL => upsert.replacen(
            "INSERT",
            "INSERT /*+ SET_VAR(lock_wait_timeout = 1) SET_VAR(innodb_lock_wait_timeout = 1) */",
            1,
        ),
    }
}

/// The heartbeat table is created on first use by the node holding the VIP (DDL that
/// replicates to the peer); the standby never creates or writes it.
fn create_heartbeat(
    conn: &mut Conn,
    d: &Dialect,
    t: &HeartbeatTable,
    budget: Duration,
) -> Result<(), String> {
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS `{}`; \
         CREATE TABLE IF NOT EXISTS {} (server_id INT UNSIGNED NOT NULL PRIMARY KEY, \
         ts DATETIME(6) NOT NULL) ENGINE=InnoDB; {}",
        t.schema,
        t.qualified(),
        write_probe_sql(d, t, budget)
    );
    conn.query(&sql).map_err(|e| write_error(&e))?;
    while let Some(r) = conn.next_result() {
        r.map_err(|e| write_error(&e))?;
    }
    Ok(())
}
