use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use keepalived_mysql::cli::{self, CommonArgs};
use keepalived_mysql::config::{self, CheckSettings, NotifySettings, RestartSettings};
use keepalived_mysql::log::Logger;
use keepalived_mysql::ops::{self, history, lint, status, switchover, PROGRAM};
use keepalived_mysql::state::rfc3339;
use keepalived_mysql::{notify, restart};

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 internal error, 2 bad command line, \
3 configuration error, 4 option file open to other users, 40 degraded (status), 41 danger: \
two writable nodes (status), 42 refused (switchover), 43 timed out or the VIP came back \
(switchover), 44 interrupted (switchover), 45 errors found (lint), 46 state not written \
(reset). See keepalived-mysql(1).";

/// The operator's command for a keepalived-mysql pair: what the pair is doing and
/// whether it is safe, a planned switchover, the history, and a configuration lint.
#[derive(Parser)]
#[command(name = PROGRAM, version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// For humans
    Text,
    /// For scripts
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// This node and the peer: VIP, VRRP state, read_only, replication, GTID, the last
    /// check verdict, restart hook, drain file, and a one-line verdict on the pair
    Status {
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Move the VIP to the peer, safely: refuse unless the peer is an eligible standby,
    /// drain this node, wait until the peer is writable on the VIP, undrain
    Switchover {
        /// Longest wait for the peer to be writable on the VIP (then the drain is undone)
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
        wait: Duration,
        /// After the drain file is removed, how long the VIP must stay on the peer
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
        settle: Duration,
        /// Only say whether the switchover would be refused, and why
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Transitions, verdict changes, restarts and alerts on this node, oldest first
    History {
        /// How many events to show (the newest)
        #[arg(long, value_name = "N", default_value_t = 50)]
        lines: usize,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Clear the restart hook's give-up and budget and the promotion brake, and say what was cleared
    Reset {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Known traps in keepalived.conf (with its includes) and the option file
    Lint {
        /// keepalived's configuration file
        #[arg(value_name = "KEEPALIVED_CONF", default_value = lint::DEFAULT_KEEPALIVED_CONF)]
        keepalived_conf: PathBuf,
        /// keepalived's --config-id for @ID lines (default: from /etc/default/keepalived,
        /// else the host name, as keepalived does)
        #[arg(long, value_name = "ID")]
        config_id: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn duration(v: &str) -> Result<Duration, String> {
    config::parse_duration(v)
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse_or_exit() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(code) => code,
    }
}

/// The settings each part of the pair's view needs, from one set of files and flags.
fn settings(
    common: &CommonArgs,
) -> Result<(CheckSettings, RestartSettings, NotifySettings), ExitCode> {
    Ok((
        common.settings_or_exit(&[])?,
        common.settings_or_exit(&[])?,
        common.settings_or_exit(&[])?,
    ))
}

fn run(command: Command) -> Result<u8, ExitCode> {
    Ok(match command {
        Command::Status { format, common } => {
            let (c, r, n) = settings(&common)?;
            let s = status::collect(&c, &r, &n);
            match format {
                Output::Text => print!("{}", status::text(&s)),
                Output::Json => print_json(&s),
            }
            s.level.code()
        }
        Command::Switchover {
            wait,
            settle,
            dry_run,
            format,
            common,
        } => {
            let (c, _, n) = settings(&common)?;
            if dry_run {
                let (no, _, _) = switchover::refusals(&c, &n);
                let msg = if no.is_empty() {
                    "would proceed: the peer is an eligible standby".to_string()
                } else {
                    format!("would be refused: {}", no.join("; "))
                };
                match format {
                    Output::Text => println!("{msg}"),
                    Output::Json => print_json(&serde_json::json!({
                        "would_proceed": no.is_empty(), "refusals": no })),
                }
                return Ok(if no.is_empty() { 0 } else { ops::REFUSED });
            }
            ops::catch_interrupts();
            let opts = switchover::Options {
                timeout: wait,
                settle,
            };
            let log = Logger::new(PROGRAM, &c);
            let r = switchover::run(&c, &n, &opts, &log, &ops::interrupted);
            match format {
                Output::Text => print!("{}", switchover::text(&r)),
                Output::Json => print_json(&r),
            }
            r.outcome.code()
        }
        Command::History {
            lines,
            format,
            common,
        } => {
            let (c, r, _) = settings(&common)?;
            let (events, notes) = history::collect(&c, &r, lines);
            match format {
                Output::Text => print!("{}", history::text(&events, &notes)),
                Output::Json => {
                    print_json(&serde_json::json!({ "events": events, "notes": notes }))
                }
            }
            0
        }
        Command::Reset { common } => {
            let r: RestartSettings = common.settings_or_exit(&[])?;
            let n: NotifySettings = common.settings_or_exit(&[])?;
            let log = Logger::new(PROGRAM, &r);
            let restart = restart::reset(&r, &log).map(|before| cleared(&before));
            let brake = notify::reset_brake(&n, &log);
            let mut code = 0;
            for said in [restart, brake] {
                match said {
                    Ok(msg) => println!("{msg}"),
                    Err(e) => {
                        eprintln!("{PROGRAM}: reset: {e}");
                        code = ops::RESET_FAILED;
                    }
                }
            }
            code
        }
        Command::Lint {
            keepalived_conf,
            config_id,
            format,
            common,
        } => {
            let id = config_id.unwrap_or_else(lint::default_config_id);
            let choice = common.file_choice();
            let ctx = lint::Context::load(&choice);
            let findings = match lint::load(&keepalived_conf, &id) {
                Ok(items) => lint::lint(&items, &ctx),
                Err(e) => vec![lint::Finding {
                    severity: lint::Severity::Error,
                    at: keepalived_conf.display().to_string(),
                    message: e,
                }],
            };
            let errors = findings
                .iter()
                .filter(|f| f.severity == lint::Severity::Error)
                .count();
            match format {
                Output::Text => {
                    for f in &findings {
                        println!("{}", f.line());
                    }
                    println!(
                        "{} error(s), {} warning(s) in {} (config id '{id}')",
                        errors,
                        findings.len() - errors,
                        keepalived_conf.display()
                    );
                }
                Output::Json => print_json(&serde_json::json!({
                    "config_id": id, "errors": errors, "findings": findings })),
            }
            if errors > 0 {
                ops::LINT_ERRORS
            } else {
                0
            }
        }
    })
}

/// What `reset` cleared, in one line.
fn cleared(before: &keepalived_mysql::state::restart::RestartState) -> String {
    use keepalived_mysql::state::restart::Phase;
    let mut parts = Vec::new();
    match before.phase {
        Phase::GaveUp => parts.push(format!(
            "the restart hook's give-up (at {}{})",
            rfc3339(before.updated),
            before
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        Phase::Restarting => parts.push("a restart in flight (its record only)".into()),
        Phase::Idle => {}
    }
    if !before.attempts.is_empty() {
        parts.push(format!(
            "{} restart attempt(s) from the budget",
            before.attempts.len()
        ));
    }
    if parts.is_empty() {
        "nothing to clear: the restart hook was idle with its full budget".into()
    } else {
        format!("cleared {}", parts.join(" and "))
    }
}
