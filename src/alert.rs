//! Alerts: the configured `alert-command` gets the event as JSON on stdin and as
//! `KEEPALIVED_MYSQL_*` environment variables (argv, no shell; see packaging/ for a
//! sendmail example).

use serde_json::{json, Value};

use crate::command;
use crate::config::Common;
use crate::log::{Logger, Severity};
use crate::state::{now_unix, rfc3339};

pub fn raise(s: &Common, log: &Logger, program: &str, event: &str, message: &str, details: Value) {
    let Some(argv) = &s.alert_command else {
        return;
    };
    let now = now_unix();
    let host = hostname();
    let body = json!({
        "program": program,
        "event": event,
        "message": message,
        "host": host,
        "time": rfc3339(now),
        "details": details,
    });
    let env = [
        ("KEEPALIVED_MYSQL_PROGRAM", program.to_string()),
        ("KEEPALIVED_MYSQL_EVENT", event.to_string()),
        ("KEEPALIVED_MYSQL_MESSAGE", message.to_string()),
        ("KEEPALIVED_MYSQL_HOST", host),
        ("KEEPALIVED_MYSQL_TIME", rfc3339(now)),
    ];
    let payload = serde_json::to_vec(&body).unwrap_or_default();
    if let Err(e) = command::spawn_detached(argv, Some(&payload), &env) {
        log.log(
            Severity::Err,
            &format!(
                "alert-command {} failed to start: {e}",
                command::display(argv)
            ),
        );
    }
}

/// The kernel's node name (no NSS needed).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
