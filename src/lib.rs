//! keepalived-mysql: shared library of the check, restart and notify binaries that
//! stock keepalived runs for a MySQL/MariaDB dual-master pair.

pub mod alert;
pub mod check;
pub mod cli;
pub mod command;
pub mod config;
pub mod connection;
pub mod dialect;
pub mod events;
pub mod fifo;
pub mod files;
pub mod gtid;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod optfile;
pub mod probe;
pub mod reach;
pub mod rejoin;
pub mod restart;
pub mod role;
pub mod state;
pub mod tls;
pub mod verdict;
pub mod wire;

use config::ConfigError;
use verdict::Class;

/// Exit class for a configuration problem: a password open to others gets its own code.
pub fn config_error_class(e: &ConfigError) -> Class {
    if e.is_insecure() {
        Class::Insecure
    } else {
        Class::Config
    }
}
