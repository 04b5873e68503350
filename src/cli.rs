//! Command-line options shared by every binary. Each setting flag is an override of the
//! option-file key of the same name and goes through the same validation.

use std::path::PathBuf;

use std::process::ExitCode;

use clap::{Args, Parser, ValueEnum};

use crate::config::{self, Common, ConfigError, FileChoice, Program};
use crate::log::{Logger, Severity};
use crate::verdict::Class;

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Read options only from FILE (default /etc/keepalived-mysql/keepalived-mysql.cnf)
    #[arg(long, value_name = "FILE")]
    pub defaults_file: Option<PathBuf>,
    /// Also read FILE after the main option file
    #[arg(long, value_name = "FILE")]
    pub defaults_extra_file: Option<PathBuf>,
    /// Read no option file at all
    #[arg(long)]
    pub no_defaults: bool,
    /// Print the options read from the option files (password masked) and exit
    #[arg(long)]
    pub print_defaults: bool,

    /// MySQL user to connect as
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Unix socket of the local server (used unless --host is an IP address)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<String>,
    /// Server IP address for TCP, or localhost for the socket
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,
    /// TCP port
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// TLS on TCP (never on the socket): PREFERRED by default, VERIFY_CA with --ssl-ca
    #[arg(long, value_name = "MODE", ignore_case = true,
          value_parser = ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"])]
    pub ssl_mode: Option<String>,
    /// CA certificate(s) (PEM) that verify the server
    #[arg(long, value_name = "FILE")]
    pub ssl_ca: Option<String>,
    /// Directory of CA certificates (PEM)
    #[arg(long, value_name = "DIR")]
    pub ssl_capath: Option<String>,
    /// Client certificate (PEM), with --ssl-key
    #[arg(long, value_name = "FILE")]
    pub ssl_cert: Option<String>,
    /// Client private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub ssl_key: Option<String>,
    /// Without TLS, ask the server for its RSA key (caching_sha2_password full login)
    #[arg(long)]
    pub get_server_public_key: bool,
    /// Without TLS, the server's RSA public key (PEM) for caching_sha2_password
    #[arg(long, value_name = "FILE")]
    pub server_public_key_path: Option<String>,

    /// Hard deadline for the whole run (e.g. 1500ms, 2s)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Replication lag above which a standby may not take the VIP
    #[arg(long, value_name = "DURATION")]
    pub max_lag: Option<String>,
    /// Heartbeat table as schema.table; empty disables it
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub heartbeat_table: Option<String>,
    /// Virtual IP: holding it makes this node the active one
    #[arg(long, value_name = "ADDR")]
    pub vip: Option<String>,
    /// Directory for locks and state files
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<String>,
    /// Log file (empty: none)
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<String>,
    /// Rotate the log file above this size (e.g. 10M)
    #[arg(long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// Rotated log files to keep
    #[arg(long, value_name = "N")]
    pub log_keep: Option<String>,
    /// Syslog facility, or none
    #[arg(long, value_name = "FACILITY", value_parser = facilities())]
    pub syslog_facility: Option<String>,
    /// Drain file: while it exists this node gives up the VIP
    #[arg(long, value_name = "FILE")]
    pub maintenance_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Nothing on stdout: the exit code is the answer (what keepalived needs)
    Quiet,
    /// One line for humans
    Text,
    /// The full verdict as JSON
    Json,
    /// Nagios/Icinga plugin line with perfdata, exit 0/1/2/3
    Nagios,
}

impl CommonArgs {
    pub fn file_choice(&self) -> FileChoice {
        FileChoice {
            defaults_file: self.defaults_file.clone(),
            defaults_extra_file: self.defaults_extra_file.clone(),
            no_defaults: self.no_defaults,
        }
    }

    /// The option-file flags as given, to pass on to another of our programs.
    pub fn file_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.defaults_file {
            out.push(format!("--defaults-file={}", f.display()));
        }
        if let Some(f) = &self.defaults_extra_file {
            out.push(format!("--defaults-extra-file={}", f.display()));
        }
        if self.no_defaults {
            out.push("--no-defaults".into());
        }
        out
    }

    /// The flags given, as (option-file key, value).
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = given(&[
            ("user", &self.user),
            ("socket", &self.socket),
            ("host", &self.host),
            ("port", &self.port),
            ("timeout", &self.timeout),
            ("max-lag", &self.max_lag),
            ("heartbeat-table", &self.heartbeat_table),
            ("ssl-mode", &self.ssl_mode),
            ("ssl-ca", &self.ssl_ca),
            ("ssl-capath", &self.ssl_capath),
            ("ssl-cert", &self.ssl_cert),
            ("ssl-key", &self.ssl_key),
            ("server-public-key-path", &self.server_public_key_path),
            ("vip", &self.vip),
            ("runtime-dir", &self.runtime_dir),
            ("log-file", &self.log_file),
            ("log-max-size", &self.log_max_size),
            ("log-keep", &self.log_keep),
            ("syslog-facility", &self.syslog_facility),
            ("maintenance-file", &self.maintenance_file),
        ]);
        if self.get_server_public_key {
            o.push(("get-server-public-key", "on".into()));
        }
        o
    }

    pub fn load<P: Program>(&self, extra: &[(&'static str, String)]) -> Result<P, ConfigError> {
        let mut overrides = self.overrides();
        overrides.extend(extra.iter().cloned());
        P::load(&self.file_choice(), &overrides)
    }

    /// What every binary does before its own work: answer `--print-defaults`, or load
    /// the settings. `Err` is the exit code to leave with.
    pub fn settings_or_exit<P: Program>(
        &self,
        extra: &[(&'static str, String)],
    ) -> Result<P, ExitCode> {
        if self.print_defaults {
            return Err(print_defaults(self, P::GROUP));
        }
        self.load(extra).map_err(|e| config_failure(P::GROUP, &e))
    }
}

/// Options of the restart hook (also valid in the option file).
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Command that restarts mysqld, as argv (default: systemctl --no-block restart of the mariadb/mysql unit)
    #[arg(long, value_name = "COMMAND")]
    pub restart_command: Option<String>,
    /// Command that withdraws this node when mysqld cannot be brought back
    #[arg(long, value_name = "COMMAND")]
    pub stop_command: Option<String>,
    /// How long a restarted mysqld may take to serve again
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<String>,
    /// Restarts allowed within --restart-window before giving up
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<String>,
    /// Window of the restart budget
    #[arg(long, value_name = "DURATION")]
    pub restart_window: Option<String>,
    /// Keep the VIP on this node while mysqld restarts
    #[arg(long, value_name = "ON|OFF", value_parser = ["on", "off"], ignore_case = true)]
    pub hold_vip_during_restart: Option<String>,
    #[command(flatten)]
    pub hook: HookArgs,
}

/// Options both hooks have.
#[derive(Debug, Clone, Args)]
pub struct HookArgs {
    /// Command run with each alert (as JSON on stdin)
    #[arg(long, value_name = "COMMAND")]
    pub alert_command: Option<String>,
    /// Bound of each connection to a server: connect and log in (default 1s)
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
}

impl HookArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        given(&[
            ("alert-command", &self.alert_command),
            ("connect-timeout", &self.connect_timeout),
        ])
    }
}

impl RestartArgs {
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = self.hook.overrides();
        o.extend(given(&[
            ("restart-command", &self.restart_command),
            ("stop-command", &self.stop_command),
            ("ready-timeout", &self.ready_timeout),
            ("max-restarts", &self.max_restarts),
            ("restart-window", &self.restart_window),
            ("hold-vip-during-restart", &self.hold_vip_during_restart),
        ]));
        o
    }
}

/// The flags actually given, as (option-file key, value).
fn given(pairs: &[(&'static str, &Option<String>)]) -> Vec<(&'static str, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone())))
        .collect()
}

/// The syslog facilities, for `--help` and for clap to refuse others (exit 2).
fn facilities() -> clap::builder::PossibleValuesParser {
    let mut names: Vec<&'static str> = crate::config::FACILITIES.iter().map(|(n, _)| *n).collect();
    names.push("none");
    clap::builder::PossibleValuesParser::new(names)
}

/// Whether a person runs us at a terminal: stdout is one (keepalived sends scripts'
/// stdout to /dev/null, even when it runs in the foreground).
pub fn on_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(1) == 1 }
}

/// What every main does first: parse the command line, then answer `--print-defaults`
/// or load the settings for `program` with the flags `parts` picks out of it. `Err` is
/// the exit code to leave with (2 usage, 3 config, 4 insecure; 0 for help/version).
pub fn start<T: Parser, P: Program>(
    parts: impl Fn(&T) -> (&CommonArgs, Vec<(&'static str, String)>),
) -> Result<(T, P), ExitCode> {
    let cli: T = parse_or_exit()?;
    let (common, extra) = parts(&cli);
    let settings = common.settings_or_exit(&extra)?;
    Ok((cli, settings))
}

/// Parses the command line; a usage error exits 2 (help and version exit 0).
pub fn parse_or_exit<T: Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() {
            Class::Usage.code()
        } else {
            0
        })
    })
}

/// Fail closed and say so where someone will look: stderr for a human, syslog for
/// keepalived (which discards our stderr). Exit 3, or 4 for an insecure file.
pub fn config_failure(program: &str, e: &ConfigError) -> ExitCode {
    let msg = format!("configuration error: {e}");
    eprintln!("{program}: {msg}");
    Logger::new(program, &Common::default()).log(Severity::Err, &msg);
    ExitCode::from(crate::config_error_class(e).code())
}

/// `--print-defaults`: what the option files give `program`.
fn print_defaults(common: &CommonArgs, program: &str) -> ExitCode {
    match config::print_defaults(&common.file_choice(), program) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(program, &e),
    }
}

/// Options of the notify hook (also valid in the option file).
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Longest wait for replication catch-up before opening writes
    #[arg(long, value_name = "DURATION")]
    pub catchup_timeout: Option<String>,
    /// When catch-up times out
    #[arg(long, value_name = "ACTION", value_parser = ["stay-read-only", "open"])]
    pub on_catchup_timeout: Option<String>,
    /// Peer's IP address: on promotion, fence it and wait for its binary log when it answers
    #[arg(long, value_name = "ADDR")]
    pub peer_host: Option<String>,
    /// Peer's TCP port
    #[arg(long, value_name = "PORT")]
    pub peer_port: Option<String>,
    /// Users whose sessions survive a demotion (comma-separated)
    #[arg(long, value_name = "USERS")]
    pub keep_sessions_of: Option<String>,
    /// Scheduled events follow the writer: on or off
    #[arg(long, value_name = "ON|OFF")]
    pub handle_events: Option<String>,
    /// With --fifo: act only on this VRRP instance's lines
    #[arg(long, value_name = "NAME")]
    pub vrrp_instance: Option<String>,
    /// On FAULT, also run keepalived-mysql-restart (root only)
    #[arg(long, value_name = "ON|OFF", value_parser = ["on", "off"], ignore_case = true)]
    pub restart_on_fault: Option<String>,
    /// The same alert at most once per this interval
    #[arg(long, value_name = "DURATION")]
    pub alert_interval: Option<String>,
    /// Promotion brake: at most this many promotions per promotion-window (0: none)
    #[arg(long, value_name = "N")]
    pub max_promotions: Option<String>,
    /// Promotion brake: the window
    #[arg(long, value_name = "DURATION")]
    pub promotion_window: Option<String>,
    #[command(flatten)]
    pub hook: HookArgs,
}

impl NotifyArgs {
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = self.hook.overrides();
        o.extend(given(&[
            ("catchup-timeout", &self.catchup_timeout),
            ("on-catchup-timeout", &self.on_catchup_timeout),
            ("peer-host", &self.peer_host),
            ("peer-port", &self.peer_port),
            ("keep-sessions-of", &self.keep_sessions_of),
            ("handle-events", &self.handle_events),
            ("vrrp-instance", &self.vrrp_instance),
            ("restart-on-fault", &self.restart_on_fault),
            ("alert-interval", &self.alert_interval),
            ("max-promotions", &self.max_promotions),
            ("promotion-window", &self.promotion_window),
        ]));
        o
    }
}
