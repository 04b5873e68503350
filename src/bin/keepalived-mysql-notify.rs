use std::process::ExitCode;
use std::thread;

use clap::Parser;
use keepalived_mysql::cli::{self, CommonArgs, NotifyArgs};
use keepalived_mysql::config::NotifySettings;
use keepalived_mysql::log::{Logger, Severity};
use keepalived_mysql::notify::{self, Outcome, VrrpState, PROGRAM, STOP_BUDGET};
use keepalived_mysql::verdict::Class;

/// keepalived notify hook for a MySQL/MariaDB dual-master pair: on MASTER, lets
/// replication catch up and then opens writes; on BACKUP, FAULT and STOP, sets
/// read_only and drops client sessions. Records every event.
#[derive(Parser)]
#[command(
    name = PROGRAM,
    version,
    after_help = "Arguments: STATE (notify_master \"keepalived-mysql-notify master\" etc.), or \
                  INSTANCE|GROUP NAME STATE [PRIORITY] as keepalived's generic notify appends them.\n\
                  Exit codes: 0 done (or stale/superseded event ignored), 1 internal error, \
                  2 bad command line, 3 configuration error, 4 option file open to other users, \
                  12 access denied or missing privilege, 30 promotion stayed read-only (catch-up incomplete), \
                  31 mysqld unreachable (demotion pending). See keepalived-mysql-notify(8)."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    notify: NotifyArgs,
    /// Set by keepalived-mysql-check: with backup, it found this node writable without
    /// the VIP (demote unless the master by the VIP or the record); with master, it
    /// found this VIP holder fenced read-only while its peer is read-only too (promote
    /// again)
    #[arg(long)]
    from_check: bool,
    /// Started by a promotion that held replication from the peer: watch the peer, and
    /// resume fetching from it once it holds nothing this node lacks
    #[arg(long, conflicts_with = "from_check")]
    watch_peer: bool,
    /// Run as keepalived's vrrp_notify_fifo_script: read events from this FIFO, in
    /// order, until keepalived closes it (keepalived appends the path itself)
    #[arg(long, value_name = "FIFO", conflicts_with_all = ["from_check", "watch_peer"])]
    fifo: Option<std::path::PathBuf>,
    /// Set by --fifo: act on this event, which it recorded with this sequence number
    /// (0: it could not be recorded)
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["from_check", "watch_peer", "fifo"])]
    recorded: Option<u64>,
    /// MASTER, BACKUP, FAULT, STOP (any case), or keepalived's four notify arguments
    #[arg(value_name = "EVENT", num_args = 0..=4)]
    event: Vec<String>,
}

fn main() -> ExitCode {
    let (cli, settings): (Cli, NotifySettings) =
        match cli::start(|c: &Cli| (&c.common, c.notify.overrides())) {
            Ok(x) => x,
            Err(code) => return code,
        };
    if cli.watch_peer {
        let log = Logger::new(PROGRAM, &settings);
        return match keepalived_mysql::rejoin::watch(&settings, &log) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log.log(Severity::Err, &e);
                ExitCode::from(Class::Internal.code())
            }
        };
    }
    if let Some(path) = &cli.fifo {
        let log = Logger::new(PROGRAM, &settings);
        if !cli.event.is_empty() {
            eprintln!("{PROGRAM}: --fifo takes no EVENT arguments");
            return ExitCode::from(Class::Usage.code());
        }
        return match keepalived_mysql::fifo::serve(&settings, &log, path, &cli.common.file_args()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log.log(Severity::Err, &format!("--fifo: {e}"));
                eprintln!("{PROGRAM}: --fifo: {e}");
                ExitCode::from(Class::Config.code())
            }
        };
    }
    let event = match notify::parse_event(&cli.event) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::from(Class::Usage.code());
        }
    };
    let log = Logger::new(PROGRAM, &settings);
    if let Some(seq) = cli.recorded {
        // Started by --fifo in a process group of its own: keepalived's kill of the
        // FIFO reader does not reach it, so no 900 ms exit on STOP (its connects keep
        // their short STOP bounds, as the demotion's retry loop then carries on).
        let o = notify::act_recorded(&settings, &log, event, seq, &cli.common.file_args());
        return ExitCode::from(o.code());
    }
    if event.state == VrrpState::Stop {
        // keepalived SIGKILLs a STOP hook after 1 s: end on our own terms before that.
        let log = log.clone();
        thread::spawn(move || {
            thread::sleep(STOP_BUDGET);
            log.log(Severity::Err, "STOP: demotion did not finish within 900 ms");
            std::process::exit(Outcome::Unreachable.code().into());
        });
    }
    match notify::run(
        &settings,
        &log,
        event,
        cli.from_check,
        &cli.common.file_args(),
    ) {
        Ok(o) => ExitCode::from(o.code()),
        Err(e) => {
            log.log(Severity::Err, &e);
            eprintln!("{PROGRAM}: {e}");
            ExitCode::from(Class::Internal.code())
        }
    }
}
