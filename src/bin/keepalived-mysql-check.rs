use std::process::ExitCode;

use clap::Parser;
use keepalived_mysql::check::{self, PROGRAM};
use keepalived_mysql::cli::{CommonArgs, Format};
use keepalived_mysql::config::Settings;
use keepalived_mysql::log::{Logger, Severity};
use keepalived_mysql::verdict::{exit_code_summary, Class};

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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Class::Usage.code()
            } else {
                0
            });
        }
    };
    let extra: Vec<_> = cli
        .on_too_many_connections
        .clone()
        .map(|v| ("on-too-many-connections", v))
        .into_iter()
        .collect();
    if cli.common.print_defaults {
        return match Settings::print_defaults(&cli.common.file_choice(), PROGRAM) {
            Ok(lines) => {
                println!("{}", lines.join("\n"));
                ExitCode::SUCCESS
            }
            Err(e) => fail_config(&e),
        };
    }
    let settings = match cli.common.load(PROGRAM, &extra) {
        Ok(s) => s,
        Err(e) => return fail_config(&e),
    };
    let log = Logger::new(PROGRAM, &settings);
    let v = check::run(&settings, &log);
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

/// Fail closed and say so where someone will look: stderr for a human, syslog for
/// keepalived (which discards our stderr).
fn fail_config(e: &keepalived_mysql::config::ConfigError) -> ExitCode {
    let msg = format!("configuration error: {e}");
    eprintln!("{PROGRAM}: {msg}");
    Logger::new(PROGRAM, &Settings::default()).log(Severity::Err, &msg);
    ExitCode::from(keepalived_mysql::config_error_class(e).code())
}
