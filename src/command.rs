//! Running configured commands: argv only (never a shell), detached, never waited for.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts `argv` in a process group of its own and returns its pid without waiting.
///
/// Its own group: keepalived SIGKILLs a timed-out script's group, which must not take a
/// half-done `docker restart` or an alert mail with it. Not waited for: our run must stay
/// short, and a `systemctl stop keepalived` would kill us while we wait.
pub fn spawn_detached(
    argv: &[String],
    stdin: Option<&[u8]>,
    env: &[(&str, String)],
) -> io::Result<u32> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir("/")
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small payloads fit the pipe buffer; a reader that exits early is its business.
        let _ = pipe.write_all(data);
    }
    Ok(child.id())
}

/// Starts another of our programs in a process group of its own, for a caller that
/// waits for it (keepalived's group kill of the caller must not take it along).
pub fn sibling_child(program: &str, args: &[String]) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(program)))
        .ok_or_else(|| format!("cannot locate {program}"))?;
    Command::new(&exe)
        .args(args)
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))
}

/// Starts another of our programs, from the directory this one runs from, detached.
/// Returns the argv, for the log line.
pub fn spawn_sibling(program: &str, args: &[String]) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(program)))
        .ok_or_else(|| format!("cannot locate {program}"))?;
    let mut argv = vec![exe.display().to_string()];
    argv.extend(args.iter().cloned());
    spawn_detached(&argv, None, &[])
        .map_err(|e| format!("cannot start {}: {e}", display(&argv)))?;
    Ok(argv)
}

/// argv for humans and logs.
pub fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
