//! What operators and monitors do beside keepalived must never move the VIP: runs as
//! root and as the script user in any order, a monitor polling beside keepalived's
//! runs, files that cannot be written, a notify hook killed mid-demotion.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::*;

fn notify_group() -> String {
    format!("[keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}\n")
}

fn read_only(db: &Mariadb) -> bool {
    db.value("SELECT @@read_only").as_deref() == Some("1")
}

/// Every log file of the node (current and rotated), concatenated.
fn all_logs(node: &NodeConfig) -> String {
    let dir = node.log_file.parent().unwrap();
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Runs `bin` as root with `dir` mounted read-only (a private mount namespace): the
/// one way to make a directory unwritable for root.
fn run_with_read_only_dir(dir: &Path, bin: &Path, cnf: &Path, args: &[&str]) -> CheckRun {
    let t = Instant::now();
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(r#"d=$1; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@""#)
        .arg("sh")
        .arg(dir)
        .arg(bin)
        .arg(format!("--defaults-file={}", cnf.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    CheckRun::from_output(&out, t)
}

/// Story 1: an operator's first run as root used to leave a root-only lock behind, and
/// every later run by keepalived failed (exit 3) until the next reboot.
#[test]
fn root_and_script_user_runs_in_any_order() {
    let a = Mariadb::start(1);
    let node = NodeConfig::with_log(&a, true, "", "log/keepalived-mysql.log");
    packaged_layout(&a, &node);
    let (uid, _) = script_user();
    for who in [As::Root, As::Script, As::Root, As::Script] {
        let r = run_as(who, &check_bin(), &node.cnf, &[]);
        assert_eq!(r.code, 0, "keepalived-style run as {who:?}: {r:?}");
        let r = run_as(who, &check_bin(), &node.cnf, &["--format", "nagios"]);
        assert_eq!(r.code, 0, "monitor run as {who:?}: {r:?}");
    }
    let files: Vec<_> = owners(&node.path("run"))
        .into_iter()
        .chain(owners(node.log_file.parent().unwrap()))
        .collect();
    assert!(files.iter().any(|(n, _)| n == "check.lock"), "{files:?}");
    for (name, owner) in &files {
        assert_eq!(
            *owner, uid,
            "{name} must belong to the script user: {files:?}"
        );
    }
}

/// Files an older version left as root (a 0600 lock, a root-only log file) in the
/// script user's directories are replaced or moved aside by the script user's own run;
/// what it truly cannot use is a config error naming the path and the user.
#[test]
fn files_left_by_root_are_taken_back_and_the_rest_is_named() {
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    let a = Mariadb::start(1);
    let node = NodeConfig::with_log(&a, true, "", "log/keepalived-mysql.log");
    packaged_layout(&a, &node);
    let (uid, _) = script_user();
    let lock = node.path("run/check.lock");
    fs::write(&lock, "").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&node.log_file, "old line\n").unwrap();
    fs::set_permissions(&node.log_file, fs::Permissions::from_mode(0o640)).unwrap();
    chown(&node.log_file, Some(0), Some(0)).unwrap();
    let r = run_as(As::Script, &check_bin(), &node.cnf, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fs::metadata(&lock).unwrap().uid(), uid);
    assert!(node.log().contains("moved aside"), "{}", node.log());

    // A runtime dir that belongs to root: nothing to take back, a config error.
    let b = Mariadb::start(2);
    let bad = NodeConfig::with_log(&b, true, "", "log/keepalived-mysql.log");
    packaged_layout(&b, &bad);
    chown(bad.path("run"), Some(0), Some(0)).unwrap();
    let r = run_as(As::Script, &check_bin(), &bad.cnf, &[]);
    assert_eq!(r.code, 3, "{r:?}");
    let log = bad.log();
    assert!(
        log.contains("check.lock") && log.contains("keepalived_script"),
        "{log}"
    );

    // A log file the user cannot write, in a directory it does not own.
    let c = NodeConfig::with_log(&b, true, "", "rootlog/keepalived-mysql.log");
    packaged_layout(&b, &c);
    chown(c.path("rootlog"), Some(0), Some(0)).unwrap();
    let r = run_as(As::Script, &check_bin(), &c.cnf, &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("rootlog/keepalived-mysql.log") && r.stderr.contains("keepalived_script"),
        "{r:?}"
    );
}

/// Root works in directories the script user owns: a symlink planted there must not
/// lead root to open, truncate or chown another file.
#[test]
fn root_never_follows_a_symlink_in_the_script_users_directories() {
    use std::os::unix::fs::{symlink, MetadataExt};
    let a = Mariadb::start(1);
    let node = NodeConfig::with_log(&a, true, "", "log/keepalived-mysql.log");
    packaged_layout(&a, &node);
    let target = node.path("precious");
    fs::write(&target, "root's data\n").unwrap();
    for name in [
        "run/restart.lock",
        "run/check.lock",
        "run/.restart.json.1.tmp",
    ] {
        symlink(&target, node.path(name)).unwrap();
    }
    symlink(&target, &node.log_file).unwrap();
    for bin in [restart_bin(), check_bin()] {
        run_as(As::Root, &bin, &node.cnf, &[]);
    }
    let meta = fs::metadata(&target).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "target's owner changed");
    assert_eq!(fs::read_to_string(&target).unwrap(), "root's data\n");
}

/// Story 3: the restart hook runs as root; its log rotation used to leave a root-only
/// log file, and the check's and notify's lines were dropped from then on.
#[test]
fn root_restart_hook_then_script_user_check_and_notify_log_after_rotation() {
    let a = Mariadb::start(1);
    let extra = format!("log-max-size = 200\nlog-keep = 5\n{}", notify_group());
    let node = NodeConfig::with_log(&a, true, &extra, "log/keepalived-mysql.log");
    packaged_layout(&a, &node);
    for _ in 0..4 {
        let r = run_as(As::Root, &restart_bin(), &node.cnf, &["--reset"]);
        assert_eq!(r.code, 0, "{r:?}");
        let r = run_as(As::Root, &restart_bin(), &node.cnf, &[]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert!(
        Path::new(&format!("{}.1", node.log_file.display())).exists(),
        "root rotated the log"
    );
    fs::write(node.path("maintenance"), "").unwrap();
    assert_eq!(run_as(As::Script, &check_bin(), &node.cnf, &[]).code, 17);
    fs::remove_file(node.path("maintenance")).unwrap();
    assert_eq!(run_as(As::Script, &check_bin(), &node.cnf, &[]).code, 0);
    let r = run_as(As::Script, &notify_bin(), &node.cnf, &["master"]);
    assert_eq!(r.code, 0, "{r:?}");
    let logs = all_logs(&node);
    assert!(
        logs.contains("keepalived-mysql-check[") && logs.contains("FAIL maintenance"),
        "{logs}"
    );
    assert!(
        logs.contains("keepalived-mysql-notify[") && logs.contains("MASTER: caught up"),
        "{logs}"
    );
    let (uid, _) = script_user();
    for (name, owner) in owners(node.log_file.parent().unwrap()) {
        assert_eq!(owner, uid, "{name}");
    }
}

/// Story 2: a monitor polling back to back used to make a third of keepalived's runs
/// fail (exit 11) on a healthy standby. Two keepalived-side loops overlap as keepalived
/// 2.2.7's runs do; 1,000 runs in all, none may fail.
#[test]
fn a_monitor_polling_beside_keepalived_never_fails_its_runs() {
    let (a, b) = pair();
    let active = NodeConfig::new(&a, true, "");
    assert_eq!(active.check(&[]).code, 0);
    b.sync_with(&a);
    let node = NodeConfig::new(&b, false, "");
    assert_eq!(node.check(&[]).code, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let stop = stop.clone();
        let cnf = node.cnf.clone();
        thread::spawn(move || {
            let mut codes = Vec::new();
            let formats = ["nagios", "json", "text"];
            while !stop.load(Ordering::SeqCst) {
                let f = formats[codes.len() % 3];
                codes.push(run_check(&cnf, &["--format", f]).code);
            }
            codes
        })
    };
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let cnf = node.cnf.clone();
            thread::spawn(move || {
                (0..500)
                    .map(|_| run_check(&cnf, &[]))
                    .filter(|r| r.code != 0)
                    .map(|r| r.code)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<i32> = loops.into_iter().flat_map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let monitor_codes = monitor.join().unwrap();
    assert!(
        failures.is_empty(),
        "keepalived-side failures: {failures:?}"
    );
    assert!(
        monitor_codes.len() > 50,
        "the monitor ran {} times",
        monitor_codes.len()
    );
    // nagios exits 0 (OK) here too; json/text the verdict's code.
    assert!(monitor_codes.iter().all(|c| *c == 0), "{monitor_codes:?}");
    assert_eq!(node.state()["class"], "ok");
}

fn socket_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// No pile-up on a frozen server: 200 runs at once all end within their deadline, and
/// only the lock holder has a connection to the server at any moment.
#[test]
fn frozen_server_two_hundred_runs_end_in_time_one_talking_at_a_time() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "timeout = 1s");
    assert_eq!(node.check(&[]).code, 0);
    a.signal(libc::SIGSTOP);
    // (process, started, (exit code, elapsed) once ended)
    type Run = (Child, Instant, Option<(i32, Duration)>);
    let mut children: Vec<Run> = (0..200)
        .map(|_| {
            let c = Command::new(check_bin())
                .arg(format!("--defaults-file={}", node.cnf.display()))
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            (c, Instant::now(), None)
        })
        .collect();
    let mut most_talking = 0;
    let limit = Instant::now() + Duration::from_secs(30);
    while children.iter().any(|c| c.2.is_none()) && Instant::now() < limit {
        // Two passes: a run seen connected in both had its connection (one per run, so
        // one unbroken interval) at the moment the first pass ended; runs seen only
        // once may just have followed each other during a pass.
        let first: Vec<u32> = children
            .iter()
            .filter(|c| c.2.is_none() && socket_fds(c.0.id()) > 0)
            .map(|c| c.0.id())
            .collect();
        let both = first.iter().filter(|pid| socket_fds(**pid) > 0).count();
        most_talking = most_talking.max(both);
        for (child, started, done) in children.iter_mut() {
            if done.is_none() {
                if let Ok(Some(st)) = child.try_wait() {
                    *done = Some((st.code().unwrap_or(-1), started.elapsed()));
                }
            }
        }
        sleep(Duration::from_millis(2));
    }
    a.signal(libc::SIGCONT);
    let results: Vec<(i32, Duration)> = children.iter().map(|c| c.2.expect("ended")).collect();
    assert!(results.iter().all(|(code, _)| *code == 11), "{results:?}");
    let slowest = results.iter().map(|r| r.1).max().unwrap();
    // The deadline is 1 s from each run's own start; starting 200 processes on two
    // cores delays some starts, hence the slack.
    assert!(
        slowest < Duration::from_secs(4),
        "slowest run took {slowest:?}"
    );
    assert!(
        most_talking >= 1,
        "the sampler never saw the lock holder's connection"
    );
    assert!(
        most_talking <= 1,
        "{most_talking} runs had a connection at once"
    );
}

/// hold-vip-during-restart is for a dead server only: a frozen one fails over as if
/// the option were off.
#[test]
fn hold_vip_never_holds_a_frozen_server() {
    let mut a = Mariadb::start(1);
    let node = NodeConfig::new(
        &a,
        true,
        "hold-vip-during-restart = on\nready-timeout = 60s",
    );
    assert_eq!(node.check(&[]).code, 0);
    a.signal(libc::SIGSTOP);
    for _ in 0..2 {
        let r = node.check(&["--format", "text"]);
        assert_eq!(r.code, 11, "{r:?}");
    }
    a.signal(libc::SIGCONT);
    assert_eq!(node.check(&[]).code, 0);
    // Control: a dead server is held.
    a.kill();
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("VIP held until"), "{r:?}");
}

/// The hold needs a recorded start: with check.json unwritable, every run would think
/// the outage just began, and hold forever.
#[test]
fn hold_ends_when_the_state_cannot_be_recorded() {
    let mut a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "hold-vip-during-restart = on");
    assert_eq!(node.check(&[]).code, 0);
    a.kill();
    let r = run_with_read_only_dir(&node.path("run"), &check_bin(), &node.cnf, &[]);
    assert_eq!(r.code, 10, "{r:?}");
    assert!(
        node.log().contains("hold-vip-during-restart ends"),
        "{}",
        node.log()
    );
}

/// Not recorded, not restarted: with the runtime dir unwritable, the restart hook must
/// not restart mysqld (every later run would restart it again).
#[test]
fn unwritable_runtime_dir_issues_no_restart() {
    let mut a = Mariadb::start(1);
    let script = a.restart_script(0, false);
    let node = NodeConfig::new(
        &a,
        true,
        &format!(
            "[keepalived-mysql-restart]\nrestart-command = {}\n",
            script.display()
        ),
    );
    assert_eq!(node.restart(&[]).code, 0, "lock and state exist");
    a.kill();
    let r = run_with_read_only_dir(&node.path("run"), &restart_bin(), &node.cnf, &[]);
    assert_eq!(r.code, 22, "{r:?}");
    sleep(Duration::from_millis(500));
    assert_eq!(a.restarts(), 0, "no restart may be issued");
    assert!(node.log().contains("NOT restarting"), "{}", node.log());
    // Writable again: the restart goes ahead.
    assert_eq!(node.restart(&[]).code, 20);
    assert!(a.wait_serving(Duration::from_secs(60)));
    assert_eq!(a.restarts(), 1);
}

/// A lock or state-file failure never keeps a demoted node writable.
#[test]
fn demotion_sets_read_only_even_when_nothing_can_be_recorded() {
    let a = Mariadb::start(1);
    a.exec("SET GLOBAL read_only = OFF");
    let node = NodeConfig::new(&a, false, &notify_group());
    fs::create_dir_all(node.path("run")).unwrap();
    let r = run_with_read_only_dir(&node.path("run"), &notify_bin(), &node.cnf, &["backup"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(read_only(&a));
    let log = node.log();
    assert!(log.contains("cannot record the event"), "{log}");
    assert!(log.contains("demoted: read_only=ON"), "{log}");
}

/// A notify hook killed in the middle of a demotion (or one that never ran) leaves the
/// node writable without the VIP: keepalived's check notices on its next runs and
/// starts the demotion again.
#[test]
fn killed_demotion_is_finished_by_the_check() {
    let a = Mariadb::start(1);
    a.exec("SET GLOBAL read_only = OFF");
    let node = NodeConfig::new(&a, false, &notify_group());
    a.signal(libc::SIGSTOP);
    let mut n = node.notify_spawn(&["backup"]);
    sleep(Duration::from_millis(500));
    n.kill().unwrap();
    n.wait().unwrap();
    a.signal(libc::SIGCONT);
    assert!(!read_only(&a), "the killed hook did not demote");
    // keepalived runs the check every second.
    let t = Instant::now();
    while !read_only(&a) && t.elapsed() < Duration::from_secs(10) {
        node.check(&[]);
        sleep(Duration::from_secs(1));
    }
    assert!(read_only(&a), "still writable after {:?}", t.elapsed());
    // Give the detached hook a moment to write its log line.
    sleep(Duration::from_millis(300));
    let log = node.log();
    assert!(log.contains("demoting it again"), "{log}");
    assert!(log.contains("started by the check"), "{log}");
}

/// restart-on-fault cannot work from a notify hook run as the script user: refused,
/// loudly, while the demotion itself still happens.
#[test]
fn restart_on_fault_is_refused_for_the_script_user_but_demotes() {
    let a = Mariadb::start(1);
    a.exec("SET GLOBAL read_only = OFF");
    let extra = format!("restart-on-fault = on\n{}", notify_group());
    let node = NodeConfig::with_log(&a, false, &extra, "log/keepalived-mysql.log");
    packaged_layout(&a, &node);
    let r = run_as(As::Script, &notify_bin(), &node.cnf, &["fault"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(read_only(&a));
    let log = node.log();
    assert!(log.contains("restart-on-fault = on is refused"), "{log}");
    assert!(log.contains("FAULT: demoted"), "{log}");
}

/// A session whose table lock blocks `SET GLOBAL read_only` makes it time out after a
/// bounded wait; the demotion kills the client sessions and sets it.
#[test]
fn demotion_kills_the_session_that_blocks_read_only() {
    use mysql::prelude::Queryable;
    let a = Mariadb::start(1);
    a.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)");
    a.exec("SET GLOBAL read_only = OFF");
    let mut locker = a.app();
    locker.query_drop("LOCK TABLES app.t WRITE").unwrap();
    let node = NodeConfig::new(&a, false, &notify_group());
    let r = node.notify(&["backup"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(read_only(&a));
    assert!(
        locker.query_drop("SELECT 1").is_err(),
        "the locking session was killed"
    );
    assert!(
        node.log().contains("demoted: read_only=ON"),
        "{}",
        node.log()
    );
}

/// Absurd numbers are configuration errors (exit 3) naming where they came from, never
/// a crash: deadlines are added to clocks, where an overflow would abort the run.
#[test]
fn huge_numbers_are_config_errors_not_crashes() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, true, "");
    for (flag, value) in [
        ("--timeout", "1e30"),
        ("--timeout", "99999999999999999999d"),
        ("--timeout", "0"),
        ("--max-lag", "1e400"),
        ("--log-max-size", "99999999999999999999G"),
        ("--port", "70000"),
    ] {
        let r = node.check(&[&format!("{flag}={value}")]);
        assert_eq!(r.code, 3, "{flag}={value}: {r:?}");
        assert!(r.stderr.contains(flag), "{flag}={value}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    }
    let bad = NodeConfig::new(&a, true, "ready-timeout = 1e30");
    for bin in [check_bin(), restart_bin(), notify_bin()] {
        let r = run_bin(
            &bin,
            &bad.cnf,
            &["backup"][..usize::from(bin == notify_bin())],
        );
        assert_eq!(r.code, 3, "{}: {r:?}", bin.display());
        assert!(r.stderr.contains("keepalived-mysql.cnf:"), "{r:?}");
    }
}

/// Without `vip`, the notify record is the truth: the check's repair never demotes a
/// node whose last acted-on event is MASTER.
#[test]
fn the_checks_repair_never_demotes_the_recorded_master() {
    let a = Mariadb::start(1);
    let node = NodeConfig::new(&a, false, &format!("vip =\n{}", notify_group()));
    let r = node.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!read_only(&a));
    let r = node.notify(&["--from-check", "backup"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!read_only(&a), "the recorded master was demoted");
    assert!(
        node.log().contains("check's demotion ignored"),
        "{}",
        node.log()
    );
    // After a real BACKUP the repair does demote a node found writable.
    assert_eq!(node.notify(&["backup"]).code, 0);
    a.exec("SET GLOBAL read_only = OFF");
    assert_eq!(node.notify(&["--from-check", "backup"]).code, 0);
    assert!(read_only(&a));
}
