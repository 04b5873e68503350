//! GTID positions: what one server has that another lacks.
//!
//! MariaDB positions (`gtid_binlog_pos`) hold the last `domain-server-seq` per domain,
//! and sequence numbers within a domain only grow, so "has more" is a per-domain
//! comparison. MySQL sets (`uuid:1-5:7`, 8.3+ also `uuid:tag:1-3`) are sets of
//! intervals per source; the server's `GTID_SUBTRACT` is asked, and `Set` below
//! computes the same here so that both must agree before a rejoin trusts "nothing
//! extra" (and so that the arithmetic is tested without a MySQL server).

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

/// A MySQL GTID set: (source uuid, tag) -> sorted, disjoint, non-adjacent inclusive
/// intervals. The untagged part of a source has tag "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set(BTreeMap<(String, String), Vec<(u64, u64)>>);

fn is_uuid(u: &str) -> bool {
    u.len() == 36
        && u.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_tag(t: &str) -> bool {
    let mut c = t.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && t.len() <= 32
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Set {
    /// Parses `gtid_executed` / `Retrieved_Gtid_Set` text as the server prints it
    /// (newlines after commas, upper or lower case; empty is empty).
    pub fn parse(text: &str) -> Result<Set, String> {
        let mut set = Set::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':').map(str::trim);
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(format!("'{part}' does not start with a source UUID"));
            }
            let mut tag = String::new();
            let mut any = false;
            for f in fields {
                if f.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = match f.split_once('-') {
                        Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                        None => (f.parse(), f.parse()),
                    };
                    match (a, b) {
                        (Ok(a), Ok(b)) if a >= 1 && a <= b => set.add(&uuid, &tag, a, b),
                        _ => return Err(format!("'{f}' in '{part}' is not an interval")),
                    }
                    any = true;
                } else if is_tag(f) {
                    tag = f.to_ascii_lowercase();
                } else {
                    return Err(format!(
                        "'{f}' in '{part}' is neither an interval nor a tag"
                    ));
                }
            }
            if !any {
                return Err(format!("'{part}' has no interval"));
            }
        }
        Ok(set)
    }

    fn add(&mut self, uuid: &str, tag: &str, a: u64, b: u64) {
        let v = self.0.entry((uuid.into(), tag.into())).or_default();
        v.push((a, b));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *v = merged;
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `self` has that `other` lacks (the server's `GTID_SUBTRACT(self, other)`).
    pub fn subtract(&self, other: &Set) -> Set {
        let mut out = Set::default();
        for (key, ours) in &self.0 {
            let empty = Vec::new();
            let theirs = other.0.get(key).unwrap_or(&empty);
            for &(mut a, b) in ours {
                for &(c, d) in theirs {
                    if d < a || c > b {
                        continue;
                    }
                    if c > a {
                        out.add(&key.0, &key.1, a, c - 1);
                    }
                    a = d.saturating_add(1);
                    if a > b {
                        break;
                    }
                }
                if a <= b {
                    out.add(&key.0, &key.1, a, b);
                }
            }
        }
        out
    }

    /// The part that comes from one source (e.g. the peer's `server_uuid`).
    pub fn of_source(&self, uuid: &str) -> Set {
        let uuid = uuid.trim().to_ascii_lowercase();
        Set(self
            .0
            .iter()
            .filter(|((u, _), _)| *u == uuid)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// In the server's own form: `uuid:1-5:7:tag:1-3,uuid2:1`, lower case.
impl std::fmt::Display for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut last_uuid: Option<&str> = None;
        for ((uuid, tag), intervals) in &self.0 {
            if last_uuid != Some(uuid.as_str()) {
                if last_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(uuid)?;
                last_uuid = Some(uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
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

    const A: &str = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429563";

    fn set(text: &str) -> Set {
        Set::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn mysql_sets_parse_normalize_and_print_as_the_server_does() {
        // The server's own output: upper case, a newline after each comma.
        let s = set(&format!("{A}:1-5:7:9-10,\n{B}:1-3"));
        assert_eq!(
            s.to_string(),
            format!("{}:1-5:7:9-10,{B}:1-3", A.to_lowercase())
        );
        // Adjacent and overlapping intervals merge; order does not matter.
        assert_eq!(
            set(&format!("{A}:6-8:1-5:4")).to_string(),
            set(&format!("{A}:1-8")).to_string()
        );
        // The same source listed twice is one source.
        assert_eq!(set(&format!("{A}:1-2,{A}:3")), set(&format!("{A}:1-3")));
        // Tags (MySQL 8.3+) are separate sequences of the same source.
        let t = set(&format!("{A}:1-3:Blue:1-2"));
        assert_eq!(t.to_string(), format!("{}:1-3:blue:1-2", A.to_lowercase()));
        assert!(set("").is_empty());
        for bad in [
            "nonsense:1-2".to_string(),
            A.to_string(),
            format!("{A}:0-3"),
            format!("{A}:5-3"),
            format!("{A}:1-x"),
            format!("{A}:9tag:1"),
        ] {
            assert!(Set::parse(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mysql_subtract_finds_what_we_lack_across_sources_and_gaps() {
        let ours = set(&format!("{A}:1-100,{B}:1-20:25-30"));
        // A subset of ours: nothing extra.
        assert!(set(&format!("{A}:1-50,{B}:1-10:26"))
            .subtract(&ours)
            .is_empty());
        // Extra at the end, in a gap, and from a source we never saw.
        let c = "5e11fa47-71ca-11e1-9e33-c80aa9429564";
        let theirs = set(&format!("{A}:1-103,{B}:1-30,{c}:7"));
        assert_eq!(
            theirs.subtract(&ours).to_string(),
            format!("{}:101-103,{B}:21-24,{c}:7", A.to_lowercase())
        );
        // An interval straddling several of ours leaves each hole.
        let holes = set(&format!("{A}:1-3:6-8:11")).subtract(&set(&format!("{A}:2:7")));
        assert_eq!(
            holes.to_string(),
            format!("{}:1:3:6:8:11", A.to_lowercase())
        );
        // Tagged transactions are not covered by the untagged ones.
        assert_eq!(
            set(&format!("{A}:1-3:t:1"))
                .subtract(&set(&format!("{A}:1-5")))
                .to_string(),
            format!("{}:t:1", A.to_lowercase())
        );
        // One source's part.
        assert_eq!(theirs.of_source(B).to_string(), format!("{B}:1-30"));
    }

    #[test]
    fn mariadb_ahead_across_domains_with_gaps() {
        // Sequence numbers may jump (gaps after a skipped event or a failed-over
        // writer); only the highest per domain counts.
        let ours = parse_mariadb("0-1-5,1-1-1000,2-2-7").unwrap();
        let theirs = parse_mariadb("0-1-5,1-1-1000,2-3-9,3-3-1").unwrap();
        assert_eq!(
            mariadb_ahead(&theirs, &ours),
            ["2-3-9 (here: 2-2-7)", "3-3-1 (here: nothing in domain 3)"]
        );
    }
}
