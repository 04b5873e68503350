//! MySQL option-file reader.
//!
//! No maintained crate reads these files the way mysys does (options without values,
//! `!include`, quote and escape handling, `#` ending a line outside quotes), so this is
//! our own. Its behaviour is pinned by golden files produced by `my_print_defaults`
//! (see `tests/golden/`).

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One option as read from a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub group: String,
    /// Key exactly as written (after trimming); see [`normalize_key`].
    pub key: String,
    /// `None` for an option without `=`.
    pub value: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptFileError {
    /// The file named on the command line (or an `!include`) cannot be read.
    Io { file: PathBuf, msg: String },
    /// A line mysys would also reject.
    Syntax {
        file: PathBuf,
        line: usize,
        msg: String,
    },
    /// A file that holds a password (or that anyone may rewrite) is open to other users.
    Insecure { file: PathBuf, msg: String },
}

impl fmt::Display for OptFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptFileError::Io { file, msg } => write!(f, "{}: {}", file.display(), msg),
            OptFileError::Syntax { file, line, msg } => {
                write!(f, "{}:{}: {}", file.display(), line, msg)
            }
            OptFileError::Insecure { file, msg } => write!(f, "{}: {}", file.display(), msg),
        }
    }
}

impl std::error::Error for OptFileError {}

/// `-` and `_` are interchangeable in option names, as in mysys.
pub fn normalize_key(key: &str) -> String {
    key.replace('_', "-")
}

/// mysys nests `!include` at most this deep; deeper means a loop.
const MAX_INCLUDE_DEPTH: usize = 10;

/// Reads `path` and everything it includes, returning every option of every group.
pub fn read_file(path: &Path) -> Result<Vec<Entry>, OptFileError> {
    let mut out = Vec::new();
    read_into(path, 0, &mut out)?;
    Ok(out)
}

fn read_into(path: &Path, depth: usize, out: &mut Vec<Entry>) -> Result<(), OptFileError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(OptFileError::Io {
            file: path.to_path_buf(),
            msg: "!include nested too deep (include loop?)".into(),
        });
    }
    let bytes = fs::read(path).map_err(|e| OptFileError::Io {
        file: path.to_path_buf(),
        msg: io_msg(&e),
    })?;
    let meta = fs::metadata(path).map_err(|e| OptFileError::Io {
        file: path.to_path_buf(),
        msg: io_msg(&e),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let dir = path.parent().unwrap_or(Path::new("/"));
    let first_new = out.len();
    let mut group: Option<String> = None;

    for (idx, raw) in text.split('\n').enumerate() {
        let lineno = idx + 1;
        let syntax = |msg: &str| OptFileError::Syntax {
            file: path.to_path_buf(),
            line: lineno,
            msg: msg.to_string(),
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches(is_space);
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('!') {
            let (directive, arg) = split_directive(rest);
            let arg = arg.trim_matches(is_space);
            match directive {
                "include" | "includedir" if arg.is_empty() => {
                    return Err(syntax(&format!("!{directive} needs a path")));
                }
                // Stricter than mysys, which skips a missing include silently: a
                // failover tool must not run on half its configuration.
                "include" => read_into(&resolve(dir, arg), depth + 1, out)?,
                "includedir" => {
                    for f in list_cnf_files(&resolve(dir, arg))? {
                        read_into(&f, depth + 1, out)?;
                    }
                }
                _ => return Err(syntax(&format!("unknown directive '!{directive}'"))),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(syntax("wrong group definition (missing ']')"));
            };
            // mysys trims only trailing blanks: `[ client ]` is the group " client".
            let name = rest[..end].trim_end_matches(is_space);
            group = Some(name.to_string());
            continue;
        }
        let Some(group) = group.as_ref() else {
            return Err(syntax("found option without preceding group"));
        };
        let line = strip_end_comment(line);
        let (key, value) = match line.find('=') {
            Some(eq) => {
                let key = line[..eq].trim_end_matches(is_space);
                let value = parse_value(&line[eq + 1..]);
                (key, Some(value))
            }
            None => (line.trim_end_matches(is_space), None),
        };
        if key.is_empty() {
            return Err(syntax("option without a name"));
        }
        out.push(Entry {
            group: group.clone(),
            key: key.to_string(),
            value,
            file: path.to_path_buf(),
            line: lineno,
        });
    }

    check_permissions(path, &meta, &out[first_new..])
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn split_directive(rest: &str) -> (&str, &str) {
    match rest.find(is_space) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

fn resolve(dir: &Path, arg: &str) -> PathBuf {
    let p = Path::new(arg);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// `!includedir` reads `*.cnf` in name order; a missing directory is an error, as in mysys.
fn list_cnf_files(dir: &Path) -> Result<Vec<PathBuf>, OptFileError> {
    let rd = fs::read_dir(dir).map_err(|e| OptFileError::Io {
        file: dir.to_path_buf(),
        msg: format!("cannot read !includedir: {}", io_msg(&e)),
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cnf"))
        .collect();
    files.sort();
    Ok(files)
}

/// Cuts the line at the first `#` outside quotes, like mysys' remove_end_comment.
fn strip_end_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escape = false;
    for (i, c) in line.char_indices() {
        if (c == '\'' || c == '"') && !escape {
            match quote {
                None => quote = Some(c),
                Some(q) if q == c => quote = None,
                _ => {}
            }
        }
        if quote.is_none() && c == '#' {
            return &line[..i];
        }
        escape = quote.is_some() && c == '\\' && !escape;
    }
    line
}

fn parse_value(raw: &str) -> String {
    let mut v = raw.trim_matches(is_space);
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[0] == b[b.len() - 1] {
        v = &v[1..v.len() - 1];
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('s') => out.push(' '),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A file that anyone may rewrite could point our restart/stop commands anywhere, and a
/// password readable by everyone is no secret: refuse both instead of running with them.
fn check_permissions(
    path: &Path,
    meta: &fs::Metadata,
    entries: &[Entry],
) -> Result<(), OptFileError> {
    let mode = meta.mode();
    if mode & 0o002 != 0 {
        return Err(OptFileError::Insecure {
            file: path.to_path_buf(),
            msg: format!(
                "is writable by other users (mode {:04o}); run chmod o-w",
                mode & 0o7777
            ),
        });
    }
    let has_password = entries
        .iter()
        .any(|e| e.file == path && normalize_key(strip_loose(&e.key)) == "password");
    if has_password && mode & 0o004 != 0 {
        return Err(OptFileError::Insecure {
            file: path.to_path_buf(),
            msg: format!(
                "holds a password but is readable by other users (mode {:04o}); run chmod o-r",
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

/// Group names compare case-insensitively, as in mysys.
pub fn group_matches(group: &str, wanted: &str) -> bool {
    group.eq_ignore_ascii_case(wanted)
}

/// `loose-` marks an option that may be ignored when unknown (MySQL convention).
pub fn strip_loose(key: &str) -> &str {
    key.strip_prefix("loose-")
        .or_else(|| key.strip_prefix("loose_"))
        .unwrap_or(key)
}

/// The lines `my_print_defaults` prints for `groups`, for golden tests and
/// `--print-defaults`.
pub fn print_defaults(entries: &[Entry], groups: &[&str]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| groups.iter().any(|g| group_matches(&e.group, g)))
        .map(|e| match &e.value {
            Some(v) => format!("--{}={}", e.key, v),
            None => format!("--{}", e.key),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_comment_respects_quotes() {
        assert_eq!(strip_end_comment("a = 'x#y' # c"), "a = 'x#y' ");
        assert_eq!(strip_end_comment("a = x#y"), "a = x");
        assert_eq!(strip_end_comment(r##"a = "x\"#y""##), r##"a = "x\"#y""##);
    }

    #[test]
    fn value_quotes_and_escapes() {
        assert_eq!(parse_value("  \"p#ss; word\"  "), "p#ss; word");
        assert_eq!(parse_value(r"a\sb\tc\\d\qe"), "a b\tc\\d\\qe");
        assert_eq!(parse_value("'unbalanced"), "'unbalanced");
        assert_eq!(parse_value("\""), "\"");
    }
}
