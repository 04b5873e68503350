//! Replication dialects: which statement to send and which column means what, for
//! MariaDB 10.x/11.x and MySQL 5.7, 8.0 (before and from 8.0.22) and 8.4.
//! Columns are read by name, never by position: their order changes between versions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    MariaDB,
    MySQL,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialect {
    pub flavor: Flavor,
    pub version: (u16, u16, u16),
    /// `@@version` as the server reported it, to notice an upgrade.
    pub version_string: String,
}

impl Dialect {
    /// From `SELECT @@version` (MariaDB's contains "MariaDB"; `@@version_comment` is not
    /// needed for that).
    pub fn from_version(v: &str) -> Dialect {
        let flavor = if v.contains("MariaDB") {
            Flavor::MariaDB
        } else {
            Flavor::MySQL
        };
        // MariaDB before 11 announces itself as "5.5.5-10.11.6-MariaDB..." in the
        // handshake (for clients that only knew MySQL 5.5); the real version follows.
        let real = match flavor {
            Flavor::MariaDB => v.strip_prefix("5.5.5-").unwrap_or(v),
            Flavor::MySQL => v,
        };
        let nums: Vec<u16> = real
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let get = |i: usize| nums.get(i).copied().unwrap_or(0);
        Dialect {
            flavor,
            version: (get(0), get(1), get(2)),
            version_string: v.to_string(),
        }
    }

    /// MySQL renamed master/slave to source/replica in 8.0.22 and removed the old
    /// statement in 8.4; MariaDB keeps `SHOW SLAVE STATUS` and the `Slave_*` columns.
    fn replica_names(&self) -> bool {
        self.flavor == Flavor::MySQL && self.version >= (8, 0, 22)
    }

    /// Semi-synchronous replication on the source side: configured (`semi_on`) and
    /// actually waiting for acknowledgements (`semi_status`), as columns to add to the
    /// check's first SELECT. Subqueries on the status tables, never `@@` names: MySQL
    /// has no such variable without its plugin, and an unknown variable would fail the
    /// whole request. NULL when semi-sync does not exist there.
    pub fn semi_sync_columns(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDB => {
                ", (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
                 WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_ENABLED') AS semi_on, \
                 (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS') AS semi_status"
            }
            Flavor::MySQL => {
                ", (SELECT MAX(VARIABLE_VALUE) FROM performance_schema.global_variables \
                 WHERE VARIABLE_NAME IN ('rpl_semi_sync_source_enabled', \
                 'rpl_semi_sync_master_enabled')) AS semi_on, \
                 (SELECT MAX(VARIABLE_VALUE) FROM performance_schema.global_status \
                 WHERE VARIABLE_NAME IN ('Rpl_semi_sync_source_status', \
                 'Rpl_semi_sync_master_status')) AS semi_status"
            }
        }
    }

    pub fn replica_status_sql(&self) -> &'static str {
        if self.replica_names() {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        }
    }

    /// Starts or stops fetching from the source (the IO thread only).
    pub fn io_thread_sql(&self, start: bool) -> &'static str {
        match (self.replica_names(), start) {
            (true, true) => "START REPLICA IO_THREAD",
            (true, false) => "STOP REPLICA IO_THREAD",
            (false, true) => "START SLAVE IO_THREAD",
            (false, false) => "STOP SLAVE IO_THREAD",
        }
    }

    fn col(&self, old: &'static str, new: &'static str) -> &'static str {
        if self.replica_names() {
            new
        } else {
            old
        }
    }

    /// Writes off: on MySQL `super_read_only` (which implies `read_only`) also stops
    /// SUPER users; MariaDB has only `read_only`.
    pub fn writes_sql(&self, open: bool) -> &'static str {
        match (self.flavor, open) {
            (Flavor::MySQL, false) => "SET GLOBAL super_read_only = ON",
            // Turning read_only off clears super_read_only too.
            (_, true) => "SET GLOBAL read_only = OFF",
            (Flavor::MariaDB, false) => "SET GLOBAL read_only = ON",
        }
    }

    /// Everything this server has in its binary log, as a GTID position/set.
    pub fn binlog_gtid_sql(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDB => "SELECT @@gtid_binlog_pos AS pos",
            Flavor::MySQL => "SELECT @@gtid_executed AS pos",
        }
    }

    /// Everything this server has applied, from its own clients or replicated, as a
    /// GTID position/set (MariaDB's binlog position lacks replicated transactions
    /// without log_slave_updates).
    pub fn executed_gtid_sql(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDB => "SELECT @@gtid_current_pos AS pos",
            Flavor::MySQL => "SELECT @@gtid_executed AS pos",
        }
    }

    /// Waits (inside the server) until `pos` is applied here; the result is 0 when it
    /// is, non-zero on timeout.
    pub fn gtid_wait_sql(&self, pos: &str, timeout: f64) -> String {
        let pos = pos.replace(['\\', '\''], "");
        match self.flavor {
            Flavor::MariaDB => format!("SELECT MASTER_GTID_WAIT('{pos}', {timeout:.3}) AS r"),
            Flavor::MySQL => {
                format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{pos}', {timeout:.3}) AS r")
            }
        }
    }

    /// The replica status in a result set; `None` when the server is not a replica.
    pub fn status_from(&self, set: &crate::wire::ResultSet) -> Option<ReplicaStatus> {
        set.rows
            .first()
            .map(|_| self.parse_status(&set.first_row()))
    }

    /// Interprets one row of the replica status, given as column name -> value.
    pub fn parse_status(&self, row: &HashMap<String, Option<String>>) -> ReplicaStatus {
        let text = |name: &str| row.get(name).cloned().flatten().unwrap_or_default();
        let num = |name: &str| {
            row.get(name)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
        };
        ReplicaStatus {
            io_running: ThreadState::parse(&text(
                self.col("Slave_IO_Running", "Replica_IO_Running"),
            )),
            sql_running: text(self.col("Slave_SQL_Running", "Replica_SQL_Running")) == "Yes",
            last_io_errno: num("Last_IO_Errno").unwrap_or(0),
            last_io_error: text("Last_IO_Error"),
            last_sql_errno: num("Last_SQL_Errno").unwrap_or(0),
            last_sql_error: text("Last_SQL_Error"),
            source_server_id: num(self.col("Master_Server_Id", "Source_Server_Id")),
            seconds_behind: num(self.col("Seconds_Behind_Master", "Seconds_Behind_Source")),
            read_file: text(self.col("Master_Log_File", "Source_Log_File")),
            read_pos: num(self.col("Read_Master_Log_Pos", "Read_Source_Log_Pos")),
            exec_file: text(self.col("Relay_Master_Log_File", "Relay_Source_Log_File")),
            exec_pos: num(self.col("Exec_Master_Log_Pos", "Exec_Source_Log_Pos")),
            sql_delay: num("SQL_Delay").unwrap_or(0),
            received_gtids: match self.flavor {
                Flavor::MariaDB => text("Gtid_IO_Pos"),
                Flavor::MySQL => text("Retrieved_Gtid_Set"),
            },
            source_uuid: text(self.col("Master_UUID", "Source_UUID")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadState {
    Yes,
    Connecting,
    No,
}

impl ThreadState {
    fn parse(v: &str) -> ThreadState {
        match v {
            "Yes" => ThreadState::Yes,
            "Connecting" => ThreadState::Connecting,
            _ => ThreadState::No,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub io_running: ThreadState,
    pub sql_running: bool,
    pub last_io_errno: u64,
    pub last_io_error: String,
    pub last_sql_errno: u64,
    pub last_sql_error: String,
    pub source_server_id: Option<u64>,
    pub seconds_behind: Option<u64>,
    pub read_file: String,
    pub read_pos: Option<u64>,
    pub exec_file: String,
    pub exec_pos: Option<u64>,
    pub sql_delay: u64,
    /// GTIDs the IO thread has received (MariaDB `Gtid_IO_Pos`, MySQL
    /// `Retrieved_Gtid_Set`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub received_gtids: String,
    /// The source's `server_uuid` (MySQL only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_uuid: String,
}

/// Client errors that mean "cannot reach the peer" rather than "replication is broken":
/// can't connect (2002/2003), unknown host (2005), gone away (2006), lost connection
/// (2013), network read/write errors and timeouts (1158-1161).
pub const CONNECTION_ERRNOS: &[u64] = &[2002, 2003, 2005, 2006, 2013, 1158, 1159, 1160, 1161];

impl ReplicaStatus {
    /// Everything the IO thread received has been applied: the SQL thread's position in
    /// the source's binlog equals the IO thread's. This works with and without GTID on
    /// both flavours, so no GTID set arithmetic is needed on the hot path.
    pub fn applied_all_received(&self) -> bool {
        self.read_pos.is_some()
            && self.exec_file == self.read_file
            && self.exec_pos == self.read_pos
    }

    /// The IO thread is down only because the peer cannot be reached, which is exactly
    /// what a failover looks like from the standby.
    pub fn io_problem(&self) -> Option<String> {
        let conn_class = CONNECTION_ERRNOS.contains(&self.last_io_errno);
        match (self.io_running, self.last_io_errno) {
            (ThreadState::Yes, _) => None,
            (_, 0) if self.io_running == ThreadState::Connecting => None,
            (_, _) if conn_class => None,
            (_, 0) => Some("replication IO thread stopped".into()),
            (_, n) => Some(format!(
                "replication IO thread error {n}: {}",
                self.last_io_error
            )),
        }
    }

    /// A stopped or failed SQL thread means this copy of the data is not being kept up.
    pub fn sql_problem(&self) -> Option<String> {
        if self.last_sql_errno != 0 {
            Some(format!(
                "replication SQL thread error {}: {}",
                self.last_sql_errno, self.last_sql_error
            ))
        } else if !self.sql_running {
            Some("replication SQL thread stopped".into())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        let m = Dialect::from_version("5.5.5-10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!((m.flavor, m.version), (Flavor::MariaDB, (10, 11, 6)));
        let m = Dialect::from_version("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!((m.flavor, m.version), (Flavor::MariaDB, (10, 11, 6)));
        let m = Dialect::from_version("11.4.2-MariaDB");
        assert_eq!(m.replica_status_sql(), "SHOW SLAVE STATUS");
        let y = Dialect::from_version("8.0.21");
        assert_eq!(
            (y.flavor, y.replica_status_sql()),
            (Flavor::MySQL, "SHOW SLAVE STATUS")
        );
        assert_eq!(
            Dialect::from_version("8.0.22-log").replica_status_sql(),
            "SHOW REPLICA STATUS"
        );
        assert_eq!(
            Dialect::from_version("8.4.3").replica_status_sql(),
            "SHOW REPLICA STATUS"
        );
        assert_eq!(
            Dialect::from_version("5.7.44-log").replica_status_sql(),
            "SHOW SLAVE STATUS"
        );
    }
}
