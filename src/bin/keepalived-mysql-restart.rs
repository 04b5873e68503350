use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use keepalived_mysql::cli::{self, CommonArgs, RestartArgs};
use keepalived_mysql::config::RestartSettings;
use keepalived_mysql::log::{Logger, Severity};
use keepalived_mysql::restart::{self, Outcome, PROGRAM};
use keepalived_mysql::state::restart::{file as restart_state, Phase};

/// Restart-then-stop hook for keepalived: restarts a dead mysqld once (single flight,
/// crash-loop budget), waits across runs until it serves, and if it cannot, withdraws
/// this node (stops keepalived) so the VIP moves.
#[derive(Parser)]
#[command(
    name = PROGRAM,
    version,
    after_help = "Exit codes: 0 mysqld serving (or alive but hung: not restarted), 1 internal error, \
                  2 bad command line, 3 configuration error, 4 option file open to other users, \
                  20 restart in flight, 21 gave up (stop action issued), 22 mysqld down but the \
                  attempt cannot be recorded (no restart issued). See keepalived-mysql-restart(8)."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    restart: RestartArgs,
    /// Print the restart state and exit
    #[arg(long, conflicts_with = "reset")]
    status: bool,
    /// Clear the restart budget and a give-up, after fixing the cause
    #[arg(long)]
    reset: bool,
    /// Output of --status: text or json
    #[arg(long, value_enum, default_value = "text")]
    format: StatusFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusFormat {
    /// For humans
    Text,
    /// The state file's content
    Json,
}

fn main() -> ExitCode {
    let (cli, settings): (Cli, RestartSettings) =
        match cli::start(|c: &Cli| (&c.common, c.restart.overrides())) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let log = Logger::new(PROGRAM, &settings);
    if cli.status {
        let st = restart_state(&settings).load().unwrap_or_default();
        match cli.format {
            StatusFormat::Text => println!("{}", restart::status_text(&settings, &st)),
            StatusFormat::Json => {
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default())
            }
        }
        return ExitCode::SUCCESS;
    }
    if cli.reset {
        return match restart::reset(&settings, &log) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{PROGRAM}: {e}");
                ExitCode::from(1)
            }
        };
    }
    match restart::run(&settings, &log, &cli.common.file_args()) {
        // Another copy is deciding right now: report the phase it last recorded.
        Ok(Outcome::Busy) => ExitCode::from(
            match restart_state(&settings).load().unwrap_or_default().phase {
                Phase::Idle => Outcome::Serving.code(),
                Phase::Restarting => Outcome::Restarting.code(),
                Phase::GaveUp => Outcome::GaveUp.code(),
            },
        ),
        Ok(o) => ExitCode::from(o.code()),
        Err(e) => {
            log.log(Severity::Err, &e);
            ExitCode::from(3)
        }
    }
}
