//! Living under keepalived: overlapping runs, signals, logging, state files.

mod common;

use std::fs::{self, File};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// A busy lock is waited for within the run's deadline, then the run gives its own
/// verdict; held for the whole deadline (only a run stuck on a hung server does
/// that), the run ends at its deadline with "timeout".
#[test]
fn held_lock_is_waited_for_within_the_deadline() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "timeout = 2s");
    assert_eq!(node.check(&[]).code, 0);
    let lock = File::open(node.path("run/check.lock")).unwrap();
    lock.lock().unwrap();
    let releaser = std::thread::spawn(move || {
        sleep(Duration::from_millis(300));
        drop(lock);
    });
    let r = node.check(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.elapsed >= Duration::from_millis(250), "{:?}", r.elapsed);
    releaser.join().unwrap();

    let lock = File::open(node.path("run/check.lock")).unwrap();
    lock.lock().unwrap();
    let r = node.check(&[]);
    assert_eq!(r.code, 11, "{r:?}");
    assert!(r.elapsed < Duration::from_millis(2500), "{:?}", r.elapsed);
    // An observer does not use keepalived's lock at all.
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "{r:?}");
    drop(lock);
    assert_eq!(node.check(&[]).code, 0);
}

#[test]
fn twenty_overlapping_copies_stay_consistent() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    let codes = run_concurrently(&check_bin(), &node.cnf, 20);
    // Each waits its turn: a busy lock alone never fails a run.
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    // The state file is whole and there is no temp file left behind.
    assert_eq!(node.state()["class"], "ok");
    let leftovers: Vec<_> = fs::read_dir(node.path("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Only the first healthy verdict was logged.
    assert_eq!(
        node.log().lines().filter(|l| l.contains("healthy")).count(),
        1,
        "{}",
        node.log()
    );
}

#[test]
fn sigterm_ends_a_hung_check_promptly() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "timeout = 20s");
    a.signal(libc::SIGSTOP);
    let mut child = Command::new(check_bin())
        .arg(format!("--defaults-file={}", node.cnf.display()))
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(300));
    let t = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let st = child.wait().unwrap();
    let took = t.elapsed();
    a.signal(libc::SIGCONT);
    assert!(!st.success());
    assert!(
        took < Duration::from_secs(2),
        "still running {took:?} after SIGTERM"
    );
}

#[test]
fn logs_changes_not_every_run() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    for _ in 0..5 {
        assert_eq!(node.check(&[]).code, 0);
    }
    let since = node.state()["since"].as_f64().unwrap();
    fs::write(node.path("maintenance"), "").unwrap();
    for _ in 0..3 {
        assert_eq!(node.check(&[]).code, 17);
    }
    fs::remove_file(node.path("maintenance")).unwrap();
    assert_eq!(node.check(&[]).code, 0);
    assert_eq!(node.check(&[]).code, 0);
    let log = node.log();
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].contains("notice: healthy (active)"), "{log}");
    assert!(
        lines[1].contains("error: FAIL maintenance (exit 17, active)"),
        "{log}"
    );
    assert!(lines[2].contains("notice: healthy"), "{log}");
    assert!(
        node.state()["since"].as_f64().unwrap() > since,
        "since moves on a change"
    );
    // Silent on stdout and stderr by default.
    let r = node.check(&[]);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn log_file_rotates_by_size() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "log-max-size = 100\nlog-keep = 2");
    for _ in 0..4 {
        fs::write(node.path("maintenance"), "").unwrap();
        assert_eq!(node.check(&[]).code, 17);
        fs::remove_file(node.path("maintenance")).unwrap();
        assert_eq!(node.check(&[]).code, 0);
    }
    assert!(node.path("check.log.1").exists());
    assert!(node.path("check.log.2").exists());
    assert!(!node.path("check.log.3").exists(), "log-keep = 2");
    for f in ["check.log.1", "check.log.2"] {
        let text = fs::read_to_string(node.path(f)).unwrap();
        assert!(
            text.lines().all(|l| l.contains("keepalived-mysql-check[")),
            "{text}"
        );
    }
}

/// A log file that is usable but whose writes fail (here: a full disk) changes no
/// verdict, and the lost line is said where it can be seen (stderr without syslog).
/// One that cannot be used at all is a config error (tests/operations.rs).
#[test]
fn failing_to_log_does_not_change_the_verdict() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "log-file = /dev/full");
    let r = node.check(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("lost line: healthy"), "{r:?}");
    let bad = NodeConfig::new(&a, true, "log-file = /nonexistent/dir/check.log");
    let r = bad.check(&[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/dir/check.log"), "{r:?}");
}

/// Real RFC 3164 datagrams: run the check in a private mount namespace whose /dev/log
/// is a socket this test reads.
#[test]
fn syslog_gets_rfc3164_lines() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "syslog-facility = local3");
    let sock_path = node.path("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let script = format!(
        "mount -t tmpfs none /dev && ln -s {} /dev/log && exec {} --defaults-file={}",
        sock_path.display(),
        check_bin().display(),
        node.cnf.display()
    );
    let st = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    // local3 (19) * 8 + notice (5) = 157; "Mmm dd hh:mm:ss tag[pid]: msg"
    assert!(line.starts_with("<157>"), "{line}");
    let rest = &line[5..];
    assert_eq!(&rest[15..16], " ", "{line}");
    assert!(rest[16..].starts_with("keepalived-mysql-check["), "{line}");
    assert!(line.contains("]: healthy (active)"), "{line}");
}

/// A failure that persists is logged again at most once a minute: not on every run, and
/// again once the last line is a minute old (backdated here instead of waiting).
#[test]
fn persisting_failure_is_logged_again_after_a_minute() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    fs::write(node.path("maintenance"), "").unwrap();
    for _ in 0..3 {
        assert_eq!(node.check(&[]).code, 17);
    }
    assert_eq!(node.log().lines().count(), 1, "{}", node.log());
    let path = node.path("run/check.json");
    let mut st: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    st["last_logged"] = serde_json::json!(st["last_logged"].as_f64().unwrap() - 61.0);
    fs::write(&path, st.to_string()).unwrap();
    assert_eq!(node.check(&[]).code, 17);
    assert_eq!(node.check(&[]).code, 17);
    let log = node.log();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.lines().nth(1).unwrap().contains("still failing since"),
        "{log}"
    );
}
