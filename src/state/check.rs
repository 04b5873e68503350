//! `runtime-dir/check.json`: the last verdict of a keepalived run and what the check
//! tracks across runs. Written only by keepalived's check runs.

use serde::{Deserialize, Serialize};

use super::StateFile;
use crate::config::Common;
use crate::dialect::Dialect;
use crate::verdict::Verdict;

pub const FILE: &str = "check.json";

pub fn file(s: &Common) -> StateFile<CheckState> {
    StateFile::new(s.state_path(FILE))
}

/// What check.json holds: the verdict plus its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckState {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub since: f64,
    pub since_rfc3339: String,
    pub checked_at: f64,
    pub last_logged: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// Since when the server has not been answering (for hold-vip-during-restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<f64>,
    /// Since when this node, without the VIP, has been seen writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_since: Option<f64>,
    /// When the check last started a demotion of that writable standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemoted_at: Option<f64>,
    /// When the peer or a witness last answered (with `witness` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<f64>,
    /// Since when the VIP holder is read-only although writes were opened here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_since: Option<f64>,
    /// When the check last asked the notify hook to promote that node again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasserted_at: Option<f64>,
    /// Since when the active node's semi-sync has been fallen back to asynchronous
    /// (kept across runs that could not see the server: only a run that saw it clears).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semi_sync_fallback_since: Option<f64>,
}
