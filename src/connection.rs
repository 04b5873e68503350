//! The connection to a server, for every program: the endpoint, connecting and logging
//! in within a deadline, what an error means (its class: down, hung, refused,
//! misconfigured, bad reply), and the server's dialect, decided once from the handshake.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::config::Endpoint;
use crate::dialect::Dialect;
use crate::tls::TlsOptions;
use crate::verdict::Class;
use crate::wire::{Conn, Credentials, Target, WireError};

/// A failure to reach or use a server, classified.
#[derive(Debug, Clone)]
pub struct ConnError {
    pub class: Class,
    pub msg: String,
}

impl ConnError {
    pub fn new(class: Class, msg: impl Into<String>) -> Self {
        ConnError {
            class,
            msg: msg.into(),
        }
    }
}

/// Server error codes we branch on.
const ER_CON_COUNT: u16 = 1040;
const ER_TOO_MANY_USER_CONNECTIONS: u16 = 1203;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
/// MySQL's "Connections using insecure transport are prohibited" (MariaDB answers a
/// plain login to such a server with access denied; the wire layer adds a hint then).
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// "Cannot connect" means down; a refusal, a setup problem or a bad reply means alive.
pub fn classify(e: &WireError) -> ConnError {
    match e {
        WireError::Server { code, msg } => match *code {
            ER_CON_COUNT | ER_TOO_MANY_USER_CONNECTIONS => {
                ConnError::new(Class::Saturated, format!("too many connections: {msg}"))
            }
            ER_ACCESS_DENIED | ER_DBACCESS_DENIED | ER_ACCESS_DENIED_NO_PASSWORD => ConnError::new(
                Class::AccessDenied,
                format!("access denied (check user/password in the config file): {msg}"),
            ),
            ER_SECURE_TRANSPORT_REQUIRED => ConnError::new(
                Class::Tls,
                format!("the server requires TLS and ssl-mode is DISABLED: {msg}"),
            ),
            code => ConnError::new(Class::ServerError, format!("server error {code}: {msg}")),
        },
        e if e.is_timeout() => ConnError::new(Class::Timeout, format!("no answer in time: {e}")),
        // Our user may not reach the socket: a setup error, not evidence of a dead server.
        WireError::Io {
            err,
            connected: false,
        } if err.kind() == std::io::ErrorKind::PermissionDenied => ConnError::new(
            Class::Config,
            format!(
                "{e} (running as {}): the socket or its directory is closed to this user",
                crate::files::whoami()
            ),
        ),
        WireError::Io { .. } => ConnError::new(Class::Down, e.to_string()),
        // We cannot log in the way the account demands: our setup, not the server.
        WireError::Unsupported(m) => ConnError::new(Class::Config, m.clone()),
        // Something answers, but not as a server should: alive, never "down".
        WireError::Protocol(_) => ConnError::new(Class::Protocol, e.to_string()),
        WireError::Tls(_) => ConnError::new(Class::Tls, e.to_string()),
    }
}

/// A logged-in connection and the dialect its handshake announced.
pub struct Connection {
    conn: Conn,
    pub dialect: Dialect,
}

impl Deref for Connection {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Who to log in as, where, and how a TCP connection is secured.
pub struct Login<'a> {
    pub endpoint: Endpoint,
    pub user: &'a str,
    pub password: &'a str,
    pub tls: &'a TlsOptions,
}

impl Login<'_> {
    /// Connects and logs in within `timeout`.
    pub fn connect(&self, timeout: Duration) -> Result<Connection, ConnError> {
        let target = match &self.endpoint {
            Endpoint::Socket(p) => Target::Socket(p),
            Endpoint::Tcp(ip, port) => Target::Tcp(SocketAddr::new(*ip, *port)),
        };
        let creds = Credentials {
            user: self.user,
            password: self.password,
            tls: self.tls,
        };
        let conn = Conn::connect(target, &creds, timeout).map_err(|e| {
            // Every error says which endpoint it came from.
            let mut c = classify(&e);
            // EACCES on a TCP connect is the local firewall (a fenced peer), not a
            // socket closed to our user: unreachable.
            if let (
                Endpoint::Tcp(..),
                WireError::Io {
                    err,
                    connected: false,
                },
            ) = (&self.endpoint, &e)
            {
                if err.kind() == std::io::ErrorKind::PermissionDenied {
                    c.class = Class::Down;
                }
            }
            c.msg = match c.msg.strip_prefix("cannot connect: ") {
                Some(rest) => format!("cannot connect to {}: {rest}", self.endpoint),
                None => format!("{}: {}", self.endpoint, c.msg),
            };
            c
        })?;
        let dialect = Dialect::from_version(&conn.server_version);
        Ok(Connection { conn, dialect })
    }
}
