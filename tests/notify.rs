//! keepalived-mysql-notify on a real replicating pair.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::*;
use mysql::prelude::Queryable;

/// Node config for the notify hook with its own account. `holds_vip`: the VIP is
/// 127.0.0.1 (on lo, so held) or 192.0.2.100 (held nowhere here).
fn node(db: &Mariadb, holds_vip: bool, extra: &str) -> NodeConfig {
    NodeConfig::new(
        db,
        holds_vip,
        &format!(
            "[keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}\n{extra}"
        ),
    )
}

/// A node config for `db` holding the VIP, with `peer` as its peer-host.
fn peer_node(db: &Mariadb, peer: &Mariadb, extra: &str) -> NodeConfig {
    node(
        db,
        true,
        &format!("{extra}\npeer-host = 127.0.0.1\npeer-port = {}", peer.port),
    )
}

fn read_only(db: &Mariadb) -> bool {
    db.value("SELECT @@read_only").as_deref() == Some("1")
}

fn rows(db: &Mariadb) -> u64 {
    db.value("SELECT COUNT(*) FROM app.t")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn with_app_table(a: &Mariadb, b: &Mariadb) {
    a.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    b.sync_with(a);
}

fn backlog(a: &Mariadb, n: usize) {
    let mut c = a.root();
    for i in 0..n {
        c.query_drop(format!("INSERT INTO app.t (v) VALUES ({i})"))
            .unwrap();
    }
}

/// Samples (read_only, rows) on `db` until stopped: proves what was true when.
fn sampler(db: &Mariadb) -> (Arc<AtomicBool>, thread::JoinHandle<Vec<(bool, u64)>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut conn = db.root();
    let h = thread::spawn(move || {
        let mut out = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            let (ro, n): (u8, u64) = conn
                .query_first("SELECT @@read_only, (SELECT COUNT(*) FROM app.t)")
                .unwrap()
                .unwrap();
            out.push((ro == 1, n));
            sleep(Duration::from_millis(10));
        }
        out
    });
    (stop, h)
}

#[test]
fn promotion_opens_writes_only_after_the_backlog_is_applied() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    // A standby is read-only (read_only = ON in the recommended my.cnf).
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE SQL_THREAD");
    backlog(&a, 200);
    let nb = node(&b, true, "catchup-timeout = 20s");
    let (stop, samples) = sampler(&b);
    let t = Instant::now();
    let mut hook = nb.notify_spawn(&["master"]);
    sleep(Duration::from_millis(1500));
    assert!(
        hook.try_wait().unwrap().is_none(),
        "promotion did not wait for the backlog"
    );
    b.exec("START SLAVE SQL_THREAD");
    let st = hook.wait().unwrap();
    let took = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    let samples = samples.join().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(took >= Duration::from_millis(1500));
    assert!(!read_only(&b));
    assert_eq!(rows(&b), 200);
    for (ro, n) in &samples {
        assert!(
            *ro || *n == 200,
            "writable with only {n} of 200 backlog rows"
        );
    }
    assert!(
        samples.iter().any(|(ro, n)| *ro && *n < 200),
        "never saw the wait"
    );
    let rec = nb.notify_state();
    assert_eq!(rec["state"], "MASTER");
    assert!(rec["last_catchup_ms"].as_f64().unwrap() >= 1400.0);
    let last = rec["history"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["action"].as_str().unwrap().starts_with("promoted"),
        "{last}"
    );
}

#[test]
fn catchup_timeout_stays_read_only_or_opens() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("STOP SLAVE SQL_THREAD");
    backlog(&a, 20);
    let strict = node(&b, true, "catchup-timeout = 1s");
    let r = strict.notify(&["master"]);
    assert_eq!(r.code, 30, "{r:?}");
    assert!(read_only(&b));
    assert!(
        strict.log().contains("staying read-only"),
        "{}",
        strict.log()
    );
    let open = node(&b, true, "catchup-timeout = 1s\non-catchup-timeout = open");
    let r = open.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!read_only(&b));
}

/// A peer that answers but refuses us is alive and may hold writes this node never
/// received: the promotion must not open writes on the strength of a skipped wait.
#[test]
fn a_peer_that_refuses_us_keeps_the_promotion_read_only() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    backlog(&a, 30);
    // The peer refuses our account (as a wrong password would).
    a.exec(&format!(
        "SET sql_log_bin = 0; DROP USER '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    let nb = peer_node(&b, &a, "catchup-timeout = 5s");
    let r = nb.notify(&["master"]);
    assert_eq!(r.code, 30, "stayed read-only: {r:?}");
    assert!(read_only(&b));
    let log = nb.log();
    assert!(log.contains("answers but refuses us"), "{log}");
    assert!(log.contains("access denied"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{}", a.port)), "{log}");
    // A refusing peer is alive and cannot be fenced: `on-catchup-timeout = open` does
    // not open writes beside it either.
    let open = peer_node(&b, &a, "catchup-timeout = 1s\non-catchup-timeout = open");
    let r = open.notify(&["master"]);
    assert_eq!(
        r.code,
        30,
        "opened beside a refusing peer: {r:?} {}",
        open.log()
    );
    assert!(read_only(&b));

    // An unreachable peer is the failover case: skipped, logged, writes open.
    let mut a = a;
    a.kill();
    let r = nb.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(nb.log().contains("unreachable"), "{}", nb.log());
}

#[test]
fn planned_switchover_waits_for_the_peers_binlog() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    // b has not even received these: its own relay log looks fully applied.
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    backlog(&a, 50);
    let nb = peer_node(&b, &a, "catchup-timeout = 20s");
    let (stop, samples) = sampler(&b);
    let mut hook = nb.notify_spawn(&["master"]);
    sleep(Duration::from_millis(1500));
    assert!(
        hook.try_wait().unwrap().is_none(),
        "did not wait for the peer's position"
    );
    b.exec("START SLAVE IO_THREAD");
    assert_eq!(hook.wait().unwrap().code(), Some(0));
    stop.store(true, Ordering::SeqCst);
    for (ro, n) in samples.join().unwrap() {
        assert!(ro || n == 50, "writable with {n} of the peer's 50 rows");
    }
    assert!(!read_only(&b));
}

#[test]
fn demotion_stops_writes_and_drops_clients_not_replication() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    let mut app = a.app();
    app.query_drop("INSERT INTO app.t (v) VALUES (1)").unwrap();
    let na = node(&a, false, "");
    let r = na.notify(&["backup"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(read_only(&a));
    // The application's session is gone, and a new one cannot write.
    assert!(app.query_drop("INSERT INTO app.t (v) VALUES (2)").is_err());
    let err = a
        .app()
        .query_drop("INSERT INTO app.t (v) VALUES (3)")
        .unwrap_err()
        .to_string();
    assert!(err.contains("1290") || err.contains("read-only"), "{err}");
    // Replication threads on both sides survived.
    sleep(Duration::from_millis(300));
    assert_eq!(a.slave_field("Slave_IO_Running").as_deref(), Some("Yes"));
    assert_eq!(a.slave_field("Slave_SQL_Running").as_deref(), Some("Yes"));
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("Yes"));
    assert!(
        na.log().contains("1 client session(s) killed") || na.log().contains("session(s) killed"),
        "{}",
        na.log()
    );
    assert_eq!(na.notify_state()["state"], "BACKUP");
}

#[test]
fn sessions_of_kept_users_survive() {
    let (a, _b) = pair();
    a.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    let mut app = a.app();
    let na = node(
        &a,
        false,
        &format!("keep-sessions-of = {APP_USER}, someone"),
    );
    assert_eq!(na.notify(&["fault"]).code, 0);
    // Still connected (a read works), though writes are refused.
    let one: Option<u8> = app.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn concurrent_alternating_events_end_matching_the_vip() {
    for holds in [true, false] {
        let (a, _b) = pair();
        let na = node(&a, holds, "");
        let children: Vec<_> = (0..50)
            .map(|i| {
                if i % 2 == 0 {
                    na.notify_spawn(&["INSTANCE", "VI_1", "MASTER", "150"])
                } else {
                    na.notify_spawn(&["backup"])
                }
            })
            .collect();
        for mut c in children {
            c.wait().unwrap();
        }
        assert_eq!(read_only(&a), !holds, "VIP held: {holds}");
        let rec = na.notify_state();
        assert_eq!(rec["state"], if holds { "MASTER" } else { "BACKUP" });
        assert_eq!(rec["seq"], 50);
        let history = rec["history"].as_array().unwrap();
        let stale = history.iter().filter(|h| h["action"] == "stale").count();
        assert_eq!(stale, 25, "the 25 events contradicting the VIP are stale");
        // Both argument styles were recorded.
        assert!(history
            .iter()
            .any(|h| h["instance"] == "INSTANCE VI_1" && h["priority"] == 150));
    }
}

#[test]
fn stop_finishes_within_a_second_even_with_mysqld_down() {
    let (mut a, _b) = pair();
    let na = node(&a, false, "");
    a.exec("SET GLOBAL read_only = OFF");
    let r = na.notify(&["INSTANCE", "VI_1", "STOP", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(1), "{:?}", r.elapsed);
    assert!(read_only(&a));
    a.kill();
    let r = na.notify(&["stop"]);
    assert_eq!(r.code, 31, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(1), "{:?}", r.elapsed);
    assert_eq!(na.notify_state()["demotion_pending"], true);
}

#[test]
fn demotion_waits_for_a_dead_server_and_completes_when_it_returns() {
    let (mut a, _b) = pair();
    let na = node(&a, false, "");
    a.kill();
    let mut hook = na.notify_spawn(&["backup"]);
    let t = Instant::now();
    while na.notify_state()["demotion_pending"] != true {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "pending not recorded"
        );
        sleep(Duration::from_millis(100));
    }
    // Back without read_only in its config: the waiting hook finishes the demotion.
    a.restart();
    let t = Instant::now();
    while hook.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "hook still waiting");
        sleep(Duration::from_millis(100));
    }
    assert!(read_only(&a));
    assert_eq!(na.notify_state()["demotion_pending"], false);
}

#[test]
fn frozen_node_resumed_later_ends_read_only() {
    let (a, _b) = pair();
    a.exec("SET GLOBAL read_only = OFF");
    let na = node(&a, false, "timeout = 500ms");
    a.signal(libc::SIGSTOP);
    let mut hook = na.notify_spawn(&["fault"]);
    sleep(Duration::from_secs(2));
    assert!(hook.try_wait().unwrap().is_none());
    a.signal(libc::SIGCONT);
    let t = Instant::now();
    while hook.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "hook did not finish after resume"
        );
        sleep(Duration::from_millis(100));
    }
    assert!(read_only(&a));
}

/// alert-command gets the event as JSON on stdin and KEEPALIVED_MYSQL_* variables, and
/// the same kind of alert is rate-limited by alert-interval.
#[test]
fn alerts_carry_the_event_and_are_rate_limited() {
    let (a, _b) = pair();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.log");
    let script = dir.path().join("alert.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"event=$KEEPALIVED_MYSQL_EVENT program=$KEEPALIVED_MYSQL_PROGRAM\"; cat; echo; }} >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let na = node(
        &a,
        false,
        &format!("alert-command = {}\nalert-interval = 1h", script.display()),
    );
    assert_eq!(na.notify(&["fault"]).code, 0);
    assert_eq!(na.notify(&["fault"]).code, 0);
    let t = Instant::now();
    let mut text = String::new();
    while t.elapsed() < Duration::from_secs(5) {
        text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains('}') {
            break;
        }
        sleep(Duration::from_millis(50)); // started detached, not waited for
    }
    sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&out).unwrap_or(text);
    assert_eq!(
        text.matches("event=demoted").count(),
        1,
        "one alert per interval: {text}"
    );
    assert!(text.contains("program=keepalived-mysql-notify"), "{text}");
    let json_line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("JSON on stdin");
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(v["event"], "demoted");
    assert_eq!(v["details"]["state"], "FAULT");
    assert!(
        v["message"].as_str().unwrap().contains("read_only=ON"),
        "{v}"
    );
}

/// Waits until the notify record's peer channel is in `state` (fails the test if it
/// is not within `limit`), and returns the record.
fn channel_becomes(node: &NodeConfig, state: &str, limit: Duration) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let rec = node.notify_state();
        if rec["peer_channel"]["state"] == state {
            return rec;
        }
        assert!(
            t.elapsed() < limit,
            "peer channel never became {state}: {rec}\n{}",
            node.log()
        );
        sleep(Duration::from_millis(200));
    }
}

/// The promotion just made holds the channel from the peer.
fn assert_held(node: &NodeConfig) {
    assert_eq!(
        node.notify_state()["peer_channel"]["state"],
        "held",
        "{}",
        node.log()
    );
}

/// Crash failover with writes the standby never received: when the old master comes
/// back, its orphans are named, alerted and never applied on the new master, until an
/// operator repairs it (here: applies them on purpose); then replication resumes.
#[test]
fn a_returning_old_master_with_orphans_is_never_applied_here() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    backlog(&a, 3); // acknowledged on a, never sent to b
    let before = rows(&b);
    a.kill();
    let nb = peer_node(&b, &a, "catchup-timeout = 2s");
    let r = nb.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?} {}", nb.log());
    assert!(!read_only(&b));
    assert_held(&nb);
    a.restart();
    let rec = channel_becomes(&nb, "diverged", Duration::from_secs(30));
    let extra = rec["peer_channel"]["peer_extra"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(extra.starts_with("1-1-"), "a's domain, a's server: {extra}");
    // Beyond what b had of a's when it was promoted, and what its channel received.
    let seq = |g: &str| -> u64 {
        g.split([' ', ','])
            .next()
            .and_then(|g| g.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let had = rec["peer_channel"]["from_peer"].as_str().unwrap_or("");
    assert!(had.starts_with("1-1-"), "{rec}");
    assert_eq!(seq(&extra), seq(had) + 3, "{rec}");
    assert!(
        rec["peer_channel"]["received"]
            .as_str()
            .is_some_and(|r| r.contains(had)),
        "{rec}"
    );
    // The new master's own check says so, in its JSON, without failing.
    let r = nb.check(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["peer_diverged"].as_str(), Some(extra.as_str()), "{v}");
    assert!(v["notes"].to_string().contains("peer DIVERGED"), "{v}");
    assert!(
        nb.log()
            .contains(&format!("DIVERGED: peer 127.0.0.1:{}", a.port)),
        "{}",
        nb.log()
    );
    sleep(Duration::from_secs(2));
    assert_eq!(
        rows(&b),
        before,
        "the orphans were applied on the new master"
    );
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    // The old node, replicating from b again, learns it through the marker b wrote:
    // its own check says it is not eligible, naming the GTIDs. (b's check, as the
    // active node, keeps the heartbeat beside it, as on a live pair.)
    assert_eq!(nb.check(&[]).code, 0, "{}", nb.log());
    a.exec("START SLAVE");
    let na = NodeConfig::new(&a, false, "");
    let r = wait_for_code(&na, 21, Duration::from_secs(30));
    assert_eq!(r.code, 21, "{}", r.stdout);
    assert!(
        r.stdout.contains("DIVERGED") && r.stdout.contains("1-1-"),
        "{}",
        r.stdout
    );

    // The operator decides to keep them: fetched by hand, the peer then holds nothing
    // b lacks, and the watcher lets replication run by itself.
    b.exec("START SLAVE IO_THREAD");
    channel_becomes(&nb, "resumed", Duration::from_secs(30));
    assert_eq!(rows(&b), before + 3);
    // The marker is gone, on a too: eligible again by itself.
    let t = Instant::now();
    let mut r = na.check(&["--format", "text"]);
    while r.code == 21 && t.elapsed() < Duration::from_secs(30) {
        sleep(Duration::from_millis(300));
        r = na.check(&["--format", "text"]);
    }
    assert_eq!(r.code, 0, "{}", r.stdout);
}

/// The new master that found its peer diverged loses the VIP (its own fault) and gets
/// it back: it stays an eligible standby meanwhile (its channel held on purpose, the
/// peer the one not eligible), and its promotion waits for nothing of the diverged
/// peer's, whose orphans stay off. Otherwise neither node could serve.
#[test]
fn the_node_that_found_its_peer_diverged_can_serve_again() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    backlog(&a, 3); // a's orphans
    a.kill();
    let peer = format!(
        "catchup-timeout = 5s\npeer-host = 127.0.0.1\npeer-port = {}",
        a.port
    );
    let nb = node(&b, true, &peer);
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    let before = rows(&b);
    a.restart();
    channel_becomes(&nb, "diverged", Duration::from_secs(30));
    // The marker written: a's own check now fails, b is told.
    let t = Instant::now();
    while nb.notify_state()["peer_channel"]["marked"] != true {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", nb.log());
        sleep(Duration::from_millis(100));
    }
    // The VIP leaves b: the same node, its record, without the address.
    let gone = node(&b, false, &peer);
    std::fs::create_dir_all(gone.path("run")).unwrap();
    std::fs::copy(nb.path("run/notify.json"), gone.path("run/notify.json")).unwrap();
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert!(read_only(&b));
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    let r = gone.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "the good copy is not eligible: {}", r.stdout);
    assert!(r.stdout.contains("DIVERGED"), "{}", r.stdout);
    // The VIP comes back: writes open without waiting for the diverged peer.
    std::fs::copy(gone.path("run/notify.json"), nb.path("run/notify.json")).unwrap();
    let r = nb.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?} {}", nb.log());
    assert!(!read_only(&b));
    assert!(nb.log().contains("is the diverged one"), "{}", nb.log());
    assert_eq!(nb.notify_state()["peer_channel"]["state"], "diverged");
    sleep(Duration::from_secs(2));
    assert_eq!(rows(&b), before, "the orphans were applied");
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    // Once more, with the diverged peer gone: whether it took writes meanwhile cannot
    // be told, and b fetched none of them: writes stay closed, whatever the policy.
    let vip_gone = node(&b, false, &peer);
    std::fs::create_dir_all(vip_gone.path("run")).unwrap();
    std::fs::copy(nb.path("run/notify.json"), vip_gone.path("run/notify.json")).unwrap();
    assert_eq!(vip_gone.notify(&["backup"]).code, 0, "{}", vip_gone.log());
    a.kill();
    let open = node(&b, true, &format!("{peer}\non-catchup-timeout = open"));
    std::fs::create_dir_all(open.path("run")).unwrap();
    std::fs::copy(
        vip_gone.path("run/notify.json"),
        open.path("run/notify.json"),
    )
    .unwrap();
    let r = open.notify(&["master"]);
    assert_eq!(r.code, 30, "{r:?} {}", open.log());
    assert!(read_only(&b));
    assert!(
        open.log()
            .contains("whether it took writes since cannot be told"),
        "{}",
        open.log()
    );
}

/// The same crash with nothing unreplicated: the old master rejoins by itself, with no
/// alert beyond the failover's own.
#[test]
fn a_clean_old_master_rejoins_by_itself() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");
    backlog(&a, 3);
    b.sync_with(&a);
    a.kill();
    let nb = peer_node(&b, &a, "catchup-timeout = 2s");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert_held(&nb);
    a.restart();
    channel_becomes(&nb, "resumed", Duration::from_secs(30));
    b.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));
    assert!(!nb.log().contains("DIVERGED"), "{}", nb.log());
    assert!(
        nb.log().contains("replication from it resumed"),
        "{}",
        nb.log()
    );
}

/// The old master with orphans, killed while the standby still has a relay log to
/// apply: its applier waits on a row lock the returned session holds, so the catch-up
/// cannot end until the test lets it. The standby's IO thread keeps trying to
/// reconnect, as after a crash. (Restarted with its SQL thread stopped, MariaDB would
/// drop the relay log instead: hence the lock.)
fn orphans_and_an_unapplied_backlog(a: &mut Mariadb, b: &Mariadb) -> (String, mysql::Conn) {
    with_app_table(a, b);
    a.exec("SET GLOBAL read_only = OFF; INSERT INTO app.t (id, v) VALUES (1, 0)");
    b.sync_with(a);
    b.exec("SET GLOBAL read_only = ON");
    let mut locker = b.root();
    locker
        .query_drop("BEGIN; SELECT * FROM app.t WHERE id = 1 FOR UPDATE")
        .unwrap();
    a.exec("UPDATE app.t SET v = 1 WHERE id = 1");
    backlog(a, 1); // both received by b, not applied
    let pos = a.value("SELECT @@gtid_binlog_pos").unwrap();
    let t = Instant::now();
    while b.slave_field("Gtid_IO_Pos").as_deref() != Some(pos.as_str()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "b never received {pos}"
        );
        sleep(Duration::from_millis(50));
    }
    b.exec("STOP SLAVE IO_THREAD");
    backlog(a, 3); // acknowledged on a, never sent to b: its orphans
    let orphans = a.value("SELECT @@gtid_binlog_pos").unwrap();
    a.kill();
    b.exec("START SLAVE IO_THREAD"); // retries every second, as after a crash
    (orphans, locker)
}

/// The old master comes back (our restart hook restarts it within seconds) while the
/// new master is still applying its relay log: nothing it sends is fetched, not even
/// before writes open. Fetching from a peer that is gone stops before the catch-up.
#[test]
fn an_old_master_back_before_the_catch_up_ends_is_not_fetched_from() {
    let (mut a, b) = pair();
    let (orphans, mut locker) = orphans_and_an_unapplied_backlog(&mut a, &b);
    let before = rows(&b);
    let nb = peer_node(&b, &a, "catchup-timeout = 20s");
    let r = thread::scope(|sc| {
        let h = sc.spawn(|| nb.notify(&["master"]));
        sleep(Duration::from_millis(500));
        a.restart();
        // Long enough for an IO thread left running to reconnect and fetch.
        sleep(Duration::from_secs(3));
        assert!(read_only(&b), "writes opened before the catch-up");
        locker.query_drop("ROLLBACK").unwrap(); // the relay log is applied: caught up
        h.join().unwrap()
    });
    assert_eq!(r.code, 0, "{r:?} {}", nb.log());
    assert!(!read_only(&b));
    assert_eq!(
        rows(&b),
        before + 1,
        "the relay log is applied, nothing more"
    );
    assert_eq!(
        b.value("SELECT v FROM app.t WHERE id = 1").as_deref(),
        Some("1")
    );
    assert_ne!(
        b.slave_field("Gtid_IO_Pos").as_deref(),
        Some(orphans.as_str()),
        "the old master's orphans were fetched"
    );
    channel_becomes(&nb, "diverged", Duration::from_secs(30));
    assert!(
        nb.log()
            .contains("fetching from it stopped before catching up"),
        "{}",
        nb.log()
    );
    sleep(Duration::from_secs(1));
    assert_eq!(
        rows(&b),
        before + 1,
        "the orphans were applied on the new master"
    );
}

/// The same, and the promotion keeps writes closed (catch-up incomplete): the channel
/// stays held all the same, the watcher names the orphans, and writes no marker from a
/// read-only node (that row would be an errant transaction of its own).
#[test]
fn a_promotion_that_keeps_writes_closed_still_holds_a_gone_peer() {
    let (mut a, b) = pair();
    let (orphans, _locker) = orphans_and_an_unapplied_backlog(&mut a, &b);
    let nb = peer_node(&b, &a, "catchup-timeout = 1s");
    let r = nb.notify(&["master"]);
    assert_eq!(r.code, 30, "{r:?} {}", nb.log());
    assert!(read_only(&b));
    assert_held(&nb);
    a.restart();
    channel_becomes(&nb, "diverged", Duration::from_secs(30));
    // Said once, however long it lasts (the watcher looks every second).
    sleep(Duration::from_secs(3));
    let log = nb.log();
    assert_eq!(
        log.matches("no diverged marker is written").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("DIVERGED: peer").count(), 1, "{log}");
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    assert_ne!(
        b.slave_field("Gtid_IO_Pos").as_deref(),
        Some(orphans.as_str()),
        "the old master's orphans were fetched"
    );
    assert_eq!(
        b.value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'keepalived_mysql' AND TABLE_NAME = 'diverged'")
            .as_deref(),
        Some("0"),
        "a read-only node wrote the marker"
    );
}

/// The old master comes back without some of its own transactions that the new master
/// applied (its crash recovery cut them: a semi-sync ghost the standby had received).
/// It would never fetch them back (they carry its own server id), so it is diverged.
#[test]
fn an_old_master_that_lost_its_own_transactions_is_not_eligible() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");
    backlog(&a, 3);
    b.sync_with(&a);
    // What a truncation leaves: a's binary log ends one transaction earlier.
    let pos = a.value("SELECT @@gtid_binlog_pos").unwrap();
    let cut: Vec<String> = pos
        .split(',')
        .map(|g| match g.trim().rsplit_once('-') {
            Some((head, n)) if head.starts_with("1-") => {
                format!("{head}-{}", n.parse::<u64>().unwrap() - 1)
            }
            _ => g.trim().to_string(),
        })
        .collect();
    a.exec(&format!(
        "RESET MASTER; SET GLOBAL gtid_binlog_state = '{}'",
        cut.join(",")
    ));
    a.kill();
    let nb = peer_node(&b, &a, "catchup-timeout = 2s");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    a.restart();
    let rec = channel_becomes(&nb, "diverged", Duration::from_secs(30));
    let gtids = rec["peer_channel"]["peer_extra"].as_str().unwrap_or("");
    assert!(gtids.starts_with("lacks its own 1-1-"), "{rec}");
    assert!(
        nb.log().contains("lacks transactions it wrote itself"),
        "{}",
        nb.log()
    );
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    // The old node learns it through the marker: not eligible.
    assert_eq!(nb.check(&[]).code, 0, "{}", nb.log());
    a.exec("START SLAVE");
    let na = NodeConfig::new(&a, false, "");
    let r = wait_for_code(&na, 21, Duration::from_secs(30));
    assert_eq!(r.code, 21, "{}", r.stdout);
    assert!(r.stdout.contains("lacks its own 1-1-"), "{}", r.stdout);
}

/// The hold itself: a promotion stops a running channel from the peer, and a peer that
/// refuses the watcher is not verified, so it stays stopped (said so); once the peer
/// lets us in and holds nothing we lack, fetching resumes.
#[test]
fn promotion_holds_the_channel_until_the_peer_is_verified() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("Yes"));
    // a crashes, and comes back refusing our notify account: the watcher cannot verify.
    a.exec(&format!(
        "SET sql_log_bin = 0; DROP USER '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    a.kill();
    let nb = peer_node(&b, &a, "catchup-timeout = 1s");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(!read_only(&b));
    a.restart();
    sleep(Duration::from_secs(3));
    assert_eq!(
        b.slave_field("Slave_IO_Running").as_deref(),
        Some("No"),
        "{}",
        nb.log()
    );
    assert_eq!(nb.notify_state()["peer_channel"]["state"], "held");
    assert!(
        nb.log().contains("replication from the peer stays held"),
        "{}",
        nb.log()
    );
    a.exec(&format!(
        "SET sql_log_bin = 0; CREATE USER '{NOTIFY_USER}'@'127.0.0.1' IDENTIFIED BY '{NOTIFY_PASS}'; \
         GRANT PROCESS, SLAVE MONITOR ON *.* TO '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    channel_becomes(&nb, "resumed", Duration::from_secs(30));
    b.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));
}

/// A node demoted while its channel is still held (the peer never verified) keeps it
/// stopped, says so, and resumes it on a later event once the peer is verified clean.
#[test]
fn a_demotion_resumes_a_held_channel_only_once_the_peer_is_verified() {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    // a crashes, and comes back refusing our notify account.
    a.exec(&format!(
        "SET sql_log_bin = 0; DROP USER '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    a.kill();
    let peer = format!(
        "catchup-timeout = 1s\npeer-host = 127.0.0.1\npeer-port = {}",
        a.port
    );
    let nb = node(&b, true, &peer);
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert_eq!(nb.notify_state()["peer_channel"]["state"], "held");
    a.restart();
    // The VIP leaves b: the same node, its record, without the address.
    let gone = node(&b, false, &peer);
    std::fs::create_dir_all(gone.path("run")).unwrap();
    std::fs::copy(nb.path("run/notify.json"), gone.path("run/notify.json")).unwrap();
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert!(read_only(&b));
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    assert!(
        gone.log()
            .contains("stays stopped: the peer could not be verified"),
        "{}",
        gone.log()
    );
    // Not fetching the peer's writes, b may not take over: the IO thread's last error
    // (a retried connect to the dead peer) does not make it look like a mere outage.
    let r = gone.check(&["--format", "text"]);
    assert_eq!(r.code, 14, "a held standby is eligible: {}", r.stdout);
    assert!(
        r.stdout.contains("held since the promotion"),
        "{}",
        r.stdout
    );
    // The peer lets us in and holds nothing b lacks: the next event resumes it.
    a.exec(&format!(
        "SET sql_log_bin = 0; CREATE USER '{NOTIFY_USER}'@'127.0.0.1' IDENTIFIED BY '{NOTIFY_PASS}'; \
         GRANT PROCESS, SLAVE MONITOR ON *.* TO '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    // Writable (it has taken over), and lacking a write of b's: following it would
    // fork the data.
    a.exec("STOP SLAVE");
    b.exec("INSERT INTO app.t (v) VALUES (99)");
    a.exec("SET GLOBAL read_only = OFF");
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    assert!(
        gone.log()
            .contains("the peer is writable (it has taken over), and this node has what it lacks"),
        "{}",
        gone.log()
    );
    // Once it has all b has, b follows it, writable as it is.
    a.exec("START SLAVE");
    a.sync_with(&b);
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    b.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));
    let r = gone.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        gone.notify_state()["peer_channel"].is_null(),
        "{}",
        gone.log()
    );
}

/// b promoted while its peer a is dead (`nb`, holding the VIP), and the same node's
/// configuration without the VIP (`gone`, its record copied) for what comes next.
fn survivor_of_a_crash() -> (Mariadb, Mariadb, NodeConfig, NodeConfig) {
    let (mut a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    a.kill();
    // The IO thread notices, and retries the dead peer.
    let t = Instant::now();
    while b.slave_field("Last_IO_Errno").as_deref().unwrap_or("0") == "0" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "b's IO thread never failed"
        );
        sleep(Duration::from_millis(100));
    }
    let peer = format!(
        "catchup-timeout = 1s\npeer-host = 127.0.0.1\npeer-port = {}",
        a.port
    );
    let nb = node(&b, true, &peer);
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    let gone = node(&b, false, &peer);
    std::fs::create_dir_all(gone.path("run")).unwrap();
    std::fs::copy(nb.path("run/notify.json"), gone.path("run/notify.json")).unwrap();
    (a, b, nb, gone)
}

/// The same survivor, watched while the peer is gone: once the peer is back and holds
/// nothing this node lacks, the standby fetches from it again by itself.
#[test]
fn a_held_standby_fetches_again_once_its_returning_peer_is_verified() {
    let (mut a, b, nb, gone) = survivor_of_a_crash();
    // The same node as master no more: its promotion's watcher ends with it.
    drop(nb);
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    a.restart();
    let t = Instant::now();
    while !gone.notify_state()["peer_channel"].is_null() {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", gone.log());
        sleep(Duration::from_millis(200));
    }
    assert_ne!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    assert!(
        gone.log().contains("is back and verified"),
        "{}",
        gone.log()
    );
    assert_eq!(gone.check(&[]).code, 0, "{}", gone.log());
}

/// The survivor of a crash, demoted while its peer is still gone (a keepalived restart,
/// say), can take over again: a held channel from a peer that has not answered since
/// has nothing to fetch. A person's START of the channel is then left running, and
/// recorded, so later events do not stop it again.
#[test]
fn a_survivor_demoted_while_its_peer_is_gone_can_take_over_again() {
    let (_a, b, nb, gone) = survivor_of_a_crash();
    assert_held(&nb);
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert_eq!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    let r = gone.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "the survivor is locked out: {}", r.stdout);
    assert!(r.stdout.contains("has not answered since"), "{}", r.stdout);
    // A person starts it: left running, and no longer held in the record.
    b.exec("START SLAVE IO_THREAD");
    assert_eq!(gone.notify(&["backup"]).code, 0, "{}", gone.log());
    assert_ne!(b.slave_field("Slave_IO_Running").as_deref(), Some("No"));
    assert_eq!(
        gone.notify_state()["peer_channel"]["state"],
        "resumed",
        "{}",
        gone.log()
    );
}

/// A VRRP-only split: the peer still serves, writable, with a client session. The
/// promotion fences it (read-only, the session killed) before reading its position,
/// waits for that position, and only then opens writes here: never two writers.
#[test]
fn promotion_fences_a_live_writable_peer_first() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");
    let mut app = a.app();
    app.query_drop("INSERT INTO app.t (v) VALUES (1)").unwrap();
    let nb = peer_node(&b, &a, "catchup-timeout = 10s");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(read_only(&a), "the peer was not fenced: {}", nb.log());
    assert!(!read_only(&b));
    assert!(
        app.query_drop("INSERT INTO app.t (v) VALUES (2)").is_err(),
        "the peer's client session survived"
    );
    assert_eq!(rows(&b), 1, "the peer's acknowledged write is here");
    assert!(
        nb.log()
            .contains("fenced (read-only, 1 client sessions killed)"),
        "{}",
        nb.log()
    );
}

/// Two promotions that fence each other (a one-way VRRP loss) stay exclusive because
/// each opens writes on the session it held when it fenced, which the other's fence
/// kills. Here the other's promotion is played by hand while this one waits: it makes
/// the peer writable and kills our session. With `on-catchup-timeout = open` the hook
/// reconnects; it must fence the peer again on the new session before opening, or both
/// nodes end writable.
#[test]
fn a_promotion_whose_session_was_killed_fences_again_before_opening() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE SQL_THREAD");
    backlog(&a, 20);
    let nb = peer_node(&b, &a, "catchup-timeout = 3s\non-catchup-timeout = open");
    let mut hook = nb.notify_spawn(&["master"]);
    let until = Instant::now() + Duration::from_secs(5);
    while !nb.log().contains("fenced (read-only") {
        assert!(Instant::now() < until, "never fenced: {}", nb.log());
        sleep(Duration::from_millis(20));
    }
    assert!(read_only(&a));
    // The peer's own promotion: it opens writes there and fences us, killing our
    // sessions (the notify account's included).
    a.exec("SET GLOBAL read_only = OFF");
    let ids: Vec<u64> = b
        .root()
        .query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{NOTIFY_USER}'"
        ))
        .unwrap();
    assert!(!ids.is_empty(), "no session of the hook to kill");
    for id in ids {
        let _ = b.root().query_drop(format!("KILL CONNECTION {id}"));
    }
    let st = hook.wait().unwrap();
    assert!(
        read_only(&a) || read_only(&b),
        "both nodes writable: {}",
        nb.log()
    );
    assert!(nb.log().contains("peer fenced again"), "{}", nb.log());
    assert_eq!(st.code(), Some(0), "{}", nb.log());
    assert!(read_only(&a) && !read_only(&b));
}

/// The peer's own promotion may open writes between the fence's read_only and its
/// kill (played here by a session that keeps setting read_only = OFF): the kill alone
/// would leave the peer writable beside us. The fence waits for the killed sessions
/// to be gone, sets read-only again and reads it back.
#[test]
fn a_fence_undoes_a_peer_promotion_that_opened_between_its_statements() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut rogue = a.root();
    let opener = thread::spawn(move || {
        let mut n = 0u64;
        while !flag.load(Ordering::SeqCst) {
            if rogue.query_drop("SET GLOBAL read_only = OFF").is_err() {
                break; // killed by the fence
            }
            n += 1;
        }
        n
    });
    sleep(Duration::from_millis(200));
    let nb = peer_node(&b, &a, "catchup-timeout = 10s");
    let r = nb.notify(&["master"]);
    stop.store(true, Ordering::SeqCst);
    let n = opener.join().unwrap();
    assert!(n > 0, "the rogue opener never ran");
    assert_eq!(r.code, 0, "{}", nb.log());
    assert!(
        read_only(&a),
        "the peer stayed writable after the fence: {}",
        nb.log()
    );
    assert!(!read_only(&b));
}

fn event_status(db: &Mariadb) -> (String, String) {
    let row = db
        .value("SELECT CONCAT(status, ' ', definer) FROM mysql.event WHERE db = 'app' AND name = 'tick'")
        .unwrap_or_default();
    let (st, def) = row.split_once(' ').unwrap_or(("", ""));
    (st.to_string(), def.to_string())
}

/// Scheduled events follow the writer: the promoted node enables what replication gave
/// it disabled, the demoted node disables its own, the definer stays, nothing of it is
/// replicated, and an event a person disabled stays disabled.
#[test]
fn scheduled_events_follow_the_writer() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");
    for db in [&a, &b] {
        db.exec("SET GLOBAL event_scheduler = ON");
    }
    a.exec(
        "CREATE DEFINER = 'app'@'localhost' EVENT app.tick ON SCHEDULE EVERY 1 SECOND \
         DO INSERT INTO app.t (v) VALUES (7); \
         CREATE EVENT app.off ON SCHEDULE EVERY 1 HOUR DISABLE DO DELETE FROM app.t",
    );
    b.sync_with(&a);
    assert_eq!(event_status(&a).0, "ENABLED");
    assert_eq!(
        event_status(&b).0,
        "SLAVESIDE_DISABLED",
        "as replication leaves it"
    );

    let (na, nb) = (
        node(&a, false, "handle-events = on"),
        peer_node(&b, &a, "catchup-timeout = 10s\nhandle-events = on"),
    );
    assert_eq!(na.notify(&["backup"]).code, 0, "{}", na.log());
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert_eq!(
        event_status(&a),
        ("SLAVESIDE_DISABLED".into(), "app@localhost".into()),
        "{}",
        na.log()
    );
    assert_eq!(
        event_status(&b),
        ("ENABLED".into(), "app@localhost".into()),
        "{}",
        nb.log()
    );
    assert!(
        na.log().contains("scheduled events disabled"),
        "{}",
        na.log()
    );
    assert!(
        nb.log()
            .contains("scheduled events enabled again: app.tick\n"),
        "only app.tick: {}",
        nb.log()
    );
    // Not replicated: each side keeps its own state once the other's binlog is applied.
    a.sync_with(&b);
    b.sync_with(&a);
    assert_eq!(event_status(&a).0, "SLAVESIDE_DISABLED");
    assert_eq!(event_status(&b).0, "ENABLED");
    // A person's DISABLE replicates as SLAVESIDE_DISABLED, like the rest: the
    // promotion asked the old master, which has it DISABLED, and left it off.
    let off = |db: &Mariadb| db.value("SELECT status FROM mysql.event WHERE name = 'off'");
    assert_eq!(
        off(&b).as_deref(),
        Some("SLAVESIDE_DISABLED"),
        "{}",
        nb.log()
    );
    assert_eq!(off(&a).as_deref(), Some("DISABLED"));
    // Without the peer to ask (a crash: unreachable, nothing received from it), it is
    // enabled: said in the log.
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    let alone = node(
        &b,
        true,
        "catchup-timeout = 10s\nhandle-events = on\npeer-host = 127.0.0.1\npeer-port = 1",
    );
    assert_eq!(alone.notify(&["master"]).code, 0, "{}", alone.log());
    assert!(
        alone
            .log()
            .contains("the peer's disabled events cannot be read"),
        "{}",
        alone.log()
    );
    assert_eq!(off(&b).as_deref(), Some("ENABLED"));
    // The event now runs on the new master only.
    let before = b.value("SELECT COUNT(*) FROM app.t WHERE v = 7").unwrap();
    sleep(Duration::from_millis(2500));
    let after = b.value("SELECT COUNT(*) FROM app.t WHERE v = 7").unwrap();
    assert!(
        after.parse::<u64>().unwrap() > before.parse::<u64>().unwrap(),
        "the event does not run on the new master"
    );
}

/// Without the privileges, the event step fails loudly (logged, alerted), and the
/// promotion itself is not affected.
#[test]
fn an_event_step_without_privileges_is_said_and_changes_nothing_else() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("CREATE EVENT app.tick ON SCHEDULE EVERY 1 HOUR DO INSERT INTO app.t (v) VALUES (7)");
    b.sync_with(&a);
    b.exec(&format!(
        "SET sql_log_bin = 0; REVOKE SELECT ON mysql.event FROM '{NOTIFY_USER}'@'localhost'; SET sql_log_bin = 1"
    ));
    b.exec("SET GLOBAL read_only = ON");
    let nb = node(&b, true, "catchup-timeout = 10s\nhandle-events = on");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(!read_only(&b));
    assert!(
        nb.log().contains("cannot list scheduled events"),
        "{}",
        nb.log()
    );
    // Off by default (its privileges make the account as strong as any definer).
    let off = node(&b, true, "catchup-timeout = 10s");
    assert_eq!(off.notify(&["master"]).code, 0);
    assert!(!off.log().contains("scheduled events"), "{}", off.log());
}

/// A peer that answers but may not be fenced (our account lacks the privilege there):
/// writes stay closed here, and the alert says why.
#[test]
fn a_peer_that_cannot_be_fenced_keeps_the_promotion_read_only() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");
    a.exec(&format!(
        "SET sql_log_bin = 0; DROP USER '{NOTIFY_USER}'@'127.0.0.1'; \
         CREATE USER '{NOTIFY_USER}'@'127.0.0.1' IDENTIFIED BY '{NOTIFY_PASS}'; \
         GRANT PROCESS, SLAVE MONITOR ON *.* TO '{NOTIFY_USER}'@'127.0.0.1'; SET sql_log_bin = 1"
    ));
    let nb = peer_node(&b, &a, "catchup-timeout = 5s");
    let r = nb.notify(&["master"]);
    assert_ne!(r.code, 0, "{}", nb.log());
    assert!(
        read_only(&b),
        "opened writes beside an unfenced writable peer"
    );
    assert!(!read_only(&a));
    assert!(
        nb.log().contains("answers but cannot be fenced"),
        "{}",
        nb.log()
    );
}

/// The peer cannot be reached where peer-host says (here: a closed port), but this
/// node's replication still receives its heartbeats: it is alive and cannot be fenced,
/// so writes stay closed. Once replication hears nothing, it counts as gone.
#[test]
fn an_unreachable_peer_that_still_replicates_is_not_taken_for_dead() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nb = node(
        &b,
        true,
        &format!("catchup-timeout = 5s\npeer-host = 127.0.0.1\npeer-port = {closed}"),
    );
    assert_ne!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(read_only(&b), "{}", nb.log());
    assert!(nb.log().contains("still receives from it"), "{}", nb.log());
    // Replication from a stopped: nothing says the peer lives any more.
    b.exec("STOP SLAVE IO_THREAD");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(!read_only(&b), "{}", nb.log());
}

/// After a healed split the VIP holder may be left read-only (its peer's promotion
/// fenced it) with no new keepalived event. The check notices and asks for a new
/// promotion, which happens only while the peer is read-only too.
#[test]
fn a_fenced_vip_holder_is_promoted_again_only_when_nobody_writes() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    a.exec("SET GLOBAL read_only = ON");
    let nb = peer_node(&b, &a, "catchup-timeout = 5s");
    assert_eq!(nb.notify(&["master"]).code, 0, "{}", nb.log());
    assert!(!read_only(&b));
    // Fenced while the peer took writes: the peer is the master, nothing to do.
    b.exec("SET GLOBAL read_only = ON");
    a.exec("SET GLOBAL read_only = OFF");
    assert_eq!(nb.notify(&["--from-check", "master"]).code, 0);
    assert!(read_only(&b), "{}", nb.log());
    assert!(nb.log().contains("the peer is writable"), "{}", nb.log());
    // The peer yielded (read-only): nobody writes, so this VIP holder takes writes back,
    // and the check is what asks for it (after 2 s of being fenced).
    a.exec("SET GLOBAL read_only = ON");
    assert_eq!(nb.check(&[]).code, 0, "{}", nb.log());
    sleep(Duration::from_millis(2100));
    assert_eq!(nb.check(&[]).code, 0, "{}", nb.log());
    let t = Instant::now();
    while read_only(&b) && t.elapsed() < Duration::from_secs(10) {
        sleep(Duration::from_millis(100));
    }
    assert!(!read_only(&b), "{}", nb.log());
    assert!(read_only(&a));
    assert!(nb.log().contains("promoting again"), "{}", nb.log());
}

/// keepalived's vrrp_notify_fifo_script: one process reads the FIFO and applies events
/// strictly in order; a promotion still catching up gives way to the demotion queued
/// behind it; STOP lines written after keepalived's SIGTERM are still applied; the
/// process ends when keepalived closes the FIFO.
#[test]
fn the_fifo_mode_applies_events_in_order() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON");
    let nb = node(
        &b,
        false,
        "vip =\ncatchup-timeout = 20s\nvrrp-instance = VI_1",
    );
    let fifo = nb.path("notify.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut hook = Command::new(notify_bin())
        .arg(format!("--defaults-file={}", nb.cnf.display()))
        .args(["--fifo"])
        .arg(&fifo)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // keepalived opens it read-write and non-blocking, and keeps it open.
    let mut w = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: {}",
                nb.log()
            );
            sleep(Duration::from_millis(20));
        }
    };
    writeln!(w, "INSTANCE \"VI_1\" BACKUP 100").unwrap();
    writeln!(w, "INSTANCE \"VI_1\" MASTER 100").unwrap();
    wait("promoted", &|| !read_only(&b));
    // Another instance of this keepalived: its lines change nothing here.
    writeln!(w, "INSTANCE \"VI_WEB\" BACKUP 100").unwrap();
    wait("the other instance's line read", &|| {
        nb.log().contains("VI_WEB BACKUP is not vrrp-instance VI_1")
    });
    assert!(!read_only(&b), "another instance's BACKUP demoted MySQL");
    // A backlog the promotion must wait for, then a demotion right behind it: the
    // promotion gives way, the demotion follows, nothing is left writable.
    b.exec("STOP SLAVE SQL_THREAD; SET GLOBAL read_only = ON");
    backlog(&a, 5);
    let t = Instant::now();
    writeln!(w, "INSTANCE \"VI_1\" MASTER 100").unwrap();
    sleep(Duration::from_millis(300));
    writeln!(w, "INSTANCE \"VI_1\" FAULT 0").unwrap();
    writeln!(w, "INSTANCE \"VI_1\" MASTER_PRIORITY 98").unwrap();
    // Applied to the end (its session kill included), not only recorded.
    wait("the FAULT applied", &|| {
        let rec = nb.notify_state();
        let last = rec["history"].as_array().and_then(|h| h.last()).cloned();
        rec["state"] == "FAULT"
            && last.is_some_and(|e| {
                e["event"] == "FAULT"
                    && e["action"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("demoted"))
            })
    });
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the demotion waited for the promotion's catch-up"
    );
    assert!(read_only(&b));
    let h = nb.notify_state()["history"].as_array().unwrap().clone();
    let events: Vec<&str> = h.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["BACKUP", "MASTER", "MASTER", "FAULT"], "{h:?}");
    assert_eq!(h[2]["action"], "superseded", "{h:?}");
    b.exec("START SLAVE SQL_THREAD");

    // keepalived's shutdown: SIGTERM first, then the STOP lines, then the FIFO closes.
    writeln!(w, "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 100").unwrap();
    wait("re-asserted", &|| !read_only(&b));
    unsafe { libc::kill(hook.id() as i32, libc::SIGTERM) };
    sleep(Duration::from_millis(200));
    writeln!(w, "INSTANCE \"VI_1\" STOP 100").unwrap();
    wait("STOP applied", &|| {
        nb.notify_state()["state"] == "STOP" && read_only(&b)
    });
    drop(w);
    let t = Instant::now();
    while hook.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "did not end when the FIFO closed"
        );
        sleep(Duration::from_millis(20));
    }
    assert!(hook.wait().unwrap().success());
    assert!(
        nb.log().contains("keepalived closed the FIFO"),
        "{}",
        nb.log()
    );

    // Not a FIFO: refused with a one-line error and the configuration exit code.
    let r = nb.notify(&["--fifo", nb.cnf.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
}

/// keepalived SIGKILLs the FIFO hook's process group about a second after its SIGTERM
/// (on a stop and on a reload): a promotion still catching up must survive that, as a
/// forked hook does, so each event runs in a group of its own.
#[test]
fn a_fifo_promotion_survives_the_kill_of_its_reader() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE SQL_THREAD");
    backlog(&a, 5);
    let nb = node(&b, true, "catchup-timeout = 30s");
    let fifo = nb.path("notify.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut hook = Command::new(notify_bin())
        .arg(format!("--defaults-file={}", nb.cnf.display()))
        .arg("--fifo")
        .arg(&fifo)
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut w = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    writeln!(w, "INSTANCE \"VI_1\" MASTER 100").unwrap();
    let t = Instant::now();
    while nb.notify_state()["state"] != "MASTER" && !nb.log().contains("waiting") {
        if nb.notify_state()["history"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{}", nb.log());
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(500));
    assert!(read_only(&b), "opened before the backlog was applied");
    // keepalived's kill of the hook's group.
    unsafe { libc::kill(-(hook.id() as i32), libc::SIGKILL) };
    let _ = hook.wait();
    drop(w);
    b.exec("START SLAVE SQL_THREAD");
    let t = Instant::now();
    while read_only(&b) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the promotion died with its reader: {}",
            nb.log()
        );
        sleep(Duration::from_millis(50));
    }
    assert_eq!(rows(&b), 5);
}

/// A promotion that finds its peer gone asks the witnesses too: a node that reaches
/// neither is maybe the one cut off (its standby side can become MASTER before its
/// check calls it isolated), and must not open writes, whatever on-catchup-timeout
/// says. A witness that answers (a refusal counts) lets it go on.
#[test]
fn a_promotion_that_reaches_neither_peer_nor_witness_stays_read_only() {
    let (a, b) = pair();
    with_app_table(&a, &b);
    b.exec("SET GLOBAL read_only = ON; STOP SLAVE IO_THREAD");
    let closed = free_port();
    let cut = node(
        &b,
        true,
        "catchup-timeout = 3s\non-catchup-timeout = open\npeer-host = 127.0.0.1\npeer-port = 1\n\
         witness = 255.255.255.255:9",
    );
    assert_ne!(cut.notify(&["master"]).code, 0, "{}", cut.log());
    assert!(
        read_only(&b),
        "an isolated node opened writes: {}",
        cut.log()
    );
    assert!(
        cut.log()
            .contains("neither the peer nor any witness answers"),
        "{}",
        cut.log()
    );
    let seen = node(
        &b,
        true,
        &format!(
            "catchup-timeout = 3s\npeer-host = 127.0.0.1\npeer-port = 1\n\
             witness = 255.255.255.255:9, 127.0.0.1:{closed}"
        ),
    );
    assert_eq!(seen.notify(&["master"]).code, 0, "{}", seen.log());
    assert!(!read_only(&b));
    let _ = a;
}
