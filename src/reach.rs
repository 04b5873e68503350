//! Can this node reach anything beyond itself? TCP connects to the peer and the
//! witnesses, all at once, answered by the first that gets through.
//!
//! A connection accepted or refused (a reset from the far host) proves the path works;
//! a timeout, "no route" or "network unreachable" does not. So a witness needs no
//! listener: any host that answers on its port, even with a refusal, will do.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Probes started in the background; `wait` (from any thread) gets their answer.
#[derive(Clone)]
pub struct Pending(Arc<(Mutex<Option<Reach>>, Condvar)>);

/// What the probes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// This target answered (the first one to).
    Reached(SocketAddr),
    /// None did; why, per target.
    Unreachable(Vec<String>),
}

/// The witnesses worth probing: not an address of this host (its own or the VIP:
/// reaching ourselves proves nothing). Loopback stays, for tests: a witness there is a
/// configuration mistake.
pub fn beyond_this_host(witnesses: &[SocketAddr]) -> Vec<SocketAddr> {
    let here = crate::role::local_addresses();
    witnesses
        .iter()
        .filter(|w| w.ip().is_loopback() || !here.contains(&w.ip()))
        .copied()
        .collect()
}

/// Starts one connect per target, each bounded by `within`.
pub fn start(targets: &[SocketAddr], within: Duration) -> Pending {
    let (tx, rx) = mpsc::channel();
    for &t in targets {
        let tx = tx.clone();
        // Detached: a connect still pending when the run ends dies with the process.
        thread::spawn(move || {
            let r = match TcpStream::connect_timeout(&t, within.max(Duration::from_millis(1))) {
                Ok(_) => Ok(t),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(t),
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    Err(format!("{t}: no answer in {} ms", within.as_millis()))
                }
                Err(e) => Err(format!("{t}: {e}")),
            };
            let _ = tx.send(r);
        });
    }
    let pending = Pending(Arc::new((Mutex::new(None), Condvar::new())));
    let shared = pending.clone();
    let count = targets.len();
    thread::spawn(move || {
        let mut failed = Vec::new();
        let found = loop {
            if failed.len() >= count {
                break Reach::Unreachable(failed);
            }
            match rx.recv() {
                Ok(Ok(t)) => break Reach::Reached(t),
                Ok(Err(why)) => failed.push(why),
                Err(_) => break Reach::Unreachable(failed),
            }
        };
        let (lock, cv) = &*shared.0;
        if let Ok(mut slot) = lock.lock() {
            *slot = Some(found);
        }
        cv.notify_all();
    });
    pending
}

impl Pending {
    /// The first target reached, or why none was, by `deadline` at the latest.
    pub fn wait(&self, deadline: Instant) -> Reach {
        let (lock, cv) = &*self.0;
        let Ok(mut slot) = lock.lock() else {
            return Reach::Unreachable(vec!["internal: probe state poisoned".into()]);
        };
        while slot.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Reach::Unreachable(vec!["no answer before the check's deadline".into()]);
            }
            slot = match cv.wait_timeout(slot, left) {
                Ok((s, _)) => s,
                Err(_) => return Reach::Unreachable(vec!["internal: probe state poisoned".into()]),
            };
        }
        slot.clone().unwrap_or(Reach::Unreachable(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_refusal_counts_as_reached_and_a_listener_too() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        // A port nobody listens on: the kernel refuses at once.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let soon = || Instant::now() + Duration::from_secs(2);
        assert_eq!(
            start(&[open], Duration::from_secs(1)).wait(soon()),
            Reach::Reached(open)
        );
        assert_eq!(
            start(&[closed], Duration::from_secs(1)).wait(soon()),
            Reach::Reached(closed)
        );
    }

    #[test]
    fn nothing_reached_says_why_for_each() {
        // TCP to the broadcast address fails at once, before any packet leaves.
        let t: Vec<SocketAddr> = vec![
            "255.255.255.255:9".parse().unwrap(),
            "255.255.255.255:10".parse().unwrap(),
        ];
        match start(&t, Duration::from_millis(200)).wait(Instant::now() + Duration::from_secs(2)) {
            Reach::Unreachable(why) => assert_eq!(why.len(), 2, "{why:?}"),
            r => panic!("{r:?}"),
        }
        // Nothing to probe: nothing reached.
        assert_eq!(
            start(&[], Duration::from_millis(10)).wait(Instant::now() + Duration::from_secs(1)),
            Reach::Unreachable(vec![])
        );
    }
}
