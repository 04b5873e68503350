//! The check against real mariadbd servers: one test per situation an operator meets.

mod common;

use std::time::Duration;

use common::*;
use mysql::prelude::Queryable;

const OK: i32 = 0;
const DOWN: i32 = 10;
const TIMEOUT: i32 = 11;
const ACCESS: i32 = 12;
const SATURATED: i32 = 13;
const REPLICATION: i32 = 14;
const LAG: i32 = 15;
const WRITES_BLOCKED: i32 = 16;
const MAINTENANCE: i32 = 17;
const ISOLATED: i32 = 22;

/// The active node writes its heartbeat; the standby must then see a fresh row.
fn heartbeat_flowing(active: &NodeConfig, a: &Mariadb, b: &Mariadb) {
    let r = active.check(&["--format", "text"]);
    assert_eq!(r.code, OK, "active check: {r:?}");
    b.sync_with(a);
}

#[test]
fn healthy_active_node_writes_heartbeat() {
    let (a, _b) = pair();
    let node = NodeConfig::new(&a, true, "");
    let r = node.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["role"], "active");
    assert_eq!(v["role_source"], "vip");
    // The write probe created the table and upserted this server's row.
    assert_eq!(
        a.value("SELECT COUNT(*) FROM keepalived_mysql.heartbeat WHERE server_id = 1")
            .as_deref(),
        Some("1")
    );
    // Only keepalived's (quiet) runs record; the JSON run above only observed.
    assert!(!node.path("run/check.json").exists());
    assert_eq!(node.check(&[]).code, OK);
    let st = node.state();
    assert_eq!(st["class"], "ok");
    assert!(st["dialect"]["version_string"]
        .as_str()
        .unwrap()
        .contains("MariaDB"));
}

#[test]
fn healthy_standby_never_writes() {
    let (a, b) = pair();
    let active = NodeConfig::new(&a, true, "");
    let standby = NodeConfig::new(&b, false, "");
    heartbeat_flowing(&active, &a, &b);
    let before = b.value("SELECT @@gtid_binlog_pos");
    let r = standby.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["role"], "standby");
    assert!(v["lag_seconds"].as_f64().unwrap() < 10.0);
    // No heartbeat row of its own, no new binlog event: the standby wrote nothing.
    assert_eq!(
        b.value("SELECT COUNT(*) FROM keepalived_mysql.heartbeat WHERE server_id = 2")
            .as_deref(),
        Some("0")
    );
    assert_eq!(b.value("SELECT @@gtid_binlog_pos"), before);
}

#[test]
fn standby_with_sql_thread_stopped_is_not_eligible() {
    let (a, b) = pair();
    let standby = NodeConfig::new(&b, false, "");
    b.exec("STOP SLAVE SQL_THREAD");
    let r = standby.check(&["--format", "text"]);
    assert_eq!(r.code, REPLICATION, "{r:?}");
    assert!(r.stdout.contains("SQL thread stopped"), "{}", r.stdout);
    b.exec("START SLAVE SQL_THREAD");
    assert_eq!(
        wait_for_code(&standby, OK, Duration::from_secs(10)).code,
        OK
    );
    drop(a);
}

#[test]
fn standby_with_conflicting_row_is_not_eligible() {
    let (a, b) = pair();
    let standby = NodeConfig::new(&b, false, "");
    a.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)");
    b.sync_with(&a);
    // The same key written on the standby without binlogging, then on the master:
    // the standby's SQL thread stops with a duplicate-key error.
    b.exec("SET sql_log_bin = 0; INSERT INTO app.t VALUES (7); SET sql_log_bin = 1");
    a.exec("INSERT INTO app.t VALUES (7)");
    let r = wait_for_code(&standby, REPLICATION, Duration::from_secs(10));
    assert_eq!(r.code, REPLICATION, "{r:?}");
    assert!(r.stdout.contains("SQL thread error 1062"), "{}", r.stdout);
    // The active node with the same replication trouble stays healthy and says why.
    let as_active = NodeConfig::new(&b, true, "");
    let r = as_active.check(&["--format", "text"]);
    assert_eq!(r.code, OK, "{r:?}");
    assert!(r.stdout.contains("SQL thread error 1062"), "{}", r.stdout);
}

#[test]
fn standby_stays_eligible_when_peer_dies() {
    let (mut a, b) = pair();
    let active = NodeConfig::new(&a, true, "max-lag = 2s");
    let standby = NodeConfig::new(&b, false, "max-lag = 2s");
    heartbeat_flowing(&active, &a, &b);
    a.kill();
    b.wait_slave_field("Slave_IO_Running", "Connecting", Duration::from_secs(20));
    assert_eq!(standby.check(&[]).code, OK);
    // The heartbeat keeps ageing past max-lag, but everything received is applied:
    // the peer stopped writing, which is not lag.
    std::thread::sleep(Duration::from_millis(2500));
    let r = standby.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["lag_seconds"].as_f64().unwrap() > 2.0);
    assert!(r.stdout.contains("peer stopped writing"), "{}", r.stdout);
}

#[test]
fn delayed_standby_is_lagging_until_applied() {
    let (a, b) = pair();
    let active = NodeConfig::new(&a, true, "");
    let standby = NodeConfig::new(&b, false, "max-lag = 1s");
    heartbeat_flowing(&active, &a, &b);
    b.exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 4; START SLAVE");
    // Fresh heartbeats arrive but are applied 4 s late.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(active.check(&[]).code, OK);
    std::thread::sleep(Duration::from_millis(1500));
    let r = standby.check(&["--format", "nagios"]);
    assert_eq!(r.code, 1, "nagios WARNING for lag: {r:?}");
    assert!(
        r.stdout.starts_with("KEEPALIVED-MYSQL WARNING"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("lag="), "{}", r.stdout);
    assert_eq!(standby.check(&[]).code, LAG);
    b.exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE");
    assert_eq!(
        wait_for_code(&standby, OK, Duration::from_secs(15)).code,
        OK
    );
}

#[test]
fn frozen_server_fails_within_the_deadline() {
    let (a, _b) = pair();
    let node = NodeConfig::new(&a, true, "timeout = 800ms");
    assert_eq!(node.check(&[]).code, OK);
    a.signal(libc::SIGSTOP);
    let r = node.check(&["--format", "text"]);
    a.signal(libc::SIGCONT);
    assert_eq!(r.code, TIMEOUT, "{r:?}");
    // keepalived's timeout would SIGKILL a check that overran; ours ends on its own.
    assert!(
        r.elapsed < Duration::from_millis(1500),
        "took {:?}",
        r.elapsed
    );
    assert!(r.stdout.contains("no answer within 800ms"), "{}", r.stdout);
}

#[test]
fn server_down_and_access_denied() {
    let mut a = Mariadb::start(1);
    let wrong = NodeConfig::new(&a, true, "");
    let cnf = std::fs::read_to_string(&wrong.cnf)
        .unwrap()
        .replace(MONITOR_PASS, "wrong");
    write_private(&wrong.cnf, &cnf);
    let r = wrong.check(&["--format", "text"]);
    assert_eq!(r.code, ACCESS, "{r:?}");
    assert!(r.stdout.contains("access denied"), "{}", r.stdout);
    assert_eq!(wrong.check(&[]).code, ACCESS);
    assert!(wrong.log().contains("access denied"), "{}", wrong.log());

    let node = NodeConfig::new(&a, true, "");
    a.kill();
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, DOWN, "{r:?}");
    assert!(r.stdout.contains("cannot connect"), "{}", r.stdout);
}

#[test]
fn too_many_connections_is_healthy_unless_configured() {
    // 10 is MariaDB's minimum max_connections.
    let a = Mariadb::start_with(1, &["--max-connections=10"]);
    // Fill every slot with application sessions (the extra admin slot stays free).
    let _held: Vec<_> = (0..10).map(|_| a.app()).collect();
    let node = NodeConfig::new(&a, true, "");
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, OK, "{r:?}");
    assert!(r.stdout.contains("saturated"), "{}", r.stdout);
    let strict = NodeConfig::new(&a, true, "on-too-many-connections = fail");
    assert_eq!(strict.check(&[]).code, SATURATED);
    // The flag overrides the file.
    assert_eq!(
        strict.check(&["--on-too-many-connections", "healthy"]).code,
        OK
    );
}

#[test]
fn global_read_lock_on_active_node_blocks_writes() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    assert_eq!(node.check(&[]).code, OK);
    let mut locker = a.root();
    locker.query_drop("FLUSH TABLES WITH READ LOCK").unwrap();
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, WRITES_BLOCKED, "{r:?}");
    // A standby is not judged by writes: the same server is fine in that role.
    let standby = NodeConfig::new(&a, false, "");
    let r2 = standby.check(&["--format", "text"]);
    assert_ne!(r2.code, WRITES_BLOCKED, "{r2:?}");
    locker.query_drop("UNLOCK TABLES").unwrap();
    assert_eq!(node.check(&[]).code, OK);
}

#[test]
fn drain_file_moves_the_vip_on_purpose() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    assert_eq!(node.check(&[]).code, OK);
    std::fs::write(node.path("maintenance"), "").unwrap();
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, MAINTENANCE, "{r:?}");
    std::fs::remove_file(node.path("maintenance")).unwrap();
    assert_eq!(node.check(&[]).code, OK);
}

#[test]
fn standby_without_replication_is_not_eligible() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, false, "");
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, REPLICATION, "{r:?}");
    assert!(
        r.stdout.contains("no replication configured"),
        "{}",
        r.stdout
    );
}

/// The dialect is decided once per connection, from the handshake: MariaDB 10.x sends
/// "5.5.5-" before its real version there (never in @@version), which must not be
/// taken for MySQL 5.5.
#[test]
fn dialect_from_the_real_mariadb_handshake() {
    use keepalived_mysql::config::Endpoint;
    use keepalived_mysql::connection::Login;
    use keepalived_mysql::dialect::Flavor;
    let a = Mariadb::start(1);
    let login = Login {
        endpoint: Endpoint::Socket(a.socket.clone()),
        user: MONITOR_USER,
        password: MONITOR_PASS,
        tls: &Default::default(),
    };
    let conn = login.connect(Duration::from_secs(5)).unwrap();
    assert!(
        conn.server_version.starts_with("5.5.5-10."),
        "{}",
        conn.server_version
    );
    let version = a.value("SELECT @@version").unwrap();
    let nums: Vec<u16> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(conn.dialect.flavor, Flavor::MariaDB);
    assert_eq!(
        conn.dialect.version,
        (nums[0], nums[1], nums[2]),
        "{version}"
    );
}

/// The heartbeat writer never creates an errant transaction: only the node holding the
/// VIP writes (its own row); a standby's check, however often it runs, adds nothing to
/// its own GTID domain, so it holds nothing its master lacks.
#[test]
fn the_heartbeat_is_written_only_on_the_vip_holder() {
    let (a, b) = pair();
    // b writable too: read_only must not be what keeps its check from writing.
    a.exec("SET GLOBAL read_only = 0");
    b.exec("SET GLOBAL read_only = 0");
    let active = NodeConfig::new(&a, true, "");
    let standby = NodeConfig::new(&b, false, "");
    assert_eq!(active.check(&[]).code, 0, "{}", active.log());
    b.sync_with(&a);
    // b's own domain (2): what b itself wrote.
    let own = |db: &Mariadb| {
        let pos = db.value("SELECT @@gtid_binlog_pos").unwrap_or_default();
        keepalived_mysql::gtid::parse_mariadb(&pos)
            .unwrap()
            .get(&2)
            .copied()
    };
    let before = own(&b);
    for _ in 0..5 {
        let r = standby.check(&["--format", "text"]);
        assert_eq!(r.code, 0, "{}", r.stdout);
        assert!(r.stdout.contains("standby"), "{}", r.stdout);
    }
    assert_eq!(
        own(&b),
        before,
        "a standby's check wrote a transaction of its own"
    );
    // And the active node's heartbeat rows are its own only.
    assert_eq!(
        a.value("SELECT GROUP_CONCAT(DISTINCT server_id) FROM keepalived_mysql.heartbeat")
            .as_deref(),
        Some("1")
    );
}

/// With witnesses, a node that reaches neither them nor its peer for
/// isolation-timeout is isolated (exit 22), however healthy its server; one reached
/// (a refusal counts) keeps it eligible. Without witnesses nothing changes.
#[test]
fn isolated_node_is_not_eligible_however_healthy() {
    let (a, _b) = pair();
    // A closed port on loopback refuses at once: reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let near = NodeConfig::new(
        &a,
        true,
        &format!("witness = {closed}\nisolation-timeout = 1s\n"),
    );
    assert_eq!(near.check(&[]).code, OK, "{}", near.log());
    assert!(near.state()["reached_at"].as_f64().is_some());
    // TCP to the broadcast address fails before any packet leaves: unreachable.
    let far = "witness = 255.255.255.255:9\nisolation-timeout = 1s\n";
    let node = NodeConfig::new(&a, true, far);
    // No success on record: isolated at once.
    let r = node.check(&["--format", "json"]);
    assert_eq!(r.code, ISOLATED, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["class"], "isolated");
    assert!(
        v["reason"].as_str().unwrap().contains("255.255.255.255:9"),
        "{v}"
    );
    // Reached a moment ago: still eligible (with a note) until the timeout passes.
    std::fs::create_dir_all(node.path("run")).unwrap();
    std::fs::copy(near.path("run/check.json"), node.path("run/check.json")).unwrap();
    let r = node.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{}", r.stdout);
    assert!(r.stdout.contains("reached no witness for"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(node.check(&[]).code, ISOLATED, "{}", node.log());
    assert!(
        node.log().contains("FAIL isolated (exit 22"),
        "{}",
        node.log()
    );
    // The witness answers again: eligible at once.
    let back = NodeConfig::new(
        &a,
        true,
        &format!("witness = 255.255.255.255:9, {closed}\n"),
    );
    assert_eq!(back.check(&[]).code, OK, "{}", back.log());
    // No witness: never isolated.
    assert_eq!(NodeConfig::new(&a, true, "").check(&[]).code, OK);
}

/// Semi-sync that silently fell back to asynchronous replication is a warning: the
/// check still says healthy (exit 0: not a reason to move the VIP), JSON and Nagios say
/// it, and keepalived's runs log and alert it once when it appears and once when it
/// clears.
#[test]
fn semi_sync_fallback_is_a_warning_logged_once() {
    let (a, b) = pair();
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.log");
    let script = counting_script(dir.path(), "alert.sh", &alerts);
    let node = NodeConfig::new(&a, true, &format!("alert-command = {}", script.display()));
    a.exec("SET GLOBAL rpl_semi_sync_master_timeout = 200; SET GLOBAL rpl_semi_sync_master_enabled = ON");
    b.exec(
        "SET GLOBAL rpl_semi_sync_slave_enabled = ON; STOP SLAVE IO_THREAD; START SLAVE IO_THREAD",
    );
    let semi_status = || {
        a.value("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'")
    };
    let wait_status = |want: &str| {
        let t = std::time::Instant::now();
        while semi_status().as_deref() != Some(want) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "semi-sync status never {want}"
            );
            a.exec("INSERT INTO semi.t VALUES (1)");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    a.exec("CREATE DATABASE semi; CREATE TABLE semi.t (i INT)");
    assert_eq!(node.check(&[]).code, OK, "{}", node.log());
    wait_status("ON");
    let r = node.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["semi_sync"]["enabled"], true, "{v}");
    assert_eq!(v["semi_sync"]["active"], true, "{v}");
    assert!(v.get("warnings").is_none(), "{v}");

    // The standby stops acknowledging: the next commit waits 200 ms, then the source
    // goes on without it.
    b.exec("STOP SLAVE IO_THREAD");
    wait_status("OFF");
    for _ in 0..3 {
        assert_eq!(
            node.check(&[]).code,
            OK,
            "a fallback never moves the VIP: {}",
            node.log()
        );
    }
    let r = node.check(&["--format", "json"]);
    assert_eq!(r.code, OK, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["semi_sync"]["active"], false, "{v}");
    assert!(
        v["warnings"][0].as_str().unwrap().contains("fallen back"),
        "{v}"
    );
    let n = node.check(&["--format", "nagios"]);
    assert_eq!(n.code, 1, "Nagios WARNING: {n:?}");
    assert!(n.stdout.starts_with("KEEPALIVED-MYSQL WARNING"), "{n:?}");
    assert_eq!(
        node.log()
            .matches("WARNING: semi-sync is enabled but has fallen back")
            .count(),
        1,
        "{}",
        node.log()
    );

    b.exec("START SLAVE IO_THREAD");
    wait_status("ON");
    assert_eq!(node.check(&[]).code, OK);
    assert_eq!(node.check(&[]).code, OK);
    assert_eq!(
        node.log().matches("semi-sync recovered").count(),
        1,
        "{}",
        node.log()
    );
    let t = std::time::Instant::now();
    while lines(&alerts).len() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lines(&alerts).len(),
        2,
        "one alert each way: {:?}",
        lines(&alerts)
    );
}
