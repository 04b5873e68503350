//! TLS against real MariaDB servers that require it (require_secure_transport=ON), with
//! a CA and certificates the test makes with openssl: the check, the restart hook's
//! probe and the notify hook's peer wait, in each ssl-mode; a wrong CA and a disabled
//! TLS fail with their own clear error, never as "down".

mod common;

use std::time::Duration;

use common::*;
use keepalived_mysql::config::{CheckSettings, Endpoint, Program};
use keepalived_mysql::tls::{SslMode, TlsOptions};

/// A server that accepts TCP logins only over TLS (its socket stays open to root).
fn tls_server(id: u32, pki: &Pki) -> Mariadb {
    Mariadb::start_with(
        id,
        &[
            &format!("--ssl-ca={}", pki.ca.display()),
            &format!("--ssl-cert={}", pki.cert.display()),
            &format!("--ssl-key={}", pki.key.display()),
            "--require-secure-transport=ON",
        ],
    )
}

/// A node whose programs reach `db` over TCP with `tls` lines in [client].
fn tcp_node(db: &Mariadb, tls: &str) -> NodeConfig {
    NodeConfig::new(
        db,
        true,
        &format!("host = 127.0.0.1\nport = {}\n{tls}", db.port),
    )
}

#[test]
fn check_over_tls_in_each_mode_and_clear_errors_otherwise() {
    let pki = pki();
    let db = tls_server(1, &pki);
    db.exec("SET GLOBAL read_only = 0");
    let ca = pki.ca.display().to_string();
    for (mode, extra) in [
        ("default (PREFERRED)", String::new()),
        ("REQUIRED", "ssl-mode = REQUIRED\n".to_string()),
        (
            "VERIFY_CA",
            format!("ssl-mode = VERIFY_CA\nssl-ca = {ca}\n"),
        ),
        ("ssl-ca alone (VERIFY_CA)", format!("ssl-ca = {ca}\n")),
        (
            "VERIFY_IDENTITY",
            format!("ssl-mode = verify_identity\nssl-ca = {ca}\n"),
        ),
    ] {
        let node = tcp_node(&db, &extra);
        let r = node.check(&["--format", "text"]);
        assert_eq!(r.code, 0, "{mode}: {}", r.stdout);
    }

    // The connection really is encrypted, and verified against our CA.
    let node = tcp_node(&db, &format!("ssl-ca = {ca}\n"));
    let choice = keepalived_mysql::config::FileChoice {
        defaults_file: Some(node.cnf.clone()),
        ..Default::default()
    };
    let s = CheckSettings::load(&choice, &[]).unwrap();
    assert_eq!(
        s.tls.mode,
        SslMode::VerifyCa,
        "ssl-ca alone means VERIFY_CA"
    );
    let mut c = s
        .login_at(Endpoint::Tcp("127.0.0.1".parse().unwrap(), db.port))
        .connect(Duration::from_secs(2))
        .unwrap();
    let v = c.query("SHOW SESSION STATUS LIKE 'Ssl_version'").unwrap();
    assert!(
        v.get(0, "Value").is_some_and(|v| v.starts_with("TLSv1.")),
        "{v:?}"
    );

    // A certificate from another CA: its own class and exit code, never "down".
    let node = tcp_node(
        &db,
        &format!(
            "ssl-mode = VERIFY_CA\nssl-ca = {}\n",
            pki.wrong_ca.display()
        ),
    );
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 20, "{}", r.stdout);
    assert!(
        r.stdout.contains("TLS") && r.stdout.contains("certificate"),
        "{}",
        r.stdout
    );

    // TLS switched off against a server that requires it: MariaDB says "access
    // denied" (MySQL has its own error, mapped to exit 20); we add why it may be.
    let node = tcp_node(&db, "ssl-mode = DISABLED\n");
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 12, "{}", r.stdout);
    assert!(r.stdout.contains("ssl-mode is DISABLED"), "{}", r.stdout);

    // A client certificate the server does not trust: TLS 1.3 tells only after the
    // handshake, and that must still be a TLS error, never "down".
    let node = tcp_node(
        &db,
        &format!(
            "ssl-mode = VERIFY_CA\nssl-ca = {ca}\nssl-cert = {}\nssl-key = {}\n",
            pki.stranger_cert.display(),
            pki.stranger_key.display()
        ),
    );
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 20, "{}", r.stdout);
    // One it trusts, and a CA directory instead of a file.
    let cadir = tempfile::tempdir().unwrap();
    std::fs::copy(&pki.ca, cadir.path().join("ca.pem")).unwrap();
    let node = tcp_node(
        &db,
        &format!(
            "ssl-capath = {}\nssl-cert = {}\nssl-key = {}\n",
            cadir.path().display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    );
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // VERIFY_CA without a CA is a configuration error at load, naming the problem.
    let node = tcp_node(&db, "ssl-mode = VERIFY_CA\n");
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("needs ssl-ca or ssl-capath"),
        "{}",
        r.stderr
    );
}

/// VERIFY_CA checks the chain only; VERIFY_IDENTITY the name too (our hosts are IPs).
#[test]
fn verify_identity_needs_the_address_in_the_certificate() {
    let pki = pki();
    let db = Mariadb::start_with(
        1,
        &[
            &format!("--ssl-ca={}", pki.ca.display()),
            &format!("--ssl-cert={}", pki.noip_cert.display()),
            &format!("--ssl-key={}", pki.noip_key.display()),
        ],
    );
    db.exec("SET GLOBAL read_only = 0");
    let ca = pki.ca.display().to_string();
    let node = tcp_node(&db, &format!("ssl-mode = VERIFY_CA\nssl-ca = {ca}\n"));
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 0, "VERIFY_CA ignores the name: {}", r.stdout);
    let node = tcp_node(&db, &format!("ssl-mode = VERIFY_IDENTITY\nssl-ca = {ca}\n"));
    let r = node.check(&["--format", "text"]);
    assert_eq!(r.code, 20, "{}", r.stdout);
    assert!(r.stdout.contains("not valid for name"), "{}", r.stdout);
}

#[test]
fn tls_is_never_tried_on_the_socket() {
    let pki = pki();
    let db = tls_server(1, &pki);
    db.exec("SET GLOBAL read_only = 0");
    // VERIFY_IDENTITY with a CA that signed nothing here: harmless on the socket.
    let node = NodeConfig::new(
        &db,
        true,
        &format!(
            "ssl-mode = VERIFY_IDENTITY\nssl-ca = {}\n",
            pki.wrong_ca.display()
        ),
    );
    assert_eq!(node.check(&[]).code, 0, "{}", node.log());
}

#[test]
fn restart_probe_and_notify_peer_wait_over_tls() {
    let pki = pki();
    let ca = pki.ca.display().to_string();
    let a = Mariadb::start(1);
    let b = tls_server(2, &pki);
    // a fetches from b over TLS (b requires it), b from a in clear.
    a.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='replpw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
         MASTER_SSL=1, MASTER_SSL_CA='{ca}'; START SLAVE",
        b.port
    ));
    b.replicate_from(&a);
    a.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));

    // The restart hook's liveness probe over TLS: serving, nothing restarted.
    let nb = tcp_node(&b, &format!("ssl-mode = VERIFY_CA\nssl-ca = {ca}\n"));
    let r = nb.restart(&[]);
    assert_eq!(r.code, 0, "{r:?} {}", nb.log());
    // With TLS off the server refuses: alive, so never restarted, and logged as such.
    let off = tcp_node(&b, "ssl-mode = DISABLED\n");
    let script = b.restart_script(0, false);
    let r = off.restart(&[&format!("--restart-command={}", script.display())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(b.restarts(), 0, "a refusing server is alive");
    assert!(off.log().contains("ssl-mode is DISABLED"), "{}", off.log());

    // Promotion of a with b as its peer over TLS: it waits for b's position.
    b.exec(
        "SET GLOBAL read_only = 0; CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)",
    );
    b.exec("INSERT INTO app.t VALUES (1), (2), (3); SET GLOBAL read_only = 1");
    let notify = |tls: &str| {
        NodeConfig::new(
            &a,
            true,
            &format!(
                "[keepalived-mysql-notify]\nuser = {NOTIFY_USER}\npassword = {NOTIFY_PASS}\n\
                 peer-host = 127.0.0.1\npeer-port = {}\ncatchup-timeout = 5s\n{tls}",
                b.port
            ),
        )
    };
    let na = notify(&format!("ssl-mode = VERIFY_CA\nssl-ca = {ca}\n"));
    let r = na.notify(&["master"]);
    assert_eq!(r.code, 0, "{r:?} {}", na.log());
    assert_eq!(a.value("SELECT COUNT(*) FROM app.t").as_deref(), Some("3"));
    assert!(
        na.log()
            .contains(&format!("peer 127.0.0.1:{}'s position", b.port))
            && na.log().contains("applied here after"),
        "waited for the peer over TLS: {}",
        na.log()
    );
    assert_eq!(a.value("SELECT @@read_only").as_deref(), Some("0"));

    // The peer's certificate is not from our CA: it answers but refuses us, so the
    // promotion does not open writes on a skipped wait, and says why.
    a.exec("SET GLOBAL read_only = 1");
    let na = notify(&format!(
        "ssl-mode = VERIFY_CA\nssl-ca = {}\n",
        pki.wrong_ca.display()
    ));
    let r = na.notify(&["master"]);
    assert_eq!(r.code, 30, "stayed read-only: {r:?} {}", na.log());
    assert_eq!(a.value("SELECT @@read_only").as_deref(), Some("1"));
    assert!(na.log().contains("TLS"), "{}", na.log());
}

/// ssl-mode values and the TLS keys in [client], as the mysql client reads them.
#[test]
fn tls_keys_load_from_client_group() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("my.cnf");
    write_private(
        &f,
        "[client]\nssl-mode = required\nssl-cert = /c.pem\nssl-key = /k.pem\n\
         get-server-public-key = ON\nserver-public-key-path = /pub.pem\n",
    );
    let choice = keepalived_mysql::config::FileChoice {
        defaults_file: Some(f.clone()),
        ..Default::default()
    };
    let s = CheckSettings::load(&choice, &[]).unwrap();
    assert_eq!(
        s.tls,
        TlsOptions {
            mode: SslMode::Required,
            ca: None,
            capath: None,
            cert: Some("/c.pem".into()),
            key: Some("/k.pem".into()),
            get_server_public_key: true,
            server_public_key_path: Some("/pub.pem".into()),
        }
    );
    // As the MySQL tools: switches without a value, relative paths, MariaDB spellings.
    write_private(
        &f,
        "[client]\nget-server-public-key\nssl-ca = ca.pem\nssl-verify-server-cert\n",
    );
    let s = CheckSettings::load(&choice, &[]).unwrap();
    assert!(s.tls.get_server_public_key);
    assert_eq!(s.tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(s.tls.mode, SslMode::VerifyIdentity);
    write_private(&f, "[client]\nskip-ssl\nssl-ca = /ca.pem\n");
    assert_eq!(
        CheckSettings::load(&choice, &[]).unwrap().tls.mode,
        SslMode::Disabled
    );
    write_private(&f, "[client]\nssl-cert = /c.pem\n");
    let e = CheckSettings::load(&choice, &[]).unwrap_err().to_string();
    assert!(e.contains("ssl-cert and ssl-key go together"), "{e}");
    write_private(&f, "[client]\nssl-mode = sometimes\n");
    let e = CheckSettings::load(&choice, &[]).unwrap_err().to_string();
    assert!(e.contains(":2: ssl-mode must be one of DISABLED"), "{e}");
}
