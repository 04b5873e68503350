//! `keepalived-mysql`, the operator's command, against real servers: status of a
//! healthy, a broken and a dangerous pair; switchover refusals, its timeout and Ctrl-C
//! (the switchover through keepalived itself is in tests/failover.sh); history; reset;
//! lint of keepalived.conf.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

fn ops_bin() -> PathBuf {
    notify_bin().with_file_name("keepalived-mysql")
}

fn ops(node: &NodeConfig, args: &[&str]) -> CheckRun {
    let t = Instant::now();
    let out = Command::new(ops_bin())
        .args(&args[..1])
        .arg(format!("--defaults-file={}", node.cnf.display()))
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    CheckRun::from_output(&out, t)
}

fn json(r: &CheckRun) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// `a` active (holds the "VIP" 127.0.0.1, writable), `b` its read-only standby, and
/// `a`'s config naming `b` as its peer.
fn active_with_peer(a: &Mariadb, b: &Mariadb, extra: &str) -> NodeConfig {
    a.exec("SET GLOBAL read_only = 0");
    b.exec("SET GLOBAL read_only = 1");
    NodeConfig::new(
        a,
        true,
        &format!(
            "port = {}\npeer-host = 127.0.0.1\npeer-port = {}\n{extra}",
            a.port, b.port
        ),
    )
}

#[test]
fn status_of_a_healthy_pair_then_a_broken_one_then_two_writers() {
    let (a, b) = pair();
    let node = active_with_peer(&a, &b, "");
    // keepalived's run of the check records check.json, as on a live node.
    assert_eq!(node.check(&[]).code, 0, "{}", node.log());
    let r = ops(&node, &["status"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("healthy pair\n"), "{}", r.stdout);
    assert!(r.stdout.contains("127.0.0.1 held here"), "{}", r.stdout);
    let j = json(&ops(&node, &["status", "--format", "json"]));
    assert_eq!(j["level"], "healthy");
    assert_eq!(j["local"]["server_id"], 1);
    assert_eq!(j["peer"]["server_id"], 2);
    assert_eq!(j["peer"]["read_only"], true);
    assert_eq!(
        j["via_vip"]["server_id"], 1,
        "the VIP answers from this node"
    );
    assert!(
        j["local"]["gtid"].as_str().is_some_and(|g| !g.is_empty()),
        "{j}"
    );

    // The peer's SQL thread stops: degraded, and the reason is named.
    b.exec("STOP SLAVE SQL_THREAD");
    let r = ops(&node, &["status"]);
    assert_eq!(r.code, 40, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("degraded: peer: replication SQL thread stopped"),
        "{}",
        r.stdout
    );
    b.exec("START SLAVE SQL_THREAD");

    // The peer stops fetching from this node, which is up: degraded too (an IO thread
    // that cannot reach a dead source is normal; one that does not fetch from a live one
    // is not).
    b.exec("STOP SLAVE IO_THREAD");
    let r = ops(&node, &["status"]);
    assert_eq!(r.code, 40, "{}", r.stdout);
    assert!(
        r.stdout.contains("peer: replication IO thread"),
        "{}",
        r.stdout
    );
    b.exec("START SLAVE IO_THREAD");
    b.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));

    // Both writable: the loudest verdict, whatever else is wrong.
    b.exec("SET GLOBAL read_only = 0");
    let r = ops(&node, &["status"]);
    assert_eq!(r.code, 41, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("DANGER: two writable nodes (server ids 1 and 2)"),
        "{}",
        r.stdout
    );
}

#[test]
fn status_reports_an_unreachable_peer_and_a_missing_check() {
    let a = Mariadb::start(1);
    a.exec("SET GLOBAL read_only = 0");
    let node = NodeConfig::new(
        &a,
        true,
        &format!(
            "port = {}\npeer-host = 127.0.0.1\npeer-port = {}\n",
            a.port,
            free_port()
        ),
    );
    let r = ops(&node, &["status", "--format", "json"]);
    assert_eq!(r.code, 40, "{}", r.stdout);
    let j = json(&r);
    let problems = j["problems"].to_string();
    assert!(
        problems.contains("peer: cannot connect to 127.0.0.1:"),
        "{problems}"
    );
    assert!(problems.contains("no replication configured"), "{problems}");
    assert_eq!(j["peer"]["class"], "down");
    assert!(
        problems.contains("no check.json"),
        "a node keepalived never checked: {problems}"
    );
}

#[test]
fn switchover_refuses_an_ineligible_peer_and_changes_nothing() {
    let (a, b) = pair();
    let node = active_with_peer(&a, &b, "");
    let drain = node.path("maintenance");

    // Not the VIP holder: refused.
    let standby = NodeConfig::new(
        &b,
        false,
        &format!("peer-host = 127.0.0.1\npeer-port = {}\n", a.port),
    );
    let r = ops(&standby, &["switchover"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(r.stdout.contains("does not hold the VIP"), "{}", r.stdout);

    // Eligible: the dry run says so and creates nothing.
    let r = ops(&node, &["switchover", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!drain.exists());

    // The peer's replication is broken: refused, with the reason.
    b.exec("STOP SLAVE SQL_THREAD");
    let r = ops(&node, &["switchover"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("not an eligible standby: replication SQL thread stopped"),
        "{}",
        r.stdout
    );
    assert!(!drain.exists(), "a refused switchover leaves no drain file");
    b.exec("START SLAVE SQL_THREAD");

    // The peer does not fetch from this node: its promotion could not catch up.
    b.exec("STOP SLAVE IO_THREAD");
    let r = ops(&node, &["switchover", "--dry-run"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(
        r.stdout.contains("not receiving from this node"),
        "{}",
        r.stdout
    );
    b.exec("START SLAVE IO_THREAD");
    b.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));

    // This node's own server cannot be read: what cannot be learned refuses.
    let blind = NodeConfig::new(
        &a,
        true,
        &format!(
            "socket = /nonexistent/mysqld.sock\npeer-host = 127.0.0.1\npeer-port = {}\n",
            b.port
        ),
    );
    let r = ops(&blind, &["switchover", "--dry-run"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "this node's server cannot be read: cannot connect to /nonexistent/mysqld.sock"
        ),
        "{}",
        r.stdout
    );

    // The peer has a transaction this node never got (written there while our
    // replication from it was stopped): diverged, refused with the GTID.
    a.exec("STOP SLAVE");
    b.exec("SET GLOBAL read_only = 0; CREATE DATABASE errant; SET GLOBAL read_only = 1");
    let r = ops(&node, &["switchover", "--format", "json"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    let j = json(&r);
    assert_eq!(j["outcome"], "refused");
    let msg = j["message"].as_str().unwrap();
    assert!(
        msg.contains("diverged: the peer has transactions this node never applied: 2-2-"),
        "{msg}"
    );
    assert!(!drain.exists());
    a.exec("START SLAVE");
    a.wait_slave_field("Slave_SQL_Running", "Yes", Duration::from_secs(30));
    a.sync_with(&b);
    let r = ops(&node, &["switchover", "--dry-run"]);
    assert_eq!(r.code, 0, "once caught up, eligible again: {}", r.stdout);

    // peer-host that reaches this very server (say, the VIP): comparing a node with
    // itself would always look clean, so it is refused.
    let itself = NodeConfig::new(
        &a,
        true,
        &format!(
            "port = {}\npeer-host = 127.0.0.1\npeer-port = {}\n",
            a.port, a.port
        ),
    );
    let r = ops(&itself, &["switchover", "--dry-run"]);
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(
        r.stdout.contains("reaches this server itself"),
        "{}",
        r.stdout
    );

    // Both nodes in one GTID domain: whose transaction is whose cannot be told, so
    // the comparison is refused rather than read as "nothing extra".
    let own = a.value("SELECT @@gtid_domain_id").unwrap();
    let theirs = b.value("SELECT @@gtid_domain_id").unwrap();
    b.exec(&format!("SET GLOBAL gtid_domain_id = {own}"));
    let r = ops(&node, &["switchover", "--dry-run"]);
    b.exec(&format!("SET GLOBAL gtid_domain_id = {theirs}"));
    assert_eq!(r.code, 42, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "cannot compare GTID positions: both nodes write GTID domain {own}"
        )),
        "{}",
        r.stdout
    );
}

/// Without keepalived nothing moves the VIP: the switchover must give up at its
/// timeout, and on Ctrl-C, and both times remove its drain file.
#[test]
fn switchover_times_out_or_is_interrupted_and_undoes_its_drain() {
    let (a, b) = pair();
    let node = active_with_peer(&a, &b, "");
    let drain = node.path("maintenance");
    assert_eq!(node.check(&[]).code, 0, "keepalived's check has run here");
    let r = ops(&node, &["switchover", "--wait", "1s"]);
    assert_eq!(r.code, 43, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("drain file created"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("still waiting for the VIP to leave this node"),
        "{}",
        r.stdout
    );
    assert!(!drain.exists(), "the drain is undone");
    assert!(
        node.log().contains("switchover started by"),
        "{}",
        node.log()
    );

    let child = Command::new(ops_bin())
        .arg("switchover")
        .arg(format!("--defaults-file={}", node.cnf.display()))
        .args(["--wait", "60s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !drain.exists() && t.elapsed() < Duration::from_secs(10) {
        sleep(Duration::from_millis(20));
    }
    assert!(drain.exists(), "the switchover drained this node");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(44));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted"), "{text}");
    assert!(!drain.exists(), "Ctrl-C undoes the drain");
}

#[test]
fn history_merges_the_log_and_the_state_files() {
    let (a, b) = pair();
    let node = active_with_peer(&a, &b, "");
    assert_eq!(node.check(&[]).code, 0);
    fs::write(node.path("maintenance"), "").unwrap();
    assert_eq!(node.check(&[]).code, 17);
    let r = ops(&node, &["history"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" check ") && l.contains("maintenance")),
        "{}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("check.json") && l.contains("maintenance")),
        "the verdict that still holds: {}",
        r.stdout
    );
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "oldest first");
    let j = json(&ops(
        &node,
        &["history", "--lines", "1", "--format", "json"],
    ));
    assert_eq!(j["events"].as_array().unwrap().len(), 1);
}

#[test]
fn reset_clears_a_give_up_and_says_what_it_cleared() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    fs::create_dir_all(node.path("run")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    fs::write(
        node.path("run/restart.json"),
        serde_json::json!({"phase": "gave-up", "attempts": [now - 60.0, now - 30.0],
            "reason": "mysqld did not come back", "updated": now - 10.0, "last_logged": 0.0})
        .to_string(),
    )
    .unwrap();
    let r = ops(&node, &["reset"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("cleared the restart hook's give-up")
            && r.stdout.contains("mysqld did not come back")
            && r.stdout.contains("2 restart attempt(s)"),
        "{}",
        r.stdout
    );
    let st: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(node.path("run/restart.json")).unwrap()).unwrap();
    assert_eq!(st["phase"], "idle");
    let r = ops(&node, &["reset"]);
    assert!(r.stdout.contains("nothing to clear"), "{}", r.stdout);
}

/// A keepalived.conf like the sample, with its scripts at `bin` (root-owned copies).
fn keepalived_conf(dir: &Path, bin: &Path, body_edit: impl Fn(String) -> String) -> PathBuf {
    sample_conf("keepalived.conf", dir, bin, body_edit)
}

/// The shipped sample `name` (in keepalived/), edited, with its scripts at `bin`.
fn sample_conf(
    name: &str,
    dir: &Path,
    bin: &Path,
    body_edit: impl Fn(String) -> String,
) -> PathBuf {
    let sample = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("keepalived")
            .join(name),
    )
    .unwrap()
    .replace("/usr/sbin/", &format!("{}/", bin.display()));
    let p = dir.join("keepalived.conf");
    fs::write(&p, body_edit(sample)).unwrap();
    p
}

fn lint(node: &NodeConfig, conf: &Path, id: &str) -> CheckRun {
    ops(node, &["lint", conf.to_str().unwrap(), "--config-id", id])
}

#[test]
fn lint_passes_the_sample_and_names_each_trap_with_its_line() {
    let a = Mariadb::start(1);
    // The option file as the sample keepalived.conf expects it (vip 192.0.2.100), and
    // readable by the script user's group like the packaged one.
    let node = NodeConfig::new(&a, false, "");
    let (_, gid) = script_user();
    std::os::unix::fs::chown(&node.cnf, Some(0), Some(gid)).unwrap();
    fs::set_permissions(&node.cnf, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(node.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = tmp.path().join("sbin");
    fs::create_dir(&bin).unwrap();
    for b in [
        "keepalived-mysql-check",
        "keepalived-mysql-restart",
        "keepalived-mysql-notify",
    ] {
        fs::copy(notify_bin().with_file_name(b), bin.join(b)).unwrap();
        fs::set_permissions(bin.join(b), fs::Permissions::from_mode(0o755)).unwrap();
    }

    let conf = keepalived_conf(tmp.path(), &bin, |s| s);
    let r = lint(&node, &conf, "node1");
    assert_eq!(r.code, 0, "the sample is clean: {}", r.stdout);
    assert!(r.stdout.contains("0 error(s)"), "{}", r.stdout);

    // Each trap, alone, is an error naming its line.
    let line_of =
        |body: &str, needle: &str| body.lines().position(|l| l.contains(needle)).unwrap() + 1;
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "weight with nopreempt",
            Box::new(|s| s.replace("        chk_mysql\n", "        chk_mysql weight -20\n")),
            "chk_mysql weight -20",
            "while nopreempt is set",
        ),
        (
            "restart hook weight 0",
            Box::new(|s| {
                s.replace(
                    "        restart_mysql\n",
                    "        restart_mysql weight 0\n",
                )
            }),
            "restart_mysql weight 0",
            "tracked with weight 0",
        ),
        (
            "a check that no instance tracks",
            Box::new(|s| s.replace("        chk_mysql\n", "")),
            "vrrp_script chk_mysql",
            "is tracked by no vrrp_instance",
        ),
        (
            "nopreempt without state BACKUP",
            Box::new(|s| s.replace("    state BACKUP\n", "    state MASTER\n")),
            "    nopreempt",
            "nopreempt needs 'state BACKUP'",
        ),
        (
            "no script security",
            Box::new(|s| s.replace("    enable_script_security\n", "")),
            "global_defs",
            "enable_script_security is not set",
        ),
        (
            "check timeout not below keepalived's",
            Box::new(|s| {
                s.replace(
                    "    timeout 2       # keepalived's own kill timer",
                    "    timeout 1       # keepalived's own kill timer",
                )
            }),
            "timeout 1       # keepalived's own kill timer",
            "is not above the check's timeout",
        ),
        (
            "notify twice",
            Box::new(|s| {
                s.replace(
                    "    notify \"",
                    &format!(
                        "    notify_master \"{}/keepalived-mysql-notify\"\n    notify \"",
                        "BIN"
                    ),
                )
            }),
            "notify_master",
            "configured both as 'notify' and as 'notify_master'",
        ),
        (
            "another VIP",
            Box::new(|s| s.replace("        192.0.2.100/24\n", "        192.0.2.200/24\n")),
            "virtual_ipaddress",
            "vip 192.0.2.100 is not among",
        ),
    ];
    for (name, edit, needle, message) in cases {
        let conf = keepalived_conf(tmp.path(), &bin, |s| {
            edit(s).replace("BIN", &bin.display().to_string())
        });
        let body = fs::read_to_string(&conf).unwrap();
        let r = lint(&node, &conf, "node1");
        assert_eq!(r.code, 45, "{name}: {}", r.stdout);
        let want = format!("{}:{}: error: ", conf.display(), line_of(&body, needle));
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&want) && l.contains(message)),
            "{name}: want '{want}...{message}' in\n{}",
            r.stdout
        );
    }

    // A script others can modify (keepalived would drop it).
    fs::set_permissions(
        bin.join("keepalived-mysql-check"),
        fs::Permissions::from_mode(0o757),
    )
    .unwrap();
    let conf = keepalived_conf(tmp.path(), &bin, |s| s);
    let r = lint(&node, &conf, "node1");
    assert_eq!(r.code, 45, "{}", r.stdout);
    assert!(
        r.stdout.contains("enable_script_security would drop"),
        "{}",
        r.stdout
    );
    fs::set_permissions(
        bin.join("keepalived-mysql-check"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    // No state line at all: keepalived starts such an instance as BACKUP, so
    // nopreempt holds; priority 255 drops it.
    let conf = keepalived_conf(tmp.path(), &bin, |s| s.replace("    state BACKUP\n", ""));
    let r = lint(&node, &conf, "node1");
    assert_eq!(r.code, 0, "no state line is BACKUP: {}", r.stdout);
    let conf = keepalived_conf(tmp.path(), &bin, |s| {
        s.replace("    @node1 priority 150\n", "    @node1 priority 255\n")
    });
    let r = lint(&node, &conf, "node1");
    assert_eq!(r.code, 45, "{}", r.stdout);
    assert!(r.stdout.contains("nopreempt needs"), "{}", r.stdout);
    // @^node1: every node but node1.
    let conf = keepalived_conf(tmp.path(), &bin, |s| {
        s.replace(
            "    nopreempt\n",
            "    nopreempt\n    @^node1 state MASTER\n",
        )
    });
    assert_eq!(
        lint(&node, &conf, "node1").code,
        0,
        "@^node1 is not for node1"
    );
    assert_eq!(lint(&node, &conf, "node2").code, 45, "@^node1 is for node2");

    // An included file that applies to one config id only.
    let inc = tmp.path().join("conf.d");
    fs::create_dir(&inc).unwrap();
    fs::write(
        inc.join("extra.conf"),
        "vrrp_instance VI_2 {\n    state MASTER\n    nopreempt\n}\n",
    )
    .unwrap();
    let conf = keepalived_conf(tmp.path(), &bin, |s| {
        format!("{s}\n@node2 include conf.d/*.conf\n")
    });
    assert_eq!(
        lint(&node, &conf, "node1").code,
        0,
        "@node2 lines are not node1's"
    );
    let r = lint(&node, &conf, "node2");
    assert_eq!(r.code, 45, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "{}:3: error: VI_2: nopreempt needs",
            inc.join("extra.conf").display()
        )),
        "{}",
        r.stdout
    );

    // The fast profile's sample is clean: its check's --timeout flag is the deadline
    // lint compares keepalived's timer with.
    let r = lint(
        &node,
        &sample_conf("keepalived-fast.conf", tmp.path(), &bin, |s| s),
        "node1",
    );
    assert_eq!(r.code, 0, "the fast sample is clean: {}", r.stdout);
    let r = lint(
        &node,
        &sample_conf("keepalived-fast.conf", tmp.path(), &bin, |s| {
            s.replace("--timeout 500ms", "--timeout 1s")
        }),
        "node1",
    );
    assert_eq!(r.code, 45, "{}", r.stdout);
    assert!(
        r.stdout.contains("is not above the check's timeout"),
        "{}",
        r.stdout
    );

    // The FIFO sample is clean too; its traps are named.
    let fifo = |edit: &dyn Fn(String) -> String| {
        sample_conf("keepalived-fifo.conf", tmp.path(), &bin, edit)
    };
    let r = lint(&node, &fifo(&|s| s), "node1");
    assert_eq!(r.code, 0, "the FIFO sample is clean: {}", r.stdout);
    type FifoCase<'a> = (&'a str, &'a dyn Fn(String) -> String, &'a str);
    let fifo_cases: [FifoCase; 5] = [
        (
            "FIFO hook on the global notify FIFO",
            &|s| {
                s.replace("    vrrp_notify_fifo_script", "    notify_fifo_script")
                    .replace("    vrrp_notify_fifo /", "    notify_fifo /")
            },
            "also carries the checkers' lines",
        ),
        (
            "FIFO hook with two instances and no vrrp-instance",
            &|s| {
                format!(
                    "{s}\nvrrp_instance VI_WEB {{\n    state BACKUP\n    interface eth0\n    \
                     virtual_router_id 52\n    priority 100\n}}\n"
                )
            },
            "vrrp-instance is not set",
        ),
        (
            "FIFO and notify both",
            &|s| {
                s.replace(
                    "    # FIFO: no notify lines here.",
                    "    notify \"BIN/keepalived-mysql-notify\"\n    # FIFO:",
                )
            },
            "applied twice, out of order",
        ),
        (
            "FIFO script without --fifo",
            &|s| {
                s.replace(
                    "keepalived-mysql-notify --fifo\"",
                    "keepalived-mysql-notify\"",
                )
            },
            "without --fifo at the end",
        ),
        (
            "FIFO script without the FIFO",
            &|s| {
                s.replace(
                    "    vrrp_notify_fifo /run/keepalived-mysql/notify.fifo\n",
                    "",
                )
            },
            "without vrrp_notify_fifo",
        ),
    ];
    for (name, edit, message) in fifo_cases {
        let conf = fifo(&|s| edit(s).replace("BIN", &bin.display().to_string()));
        let r = lint(&node, &conf, "node1");
        assert_eq!(r.code, 45, "{name}: {}", r.stdout);
        assert!(r.stdout.contains(message), "{name}: {}", r.stdout);
    }

    // The script user cannot read the option file.
    fs::set_permissions(&node.cnf, fs::Permissions::from_mode(0o600)).unwrap();
    let conf = keepalived_conf(tmp.path(), &bin, |s| s);
    let r = lint(&node, &conf, "node1");
    assert_eq!(r.code, 45, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("runs as keepalived_script, who cannot read"),
        "{}",
        r.stdout
    );
}

/// The promotion brake: past max-promotions within promotion-window a MASTER event
/// keeps the node read-only and says why; `keepalived-mysql reset` clears it.
#[test]
fn the_promotion_brake_stops_a_flapping_node_until_reset() {
    let (_a, b) = pair();
    // No vip: the notify record orders the events, so they alternate freely.
    let node = NodeConfig::new(
        &b,
        false,
        &format!(
            "vip =\n[keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}\n\
             max-promotions = 2\npromotion-window = 1h\ncatchup-timeout = 2s\n"
        ),
    );
    let read_only = || b.value("SELECT @@read_only").as_deref() == Some("1");
    for i in 0..2 {
        assert_eq!(node.notify(&["master"]).code, 0, "{}", node.log());
        assert!(!read_only(), "{}", node.log());
        if i == 1 {
            // A re-assertion (MASTER on a master: notify_master_rx_lower_pri) is not
            // a promotion: it does not count.
            assert_eq!(node.notify(&["master"]).code, 0, "{}", node.log());
            assert!(!read_only(), "{}", node.log());
        }
        assert_eq!(node.notify(&["backup"]).code, 0, "{}", node.log());
        assert!(read_only());
    }
    let r = node.notify(&["master"]);
    assert_ne!(r.code, 0, "{}", node.log());
    assert!(read_only(), "the brake let a third promotion open writes");
    assert!(
        node.log().contains("promotion brake engaged"),
        "{}",
        node.log()
    );
    assert!(node.notify_state()["brake_since"].is_number());
    let r = ops(&node, &["status"]);
    assert!(r.stdout.contains("promotion brake"), "{}", r.stdout);
    // The operator's reset: said what it cleared; the next promotion opens.
    let r = ops(&node, &["reset"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("cleared the promotion brake"),
        "{}",
        r.stdout
    );
    assert_eq!(node.notify(&["backup"]).code, 0);
    assert_eq!(node.notify(&["master"]).code, 0, "{}", node.log());
    assert!(!read_only());
}
