//! Option files: parity with MySQL's own reader, precedence, and bad input.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{check_bin, write_private};
use keepalived_mysql::config::{CheckSettings, FileChoice, Program};
use keepalived_mysql::optfile;

const GROUPS: [&str; 3] = ["client", "keepalived-mysql", "keepalived-mysql-check"];

/// The golden cases, copied with 0600 modes (git keeps only 0644/0755, and a file with a
/// password must not be readable by others).
fn cases() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let dst = tmp.path().join("cases");
    assert!(Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap()
        .success());
    for dir in [dst.clone(), dst.join("inc.d")] {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
    (tmp, dst)
}

fn ours(file: &Path) -> String {
    let entries = optfile::read_file(file).unwrap_or_else(|e| panic!("{e}"));
    let mut lines = optfile::print_defaults(&entries, &GROUPS).join("\n");
    lines.push('\n');
    lines
}

#[test]
fn golden_files_match_my_print_defaults() {
    let (_tmp, dir) = cases();
    let mut compared = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let out = e.unwrap().path();
        if out.extension().is_none_or(|x| x != "out") {
            continue;
        }
        let cnf = out.with_extension("cnf");
        let golden = fs::read_to_string(&out).unwrap();
        assert_eq!(ours(&cnf), golden, "{}", cnf.display());
        compared += 1;
    }
    assert!(compared >= 5, "only {compared} golden cases");
}

/// The committed golden files are still what MariaDB's reader says (catches a stale
/// golden file after a case was edited).
#[test]
fn golden_files_are_current() {
    let Ok(_) = Command::new("my_print_defaults").arg("--help").output() else {
        panic!("my_print_defaults missing: .ci/run installs mariadb-client");
    };
    let (_tmp, dir) = cases();
    for e in fs::read_dir(&dir).unwrap() {
        let out = e.unwrap().path();
        if out.extension().is_none_or(|x| x != "out") {
            continue;
        }
        let live = Command::new("my_print_defaults")
            .current_dir(&dir)
            .arg(format!(
                "--defaults-file={}",
                out.with_extension("cnf").display()
            ))
            .args(GROUPS)
            .output()
            .unwrap();
        assert!(live.status.success());
        assert_eq!(
            String::from_utf8_lossy(&live.stdout),
            fs::read_to_string(&out).unwrap(),
            "{}",
            out.display()
        );
    }
}

fn cnf(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("k.cnf");
    write_private(&p, body);
    p
}

fn load(file: &Path, flags: &[(&str, String)]) -> Result<CheckSettings, String> {
    let choice = FileChoice {
        defaults_file: Some(file.to_path_buf()),
        ..FileChoice::default()
    };
    CheckSettings::load(&choice, flags).map_err(|e| e.to_string())
}

#[test]
fn groups_apply_in_order_and_flags_win() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(
        tmp.path(),
        "[keepalived-mysql-check]\ntimeout = 3s\n\
         [keepalived-mysql]\ntimeout = 2s\nmax_lag = 5s\nuser = common\n\
         [client]\nuser = client\nsocket = /tmp/x.sock\nprotocol = socket\n\
         [keepalived-mysql-notify]\ntimeout = 9s\n",
    );
    let s = load(&f, &[]).unwrap();
    // The binary's own group beats the shared group, which beats [client], whatever
    // the order in the file; another binary's group is not read.
    assert_eq!(s.timeout, Duration::from_secs(3));
    assert_eq!(s.max_lag, Duration::from_secs(5), "'_' and '-' are alike");
    assert_eq!(s.user.as_deref(), Some("common"));
    assert_eq!(s.socket.as_deref(), Some(Path::new("/tmp/x.sock")));
    let s = load(&f, &[("timeout", "1500ms".into())]).unwrap();
    assert_eq!(s.timeout, Duration::from_millis(1500));
}

#[test]
fn unknown_keys_fail_in_our_groups_only() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(
        tmp.path(),
        "[client]\nno-such-client-option = 1\n[keepalived-mysql]\n\ntimeout = 1s\nmax-lagg = 5s\n",
    );
    let e = load(&f, &[]).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:6: unknown option 'max-lagg' in group [keepalived-mysql]",
            f.display()
        )
    );
    let f = cnf(tmp.path(), "[keepalived-mysql]\nloose-max-lagg = 5s\n");
    assert!(load(&f, &[]).is_ok(), "loose- options may be unknown");
}

/// Runs the binary on a config and returns (exit code, stderr).
fn run(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(check_bin())
        .arg(format!("--defaults-file={}", file.display()))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_files_get_one_line_errors_and_distinct_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: &[(&str, i32, &str)] = &[
        (
            "timeout = 1s\n",
            3,
            "k.cnf:1: found option without preceding group",
        ),
        ("[client\n", 3, "k.cnf:1: wrong group definition"),
        (
            "[keepalived-mysql]\ntimeout = soon\n",
            3,
            "k.cnf:2: 'soon' is not a duration",
        ),
        (
            "[keepalived-mysql]\nport = 99999\n",
            3,
            "k.cnf:2: port must be 1-65535",
        ),
        (
            "[keepalived-mysql]\nvip = not-an-ip\n",
            3,
            "k.cnf:2: vip must be an IP address",
        ),
        (
            "[keepalived-mysql]\nruntime-dir = run\n",
            3,
            "k.cnf:2: runtime-dir must be an absolute path",
        ),
        (
            "[keepalived-mysql]\nheartbeat-table = x\n",
            3,
            "k.cnf:2: heartbeat-table must be schema.table",
        ),
        (
            "[keepalived-mysql]\ntimeout\n",
            3,
            "k.cnf:2: option 'timeout' needs a value",
        ),
        (
            "[client]\n!include missing.cnf\n",
            3,
            "missing.cnf: no such file",
        ),
        (
            "[client]\n!bogus x\n",
            3,
            "k.cnf:2: unknown directive '!bogus'",
        ),
    ];
    for (body, code, msg) in cases {
        let f = cnf(d, body);
        let (c, err) = run(&f, &[]);
        assert_eq!(c, *code, "{body:?}: {err}");
        assert!(err.contains(msg), "{body:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let (c, err) = run(&d.join("absent.cnf"), &[]);
    assert_eq!(c, 3);
    assert!(err.contains("absent.cnf: no such file"), "{err}");
}

#[test]
fn passwords_open_to_others_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(tmp.path(), "[client]\npassword = secret\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let (c, err) = run(&f, &[]);
    assert_eq!(c, 4, "{err}");
    assert!(
        err.contains("holds a password but is readable by other users (mode 0644)"),
        "{err}"
    );
    // No password: world-readable is fine; world-writable never is.
    let f = cnf(tmp.path(), "[keepalived-mysql]\ntimeout = 1s\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(run(&f, &["--print-defaults"]).0, 0);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
    let (c, err) = run(&f, &[]);
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("writable by other users"), "{err}");
}

#[test]
fn bad_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(tmp.path(), "[client]\nuser = x\n");
    let (c, err) = run(&f, &["--timeout", "soon"]);
    assert_eq!(c, 3);
    assert!(err.contains("--timeout: 'soon' is not a duration"), "{err}");
    let (c, err) = run(&f, &["--no-such-flag"]);
    assert_eq!(c, 2, "{err}");
    let (c, err) = run(&f, &["--format", "yaml"]);
    assert_eq!(c, 2, "{err}");
    // A choice-valued flag is typed: a bad value is a usage error (2), listing the
    // choices; the same value in the file is a configuration error (3).
    let (c, err) = run(&f, &["--on-too-many-connections", "maybe"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("healthy, fail"), "{err}");
    let g = cnf(
        tmp.path(),
        "[client]\nuser = x\n[keepalived-mysql-check]\non-too-many-connections = maybe\n",
    );
    let (c, err) = run(&g, &[]);
    assert_eq!(c, 3, "{err}");
}

#[test]
fn print_defaults_masks_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(tmp.path(), "[client]\nuser = mon\npassword = s3cret\n[mysqldump]\nuser = other\n[keepalived-mysql-check]\ntimeout = 2s\n");
    let out = Command::new(check_bin())
        .arg(format!("--defaults-file={}", f.display()))
        .arg("--print-defaults")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--user=mon\n--password=*****\n--timeout=2s\n"
    );
}

/// The notify account in keep-sessions-of would let a peer's promotion survive our
/// fence: refused for the notify hook, which is the program that kills sessions; the
/// check, reading the same file with another account, is not affected.
#[test]
fn keep_sessions_of_may_not_list_the_notify_account() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cnf(
        tmp.path(),
        "[client]\nuser = monitor\n\
         [keepalived-mysql-notify]\nuser = keepalived_notify\nkeep-sessions-of = backup, keepalived_notify\n",
    );
    let choice = FileChoice {
        defaults_file: Some(f.clone()),
        ..FileChoice::default()
    };
    let e = keepalived_mysql::config::NotifySettings::load(&choice, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("keep-sessions-of") && e.contains("keepalived_notify"),
        "{e}"
    );
    assert!(load(&f, &[]).is_ok());
    let ok = cnf(
        tmp.path(),
        "[keepalived-mysql-notify]\nuser = keepalived_notify\nkeep-sessions-of = backup\n",
    );
    let choice = FileChoice {
        defaults_file: Some(ok),
        ..FileChoice::default()
    };
    assert!(keepalived_mysql::config::NotifySettings::load(&choice, &[]).is_ok());
}
