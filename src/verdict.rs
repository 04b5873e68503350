//! Error classes and their exit codes. keepalived logs "now returning N" whenever the
//! code changes, so one code per cause makes its own log tell what happened.
//! Codes avoid 126/127 and >= 128, which keepalived and shells give other meanings.

use serde::{Deserialize, Serialize};

use crate::dialect::ReplicaStatus;
use crate::probe::SemiSync;
use crate::role::{Role, RoleSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Ok,
    Internal,
    Usage,
    Config,
    Insecure,
    Down,
    Timeout,
    AccessDenied,
    Saturated,
    Replication,
    Lag,
    WritesBlocked,
    Maintenance,
    ServerError,
    Protocol,
    Tls,
    Diverged,
    Isolated,
}

impl Class {
    pub const ALL: [Class; 18] = [
        Class::Ok,
        Class::Internal,
        Class::Usage,
        Class::Config,
        Class::Insecure,
        Class::Down,
        Class::Timeout,
        Class::AccessDenied,
        Class::Saturated,
        Class::Replication,
        Class::Lag,
        Class::WritesBlocked,
        Class::Maintenance,
        Class::ServerError,
        Class::Protocol,
        Class::Tls,
        Class::Diverged,
        Class::Isolated,
    ];

    pub fn code(self) -> u8 {
        match self {
            Class::Ok => 0,
            Class::Internal => 1,
            Class::Usage => 2,
            Class::Config => 3,
            Class::Insecure => 4,
            Class::Down => 10,
            Class::Timeout => 11,
            Class::AccessDenied => 12,
            Class::Saturated => 13,
            Class::Replication => 14,
            Class::Lag => 15,
            Class::WritesBlocked => 16,
            Class::Maintenance => 17,
            Class::ServerError => 18,
            Class::Protocol => 19,
            Class::Tls => 20,
            Class::Diverged => 21,
            Class::Isolated => 22,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Internal => "internal",
            Class::Usage => "usage",
            Class::Config => "config",
            Class::Insecure => "insecure",
            Class::Down => "down",
            Class::Timeout => "timeout",
            Class::AccessDenied => "access-denied",
            Class::Saturated => "saturated",
            Class::Replication => "replication",
            Class::Lag => "lag",
            Class::WritesBlocked => "writes-blocked",
            Class::Maintenance => "maintenance",
            Class::ServerError => "server-error",
            Class::Protocol => "bad-reply",
            Class::Tls => "tls",
            Class::Diverged => "diverged",
            Class::Isolated => "isolated",
        }
    }

    /// The server did not answer (as opposed to answering badly).
    pub fn unanswered(self) -> bool {
        matches!(self, Class::Down | Class::Timeout | Class::ServerError)
    }

    /// Short meaning, for `--help` and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Ok => "healthy",
            Class::Internal => "internal error",
            Class::Usage => "bad command line",
            Class::Config => "configuration error",
            Class::Insecure => "option file open to other users",
            Class::Down => "cannot connect",
            Class::Timeout => "no answer in time",
            Class::AccessDenied => "access denied",
            Class::Saturated => "too many connections",
            Class::Replication => "replication broken",
            Class::Lag => "replication lag over max-lag",
            Class::WritesBlocked => "writes blocked on the active node",
            Class::Maintenance => "maintenance (drain file)",
            Class::ServerError => "unexpected server error",
            Class::Protocol => "bad reply from the server (protocol error)",
            Class::Tls => "TLS failure or insecure transport refused (alive, misconfigured)",
            Class::Diverged => {
                "diverged from the active node (transactions it never applied, or lacks)"
            }
            Class::Isolated => "isolated: reaches no witness",
        }
    }

    /// Nagios/Icinga plugin status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn nagios(self) -> u8 {
        match self {
            Class::Ok => 0,
            Class::Lag | Class::Maintenance | Class::Saturated => 1,
            Class::Internal | Class::Usage | Class::Config | Class::Insecure => 3,
            _ => 2,
        }
    }
}

/// "Exit codes: 0 healthy, 1 internal error, ..." for `--help`.
pub fn exit_code_summary(program: &str) -> String {
    let codes: Vec<String> = Class::ALL
        .iter()
        .map(|c| format!("{} {}", c.code(), c.describe()))
        .collect();
    format!("Exit codes: {}. See {program}(8).", codes.join(", "))
}

/// One verdict of the check: class and exit code, why, and what was seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub class: Class,
    pub code: u8,
    pub reason: String,
    pub role: Role,
    pub role_source: RoleSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Standby with a heartbeat table: age of the peer's newest heartbeat row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicaStatus>,
    /// Things worth knowing that do not change the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// On the active node: what the old master has that was never applied here (its
    /// replication channel stays stopped; see `rejoin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_diverged: Option<String>,
    /// Active node: semi-synchronous replication as the source sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semi_sync: Option<SemiSync>,
    /// Worth someone's attention, never a reason to move the VIP: keepalived still gets
    /// 0 for these; Nagios gets WARNING.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub elapsed_ms: f64,
}

impl Verdict {
    /// Nagios/Icinga status: the class's, raised to WARNING by a warning.
    pub fn nagios(&self) -> u8 {
        match self.class.nagios() {
            0 if !self.warnings.is_empty() => 1,
            n => n,
        }
    }

    pub fn new(class: Class, reason: impl Into<String>, role: (Role, RoleSource)) -> Verdict {
        Verdict {
            class,
            code: class.code(),
            reason: reason.into(),
            role: role.0,
            role_source: role.1,
            server_id: None,
            read_only: None,
            lag_seconds: None,
            heartbeat_age_seconds: None,
            replication: None,
            notes: Vec::new(),
            peer_diverged: None,
            semi_sync: None,
            warnings: Vec::new(),
            elapsed_ms: 0.0,
        }
    }
}
