//! Scheduled events (`event_scheduler`) follow the writer. A demoted node's enabled
//! events are set `DISABLE ON SLAVE` (status SLAVESIDE_DISABLED, what the server itself
//! gives events it received by replication), and a promoted node's SLAVESIDE_DISABLED
//! events are enabled again: an event whose definer may write past read_only would
//! otherwise write on the standby (a fork), and the new master would run none.
//! Events disabled by a person (DISABLED) are never touched; replication shows them as
//! SLAVESIDE_DISABLED on the peer too, so a promotion asks the old master, when it
//! answers, which of them it has DISABLED, and leaves those off.
//!
//! Never binary-logged (`sql_log_bin = 0`): replicated, the old master's "disable"
//! would land on the new master and stop its events there. The definer is kept
//! (`ALTER DEFINER = ...`): an ALTER without it hands the event to our account.

use crate::connection::Connection;
use crate::dialect::Flavor;
use crate::wire::WireError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Demotion: ENABLED -> SLAVESIDE_DISABLED.
    Park,
    /// Promotion: SLAVESIDE_DISABLED -> ENABLED.
    Resume,
}

/// One event changed, as `db.name`.
pub type Changed = Vec<String>;

/// What changed, or why nothing could be (the statement that failed, with the grant
/// it likely needs).
/// `keep_off`: events (`db.name`) to leave alone, whatever their status; asked only
/// when there is something to change.
pub fn switch(
    conn: &mut Connection,
    how: Switch,
    keep_off: impl FnOnce() -> Vec<String>,
) -> Result<Changed, String> {
    let flavor = conn.dialect.flavor;
    if how == Switch::Park && flavor == Flavor::MySQL {
        // super_read_only stops every writer, an event's too, and refuses ALTER EVENT
        // itself: nothing to do, nothing that could be done.
        return Ok(Vec::new());
    }
    // MariaDB: mysql.event, which fails loudly without the privilege to read it
    // (information_schema would just show nothing). MySQL 8 has no such table: its
    // information_schema view shows the events our account has EVENT on.
    let to = match how {
        Switch::Park => "DISABLE ON SLAVE",
        Switch::Resume => "ENABLE",
    };
    let list = list_sql(flavor, how);
    if flavor == Flavor::MySQL {
        // information_schema shows only the events we may see: an empty answer without
        // the EVENT privilege would look like "no events".
        let r = conn
            .query(
                "SELECT COUNT(*) AS n FROM information_schema.USER_PRIVILEGES \
                 WHERE PRIVILEGE_TYPE = 'EVENT' AND GRANTEE = CONCAT('\\'', \
                 SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '\\'@\\'', \
                 SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '\\'')",
            )
            .map_err(|e| format!("cannot read our own privileges: {e}"))?;
        if r.get(0, "n") != Some("1") {
            return Err("the notify account lacks EVENT ON *.*: its events cannot be seen".into());
        }
    }
    let rows = conn.query(&list).map_err(|e| {
        format!("cannot list scheduled events: {e} (the notify account needs SELECT ON mysql.event and EVENT ON *.*)")
    })?;
    let mut changed = Vec::new();
    if rows.rows.is_empty() {
        return Ok(changed);
    }
    let keep_off = keep_off();
    // An ALTER EVENT waits for metadata locks: bounded, under the notify lock.
    let _ = conn.query("SET SESSION lock_wait_timeout = 2");
    conn.query("SET SESSION sql_log_bin = 0").map_err(|e| {
        format!("cannot keep the event change out of the binary log: {e} (the notify account needs BINLOG ADMIN)")
    })?;
    let mut failed = Vec::new();
    for i in 0..rows.rows.len() {
        let (Some(db), Some(name)) = (rows.get(i, "db"), rows.get(i, "name")) else {
            continue;
        };
        if keep_off.iter().any(|k| *k == format!("{db}.{name}")) {
            continue;
        }
        let definer = rows.get(i, "definer").and_then(definer_clause);
        let sql = format!(
            "ALTER {}EVENT {}.{} {to}",
            definer
                .map(|d| format!("DEFINER = {d} "))
                .unwrap_or_default(),
            ident(db),
            ident(name)
        );
        match conn.query(&sql) {
            Ok(_) => changed.push(format!("{db}.{name}")),
            Err(e) => failed.push(format!("{db}.{name}: {}", short(&e))),
        }
    }
    let _ = conn.query("SET SESSION sql_log_bin = 1");
    if failed.is_empty() {
        Ok(changed)
    } else {
        Err(format!(
            "scheduled events not changed ({}; changed: {}): the notify account needs EVENT \
             and SET USER (MySQL: SET_USER_ID or SET_ANY_DEFINER) ON *.*",
            failed.join(", "),
            if changed.is_empty() {
                "none".to_string()
            } else {
                changed.join(", ")
            }
        ))
    }
}

/// The events a switch would change.
fn list_sql(flavor: Flavor, how: Switch) -> String {
    let from = match how {
        Switch::Park => "ENABLED",
        Switch::Resume => "SLAVESIDE_DISABLED",
    };
    match flavor {
        Flavor::MariaDB => format!(
            "SELECT db, name, definer FROM mysql.event WHERE status = '{from}' ORDER BY db, name"
        ),
        Flavor::MySQL => format!(
            "SELECT EVENT_SCHEMA AS db, EVENT_NAME AS name, DEFINER AS definer \
             FROM information_schema.EVENTS WHERE STATUS IN ('{from}', '{}') \
             ORDER BY EVENT_SCHEMA, EVENT_NAME",
            if how == Switch::Resume {
                "REPLICA_SIDE_DISABLED"
            } else {
                from
            }
        ),
    }
}

/// Whether there is anything to switch (an error says yes: `switch` then reports it).
pub fn pending(conn: &mut Connection, how: Switch) -> bool {
    let sql = list_sql(conn.dialect.flavor, how);
    conn.query(&sql).map(|r| !r.rows.is_empty()).unwrap_or(true)
}

/// Events a person disabled (DISABLED, not the SLAVESIDE_DISABLED that replication or
/// a demotion leaves) on `conn`'s server, as `db.name`: read from the old master at a
/// promotion, they stay off here, although replication made them look like the rest.
pub fn disabled_by_hand(conn: &mut Connection) -> Result<Vec<String>, String> {
    let sql = match conn.dialect.flavor {
        Flavor::MariaDB => {
            "SELECT CONCAT(db, '.', name) AS e FROM mysql.event WHERE status = 'DISABLED'"
        }
        Flavor::MySQL => {
            "SELECT CONCAT(EVENT_SCHEMA, '.', EVENT_NAME) AS e FROM information_schema.EVENTS \
             WHERE STATUS = 'DISABLED'"
        }
    };
    let r = conn.query(sql).map_err(|e| e.to_string())?;
    Ok((0..r.rows.len())
        .filter_map(|i| r.get(i, "e").map(String::from))
        .collect())
}

fn short(e: &WireError) -> String {
    e.to_string().chars().take(120).collect()
}

/// `user@host` as the server shows a definer, quoted for a DEFINER clause.
fn definer_clause(d: &str) -> Option<String> {
    let (user, host) = d.rsplit_once('@')?;
    Some(format!("{}@{}", quote(user), quote(host)))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_and_names_are_quoted() {
        assert_eq!(
            definer_clause("root@localhost").as_deref(),
            Some("'root'@'localhost'")
        );
        assert_eq!(
            definer_clause("o'neil@10.0.0.%").as_deref(),
            Some("'o''neil'@'10.0.0.%'")
        );
        assert_eq!(
            definer_clause("we@ird@host").as_deref(),
            Some("'we@ird'@'host'")
        );
        assert_eq!(definer_clause("nohost"), None);
        assert_eq!(ident("a`b"), "`a``b`");
    }
}
