use std::process::ExitCode;

use clap::Parser;
use keepalived_mysql::check::{self, Caller, PROGRAM};
use keepalived_mysql::cli::{self, CommonArgs, Format};
use keepalived_mysql::config::CheckSettings;
use keepalived_mysql::log::Logger;
use keepalived_mysql::verdict::exit_code_summary;

/// Replication-aware keepalived vrrp_script for a MySQL/MariaDB dual-master pair:
/// exit 0 only when this node may hold (or take) the virtual IP.
#[derive(Parser)]
#[command(name = PROGRAM, version, after_help = exit_code_summary(PROGRAM))]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// When the server refuses connections with "too many connections"
    #[arg(long, value_name = "ACTION", value_parser = ["healthy", "fail"])]
    on_too_many_connections: Option<String>,
    /// Hosts beyond the pair, as IP:PORT,... (a refusal counts as reached)
    #[arg(long, value_name = "ADDRS")]
    witness: Option<String>,
    /// Reaching neither the peer nor a witness this long makes this node isolated
    #[arg(long, value_name = "DURATION")]
    isolation_timeout: Option<String>,
    /// Write Prometheus metrics here on keepalived's runs (node_exporter textfile)
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<String>,
    /// Output: quiet (exit code only: keepalived's run, which logs and records), or
    /// text, json, nagios (an observer run: prints a live verdict, changes nothing)
    #[arg(long, value_enum, default_value = "quiet")]
    format: Format,
}

fn main() -> ExitCode {
    let (cli, settings): (Cli, CheckSettings) = match cli::start(|c: &Cli| {
        let extra = [
            ("on-too-many-connections", &c.on_too_many_connections),
            ("witness", &c.witness),
            ("isolation-timeout", &c.isolation_timeout),
            ("metrics-file", &c.metrics_file),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect();
        (&c.common, extra)
    }) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Only keepalived's runs (no --format, no terminal) decide and record; the others
    // observe. A person typing the bare command at a terminal observes too: with their
    // own flags (say --timeout 30s) they could otherwise hold keepalived's lock.
    let caller = match cli.format {
        Format::Quiet if !cli::on_terminal() => Caller::Keepalived,
        _ => Caller::Observer,
    };
    let v = check::run(
        &settings,
        &Logger::new(PROGRAM, &settings),
        caller,
        &cli.common.file_args(),
    );
    let code = match cli.format {
        Format::Quiet => v.code,
        Format::Text => {
            println!("{}", check::text_line(&v));
            v.code
        }
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            v.code
        }
        Format::Nagios => {
            println!("{}", check::nagios_line(&settings, &v));
            v.nagios()
        }
    };
    ExitCode::from(code)
}
