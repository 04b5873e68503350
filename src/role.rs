//! Which side of the pair this node is on right now.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::config::Common;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Active,
    Standby,
}

/// How the role was decided, reported with every verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSource {
    /// `vip` is configured: holding the address is the truth.
    Vip,
    /// The state the notify hook recorded.
    NotifyState,
    /// Neither: the stricter standby rules apply.
    Default,
}

/// The role now: with `vip` set, whether this host holds it; otherwise the state the
/// notify hook last acted on; with neither, standby.
pub fn detect(s: &Common) -> (Role, RoleSource) {
    if let Some(vip) = s.vip {
        let role = if local_addresses().contains(&vip) {
            Role::Active
        } else {
            Role::Standby
        };
        return (role, RoleSource::Vip);
    }
    match crate::state::notify::file(s).load() {
        Some(r) if r.state.eq_ignore_ascii_case("master") => {
            (Role::Active, RoleSource::NotifyState)
        }
        Some(_) => (Role::Standby, RoleSource::NotifyState),
        None => (Role::Standby, RoleSource::Default),
    }
}

/// Addresses on this host's interfaces (in our network namespace), via getifaddrs.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match (*addr).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}
