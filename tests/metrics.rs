//! `metrics-file`: what keepalived's check runs write for node_exporter's textfile
//! collector, read back with an independent Prometheus text-format parser.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use common::*;

/// Every sample as "name{label=value,...}" -> value, after checking the format's rules
/// a scraper relies on: each family has HELP and TYPE, counters end in `_total`, names
/// carry our prefix.
fn scrape(path: &Path) -> HashMap<String, f64> {
    let text = fs::read_to_string(path).expect("metrics file written");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let mut out = HashMap::new();
    for s in &scrape.samples {
        assert!(s.metric.starts_with("keepalived_mysql_"), "{}", s.metric);
        assert!(
            scrape.docs.contains_key(&s.metric),
            "no HELP for {}",
            s.metric
        );
        assert!(
            text.contains(&format!("# TYPE {} ", s.metric)),
            "no TYPE for {}",
            s.metric
        );
        let value = match s.value {
            prometheus_parse::Value::Counter(v) => {
                assert!(s.metric.ends_with("_total"), "counter {}", s.metric);
                v
            }
            prometheus_parse::Value::Gauge(v) => {
                assert!(!s.metric.ends_with("_total"), "gauge {}", s.metric);
                v
            }
            _ => panic!("unexpected type for {}", s.metric),
        };
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        out.insert(key, value);
    }
    out
}

#[test]
fn keepalived_runs_write_metrics_that_match_the_state() {
    let (a, b) = pair();
    let dir = tempfile::tempdir().unwrap();
    let (ma, mb) = (dir.path().join("a.prom"), dir.path().join("b.prom"));
    let na = NodeConfig::new(&a, true, &format!("metrics-file = {}", ma.display()));
    let nb = NodeConfig::new(&b, false, &format!("metrics-file = {}", mb.display()));
    a.exec("SET GLOBAL read_only = OFF");
    b.exec("SET GLOBAL read_only = ON");

    // An observer (a monitor polling with --format) writes nothing.
    assert_eq!(na.check(&["--format", "json"]).code, 0);
    assert!(!ma.exists(), "an observer run wrote the metrics file");

    assert_eq!(na.check(&[]).code, 0, "{}", na.log());
    let m = scrape(&ma);
    assert_eq!(m["keepalived_mysql_check_status{class=ok}"], 1.0);
    assert_eq!(m["keepalived_mysql_check_status{class=lag}"], 0.0);
    assert_eq!(m["keepalived_mysql_check_exit_code"], 0.0);
    assert_eq!(m["keepalived_mysql_role{role=active}"], 1.0);
    assert_eq!(m["keepalived_mysql_read_only"], 0.0);
    assert_eq!(m["keepalived_mysql_semi_sync_enabled"], 0.0);
    assert!(m["keepalived_mysql_check_duration_seconds"] > 0.0);
    assert!(m["keepalived_mysql_check_duration_seconds"] < 1.0);

    b.sync_with(&a);
    assert_eq!(nb.check(&[]).code, 0, "{}", nb.log());
    let m = scrape(&mb);
    assert_eq!(m["keepalived_mysql_role{role=standby}"], 1.0);
    assert_eq!(m["keepalived_mysql_read_only"], 1.0);
    assert_eq!(m["keepalived_mysql_replication_io_running"], 1.0);
    assert_eq!(m["keepalived_mysql_replication_sql_running"], 1.0);
    assert!(m["keepalived_mysql_heartbeat_age_seconds"] >= 0.0);
    assert!(m.contains_key("keepalived_mysql_replication_lag_seconds"));

    // A broken standby: the class and the code follow, the thread says why.
    b.exec("STOP SLAVE SQL_THREAD");
    assert_eq!(nb.check(&[]).code, 14);
    let m = scrape(&mb);
    assert_eq!(m["keepalived_mysql_check_status{class=replication}"], 1.0);
    assert_eq!(m["keepalived_mysql_check_status{class=ok}"], 0.0);
    assert_eq!(m["keepalived_mysql_check_exit_code"], 14.0);
    assert_eq!(m["keepalived_mysql_replication_sql_running"], 0.0);

    // The notify hook's transitions are counted; the next check run reports them.
    let notify = format!(
        "metrics-file = {}\n[keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}",
        mb.display()
    );
    let nb2 = NodeConfig::new(&b, false, &notify);
    assert_eq!(
        nb2.notify(&["INSTANCE", "VI_1", "BACKUP", "100"]).code,
        0,
        "{}",
        nb2.log()
    );
    assert_eq!(
        nb2.notify(&["INSTANCE", "VI_1", "FAULT", "100"]).code,
        0,
        "{}",
        nb2.log()
    );
    assert_eq!(
        nb2.notify(&["INSTANCE", "VI_1", "BACKUP", "100"]).code,
        0,
        "{}",
        nb2.log()
    );
    nb2.check(&[]);
    let m = scrape(&mb);
    assert_eq!(
        m["keepalived_mysql_notify_transitions_total{state=BACKUP}"],
        2.0
    );
    assert_eq!(
        m["keepalived_mysql_notify_transitions_total{state=FAULT}"],
        1.0
    );
    assert_eq!(
        m["keepalived_mysql_notify_transitions_total{state=MASTER}"],
        0.0
    );
    assert_eq!(m["keepalived_mysql_vrrp_state{state=BACKUP}"], 1.0);
    assert_eq!(m["keepalived_mysql_demotion_pending"], 0.0);
    assert_eq!(m["keepalived_mysql_promotion_brake"], 0.0);

    // Written by rename: no temporary file is left beside it.
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".prom"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A metrics file that cannot be written is logged, never a reason to fail the check.
#[test]
fn an_unwritable_metrics_file_never_changes_the_verdict() {
    let (a, _b) = pair();
    let na = NodeConfig::new(&a, true, "metrics-file = /nonexistent/dir/k.prom");
    a.exec("SET GLOBAL read_only = OFF");
    assert_eq!(na.check(&[]).code, 0);
    assert_eq!(na.check(&[]).code, 0);
    assert_eq!(
        na.log().matches("metrics-file: cannot write").count(),
        1,
        "logged once, not every run: {}",
        na.log()
    );
}
