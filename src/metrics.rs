//! `metrics-file`: the check's view of this node in Prometheus' text exposition format,
//! for node_exporter's textfile collector. Written by keepalived's check runs, from what
//! the run already has (its verdict, restart.json, notify.json): no extra request to
//! the server. Temp file + rename, so the collector never reads half a file.

use std::fmt::Write as _;
use std::path::Path;

use crate::dialect::ThreadState;
use crate::role::Role;
use crate::state::notify::NotifyRecord;
use crate::state::restart::{Phase, RestartState};
use crate::verdict::{Class, Verdict};

/// The VRRP states the notify hook records, for the one-hot gauge.
const VRRP_STATES: [&str; 5] = ["MASTER", "BACKUP", "FAULT", "STOP", "DELETED"];
const PHASES: [(Phase, &str); 3] = [
    (Phase::Idle, "idle"),
    (Phase::Restarting, "restarting"),
    (Phase::GaveUp, "gave-up"),
];

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP keepalived_mysql_{name} {help}");
        let _ = writeln!(self.0, "# TYPE keepalived_mysql_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(self.0, "keepalived_mysql_{name}{labels} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, "gauge", help);
        self.sample(name, "", value);
    }

    fn flag(&mut self, name: &str, help: &str, value: bool) {
        self.gauge(name, help, if value { 1.0 } else { 0.0 });
    }
}

fn bit(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Label values here are our own fixed words, or keepalived's state names: escaping
/// is still done, as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for one check run at `now` (unix seconds).
pub fn render(
    v: &Verdict,
    restart: Option<&RestartState>,
    notify: Option<&NotifyRecord>,
    now: f64,
) -> String {
    let mut o = Out(String::with_capacity(4096));
    o.head(
        "check_status",
        "gauge",
        "The check's verdict: 1 for the class of the last run, 0 for the others.",
    );
    for c in Class::ALL {
        o.sample(
            "check_status",
            &format!("class=\"{}\"", c.name()),
            bit(c == v.class),
        );
    }
    o.gauge(
        "check_exit_code",
        "Exit code of the last check run (0: may hold the VIP).",
        f64::from(v.code),
    );
    o.gauge(
        "check_duration_seconds",
        "How long the last check run took.",
        v.elapsed_ms / 1000.0,
    );
    o.gauge(
        "check_timestamp_seconds",
        "When the last check run ended, in unix time.",
        now,
    );
    o.gauge(
        "check_warnings",
        "Warnings of the last run (e.g. semi-sync fallen back): never a reason to move the VIP.",
        v.warnings.len() as f64,
    );
    o.head(
        "role",
        "gauge",
        "The role the check judged this node in: 1 for the current one.",
    );
    for (r, name) in [(Role::Active, "active"), (Role::Standby, "standby")] {
        o.sample("role", &format!("role=\"{name}\""), bit(v.role == r));
    }
    if let Some(ro) = v.read_only {
        o.flag("read_only", "The server's read_only.", ro);
    }
    if let Some(lag) = v.lag_seconds {
        o.gauge(
            "replication_lag_seconds",
            "Standby: replication lag (the heartbeat's age, or Seconds_Behind_Master).",
            lag,
        );
    }
    if let Some(age) = v.heartbeat_age_seconds {
        o.gauge(
            "heartbeat_age_seconds",
            "Standby: age of the newest heartbeat row written by the peer.",
            age,
        );
    }
    if let Some(r) = &v.replication {
        o.flag(
            "replication_io_running",
            "The replication IO thread is connected to the peer.",
            r.io_running == ThreadState::Yes,
        );
        o.flag(
            "replication_sql_running",
            "The replication SQL thread is running.",
            r.sql_running,
        );
    }
    if let Some(s) = v.semi_sync {
        o.flag(
            "semi_sync_enabled",
            "Active node: semi-synchronous replication is configured on the source side.",
            s.enabled,
        );
        o.flag(
            "semi_sync_active",
            "Active node: commits wait for a replica's acknowledgement (0 with enabled 1: fallen back to asynchronous).",
            s.active,
        );
    }
    if let Some(r) = restart {
        o.head(
            "restart_phase",
            "gauge",
            "The restart hook's phase: 1 for the current one.",
        );
        for (p, name) in PHASES {
            o.sample(
                "restart_phase",
                &format!("phase=\"{name}\""),
                bit(r.phase == p),
            );
        }
        o.gauge(
            "restart_attempts",
            "Restarts started within restart-window (the crash-loop budget counts these).",
            r.attempts.len() as f64,
        );
    }
    if let Some(n) = notify {
        o.head(
            "vrrp_state",
            "gauge",
            "The VRRP state the notify hook last acted on: 1 for the current one.",
        );
        for st in VRRP_STATES {
            o.sample(
                "vrrp_state",
                &format!("state=\"{st}\""),
                bit(n.state.eq_ignore_ascii_case(st)),
            );
        }
        o.head(
            "notify_transitions_total",
            "counter",
            "Events the notify hook received, by VRRP state (stale ones and re-assertions included).",
        );
        for st in VRRP_STATES {
            let count = n.transitions.get(st).copied().unwrap_or(0);
            o.sample(
                "notify_transitions_total",
                &format!("state=\"{}\"", label(st)),
                count as f64,
            );
        }
        if let Some(ms) = n.last_catchup_ms {
            o.gauge(
                "last_promotion_catchup_seconds",
                "How long the last promotion waited for catch-up (whether it then opened writes or stayed read-only).",
                ms / 1000.0,
            );
        }
        o.flag(
            "demotion_pending",
            "A demotion could not complete yet (mysqld unreachable): retried.",
            n.demotion_pending,
        );
        o.flag(
            "promotion_brake",
            "The promotion brake holds: MASTER events stay read-only until keepalived-mysql reset.",
            n.brake_since.is_some(),
        );
    }
    o.0
}

/// Writes `text` to `path` atomically, readable by all (node_exporter runs as its own
/// user).
pub fn write(path: &Path, text: &str) -> Result<(), String> {
    crate::state::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| crate::files::unusable("cannot write the metrics file", path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::RoleSource;

    #[test]
    fn one_hot_gauges_and_optional_families() {
        let mut v = Verdict::new(Class::Lag, "behind", (Role::Standby, RoleSource::Vip));
        v.lag_seconds = Some(12.5);
        let text = render(&v, None, None, 1000.0);
        assert!(text.contains("keepalived_mysql_check_status{class=\"lag\"} 1\n"));
        assert!(text.contains("keepalived_mysql_check_status{class=\"ok\"} 0\n"));
        assert!(text.contains("keepalived_mysql_check_exit_code 15\n"));
        assert!(text.contains("keepalived_mysql_replication_lag_seconds 12.5\n"));
        assert!(text.contains("keepalived_mysql_role{role=\"standby\"} 1\n"));
        // Nothing said about what was not seen.
        assert!(!text.contains("read_only"));
        assert!(!text.contains("restart_phase"));
        assert!(!text.contains("vrrp_state"));
        let mut n = NotifyRecord {
            state: "MASTER".into(),
            ..NotifyRecord::default()
        };
        n.transitions.insert("MASTER".into(), 3);
        let text = render(&v, Some(&RestartState::default()), Some(&n), 1000.0);
        assert!(text.contains("keepalived_mysql_vrrp_state{state=\"MASTER\"} 1\n"));
        assert!(text.contains("keepalived_mysql_notify_transitions_total{state=\"MASTER\"} 3\n"));
        assert!(text.contains("keepalived_mysql_notify_transitions_total{state=\"FAULT\"} 0\n"));
        assert!(text.contains("keepalived_mysql_restart_phase{phase=\"idle\"} 1\n"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
