//! `keepalived-mysql lint`: the traps of a keepalived.conf and our option file that
//! each let a failure go unnoticed or move the VIP wrongly, reported with file and line.
//!
//! keepalived's syntax as far as these checks need it: words separated by blanks,
//! `#` and `!` comments, `"..."` quoting, `{` `}` blocks, `include GLOB` (relative to
//! the including file), and `@ID` / `@^ID` line prefixes kept or dropped by config id.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{CheckSettings, FileChoice, NotifySettings, Program, DEFAULT_CONFIG};

pub const DEFAULT_KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
const CHECK_BIN: &str = "keepalived-mysql-check";
const RESTART_BIN: &str = "keepalived-mysql-restart";
const NOTIFY_BIN: &str = "keepalived-mysql-notify";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `file:line`, or the file alone.
    pub at: String,
    pub message: String,
}

impl Finding {
    pub fn line(&self) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!("{}: {sev}: {}", self.at, self.message)
    }
}

/// One statement: its words, where it is, and its block if it opens one.
#[derive(Debug, Clone, Default)]
pub struct Item {
    pub words: Vec<String>,
    pub at: String,
    pub block: Vec<Item>,
}

impl Item {
    fn key(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    /// The statement `key` in this block; repeated, the last wins (as in keepalived).
    fn find(&self, key: &str) -> Option<&Item> {
        self.block.iter().rev().find(|i| i.key() == key)
    }
    fn number(&self, key: &str) -> Option<(f64, &Item)> {
        let i = self.find(key)?;
        Some((i.arg(1)?.parse().ok()?, i))
    }
}

/// A line after comments, quoting and config-id filtering.
struct Line {
    words: Vec<String>,
    at: String,
}

/// Reads `path` and its includes into lines, keeping only what `config_id` applies.
fn read_lines(
    path: &Path,
    config_id: &str,
    depth: usize,
    out: &mut Vec<Line>,
) -> Result<(), String> {
    if depth > 8 {
        return Err(format!("{}: includes nested too deep", path.display()));
    }
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let mut words = split_words(raw);
        if let Some(first) = words.first() {
            if let Some(id) = first.strip_prefix('@') {
                let keep = match id.strip_prefix('^') {
                    Some(not) => not != config_id,
                    None => id == config_id,
                };
                if !keep {
                    continue;
                }
                words.remove(0);
            }
        }
        if words.first().map(String::as_str) == Some("include") {
            for pattern in &words[1..] {
                let p = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    dir.join(pattern)
                };
                for f in glob(&p) {
                    read_lines(&f, config_id, depth + 1, out)?;
                }
            }
            continue;
        }
        if !words.is_empty() {
            out.push(Line { words, at });
        }
    }
    Ok(())
}

/// Words of one line: blanks separate, `"..."` groups, `#`/`!` start a comment, and
/// braces are words of their own.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() {
            words.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    cur.push(c);
                }
                // An empty quoted word is still a word.
                words.push(std::mem::take(&mut cur));
            }
            // keepalived cuts a comment anywhere outside quotes.
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut cur, &mut words);
                words.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut words),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut words);
    words
}

/// `*` and `?` in the last path component (what include lines use in practice).
fn glob(p: &Path) -> Vec<PathBuf> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![p.to_path_buf()];
    }
    let dir = p.parent().unwrap_or(Path::new("/"));
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn wildcard(pat: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(&p, &s)
}

/// The statements as a tree.
fn parse(lines: Vec<Line>) -> Result<Vec<Item>, String> {
    let mut stack: Vec<Item> = vec![Item::default()];
    let mut last_at = String::new();
    for line in lines {
        let mut words = Vec::new();
        last_at = line.at.clone();
        for w in line.words {
            match w.as_str() {
                "{" => {
                    let header = if words.is_empty() {
                        // `{` on a line of its own opens the previous statement.
                        let top = stack.last_mut().expect("root");
                        top.block.pop().unwrap_or_default()
                    } else {
                        Item {
                            words: std::mem::take(&mut words),
                            at: line.at.clone(),
                            block: Vec::new(),
                        }
                    };
                    stack.push(header);
                }
                "}" => {
                    if !words.is_empty() {
                        stack.last_mut().expect("root").block.push(Item {
                            words: std::mem::take(&mut words),
                            at: line.at.clone(),
                            block: Vec::new(),
                        });
                    }
                    if stack.len() == 1 {
                        return Err(format!("{}: '}}' without a block to close", line.at));
                    }
                    let done = stack.pop().expect("checked");
                    stack.last_mut().expect("root").block.push(done);
                }
                _ => words.push(w),
            }
        }
        if !words.is_empty() {
            stack.last_mut().expect("root").block.push(Item {
                words,
                at: line.at.clone(),
                block: Vec::new(),
            });
        }
    }
    if stack.len() > 1 {
        return Err(format!("{last_at}: a block is not closed (missing '}}')"));
    }
    Ok(stack.pop().expect("root").block)
}

/// Reads a keepalived.conf for `config_id`.
pub fn load(path: &Path, config_id: &str) -> Result<Vec<Item>, String> {
    let mut lines = Vec::new();
    read_lines(path, config_id, 0, &mut lines)?;
    parse(lines)
}

/// The config id keepalived will use: `--config-id`/`-i` in /etc/default/keepalived's
/// DAEMON_ARGS, else the host name (keepalived's own default).
pub fn default_config_id() -> String {
    config_id_from(
        &fs::read_to_string("/etc/default/keepalived").unwrap_or_default(),
        &fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
    )
}

/// The config id from /etc/default/keepalived's text, else the host name up to its
/// first dot (as keepalived cuts it).
fn config_id_from(defaults: &str, hostname: &str) -> String {
    for line in defaults
        .lines()
        .filter(|l| l.trim_start().starts_with("DAEMON_ARGS"))
    {
        let line = line.replace(['=', '\'', '"'], " ");
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "--config-id" || *w == "-i" {
                if let Some(v) = words.get(i + 1) {
                    return v.to_string();
                }
            }
        }
    }
    hostname.trim().split('.').next().unwrap_or("").to_string()
}

/// The program a script line runs, and whether it is one of ours (by file name).
fn program(script: &str) -> (&str, Option<&'static str>) {
    let prog = script.split_whitespace().next().unwrap_or("");
    let name = Path::new(prog)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let ours = [CHECK_BIN, RESTART_BIN, NOTIFY_BIN]
        .into_iter()
        .find(|b| *b == name);
    (prog, ours)
}

/// The value of `--name VALUE` or `--name=VALUE` in a command line.
fn flag<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next();
        }
        if let Some(v) = w.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

struct Script<'a> {
    item: &'a Item,
    prog: String,
    /// The whole command line, for the flags it passes.
    line: String,
    ours: Option<&'static str>,
    weight: f64,
    user: Option<String>,
}

/// What lint reads besides keepalived.conf.
pub struct Context<'a> {
    pub option_file: &'a Path,
    /// The option file loaded for the check, or why it could not be.
    pub settings: Result<CheckSettings, String>,
    /// The notify hook's `vrrp-instance` (FIFO mode), when the file sets it.
    pub vrrp_instance: Option<String>,
}

impl<'a> Context<'a> {
    pub fn load(choice: &'a FileChoice) -> Context<'a> {
        let option_file = choice
            .defaults_file
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG));
        Context {
            option_file,
            settings: CheckSettings::load(choice, &[]).map_err(|e| e.to_string()),
            vrrp_instance: NotifySettings::load(choice, &[])
                .ok()
                .and_then(|n| n.vrrp_instance),
        }
    }
}

/// All findings, errors first.
pub fn lint(items: &[Item], ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut err = |at: &str, msg: String| {
        out.push(Finding {
            severity: Severity::Error,
            at: at.to_string(),
            message: msg,
        })
    };
    let mut warnings = Vec::new();
    let mut warn = |at: &str, msg: String| {
        warnings.push(Finding {
            severity: Severity::Warning,
            at: at.to_string(),
            message: msg,
        })
    };
    let settings = match &ctx.settings {
        Ok(s) => Some(s),
        Err(e) => {
            err(
                &ctx.option_file.display().to_string(),
                format!("option file: {e}"),
            );
            None
        }
    };
    // Every global_defs block counts (keepalived merges them).
    let globals: Vec<&Item> = items.iter().filter(|i| i.key() == "global_defs").collect();
    let global = globals.first().copied();
    let in_globals = |key: &str| globals.iter().find_map(|g| g.find(key));
    let security = in_globals("enable_script_security").is_some();
    if !security {
        err(
            &global
                .map(|g| g.at.clone())
                .unwrap_or_else(|| "keepalived.conf".into()),
            "enable_script_security is not set in global_defs: scripts that others could \
             modify would run as root"
                .into(),
        );
    }
    let script_user = in_globals("script_user")
        .and_then(|i| i.arg(1).map(String::from))
        .unwrap_or_else(|| {
            // keepalived's default: keepalived_script when that user exists, else root.
            if passwd().contains_key("keepalived_script") {
                "keepalived_script".into()
            } else {
                "root".into()
            }
        });

    let scripts: HashMap<&str, Script> = items
        .iter()
        .filter(|i| i.key() == "vrrp_script")
        .filter_map(|i| {
            let name = i.arg(1)?;
            let line = i
                .find("script")
                .map(|s| s.words[1..].join(" "))
                .unwrap_or_default();
            let (prog, ours) = program(&line);
            Some((
                name,
                Script {
                    item: i,
                    prog: prog.to_string(),
                    line: line.clone(),
                    ours,
                    weight: i.number("weight").map(|(w, _)| w).unwrap_or(0.0),
                    user: i.find("user").and_then(|u| u.arg(1)).map(String::from),
                },
            ))
        })
        .collect();
    let mut checks = 0;
    for (name, s) in &scripts {
        let at = &s.item.at;
        script_owner(&s.prog, at, &mut err);
        if s.ours == Some(CHECK_BIN) {
            checks += 1;
            let interval = s.item.number("interval").map(|(v, _)| v).unwrap_or(1.0);
            // keepalived kills a script after `timeout`, by default its interval.
            let (ka_timeout, t_at) = s
                .item
                .number("timeout")
                .map(|(v, i)| (v, i.at.clone()))
                .unwrap_or((interval, at.clone()));
            let fall = s.item.number("fall").map(|(v, _)| v).unwrap_or(1.0);
            let rise = s.item.number("rise").map(|(v, _)| v).unwrap_or(1.0);
            // The check's deadline: a --timeout on its command line wins over the file.
            let deadline = flag(&s.line, "--timeout")
                .and_then(|v| crate::config::parse_duration(v).ok())
                .or(settings.map(|st| st.timeout));
            if let Some(deadline) = deadline {
                if deadline.as_secs_f64() >= ka_timeout {
                    err(
                        &t_at,
                        format!(
                            "{name}: keepalived's timeout {ka_timeout}s is not above the check's \
                             timeout {}: keepalived kills the check before it can answer",
                            humantime::format_duration(deadline)
                        ),
                    );
                }
            }
            if fall * interval >= 5.0 {
                warn(
                    at,
                    format!(
                        "{name}: fall {fall} x interval {interval}s = {}s before a failed node \
                         gives up the VIP",
                        fall * interval
                    ),
                );
            }
            if rise < 2.0 {
                warn(
                    at,
                    format!("{name}: rise {rise}: a flapping node is eligible again after one good run (2 is the sample)"),
                );
            }
            if s.user.as_deref() == Some("root") {
                warn(at, format!("{name}: the check needs no root (user root)"));
            }
        }
        // Its own `user` line wins over script_user.
        let runs_as = s.user.clone().unwrap_or_else(|| script_user.clone());
        if s.ours.is_some() {
            if let Some(why) = unreadable_by(ctx.option_file, &runs_as) {
                err(
                    at,
                    format!(
                        "{name} runs as {runs_as}, who cannot read {}: {why}",
                        ctx.option_file.display()
                    ),
                );
            }
        }
        let tracked = items
            .iter()
            .filter(|i| i.key() == "vrrp_instance")
            .flat_map(|i| i.block.iter().filter(|b| b.key() == "track_script"))
            .flat_map(|t| t.block.iter())
            .any(|t| t.key() == *name);
        if s.ours == Some(CHECK_BIN) && !tracked {
            err(
                at,
                format!("{name} is tracked by no vrrp_instance: keepalived never runs it"),
            );
        }
    }
    if checks == 0 {
        err(
            "keepalived.conf",
            format!("no vrrp_script runs {CHECK_BIN}"),
        );
    }

    // The notify hook on keepalived's event FIFO: keepalived appends the FIFO's path to
    // the command, which must therefore end with --fifo, and starts it only with the
    // FIFO itself configured.
    let mut fifo_hook = None;
    for (script_key, fifo_key) in [
        ("vrrp_notify_fifo_script", "vrrp_notify_fifo"),
        ("notify_fifo_script", "notify_fifo"),
    ] {
        let Some(item) = in_globals(script_key) else {
            continue;
        };
        let line = item.words[1..].join(" ");
        if program(&line).1 != Some(NOTIFY_BIN) {
            continue;
        }
        script_owner(program(&line).0, &item.at, &mut err);
        if line.split_whitespace().last() != Some("--fifo") {
            err(
                &item.at,
                format!(
                    "{script_key} runs {NOTIFY_BIN} without --fifo at the end: keepalived \
                     appends the FIFO's path, which would be taken for an event"
                ),
            );
        }
        if in_globals(fifo_key).is_none() {
            err(
                &item.at,
                format!("{script_key} without {fifo_key}: keepalived would never start it"),
            );
        }
        if script_key == "notify_fifo_script" {
            err(
                &item.at,
                format!(
                    "{NOTIFY_BIN} as notify_fifo_script: that FIFO also carries the \
                     checkers' lines; use vrrp_notify_fifo and vrrp_notify_fifo_script"
                ),
            );
        }
        if let Some(first) = fifo_hook {
            err(
                &item.at,
                format!(
                    "{NOTIFY_BIN} runs as both {first} and {script_key}: two readers, every \
                     event applied twice"
                ),
            );
        }
        let instances = items.iter().filter(|i| i.key() == "vrrp_instance").count();
        if instances > 1 && ctx.vrrp_instance.is_none() {
            err(
                &item.at,
                format!(
                    "{script_key}: the FIFO carries all {instances} vrrp_instances, and \
                     vrrp-instance is not set in {}: every instance's transitions would \
                     promote and demote MySQL",
                    ctx.option_file.display()
                ),
            );
        }
        fifo_hook = Some(script_key);
    }

    for inst in items.iter().filter(|i| i.key() == "vrrp_instance") {
        let name = inst.arg(1).unwrap_or("?");
        let nopreempt = inst.find("nopreempt");
        // Without a state line keepalived starts as BACKUP, unless priority is 255;
        // with state MASTER or priority 255 it drops nopreempt.
        let state = inst.find("state").and_then(|s| s.arg(1));
        let owner = inst.number("priority").is_some_and(|(p, _)| p >= 255.0);
        if let Some(np) = nopreempt {
            if state.is_some_and(|s| !s.eq_ignore_ascii_case("BACKUP")) || owner {
                err(
                    &np.at,
                    format!(
                        "{name}: nopreempt needs 'state BACKUP' and a priority below 255 \
                         (keepalived ignores it otherwise)"
                    ),
                );
            }
        }
        let mut tracks_check = false;
        for t in inst
            .block
            .iter()
            .filter(|b| b.key() == "track_script")
            .flat_map(|b| b.block.iter())
        {
            let Some(s) = scripts.get(t.key()) else {
                err(
                    &t.at,
                    format!("{name}: track_script '{}' is not a vrrp_script", t.key()),
                );
                continue;
            };
            // A weight on the track_script line overrides the script's own.
            let weight = match (t.arg(1), t.arg(2)) {
                (Some("weight"), Some(w)) => match w.parse() {
                    Ok(w) => w,
                    Err(_) => {
                        err(&t.at, format!("{name}: weight '{w}' is not a number"));
                        continue;
                    }
                },
                _ => s.weight,
            };
            tracks_check |= s.ours == Some(CHECK_BIN);
            match s.ours {
                Some(CHECK_BIN) if weight != 0.0 && nopreempt.is_some() => err(
                    &t.at,
                    format!(
                        "{name}: {} tracked with weight {weight} while nopreempt is set: a \
                         failing check only changes the priority, which nopreempt ignores, \
                         so the VIP stays on a failed node (use weight 0)",
                        t.key()
                    ),
                ),
                Some(CHECK_BIN) if weight != 0.0 => warn(
                    &t.at,
                    format!(
                        "{name}: {} tracked with weight {weight}: a failing check moves the VIP \
                         only if the priority falls below the peer's (weight 0 means FAULT)",
                        t.key()
                    ),
                ),
                Some(RESTART_BIN) if weight == 0.0 => err(
                    &t.at,
                    format!(
                        "{name}: the restart hook {} is tracked with weight 0: its 'restart in \
                         flight' exit would force FAULT (give it a small non-zero weight)",
                        t.key()
                    ),
                ),
                _ => {}
            }
        }
        let notifies: Vec<&Item> = inst
            .block
            .iter()
            .filter(|i| {
                i.key().starts_with("notify")
                    && program(&i.words[1..].join(" ")).1 == Some(NOTIFY_BIN)
            })
            .collect();
        if let (Some(key), Some(n)) = (fifo_hook, notifies.first()) {
            err(
                &n.at,
                format!(
                    "{name}: {NOTIFY_BIN} is configured both as '{}' and as {key}: every \
                     transition would be applied twice, out of order",
                    n.key()
                ),
            );
        }
        let generic = notifies.iter().any(|i| i.key() == "notify");
        let per_state: Vec<&&Item> = notifies
            .iter()
            .filter(|i| matches!(i.key(), "notify_master" | "notify_backup" | "notify_fault"))
            .collect();
        if generic && !per_state.is_empty() {
            err(
                &per_state[0].at,
                format!(
                    "{name}: {NOTIFY_BIN} is configured both as 'notify' and as '{}': every \
                     transition would run it twice",
                    per_state[0].key()
                ),
            );
        }
        for n in &notifies {
            script_owner(program(&n.words[1..].join(" ")).0, &n.at, &mut err);
            // A notify line may name its user after the script; else script_user.
            let runs_as = n
                .words
                .get(2)
                .cloned()
                .unwrap_or_else(|| script_user.clone());
            if let Some(why) = unreadable_by(ctx.option_file, &runs_as) {
                err(
                    &n.at,
                    format!(
                        "{name}: the notify hook runs as {runs_as}, who cannot read {}: {why}",
                        ctx.option_file.display()
                    ),
                );
            }
        }
        let vip = settings.and_then(|s| s.vip).filter(|_| tracks_check);
        if let (Some(vip), None) = (vip, inst.find("virtual_ipaddress")) {
            err(
                &inst.at,
                format!("{name}: tracks the check but has no virtual_ipaddress (vip is {vip})"),
            );
        }
        if let Some(vips) = inst.find("virtual_ipaddress").filter(|_| tracks_check) {
            if let Some(vip) = vip {
                let listed: Vec<&str> = vips
                    .block
                    .iter()
                    .filter_map(|v| v.key().split('/').next())
                    .collect();
                if !listed.iter().any(|a| a.parse() == Ok(vip)) {
                    err(
                        &vips.at,
                        format!(
                            "{name}: the option file's vip {vip} is not among this instance's \
                             virtual_ipaddress ({}): the check would judge every node a standby",
                            listed.join(", ")
                        ),
                    );
                }
            }
        }
    }
    out.append(&mut warnings);
    out
}

/// keepalived's script security: the program and every directory above it owned by
/// root and writable by nobody else (else, with enable_script_security, the script is
/// dropped and the instance runs without it).
fn script_owner(prog: &str, at: &str, err: &mut impl FnMut(&str, String)) {
    if prog.is_empty() {
        return;
    }
    let p = Path::new(prog);
    if !p.is_absolute() {
        err(at, format!("script '{prog}' is not an absolute path"));
        return;
    }
    let Ok(m) = fs::metadata(p) else {
        err(at, format!("script {prog} does not exist"));
        return;
    };
    if m.mode() & 0o111 == 0 {
        err(at, format!("script {prog} is not executable"));
    }
    let mut cur = Some(p);
    while let Some(c) = cur {
        if let Ok(m) = fs::metadata(c) {
            // keepalived's own rule: root-owned, and not writable by others or by a
            // group other than root; a sticky directory (/tmp) is fine.
            let mode = m.mode();
            let sticky_dir = m.is_dir() && mode & 0o1000 != 0;
            let writable = (m.gid() != 0 && mode & 0o020 != 0) || mode & 0o002 != 0;
            if m.uid() != 0 || (!sticky_dir && writable) {
                err(
                    at,
                    format!(
                        "{} is not root-owned or is writable by others (uid {}, mode {:o}): \
                         enable_script_security would drop {prog}",
                        c.display(),
                        m.uid(),
                        m.mode() & 0o7777
                    ),
                );
                return;
            }
        }
        cur = c.parent();
    }
}

/// user name -> (uid, primary gid), from /etc/passwd (static binaries have no NSS).
fn passwd() -> HashMap<String, (u32, u32)> {
    fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?),
            ))
        })
        .collect()
}

/// Why `user` cannot read `file`, judged by its primary group only: keepalived drops
/// supplementary groups when it runs a script.
fn unreadable_by(file: &Path, user: &str) -> Option<String> {
    let Some(&(uid, gid)) = passwd().get(user) else {
        return Some(format!("no user {user} in /etc/passwd"));
    };
    if uid == 0 {
        return None;
    }
    // Owner bits for the owner, group bits for the group, the rest for the others.
    let may = |m: &fs::Metadata, bit: u32| {
        let shift = if m.uid() == uid {
            6
        } else if m.gid() == gid {
            3
        } else {
            0
        };
        m.mode() & (bit << shift) != 0
    };
    let m = match fs::metadata(file) {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    if !may(&m, 0o4) {
        return Some(format!(
            "owner uid {}, group gid {}, mode {:o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ));
    }
    let mut dir = file.parent();
    while let Some(d) = dir {
        if let Ok(m) = fs::metadata(d) {
            if !may(&m, 0o1) {
                return Some(format!(
                    "cannot enter {} (mode {:o})",
                    d.display(),
                    m.mode() & 0o7777
                ));
            }
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_comments_quotes_braces() {
        assert_eq!(
            split_words(r#"  script "/usr/sbin/x --a b" # comment"#),
            ["script", "/usr/sbin/x --a b"]
        );
        assert_eq!(
            split_words("track_script {chk}"),
            ["track_script", "{", "chk", "}"]
        );
        assert!(split_words("! all comment").is_empty());
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.conf.bak"));
    }

    #[test]
    fn config_id_as_keepalived_finds_it() {
        let d = |s: &str| config_id_from(s, "db1.example.org\n");
        assert_eq!(d(""), "db1", "host name up to its first dot");
        assert_eq!(d("DAEMON_ARGS=\"-D -i lb1\"\n"), "lb1");
        assert_eq!(d("DAEMON_ARGS='--config-id node2 -D'\n"), "node2");
        assert_eq!(d("DAEMON_ARGS=\"--config-id=node3\"\n"), "node3");
        assert_eq!(d("# DAEMON_ARGS=\"-i x\"\n"), "db1", "commented out");
        assert_eq!(split_words("interval 1#x"), ["interval", "1"]);
    }

    #[test]
    fn blocks_nest_and_report_unclosed() {
        let lines = |t: &str| {
            t.lines()
                .enumerate()
                .map(|(n, l)| Line {
                    words: split_words(l),
                    at: format!("f:{}", n + 1),
                })
                .filter(|l| !l.words.is_empty())
                .collect::<Vec<_>>()
        };
        let items = parse(lines(
            "vrrp_instance A {\n track_script {\n  chk weight 2\n }\n}\n",
        ))
        .unwrap();
        assert_eq!(items[0].words, ["vrrp_instance", "A"]);
        let t = items[0].find("track_script").unwrap();
        assert_eq!(t.block[0].words, ["chk", "weight", "2"]);
        assert_eq!(t.block[0].at, "f:3");
        assert!(parse(lines("a {\n b\n"))
            .unwrap_err()
            .contains("not closed"));
        assert!(parse(lines("}\n")).is_err());
    }
}
