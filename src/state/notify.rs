//! `runtime-dir/notify.json`: the events the notify hook received, the role it acted
//! on (read by the check and the restart hook when `vip` is not set), and its alerts.
//! Written only by the notify hook, under its lock.

use serde::{Deserialize, Serialize};

use super::StateFile;
use crate::config::Common;

pub const FILE: &str = "notify.json";

pub fn file(s: &Common) -> StateFile<NotifyRecord> {
    StateFile::new(s.state_path(FILE))
}

/// The replication channel from the peer, as the promotion left it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct PeerChannel {
    /// `held`, `diverged` or `resumed`.
    pub state: String,
    /// This node's position (applied) when it was promoted.
    pub promoted_at: String,
    /// Of that, what came from the peer: its GTID domain(s) (MariaDB) or its
    /// `server_uuid` (MySQL). Anything of the peer's beyond this is what it committed
    /// without us: orphans or ghosts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_peer: String,
    /// What the channel had received from the peer by then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub received: String,
    pub since: f64,
    /// What the peer has that this node lacks (diverged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_extra: Option<String>,
    /// When this node's mysqld started, as seen at the hold: a replica thread running
    /// under a server started since was started by that restart, not by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_started: Option<f64>,
    /// The promotion's STOP was sent but not confirmed (its reply was slow): the
    /// watcher confirms it before it reads a running channel as a person's doing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_pending: bool,
    /// The diverged marker for `peer_extra` was written here (it replicates to the
    /// peer, whose check then fails): only then does this node stay eligible as a
    /// standby with the channel held (the peer cannot become the master by itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marked: bool,
    /// A demotion's verification reached the peer, which refused it or lacks what
    /// this node has: alive, it may take writes this node does not fetch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer_answered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HistoryEntry {
    pub seq: u64,
    pub time: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<f64>,
}

/// `runtime-dir/notify.json`: the role acted on (read by the check) and the history.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct NotifyRecord {
    /// The VRRP state last acted on (not stale events).
    #[serde(default)]
    pub state: String,
    /// Every event received.
    #[serde(default)]
    pub seq: u64,
    /// The newest event that acts (not stale): what "superseded" compares against.
    #[serde(default)]
    pub act_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub demotion_pending: bool,
    #[serde(default)]
    pub since: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_catchup_ms: Option<f64>,
    /// When writes were opened by a promotion from another state (the brake counts
    /// these within promotion-window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<f64>,
    /// Since when the promotion brake keeps MASTER events read-only (until a reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake_since: Option<f64>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub alerts: std::collections::BTreeMap<String, f64>,
    /// Events received, by VRRP state, since the record began (the metrics' counter).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub transitions: std::collections::BTreeMap<String, u64>,
    /// The replication channel from the peer since the last promotion (see `rejoin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_channel: Option<PeerChannel>,
}
