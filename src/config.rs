//! Settings: option files, then command-line flags; each program gets its own part.
//!
//! Every binary reads `[client]`, `[keepalived-mysql]` and its own group, in that order,
//! later values winning. Our groups accept any key that some binary knows (so one file
//! serves all three); anything else there is an error naming file and line. `[client]`
//! is shared with the MySQL tools, so keys we do not use there are ignored, as they do.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::connection::Login;
use crate::optfile::{self, normalize_key, strip_loose, Entry, OptFileError};
use crate::tls::{SslMode, TlsOptions};

pub const DEFAULT_CONFIG: &str = "/etc/keepalived-mysql/keepalived-mysql.cnf";
pub const COMMON_GROUP: &str = "keepalived-mysql";
/// Debian 12 merges /bin into /usr/bin; keepalived gives scripts no PATH to rely on.
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// Keys our groups accept. Client keys are allowed there too, so a binary's own group
/// can use other credentials than `[client]`.
pub const CLIENT_KEYS: &[&str] = &[
    "user",
    "password",
    "socket",
    "host",
    "port",
    "ssl-mode",
    "ssl-ca",
    "ssl-capath",
    "ssl-cert",
    "ssl-key",
    "get-server-public-key",
    "server-public-key-path",
    // MariaDB's client spellings, so a [client] written for it means the same here.
    "ssl",
    "skip-ssl",
    "ssl-verify-server-cert",
];
pub const SETTING_KEYS: &[&str] = &[
    "timeout",
    "connect-timeout",
    "max-lag",
    "heartbeat-table",
    "vip",
    "runtime-dir",
    "log-file",
    "log-max-size",
    "log-keep",
    "syslog-facility",
    "maintenance-file",
    "metrics-file",
    "on-too-many-connections",
    "restart-command",
    "stop-command",
    "ready-timeout",
    "max-restarts",
    "restart-window",
    "hold-vip-during-restart",
    "alert-command",
    "alert-interval",
    "catchup-timeout",
    "on-catchup-timeout",
    "peer-host",
    "peer-port",
    "keep-sessions-of",
    "handle-events",
    "vrrp-instance",
    "restart-on-fault",
    "witness",
    "isolation-timeout",
    "max-promotions",
    "promotion-window",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    File(OptFileError),
    /// A bad key or value; `origin` is `file:line` or `--flag`.
    Value {
        origin: String,
        msg: String,
    },
}

impl ConfigError {
    pub fn is_insecure(&self) -> bool {
        matches!(self, ConfigError::File(OptFileError::Insecure { .. }))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::File(e) => e.fmt(f),
            ConfigError::Value { origin, msg } => write!(f, "{origin}: {msg}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<OptFileError> for ConfigError {
    fn from(e: OptFileError) -> Self {
        ConfigError::File(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooManyConnections {
    Healthy,
    Fail,
}

/// Where the client connects. `host = localhost` (or nothing) means the socket, as in
/// the MySQL client library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    Tcp(IpAddr, u16),
}

/// `/run/mysqld/mysqld.sock`, `127.0.0.1:3306`, `[::1]:3306`: what error messages name.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Socket(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(ip, port) => write!(f, "{}", std::net::SocketAddr::new(*ip, *port)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatTable {
    pub schema: String,
    pub table: String,
}

impl HeartbeatTable {
    pub fn qualified(&self) -> String {
        format!("`{}`.`{}`", self.schema, self.table)
    }
}

/// What more than one program uses: the server's address and credentials, where our
/// files live, how we log and alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub user: Option<String>,
    pub password: Option<String>,
    pub socket: Option<PathBuf>,
    /// TCP when set; `None` (no host, empty, `localhost`) is the socket. Parsed when
    /// read: static binaries have no DNS, so only an IP literal is accepted.
    pub host: Option<IpAddr>,
    pub port: u16,
    /// TLS on TCP connections (never on the socket), and the RSA key for
    /// `caching_sha2_password` without TLS.
    pub tls: TlsOptions,
    /// Connecting (and logging in) for the restart and notify hooks, and the restart
    /// hook's liveness query.
    pub connect_timeout: Duration,
    pub vip: Option<IpAddr>,
    pub runtime_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_keep: u32,
    /// `None` disables syslog.
    pub syslog_facility: Option<u8>,
    pub alert_command: Option<Vec<String>>,
}

/// The check's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettings {
    pub common: Common,
    /// The deadline for a whole run.
    pub timeout: Duration,
    pub max_lag: Duration,
    pub heartbeat_table: Option<HeartbeatTable>,
    pub maintenance_file: PathBuf,
    pub on_too_many_connections: TooManyConnections,
    /// The one source of truth for the hold: the restart hook's record only says
    /// whether a restart is in flight.
    pub hold_vip_during_restart: bool,
    /// Bounds a hold that starts before the restart hook recorded its deadline.
    pub ready_timeout: Duration,
    /// Hosts beyond the pair (`witness`); empty: isolation is not detected.
    pub witnesses: Vec<SocketAddr>,
    /// How long reaching neither the peer nor a witness makes this node isolated.
    pub isolation_timeout: Duration,
    /// Where keepalived's runs write Prometheus metrics (`metrics-file`); unset: none.
    pub metrics_file: Option<PathBuf>,
}

/// The restart hook's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartSettings {
    pub common: Common,
    /// `None`: the systemd unit of mariadb/mysql, found when needed.
    pub restart_command: Option<Vec<String>>,
    pub stop_command: Vec<String>,
    pub ready_timeout: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
}

/// The notify hook's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    pub common: Common,
    /// The same alert is raised at most once per interval.
    pub alert_interval: Duration,
    pub catchup_timeout: Duration,
    /// Open writes when catch-up times out (`open`), or stay read-only (default).
    pub open_on_catchup_timeout: bool,
    pub peer_host: Option<IpAddr>,
    pub peer_port: u16,
    pub keep_sessions_of: Vec<String>,
    /// Scheduled events follow the writer (`handle-events`, default off: it needs
    /// privileges that make the notify account as strong as any event definer).
    pub handle_events: bool,
    /// FIFO mode: only this instance's lines act (`vrrp-instance`); unset: all.
    pub vrrp_instance: Option<String>,
    /// The check's witnesses: a promotion that finds its peer gone asks them too (an
    /// isolated node must not open writes).
    pub witnesses: Vec<SocketAddr>,
    pub restart_on_fault: bool,
    /// The promotion brake: at most this many promotions per window (0: no brake).
    pub max_promotions: u32,
    pub promotion_window: Duration,
}

/// A program's settings: its option-file group, and what it takes from the values all
/// groups may carry (one file serves every program, so each accepts the others' keys).
pub trait Program: Sized + std::ops::Deref<Target = Common> {
    const GROUP: &'static str;
    fn from_values(v: Values) -> Self;

    /// Reads the option files (`[client]`, `[keepalived-mysql]`, then `GROUP`), then
    /// applies `overrides` (flag name, value) from the command line.
    fn load(choice: &FileChoice, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        Self::from_entries(&read_files(choice)?, overrides)
    }

    fn from_entries(entries: &[Entry], overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        Values::from_entries(entries, Self::GROUP, overrides).map(Self::from_values)
    }

    fn defaults() -> Self {
        Self::from_values(Values::default())
    }
}

impl Default for Common {
    fn default() -> Self {
        Values::default().common
    }
}

macro_rules! program_settings {
    ($t:ty, $group:expr, |$v:ident| $build:expr) => {
        impl Program for $t {
            const GROUP: &'static str = $group;
            fn from_values($v: Values) -> Self {
                $build
            }
        }
        impl std::ops::Deref for $t {
            type Target = Common;
            fn deref(&self) -> &Common {
                &self.common
            }
        }
        impl Default for $t {
            fn default() -> Self {
                Self::defaults()
            }
        }
    };
}

program_settings!(CheckSettings, "keepalived-mysql-check", |v| CheckSettings {
    common: v.common,
    timeout: v.timeout,
    max_lag: v.max_lag,
    heartbeat_table: v.heartbeat_table,
    maintenance_file: v.maintenance_file,
    on_too_many_connections: v.on_too_many_connections,
    hold_vip_during_restart: v.hold_vip_during_restart,
    ready_timeout: v.ready_timeout,
    witnesses: v.witnesses,
    isolation_timeout: v.isolation_timeout,
    metrics_file: v.metrics_file,
});

program_settings!(RestartSettings, "keepalived-mysql-restart", |v| {
    RestartSettings {
        common: v.common,
        restart_command: v.restart_command,
        stop_command: v.stop_command,
        ready_timeout: v.ready_timeout,
        max_restarts: v.max_restarts,
        restart_window: v.restart_window,
    }
});

program_settings!(NotifySettings, "keepalived-mysql-notify", |v| {
    NotifySettings {
        common: v.common,
        alert_interval: v.alert_interval,
        catchup_timeout: v.catchup_timeout,
        open_on_catchup_timeout: v.open_on_catchup_timeout,
        peer_host: v.peer_host,
        peer_port: v.peer_port,
        keep_sessions_of: v.keep_sessions_of,
        handle_events: v.handle_events,
        vrrp_instance: v.vrrp_instance,
        witnesses: v.witnesses.clone(),
        restart_on_fault: v.restart_on_fault,
        max_promotions: v.max_promotions,
        promotion_window: v.promotion_window,
    }
});

/// Every value the option files can give, validated and typed; programs take their part.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    common: Common,
    /// `ssl-mode` as given; unset, it follows the mysql client (see `finish`).
    ssl_mode: Option<SslMode>,
    /// MariaDB's `ssl` / `skip-ssl`, and `ssl-verify-server-cert`.
    ssl_flag: Option<bool>,
    verify_server_cert: bool,
    timeout: Duration,
    max_lag: Duration,
    heartbeat_table: Option<HeartbeatTable>,
    maintenance_file: PathBuf,
    on_too_many_connections: TooManyConnections,
    restart_command: Option<Vec<String>>,
    stop_command: Vec<String>,
    ready_timeout: Duration,
    max_restarts: u32,
    restart_window: Duration,
    hold_vip_during_restart: bool,
    alert_interval: Duration,
    catchup_timeout: Duration,
    open_on_catchup_timeout: bool,
    peer_host: Option<IpAddr>,
    peer_port: u16,
    keep_sessions_of: Vec<String>,
    handle_events: bool,
    vrrp_instance: Option<String>,
    restart_on_fault: bool,
    witnesses: Vec<SocketAddr>,
    isolation_timeout: Duration,
    metrics_file: Option<PathBuf>,
    max_promotions: u32,
    promotion_window: Duration,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            ssl_mode: None,
            ssl_flag: None,
            verify_server_cert: false,
            common: Common {
                user: None,
                password: None,
                socket: None,
                host: None,
                port: 3306,
                tls: TlsOptions::default(),
                connect_timeout: Duration::from_secs(1),
                vip: None,
                runtime_dir: PathBuf::from("/run/keepalived-mysql"),
                log_file: None,
                log_max_size: 10 << 20,
                log_keep: 5,
                syslog_facility: Some(3), // daemon
                alert_command: None,
            },
            timeout: Duration::from_secs(1),
            max_lag: Duration::from_secs(10),
            heartbeat_table: Some(HeartbeatTable {
                schema: "keepalived_mysql".into(),
                table: "heartbeat".into(),
            }),
            maintenance_file: PathBuf::from("/etc/keepalived-mysql/maintenance"),
            on_too_many_connections: TooManyConnections::Healthy,
            restart_command: None,
            stop_command: vec![
                SYSTEMCTL.into(),
                "--no-block".into(),
                "stop".into(),
                "keepalived".into(),
            ],
            ready_timeout: Duration::from_secs(60),
            max_restarts: 3,
            restart_window: Duration::from_secs(15 * 60),
            hold_vip_during_restart: false,
            alert_interval: Duration::from_secs(300),
            catchup_timeout: Duration::from_secs(30),
            open_on_catchup_timeout: false,
            peer_host: None,
            peer_port: 3306,
            keep_sessions_of: Vec::new(),
            handle_events: false,
            vrrp_instance: None,
            restart_on_fault: false,
            witnesses: Vec::new(),
            isolation_timeout: Duration::from_secs(2),
            metrics_file: None,
            max_promotions: 3,
            promotion_window: Duration::from_secs(3600),
        }
    }
}

/// Which option files to read, as the MySQL tools' `--defaults-*` flags say.
#[derive(Debug, Clone, Default)]
pub struct FileChoice {
    pub defaults_file: Option<PathBuf>,
    pub defaults_extra_file: Option<PathBuf>,
    pub no_defaults: bool,
}

impl FileChoice {
    pub fn files(&self) -> Vec<PathBuf> {
        if self.no_defaults {
            return Vec::new();
        }
        let mut files = vec![self
            .defaults_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))];
        files.extend(self.defaults_extra_file.clone());
        files
    }
}

fn read_files(choice: &FileChoice) -> Result<Vec<Entry>, ConfigError> {
    let mut entries = Vec::new();
    for f in choice.files() {
        entries.extend(optfile::read_file(&f)?);
    }
    Ok(entries)
}

/// The options our groups and `[client]` would apply, MySQL `--print-defaults` style,
/// with the password masked.
pub fn print_defaults(choice: &FileChoice, program: &str) -> Result<Vec<String>, ConfigError> {
    let mut entries = read_files(choice)?;
    for e in entries.iter_mut() {
        if normalize_key(strip_loose(&e.key)) == "password" && e.value.is_some() {
            e.value = Some("*****".into());
        }
    }
    Ok(optfile::print_defaults(
        &entries,
        &["client", COMMON_GROUP, program],
    ))
}

impl Values {
    fn from_entries(
        entries: &[Entry],
        program: &str,
        overrides: &[(&str, String)],
    ) -> Result<Values, ConfigError> {
        let mut s = Values::default();
        let groups = ["client", COMMON_GROUP, program];
        // Group order decides precedence, file order only within a group.
        for g in groups {
            for e in entries
                .iter()
                .filter(|e| optfile::group_matches(&e.group, g))
            {
                let origin = format!("{}:{}", e.file.display(), e.line);
                let loose = strip_loose(&e.key);
                let key = normalize_key(loose);
                let known = CLIENT_KEYS.contains(&key.as_str())
                    || (g != "client" && SETTING_KEYS.contains(&key.as_str()));
                if !known {
                    if g == "client" || loose.len() != e.key.len() {
                        continue;
                    }
                    return Err(ConfigError::Value {
                        origin,
                        msg: format!("unknown option '{}' in group [{}]", e.key, e.group),
                    });
                }
                s.set(&key, e.value.as_deref(), &origin)?;
            }
        }
        for (flag, value) in overrides {
            s.set(flag, Some(value), &format!("--{flag}"))?;
        }
        s.finish()?;
        // The fence's exclusion of two promotions rests on killing the other's notify
        // sessions (see keepalived-mysql-notify(8), FENCING).
        if program == NotifySettings::GROUP {
            if let Some(u) = s.common.user.as_deref() {
                if s.keep_sessions_of.iter().any(|k| k == u) {
                    return Err(ConfigError::Value {
                        origin: "keep-sessions-of".into(),
                        msg: format!(
                            "lists the notify hook's own account '{u}': a promotion's fence \
                             must be able to kill the peer's notify sessions"
                        ),
                    });
                }
            }
        }
        Ok(s)
    }

    /// Checks that need several keys at once.
    fn finish(&mut self) -> Result<(), ConfigError> {
        let bad = |msg: &str| ConfigError::Value {
            origin: "ssl options".into(),
            msg: msg.to_string(),
        };
        let tls = &mut self.common.tls;
        let has_ca = tls.ca.is_some() || tls.capath.is_some();
        // ssl-mode wins; else MariaDB's spellings; else as the mysql client: an ssl-ca
        // means VERIFY_CA, nothing means PREFERRED.
        tls.mode = self
            .ssl_mode
            .unwrap_or(match (self.ssl_flag, self.verify_server_cert) {
                (Some(false), _) => SslMode::Disabled,
                (_, true) => SslMode::VerifyIdentity,
                _ if has_ca => SslMode::VerifyCa,
                (Some(true), _) => SslMode::Required,
                _ => SslMode::Preferred,
            });
        if tls.mode.verifies() && !has_ca {
            return Err(bad(&format!(
                "ssl-mode {} needs ssl-ca or ssl-capath",
                tls.mode
            )));
        }
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(bad("ssl-cert and ssl-key go together"));
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: Option<&str>, origin: &str) -> Result<(), ConfigError> {
        let bad = |msg: String| ConfigError::Value {
            origin: origin.to_string(),
            msg,
        };
        // Switches may stand alone, as in the MySQL tools (`get-server-public-key`).
        let switch = matches!(
            key,
            "get-server-public-key" | "ssl" | "skip-ssl" | "ssl-verify-server-cert"
        );
        let Some(v) = value.or(switch.then_some("1")) else {
            return Err(bad(format!("option '{key}' needs a value")));
        };
        let path = |v: &str| -> Result<PathBuf, ConfigError> {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(bad(format!("{key} must be an absolute path, got '{v}'")))
            }
        };
        match key {
            "user" => self.common.user = Some(v.to_string()),
            "password" => self.common.password = Some(v.to_string()),
            "socket" => self.common.socket = Some(path(v)?),
            "host" => {
                self.common.host = match v {
                    "" | "localhost" => None,
                    ip => Some(ip.parse().map_err(|_| {
                        bad(format!(
                            "host must be an IP address or 'localhost' (static binary: no DNS), got '{v}'"
                        ))
                    })?),
                }
            }
            "port" => self.common.port = parse_port(key, v).map_err(bad)?,
            "ssl-mode" => {
                self.ssl_mode = Some(SslMode::parse(v).ok_or_else(|| {
                    bad(format!(
                        "ssl-mode must be one of {}, got '{v}'",
                        SslMode::NAMES.join(", ")
                    ))
                })?)
            }
            // As the mysql client takes them: a relative path is from the working
            // directory (keepalived's scripts run in /).
            "ssl-ca" => self.common.tls.ca = any_path(v),
            "ssl-capath" => self.common.tls.capath = any_path(v),
            "ssl-cert" => self.common.tls.cert = any_path(v),
            "ssl-key" => self.common.tls.key = any_path(v),
            "ssl" => self.ssl_flag = Some(parse_bool(key, v).map_err(bad)?),
            "skip-ssl" => {
                if parse_bool(key, v).map_err(bad)? {
                    self.ssl_flag = Some(false)
                }
            }
            "ssl-verify-server-cert" => {
                self.verify_server_cert = parse_bool(key, v).map_err(bad)?
            }
            "get-server-public-key" => {
                self.common.tls.get_server_public_key = parse_bool(key, v).map_err(bad)?
            }
            "server-public-key-path" => self.common.tls.server_public_key_path = any_path(v),
            "timeout" => self.timeout = parse_positive_duration(key, v).map_err(bad)?,
            "connect-timeout" => {
                self.common.connect_timeout = parse_positive_duration(key, v).map_err(bad)?
            }
            "max-lag" => self.max_lag = parse_duration(v).map_err(bad)?,
            "heartbeat-table" => self.heartbeat_table = parse_table(v).map_err(bad)?,
            "vip" => {
                self.common.vip = if v.is_empty() {
                    None
                } else {
                    let addr = v.split('/').next().unwrap_or(v);
                    Some(
                        addr.parse()
                            .map_err(|_| bad(format!("vip must be an IP address, got '{v}'")))?,
                    )
                }
            }
            "runtime-dir" => self.common.runtime_dir = path(v)?,
            "log-file" => self.common.log_file = if v.is_empty() { None } else { Some(path(v)?) },
            "log-max-size" => self.common.log_max_size = parse_size(v).map_err(bad)?,
            "log-keep" => self.common.log_keep = parse_count(key, v, 100).map_err(bad)?,
            "syslog-facility" => self.common.syslog_facility = parse_facility(v).map_err(bad)?,
            "maintenance-file" => self.maintenance_file = path(v)?,
            "metrics-file" => self.metrics_file = if v.is_empty() { None } else { Some(path(v)?) },
            "on-too-many-connections" => {
                self.on_too_many_connections = choice(
                    key,
                    v,
                    &[
                        ("healthy", TooManyConnections::Healthy),
                        ("fail", TooManyConnections::Fail),
                    ],
                )
                .map_err(bad)?
            }
            "restart-command" => self.restart_command = optional_argv(v).map_err(bad)?,
            "stop-command" => self.stop_command = parse_argv(v).map_err(bad)?,
            "alert-command" => self.common.alert_command = optional_argv(v).map_err(bad)?,
            "ready-timeout" => self.ready_timeout = parse_duration(v).map_err(bad)?,
            "restart-window" => self.restart_window = parse_duration(v).map_err(bad)?,
            "max-restarts" => self.max_restarts = parse_count(key, v, 1000).map_err(bad)?,
            "hold-vip-during-restart" => {
                self.hold_vip_during_restart = parse_bool(key, v).map_err(bad)?
            }
            "restart-on-fault" => self.restart_on_fault = parse_bool(key, v).map_err(bad)?,
            "handle-events" => self.handle_events = parse_bool(key, v).map_err(bad)?,
            "vrrp-instance" => {
                self.vrrp_instance = (!v.is_empty()).then(|| v.to_string())
            }
            "alert-interval" => self.alert_interval = parse_duration(v).map_err(bad)?,
            "catchup-timeout" => self.catchup_timeout = parse_duration(v).map_err(bad)?,
            "on-catchup-timeout" => {
                self.open_on_catchup_timeout =
                    choice(key, v, &[("stay-read-only", false), ("open", true)]).map_err(bad)?
            }
            "peer-host" => {
                self.peer_host = if v.is_empty() {
                    None
                } else {
                    Some(v.parse().map_err(|_| {
                        bad(format!(
                            "peer-host must be an IP address (static binary: no DNS), got '{v}'"
                        ))
                    })?)
                }
            }
            "peer-port" => self.peer_port = parse_port(key, v).map_err(bad)?,
            "witness" => {
                self.witnesses = v
                    .split(',')
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(|w| {
                        w.parse().map_err(|_| {
                            bad(format!(
                                "witness must be IP:PORT, comma-separated (static binary: no \
                                 DNS; IPv6 as [ADDR]:PORT), got '{w}'"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            "isolation-timeout" => self.isolation_timeout = parse_duration(v).map_err(bad)?,
            "max-promotions" => self.max_promotions = parse_count(key, v, 1000).map_err(bad)?,
            "promotion-window" => self.promotion_window = parse_duration(v).map_err(bad)?,
            "keep-sessions-of" => {
                self.keep_sessions_of = v
                    .split(',')
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            }
            _ => return Err(bad(format!("unknown option '{key}'"))),
        }
        Ok(())
    }
}

impl NotifySettings {
    /// The peer's server (`peer-host`), with the same credentials, over TCP.
    pub fn peer_login(&self) -> Option<Login<'_>> {
        Some(self.login_at(Endpoint::Tcp(self.peer_host?, self.peer_port)))
    }
}

impl Common {
    /// Socket unless `host` is set, as in the MySQL client library.
    pub fn endpoint(&self) -> Endpoint {
        match self.host {
            None => Endpoint::Socket(
                self.socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/run/mysqld/mysqld.sock")),
            ),
            Some(ip) => Endpoint::Tcp(ip, self.port),
        }
    }

    /// This node's server, with the credentials of this program's groups.
    pub fn login(&self) -> Login<'_> {
        self.login_at(self.endpoint())
    }

    pub fn login_at(&self, endpoint: Endpoint) -> Login<'_> {
        Login {
            tls: &self.tls,
            endpoint,
            user: self.user.as_deref().unwrap_or("root"),
            password: self.password.as_deref().unwrap_or(""),
        }
    }

    pub fn state_path(&self, name: &str) -> PathBuf {
        self.runtime_dir.join(name)
    }
}

/// `1500ms`, `2s`, `1m`; a bare number is seconds, as in my.cnf timeouts.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let d = match v.parse::<f64>() {
        Ok(secs) if secs >= 0.0 => Duration::try_from_secs_f64(secs).ok(),
        _ => humantime::parse_duration(v).ok(),
    }
    .ok_or_else(|| format!("'{v}' is not a duration (examples: 1500ms, 2s, 1m)"))?;
    // Deadlines are added to clocks: an absurd value must be refused here, not
    // overflow (and abort) later.
    if d > MAX_DURATION {
        return Err(format!("'{v}' is too long (at most 366d)"));
    }
    Ok(d)
}

const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A deadline-like duration: a zero one would fail every run.
fn parse_positive_duration(key: &str, v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d < Duration::from_millis(10) {
        return Err(format!("{key} must be at least 10ms, got '{v}'"));
    }
    Ok(d)
}

/// A whole number from 0 to `max`.
fn parse_count(key: &str, v: &str, max: u32) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("{key} must be 0-{max}, got '{v}'"))
}

fn parse_port(key: &str, v: &str) -> Result<u16, String> {
    v.parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{key} must be 1-65535, got '{v}'"))
}

/// One of a few named values.
fn choice<T: Copy>(key: &str, v: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("'{n}'")).collect();
            format!("{key} must be {}, got '{v}'", names.join(" or "))
        })
}

/// A path, or empty for none.
fn any_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// A command, or empty for none.
fn optional_argv(v: &str) -> Result<Option<Vec<String>>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse_argv(v).map(Some)
    }
}

/// on/off, as my.cnf booleans also accept 1/0, true/false, yes/no.
pub fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(format!("{key} must be on or off, got '{v}'")),
    }
}

/// A command as argv, split like shell words (blanks separate; '...' is literal; "..."
/// allows \" and \\) but never run through a shell. The program must be an absolute
/// path: keepalived gives scripts no PATH to rely on.
pub fn parse_argv(v: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_ascii_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed ' in command '{v}'")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unclosed \" in command '{v}'")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed \" in command '{v}'")),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    match args.first() {
        None => Err("empty command".into()),
        Some(p) if !p.starts_with('/') => Err(format!(
            "command must start with an absolute path (no shell, no PATH), got '{p}'"
        )),
        Some(_) => Ok(args),
    }
}

/// `10M`-style sizes, as in my.cnf (K, M, G, powers of 1024).
pub fn parse_size(v: &str) -> Result<u64, String> {
    let err = || format!("'{v}' is not a size (examples: 512K, 10M, 1G)");
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(err()),
            };
            (&v[..i], m)
        }
        _ => (v, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(err)
}

fn parse_table(v: &str) -> Result<Option<HeartbeatTable>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    match v.split_once('.') {
        Some((schema, table)) if ident(schema) && ident(table) => Ok(Some(HeartbeatTable {
            schema: schema.into(),
            table: table.into(),
        })),
        _ => Err(format!(
            "heartbeat-table must be schema.table (letters, digits, _), or empty to disable; got '{v}'"
        )),
    }
}

pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn parse_facility(v: &str) -> Result<Option<u8>, String> {
    if v == "none" {
        return Ok(None);
    }
    FACILITIES
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, c)| Some(*c))
        .ok_or_else(|| {
            format!("syslog-facility must be daemon, user, local0..local7, ... or none; got '{v}'")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        // Huge values are refused, never overflow.
        for v in [
            "1e30",
            "1e400",
            "NaN",
            "inf",
            "99999999999999999999d",
            "367d",
            "10000y",
        ] {
            assert!(parse_duration(v).is_err(), "{v}");
        }
        assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION);
        assert!(parse_positive_duration("timeout", "0").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("10X").is_err());
    }

    /// Every key the groups accept has a parser (a key listed without one would pass
    /// the group check and then fail as "unknown").
    #[test]
    fn every_known_key_parses() {
        let sample = |k: &str| match k {
            "user" | "password" | "keep-sessions-of" | "vrrp-instance" => "x",
            "socket"
            | "runtime-dir"
            | "log-file"
            | "maintenance-file"
            | "metrics-file"
            | "ssl-ca"
            | "ssl-capath"
            | "ssl-cert"
            | "ssl-key"
            | "server-public-key-path" => "/x",
            "ssl-mode" => "required",
            "get-server-public-key" | "ssl" | "skip-ssl" | "ssl-verify-server-cert" => "on",
            "host" | "vip" | "peer-host" => "192.0.2.1",
            "witness" => "192.0.2.1:22, [2001:db8::1]:22",
            "port" | "peer-port" | "log-keep" | "max-restarts" | "max-promotions" => "3",
            "heartbeat-table" => "a.b",
            "log-max-size" => "1M",
            "syslog-facility" => "daemon",
            "on-too-many-connections" => "fail",
            "on-catchup-timeout" => "open",
            "hold-vip-during-restart" | "restart-on-fault" | "handle-events" => "on",
            "restart-command" | "stop-command" | "alert-command" => "/bin/true",
            _ => "2s",
        };
        for k in CLIENT_KEYS.iter().chain(SETTING_KEYS) {
            let mut s = Values::default();
            assert_eq!(s.set(k, Some(sample(k)), "test"), Ok(()), "{k}");
        }
    }

    #[test]
    fn argv() {
        assert_eq!(
            parse_argv("/usr/bin/docker restart mysql").unwrap(),
            ["/usr/bin/docker", "restart", "mysql"]
        );
        assert_eq!(
            parse_argv(r#"/bin/x 'a b' "c \"d\"" e\f"#).unwrap(),
            ["/bin/x", "a b", "c \"d\"", "e\\f"]
        );
        assert_eq!(parse_argv("/bin/x ''").unwrap(), ["/bin/x", ""]);
        assert!(parse_argv("docker restart").is_err());
        assert!(parse_argv("/bin/x 'open").is_err());
        assert!(parse_argv("  ").is_err());
    }

    #[test]
    fn tables() {
        assert_eq!(parse_table("").unwrap(), None);
        assert_eq!(parse_table("a.b").unwrap().unwrap().qualified(), "`a`.`b`");
        assert!(parse_table("a").is_err());
        assert!(parse_table("a.b`; DROP").is_err());
    }
}
