//! Replication dialects on recorded status output, for the server versions that cannot
//! run here (MySQL 5.7, 8.0 before and from 8.0.22, 8.4) and a MariaDB capture.

use std::collections::HashMap;
use std::path::Path;

use keepalived_mysql::check::judge;
use keepalived_mysql::config::CheckSettings;
use keepalived_mysql::dialect::{Dialect, ThreadState};
use keepalived_mysql::probe::Observation;
use keepalived_mysql::role::{Role, RoleSource};
use keepalived_mysql::verdict::Class;

/// Parses `\G` output ("  Column: value" lines; NULL is SQL NULL).
fn recorded(name: &str) -> HashMap<String, Option<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/replica-status")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            let v = v.strip_prefix(' ').unwrap_or(v).trim_end();
            (
                k.trim().to_string(),
                if v == "NULL" {
                    None
                } else {
                    Some(v.to_string())
                },
            )
        })
        .collect()
}

fn verdict(
    version: &str,
    file: &str,
    role: Role,
) -> (keepalived_mysql::dialect::ReplicaStatus, Class, String) {
    let d = Dialect::from_version(version);
    let status = d.parse_status(&recorded(file));
    let obs = Observation {
        dialect: Some(d),
        server_id: 2,
        replica: Some(status.clone()),
        ..Observation::default()
    };
    // Lag from Seconds_Behind_*, as these captures carry it.
    let s = CheckSettings {
        heartbeat_table: None,
        ..CheckSettings::default()
    };
    let v = judge(&s, (role, RoleSource::Vip), obs);
    (status, v.class, v.reason)
}

#[test]
fn mysql_57_healthy_standby() {
    assert_eq!(
        Dialect::from_version("5.7.44-log").replica_status_sql(),
        "SHOW SLAVE STATUS"
    );
    let (st, class, _) = verdict("5.7.44-log", "mysql-5.7-healthy.txt", Role::Standby);
    assert_eq!(st.io_running, ThreadState::Yes);
    assert!(st.sql_running);
    assert_eq!(st.source_server_id, Some(1));
    assert_eq!(st.seconds_behind, Some(0));
    assert!(st.applied_all_received());
    assert_eq!(class, Class::Ok);
}

#[test]
fn mysql_8021_sql_error_uses_old_names() {
    assert_eq!(
        Dialect::from_version("8.0.21").replica_status_sql(),
        "SHOW SLAVE STATUS"
    );
    let (st, class, reason) = verdict("8.0.21", "mysql-8.0.21-sql-error.txt", Role::Standby);
    assert_eq!(st.last_sql_errno, 1062);
    assert!(!st.sql_running);
    assert_eq!(class, Class::Replication);
    assert!(reason.contains("1062"), "{reason}");
}

#[test]
fn mysql_8022_lagging_uses_new_names() {
    assert_eq!(
        Dialect::from_version("8.0.22").replica_status_sql(),
        "SHOW REPLICA STATUS"
    );
    let (st, class, reason) = verdict("8.0.22", "mysql-8.0.22-lagging.txt", Role::Standby);
    assert_eq!(st.seconds_behind, Some(42));
    assert_eq!((st.read_pos, st.exec_pos), (Some(98765), Some(40000)));
    assert!(!st.applied_all_received());
    assert_eq!(class, Class::Lag, "{reason}");
    // The old column names would find nothing in this row: prove we did not use them.
    let old = Dialect::from_version("8.0.21").parse_status(&recorded("mysql-8.0.22-lagging.txt"));
    assert_eq!(old.io_running, ThreadState::No);
}

#[test]
fn mysql_84_io_fatal_error_is_not_a_peer_outage() {
    assert_eq!(
        Dialect::from_version("8.4.3").replica_status_sql(),
        "SHOW REPLICA STATUS"
    );
    let (st, class, reason) = verdict("8.4.3", "mysql-8.4-io-fatal.txt", Role::Standby);
    assert_eq!(st.io_running, ThreadState::No);
    assert_eq!(class, Class::Replication);
    assert!(reason.contains("IO thread error 13114"), "{reason}");
    // On the active node the same trouble is only reported.
    let (_, class, _) = verdict("8.4.3", "mysql-8.4-io-fatal.txt", Role::Active);
    assert_eq!(class, Class::Ok);
}

#[test]
fn mysql_84_peer_down_is_eligible() {
    let (st, class, reason) = verdict("8.4.3", "mysql-8.4-peer-down.txt", Role::Standby);
    assert_eq!(st.io_running, ThreadState::Connecting);
    assert_eq!(st.last_io_errno, 2013);
    assert_eq!(class, Class::Ok, "{reason}");
}

#[test]
fn mariadb_1011_capture_peer_unreachable() {
    let version = "10.11.19-MariaDB-0+deb12u1";
    assert_eq!(
        Dialect::from_version(version).replica_status_sql(),
        "SHOW SLAVE STATUS"
    );
    let (st, class, reason) = verdict(version, "mariadb-10.11-io-connecting.txt", Role::Standby);
    assert_eq!(st.io_running, ThreadState::Connecting);
    assert_eq!(st.last_io_errno, 2003);
    assert_eq!(st.seconds_behind, None);
    assert_eq!(class, Class::Ok, "{reason}");
}
