//! keepalived-mysql-restart against a real mariadbd: the restart and stop commands are
//! small scripts (one starts this test's server again, one counts stop actions).

mod common;

use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

const SERVING: i32 = 0;
const RESTARTING: i32 = 20;
const GAVE_UP: i32 = 21;

struct Rig {
    db: Mariadb,
    node: NodeConfig,
    aux: tempfile::TempDir,
}

impl Rig {
    fn new(extra: &str, delay_ms: u64, fail: bool) -> Rig {
        let db = Mariadb::start(1);
        let script = db.restart_script(delay_ms, fail);
        let aux = tempfile::tempdir().unwrap();
        let stop = counting_script(aux.path(), "stop.sh", &aux.path().join("stops.log"));
        let alert = counting_script(aux.path(), "alert.sh", &aux.path().join("alerts.log"));
        let node = NodeConfig::new(
            &db,
            true,
            &format!(
                "[keepalived-mysql-restart]\nrestart-command = {}\nstop-command = {}\nalert-command = {}\n{extra}",
                script.display(),
                stop.display(),
                alert.display()
            ),
        );
        Rig { db, node, aux }
    }

    /// One line per stop action run.
    fn stops(&self) -> Vec<String> {
        lines(&self.aux.path().join("stops.log"))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(self.node.path("run/restart.json")).unwrap())
            .unwrap()
    }

    /// Runs the hook every 200 ms until it returns `code` or `limit` passes.
    fn until(&self, code: i32, limit: Duration) -> i32 {
        let t = Instant::now();
        loop {
            let r = self.node.restart(&[]);
            if r.code == code || t.elapsed() > limit {
                return r.code;
            }
            sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn killed_server_is_restarted_once_and_state_cleared() {
    let mut rig = Rig::new("ready-timeout = 30s", 0, false);
    assert_eq!(rig.node.restart(&[]).code, SERVING);
    assert_eq!(rig.db.restarts(), 0);
    rig.db.kill();
    assert_eq!(rig.node.restart(&[]).code, RESTARTING);
    assert_eq!(rig.state()["phase"], "restarting");
    assert_eq!(rig.until(SERVING, Duration::from_secs(30)), SERVING);
    assert_eq!(rig.db.restarts(), 1, "exactly one restart");
    assert!(rig.db.serving());
    assert_eq!(rig.state()["phase"], "idle");
    assert!(rig.stops().is_empty());
    let status = rig.node.restart(&["--status"]);
    assert!(
        status.stdout.contains("budget: 1 of 3 restarts used"),
        "{}",
        status.stdout
    );
    assert!(
        rig.node.log().contains("serves again"),
        "{}",
        rig.node.log()
    );
}

#[test]
fn twenty_copies_issue_one_restart() {
    let mut rig = Rig::new("ready-timeout = 30s", 500, false);
    rig.db.kill();
    let codes = run_concurrently(&restart_bin(), &rig.node.cnf, 20);
    assert!(
        codes.iter().all(|c| *c == RESTARTING || *c == SERVING),
        "{codes:?}"
    );
    assert_eq!(rig.until(SERVING, Duration::from_secs(30)), SERVING);
    assert_eq!(rig.db.restarts(), 1, "one restart command for 20 copies");
}

#[test]
fn failed_restart_stops_keepalived_once_after_ready_timeout() {
    let mut rig = Rig::new("ready-timeout = 2s", 0, true);
    rig.db.kill();
    let t0 = Instant::now();
    assert_eq!(rig.node.restart(&[]).code, RESTARTING);
    let mut stopped_at = None;
    while t0.elapsed() < Duration::from_millis(3500) {
        let code = rig.node.restart(&[]).code;
        if !rig.stops().is_empty() && stopped_at.is_none() {
            stopped_at = Some(t0.elapsed());
            assert_eq!(code, GAVE_UP);
        }
        sleep(Duration::from_millis(100));
    }
    let at = stopped_at.expect("stop action ran");
    assert!(
        at >= Duration::from_secs(2),
        "stop action before ready-timeout: {at:?}"
    );
    assert_eq!(rig.stops().len(), 1, "stop action exactly once");
    assert_eq!(rig.db.restarts(), 1);
    assert_eq!(rig.state()["phase"], "gave-up");
    // An operator fixes it: the server serves again, and --reset clears the budget.
    rig.db.restart();
    assert_eq!(rig.node.restart(&[]).code, SERVING);
    assert_eq!(rig.node.restart(&["--reset"]).code, 0);
    assert_eq!(rig.state()["attempts"].as_array().unwrap().len(), 0);
}

#[test]
fn crash_loop_exhausts_the_budget() {
    let mut rig = Rig::new(
        "ready-timeout = 30s\nmax-restarts = 2\nrestart-window = 10m",
        0,
        false,
    );
    for _ in 0..2 {
        rig.db.kill();
        assert_eq!(rig.node.restart(&[]).code, RESTARTING);
        assert_eq!(rig.until(SERVING, Duration::from_secs(30)), SERVING);
    }
    rig.db.kill();
    let r = rig.node.restart(&[]);
    assert_eq!(r.code, GAVE_UP, "{r:?}");
    sleep(Duration::from_millis(300));
    assert_eq!(rig.db.restarts(), 2, "no third restart");
    assert_eq!(rig.stops().len(), 1);
    assert!(rig.node.log().contains("crash loop"), "{}", rig.node.log());
    assert_eq!(
        lines(&rig.aux.path().join("alerts.log")).len(),
        1,
        "one alert for the give-up"
    );
    // Giving up is final: later runs neither restart nor stop again.
    assert_eq!(rig.node.restart(&[]).code, GAVE_UP);
    assert_eq!(rig.stops().len(), 1);
}

#[test]
fn sigkill_at_random_points_never_double_restarts() {
    let mut rig = Rig::new("ready-timeout = 4s\nmax-restarts = 100", 0, false);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("seed {seed}");
    for _ in 0..25 {
        if rig.db.serving() {
            rig.db.kill();
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % 15_000);
        let mut child = Command::new(restart_bin())
            .arg(format!("--defaults-file={}", rig.node.cnf.display()))
            .spawn()
            .unwrap();
        sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // Whatever point it died at, the state file is whole (or not yet written).
        if let Ok(text) = fs::read_to_string(rig.node.path("run/restart.json")) {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }
    // Left alone, the hook converges: serving again, or withdrawn after ready-timeout.
    let t = Instant::now();
    let mut code = rig.node.restart(&[]).code;
    while code == RESTARTING && t.elapsed() < Duration::from_secs(30) {
        sleep(Duration::from_millis(200));
        code = rig.node.restart(&[]).code;
    }
    assert!(code == SERVING || code == GAVE_UP, "{code}");
    if code == GAVE_UP {
        // At least once: a run killed between recording the give-up and starting the
        // stop leaves it to the next run (see give_up).
        let t = Instant::now();
        while rig.stops().is_empty() && t.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(50)); // started detached, not waited for
        }
        assert!(!rig.stops().is_empty(), "gave up without a stop action");
        assert!(rig.state()["stop_issued"].is_f64());
    }
    let attempts = rig.state()["attempts"].as_array().unwrap().len();
    assert!(
        rig.db.restarts() <= attempts,
        "{} restart commands for {attempts} recorded attempts",
        rig.db.restarts()
    );
}

#[test]
fn hold_vip_during_restart_decides_the_check() {
    for (hold, expect) in [("on", 0), ("off", 10)] {
        let mut rig = Rig::new(
            // The shared group: the check reads the setting, as the docs say.
            &format!("[keepalived-mysql]\nready-timeout = 20s\nhold-vip-during-restart = {hold}"),
            2000,
            false,
        );
        rig.db.kill();
        assert_eq!(rig.node.restart(&[]).code, RESTARTING);
        let r = rig.node.check(&["--format", "text"]);
        assert_eq!(r.code, expect, "hold {hold}: {r:?}");
        if hold == "on" {
            assert!(r.stdout.contains("VIP held until"), "{}", r.stdout);
            // A standby whose server is restarting is never offered the VIP, even
            // reading the same restart state.
            let run = format!("runtime-dir = {}", rig.node.path("run").display());
            let standby = NodeConfig::new(&rig.db, false, &run);
            assert_eq!(standby.check(&[]).code, 10);
        }
        assert_eq!(rig.until(SERVING, Duration::from_secs(20)), SERVING);
        let r = rig.node.check(&["--format", "text"]);
        assert_eq!(r.code, 0, "{r:?} {}", rig.node.log());
    }
}

#[test]
fn hung_server_is_not_restarted() {
    let rig = Rig::new("ready-timeout = 30s\ntimeout = 500ms", 0, false);
    rig.db.signal(libc::SIGSTOP);
    let r = rig.node.restart(&[]);
    rig.db.signal(libc::SIGCONT);
    assert_eq!(r.code, SERVING, "{r:?}");
    assert_eq!(rig.db.restarts(), 0);
    assert!(
        rig.node.log().contains("not restarting a hung server"),
        "{}",
        rig.node.log()
    );
}

/// The check (every second) sees a dead server before the restart hook has recorded a
/// restart: with the setting in the shared group, the hold starts at the first failure.
#[test]
fn hold_starts_at_the_first_failure_and_ends_after_ready_timeout() {
    let mut db = Mariadb::start(1);
    let node = NodeConfig::new(
        &db,
        true,
        "hold-vip-during-restart = on\nready-timeout = 2s",
    );
    assert_eq!(node.check(&[]).code, 0);
    db.kill();
    assert_eq!(
        node.check(&[]).code,
        0,
        "held before any restart was recorded"
    );
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("VIP held until"), "{}", r.stdout);
    sleep(Duration::from_millis(2300));
    assert_eq!(node.check(&[]).code, 10, "no hold past ready-timeout");
    let standby = NodeConfig::new(
        &db,
        false,
        "hold-vip-during-restart = on\nready-timeout = 2s",
    );
    assert_eq!(standby.check(&[]).code, 10, "a standby is never held");
}

/// A server restarted under hold-vip-during-restart comes back read-only (as my.cnf
/// says) on the node that kept the VIP: the restart hook has it promoted again.
#[test]
fn restarted_server_on_the_vip_holder_is_promoted_again() {
    let mut db = Mariadb::start_with(1, &["--read-only"]);
    let script = db.restart_script(0, false);
    let node = NodeConfig::new(
        &db,
        true,
        &format!(
            "hold-vip-during-restart = on\n[keepalived-mysql-restart]\nrestart-command = {}\n\
             [keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}\n",
            script.display()
        ),
    );
    db.exec("SET GLOBAL read_only = OFF"); // the active node, writable
    db.kill();
    assert_eq!(node.restart(&[]).code, RESTARTING);
    let t = Instant::now();
    while node.restart(&[]).code != SERVING {
        assert!(t.elapsed() < Duration::from_secs(30), "not serving again");
        sleep(Duration::from_millis(200));
    }
    let t = Instant::now();
    while db.value("SELECT @@read_only").as_deref() != Some("0") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "restarted server left read-only"
        );
        sleep(Duration::from_millis(200));
    }
    assert!(
        node.log().contains("promoting the restarted server again"),
        "{}",
        node.log()
    );
    // The detached hook logs right after opening writes: give it that moment.
    let t = Instant::now();
    while !node.log().contains("MASTER: caught up") && t.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(50));
    }
    assert!(node.log().contains("MASTER: caught up"), "{}", node.log());
}
