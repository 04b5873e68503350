//! `keepalived-mysql`, the operator's command: status, switchover, history, reset, lint.
//! The hooks are for keepalived; this is for the person on call.

pub mod history;
pub mod lint;
pub mod status;
pub mod switchover;

use std::sync::atomic::{AtomicBool, Ordering};

pub const PROGRAM: &str = "keepalived-mysql";

// Exit codes beyond the shared 0-4 (ok, internal, usage, config, insecure option file).
/// `status`: the pair works, with something to fix.
pub const DEGRADED: u8 = 40;
/// `status`: two writable nodes.
pub const DANGER: u8 = 41;
/// `switchover`: refused before anything changed (the peer is not an eligible standby,
/// this node does not hold the VIP, ...).
pub const REFUSED: u8 = 42;
/// `switchover`: not complete within `--wait`, nobody took the VIP, or it came back;
/// the drain file was removed.
pub const TIMED_OUT: u8 = 43;
/// `switchover`: interrupted (SIGINT, SIGTERM); the drain file was removed.
pub const INTERRUPTED: u8 = 44;
/// `lint`: at least one error.
pub const LINT_ERRORS: u8 = 45;
/// `reset`: the state could not be written.
pub const RESET_FAILED: u8 = 46;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// From now on SIGINT, SIGTERM and SIGHUP (a dropped ssh session) only set a flag,
/// which `interrupted` reads: the switchover then cleans up (removes its drain file)
/// instead of dying mid-way. SIGKILL cannot be caught: the drain file then stays, and
/// says who made it.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}
