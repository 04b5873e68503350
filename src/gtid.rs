//! GTID positions: what one server has that another lacks.
//!
//! MariaDB positions (`gtid_binlog_pos`) hold the last `domain-server-seq` per domain,
//! and sequence numbers within a domain only grow, so "has more" is a per-domain
//! comparison. MySQL sets (`uuid:1-5:7`) are compared by the server itself
//! (`GTID_SUBTRACT`), never by us.

use std::collections::BTreeMap;

/// One MariaDB position: domain -> (server id, sequence).
pub type Position = BTreeMap<u32, (u32, u64)>;

/// Parses `gtid_binlog_pos` / `gtid_slave_pos` ("0-1-5,1-1-20"; empty is empty).
pub fn parse_mariadb(pos: &str) -> Result<Position, String> {
    let mut out = Position::new();
    for part in pos.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let nums: Vec<&str> = part.split('-').collect();
        let parsed = match nums.as_slice() {
            [d, s, n] => d
                .parse()
                .ok()
                .zip(s.parse().ok())
                .zip(n.parse().ok())
                .map(|((d, s), n)| (d, s, n)),
            _ => None,
        };
        let Some((domain, server, seq)) = parsed else {
            return Err(format!(
                "'{part}' is not a MariaDB GTID (domain-server-seq)"
            ));
        };
        if out.insert(domain, (server, seq)).is_some() {
            return Err(format!("domain {domain} appears twice in '{pos}'"));
        }
    }
    Ok(out)
}

/// The domains in which `theirs` is ahead of `ours`: transactions they have and we do
/// not, as "their GTID (here: our GTID or nothing)".
pub fn mariadb_ahead(theirs: &Position, ours: &Position) -> Vec<String> {
    theirs
        .iter()
        .filter_map(|(d, (s, n))| {
            let here = ours.get(d);
            match here {
                Some((_, m)) if m >= n => None,
                Some((hs, m)) => Some(format!("{d}-{s}-{n} (here: {d}-{hs}-{m})")),
                None => Some(format!("{d}-{s}-{n} (here: nothing in domain {d})")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions() {
        let p = parse_mariadb("0-1-5, 1-1-20,2-2-7").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&1], (1, 20));
        assert!(parse_mariadb("").unwrap().is_empty());
        assert!(parse_mariadb("1-1").is_err());
        assert!(parse_mariadb("a-1-1").is_err());
        assert!(parse_mariadb("1-1-1,1-2-3").is_err());
    }

    #[test]
    fn ahead_per_domain_with_gaps() {
        let ours = parse_mariadb("1-1-20,2-2-7").unwrap();
        // Same or behind in every domain: nothing we lack.
        assert!(mariadb_ahead(&parse_mariadb("1-1-19,2-2-7").unwrap(), &ours).is_empty());
        // Ahead in one domain (a server switch inside the domain counts by sequence).
        assert_eq!(
            mariadb_ahead(&parse_mariadb("1-2-21,2-2-7").unwrap(), &ours),
            ["1-2-21 (here: 1-1-20)"]
        );
        // A domain we never saw.
        assert_eq!(
            mariadb_ahead(&parse_mariadb("3-3-1").unwrap(), &ours),
            ["3-3-1 (here: nothing in domain 3)"]
        );
    }
}
