use std::process::ExitCode;

use clap::Parser;
use keepalived_mysql::check::{self, PROGRAM};
use keepalived_mysql::cli::{self, CommonArgs, Format};
use keepalived_mysql::log::Logger;
use keepalived_mysql::verdict::exit_code_summary;

/// Replication-aware keepalived vrrp_script for a MySQL/MariaDB dual-master pair:
/// exit 0 only when this node may hold (or take) the virtual IP.
#[derive(Parser)]
#[command(name = PROGRAM, version, after_help = exit_code_summary(PROGRAM))]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// When the server refuses connections with "too many connections": healthy or fail
    #[arg(long, value_name = "ACTION")]
    on_too_many_connections: Option<String>,
    /// Output: quiet (exit code only), text, json, nagios
    #[arg(long, value_enum, default_value = "quiet")]
    format: Format,
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse_or_exit() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let extra: Vec<_> = cli
        .on_too_many_connections
        .clone()
        .map(|v| ("on-too-many-connections", v))
        .into_iter()
        .collect();
    let settings = match cli.common.settings_or_exit(PROGRAM, &extra) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let v = check::run(&settings, &Logger::new(PROGRAM, &settings));
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
            v.class.nagios()
        }
    };
    ExitCode::from(code)
}
