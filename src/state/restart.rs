//! `runtime-dir/restart.json`: the restart hook's state machine (see `restart`), read
//! by the check to know whether a restart is in flight. Written only by the restart hook.

use serde::{Deserialize, Serialize};

use super::StateFile;
use crate::config::Common;

pub const FILE: &str = "restart.json";

pub fn file(s: &Common) -> StateFile<RestartState> {
    StateFile::new(s.state_path(FILE))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    #[default]
    Idle,
    Restarting,
    GaveUp,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RestartState {
    pub phase: Phase,
    /// Start times of the restarts still inside `restart-window` (the budget).
    #[serde(default)]
    pub attempts: Vec<f64>,
    /// When the current restart was issued, and until when it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_issued: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_deadline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_issued: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub last_logged: f64,
    #[serde(default)]
    pub updated: f64,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Restarting => "restarting",
            Phase::GaveUp => "gave-up",
        }
    }
}

impl RestartState {
    /// A restart whose readiness window is still open.
    pub fn in_flight(&self, now: f64) -> bool {
        self.phase == Phase::Restarting && self.ready_deadline.is_some_and(|d| now < d)
    }
}
