//! Talking to the local mysqld: connect, one batched status request, the write probe,
//! and the mapping of client errors to the check's error classes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Value};

use crate::config::{Endpoint, HeartbeatTable, Settings};
use crate::dialect::{Dialect, Flavor, ReplicaStatus};
use crate::verdict::Class;

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

#[derive(Debug, Clone)]
pub struct ProbeError {
    pub class: Class,
    pub msg: String,
}

impl ProbeError {
    fn new(class: Class, msg: impl Into<String>) -> Self {
        ProbeError {
            class,
            msg: msg.into(),
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
}

/// Client/server error codes we branch on.
const ER_CON_COUNT: u16 = 1040;
const ER_TOO_MANY_USER_CONNECTIONS: u16 = 1203;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_BAD_DB: u16 = 1049;

pub fn classify(e: &mysql::Error, connected: bool) -> ProbeError {
    match e {
        mysql::Error::MySqlError(me) => match me.code {
            ER_CON_COUNT | ER_TOO_MANY_USER_CONNECTIONS => ProbeError::new(
                Class::Saturated,
                format!("too many connections: {}", me.message),
            ),
            ER_ACCESS_DENIED | ER_DBACCESS_DENIED | ER_ACCESS_DENIED_NO_PASSWORD => {
                ProbeError::new(
                    Class::AccessDenied,
                    format!(
                        "access denied (check user/password in the config file): {}",
                        me.message
                    ),
                )
            }
            code => ProbeError::new(
                Class::ServerError,
                format!("server error {code}: {}", me.message),
            ),
        },
        mysql::Error::IoError(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                ProbeError::new(Class::Timeout, format!("no answer in time: {io}"))
            }
            _ if connected => ProbeError::new(Class::Down, format!("connection lost: {io}")),
            _ => ProbeError::new(Class::Down, format!("cannot connect: {io}")),
        },
        other if connected => ProbeError::new(Class::Down, format!("connection lost: {other}")),
        other => ProbeError::new(Class::Down, format!("cannot connect: {other}")),
    }
}

pub fn connect(s: &Settings, timeout: Duration) -> Result<Conn, ProbeError> {
    let endpoint = s
        .endpoint()
        .map_err(|e| ProbeError::new(Class::Config, e.to_string()))?;
    // No extra queries or second connection at connect time (see the crate notes):
    // a bare handshake keeps the check to the minimum of round trips.
    let mut opts = OptsBuilder::new()
        .user(s.user.clone())
        .pass(s.password.clone())
        .prefer_socket(false)
        .stmt_cache_size(0)
        .max_allowed_packet(Some(16 << 20))
        .read_timeout(Some(timeout))
        .write_timeout(Some(timeout))
        .tcp_connect_timeout(Some(timeout));
    opts = match endpoint {
        Endpoint::Socket(p) => opts.socket(Some(p.to_string_lossy().into_owned())),
        Endpoint::Tcp(ip, port) => opts.ip_or_hostname(Some(ip.to_string())).tcp_port(port),
    };
    Conn::new(opts).map_err(|e| classify(&e, false))
}

type RowMap = HashMap<String, Option<String>>;

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Sends `sql` (several statements) in one request and collects each result set, calling
/// `after_set(i)` when set `i` has been read. A failing statement ends the batch, as the
/// server stops there.
fn batch(
    conn: &mut Conn,
    sql: &str,
    mut after_set: impl FnMut(usize),
) -> Result<Vec<Result<Vec<RowMap>, mysql::Error>>, mysql::Error> {
    let mut out = Vec::new();
    let mut result = conn.query_iter(sql)?;
    while let Some(set) = result.iter() {
        let mut rows = Vec::new();
        let mut failed = None;
        for row in set {
            match row {
                Ok(row) => {
                    let cols = row.columns_ref();
                    let mut m = HashMap::with_capacity(cols.len());
                    for (i, c) in cols.iter().enumerate() {
                        m.insert(
                            c.name_str().into_owned(),
                            row.as_ref(i).and_then(value_text),
                        );
                    }
                    rows.push(m);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        after_set(out.len());
        match failed {
            Some(e) => {
                out.push(Err(e));
                break;
            }
            None => out.push(Ok(rows)),
        }
    }
    Ok(out)
}

fn first_value(rows: &[RowMap], col: &str) -> Option<String> {
    rows.first().and_then(|r| r.get(col).cloned().flatten())
}

/// What the probe should do on this node.
pub struct Plan<'a> {
    pub active: bool,
    pub heartbeat: Option<&'a HeartbeatTable>,
    /// Dialect remembered from the previous run: lets the status go out in the first
    /// request; a version change is noticed and the request redone.
    pub cached: Option<Dialect>,
    /// Statement time allowed to the write probe.
    pub write_budget: Duration,
}

pub fn observe(conn: &mut Conn, plan: &Plan, stage: &StageCell) -> Result<Observation, ProbeError> {
    stage.set(Stage::Status);
    let dialect = match &plan.cached {
        Some(d) => d.clone(),
        None => detect(conn)?,
    };
    let obs = observe_with(conn, plan, &dialect, stage)?;
    match &obs.dialect {
        Some(seen) if *seen != dialect => observe_with(conn, plan, seen, stage),
        _ => Ok(obs),
    }
}

fn detect(conn: &mut Conn) -> Result<Dialect, ProbeError> {
    let v: Option<String> = conn
        .query_first("SELECT @@version")
        .map_err(|e| classify(&e, true))?;
    Ok(Dialect::from_version(&v.unwrap_or_default()))
}

fn observe_with(
    conn: &mut Conn,
    plan: &Plan,
    dialect: &Dialect,
    stage: &StageCell,
) -> Result<Observation, ProbeError> {
    let mut sql = format!(
        "SELECT @@version AS v, @@server_id AS id, @@read_only AS ro; {}",
        dialect.replica_status_sql()
    );
    let hb_stmt = plan.heartbeat.map(|t| {
        if plan.active {
            write_probe_sql(dialect, t, plan.write_budget)
        } else {
            // Only rows written by another server measure lag; our own old row (from a
            // time we held the VIP) does not.
            format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) AS age_us FROM {} \
                 WHERE server_id <> @@server_id ORDER BY ts DESC LIMIT 1",
                t.qualified()
            )
        }
    });
    if let Some(h) = &hb_stmt {
        sql.push_str("; ");
        sql.push_str(h);
    }
    // The write probe is the last statement: once the status sets are in, a deadline
    // means the write hangs, not the server.
    let writing = plan.active && plan.heartbeat.is_some();
    let status_sets = 2;
    let sets = batch(conn, &sql, |i| {
        if writing && i + 1 >= status_sets {
            stage.set(Stage::WriteProbe);
        }
    })
    .map_err(|e| classify(&e, true))?;

    let mut obs = Observation::default();
    let mut sets = sets.into_iter();
    let vars = sets
        .next()
        .unwrap_or(Ok(Vec::new()))
        .map_err(|e| classify(&e, true))?;
    let version = first_value(&vars, "v").unwrap_or_default();
    let seen = Dialect::from_version(&version);
    obs.server_id = first_value(&vars, "id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    obs.read_only = first_value(&vars, "ro").as_deref() == Some("1");
    let upgraded = seen.version_string != dialect.version_string;
    obs.dialect = Some(seen);
    if upgraded {
        // The caller redoes the request with the right statement.
        return Ok(obs);
    }
    match sets.next() {
        Some(Ok(rows)) => obs.replica = rows.first().map(|r| dialect.parse_status(r)),
        Some(Err(e)) => return Err(classify(&e, true)),
        None => {
            return Err(ProbeError::new(
                Class::ServerError,
                "replica status missing from reply",
            ))
        }
    }
    if let Some(table) = plan.heartbeat {
        let hb = sets.next();
        if plan.active {
            obs.write = Some(match hb {
                Some(Ok(_)) => Ok(()),
                Some(Err(mysql::Error::MySqlError(me)))
                    if me.code == ER_NO_SUCH_TABLE || me.code == ER_BAD_DB =>
                {
                    create_heartbeat(conn, dialect, table, plan.write_budget)
                }
                Some(Err(e)) => Err(write_error(&e)),
                None => Err("write probe got no reply".into()),
            });
        } else {
            match hb {
                Some(Ok(rows)) => {
                    obs.heartbeat_age = first_value(&rows, "age_us")
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|us| (us / 1e6).max(0.0));
                    if obs.heartbeat_age.is_none() {
                        obs.heartbeat_note = Some("no heartbeat row from the peer yet".into());
                    }
                }
                Some(Err(e)) => obs.heartbeat_note = Some(format!("heartbeat not readable: {e}")),
                None => obs.heartbeat_note = Some("heartbeat got no reply".into()),
            }
        }
    }
    stage.set(Stage::Done);
    Ok(obs)
}

fn write_error(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(me) => {
            format!("write probe failed: error {}: {}", me.code, me.message)
        }
        other => format!("write probe failed: {other}"),
    }
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
    conn.query_drop(sql).map_err(|e| write_error(&e))
}
