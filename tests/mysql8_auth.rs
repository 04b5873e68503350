//! MySQL 8's `caching_sha2_password` exchanges, which no server on these machines can
//! run: a scripted server performs them as documented (fast path; "perform full
//! authentication" over TLS, and over plain TCP with the RSA public-key request or a
//! key file), and checks what the client sent: the right scramble, the password only
//! inside TLS, an RSA ciphertext that decrypts to it. Plus the auth switch to it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use keepalived_mysql::connection::classify;
use keepalived_mysql::tls::{SslMode, TlsOptions};
use keepalived_mysql::verdict::Class;
use keepalived_mysql::wire::{Conn, Credentials, Target};
use rsa::pkcs8::DecodePrivateKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "s3cret-pw";
const CLIENT_SSL: u32 = 1 << 11;
const BASE_CAPS: u32 = 1 | 4 | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 17) | (1 << 19);
const SCRAMBLE: &[u8; 20] = b"abcdefghijklmnopqrst";
const SWITCH_SCRAMBLE: &[u8; 20] = b"ZYXWVUTSRQPONMLKJIHG";

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

struct Wire {
    s: Box<dyn Io>,
    seq: u8,
}

impl Wire {
    fn send(&mut self, payload: &[u8]) {
        let len = (payload.len() as u32).to_le_bytes();
        let mut out = vec![len[0], len[1], len[2], self.seq];
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let _ = self.s.write_all(&out);
        let _ = self.s.flush();
    }
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut hdr = [0u8; 4];
        self.s.read_exact(&mut hdr).ok()?;
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], 0]) as usize;
        self.seq = hdr[3].wrapping_add(1);
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).ok()?;
        Some(body)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// The account is in the server's cache: the scramble alone logs in.
    Warm,
    /// After a restart: full authentication.
    Cold,
}

struct Script {
    tls: bool,
    cache: Cache,
    /// Greet with mysql_native_password, then switch the client to caching_sha2.
    switch: bool,
}

fn sha2_token(scramble: &[u8]) -> Vec<u8> {
    let h1 = Sha256::digest(PASSWORD.as_bytes());
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(scramble);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

fn greeting(caps: u32, plugin: &str) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"8.0.36\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(&SCRAMBLE[..8]);
    p.push(0);
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(255);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(&SCRAMBLE[8..]);
    p.push(0);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// (auth data, plugin) of a HandshakeResponse41.
fn parse_response(p: &[u8]) -> (Vec<u8>, String) {
    let rest = &p[32..];
    let user_end = rest.iter().position(|b| *b == 0).unwrap();
    let rest = &rest[user_end + 1..];
    let n = rest[0] as usize;
    let token = rest[1..1 + n].to_vec();
    let plugin = &rest[1 + n..];
    let end = plugin.iter().position(|b| *b == 0).unwrap_or(plugin.len());
    (token, String::from_utf8_lossy(&plugin[..end]).into_owned())
}

/// Serves one login as `script` says and reports, step by step, what the client did.
fn server(script: Script, pki: &Pki) -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let rsa_key =
        rsa::RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(&pki.rsa_private).unwrap())
            .unwrap();
    let rsa_pub = std::fs::read(&pki.rsa_public).unwrap();
    thread::spawn(move || {
        let (tcp, _) = l.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let say = |s: &str| {
            let _ = tx.send(s.to_string());
        };
        let caps = BASE_CAPS | if script.tls { CLIENT_SSL } else { 0 };
        let first = if script.switch {
            "mysql_native_password"
        } else {
            "caching_sha2_password"
        };
        let mut w = Wire {
            s: Box::new(tcp.try_clone().unwrap()),
            seq: 0,
        };
        w.send(&greeting(caps, first));
        let Some(mut resp) = w.recv() else {
            return say("closed");
        };
        let client_caps = u32::from_le_bytes(resp[..4].try_into().unwrap());
        if client_caps & CLIENT_SSL != 0 {
            say("ssl-request");
            let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
            let seq = w.seq;
            w = Wire {
                s: Box::new(rustls::StreamOwned::new(conn, tcp)),
                seq,
            };
            let Some(r) = w.recv() else {
                return say("closed in TLS");
            };
            say("tls");
            resp = r;
        }
        let (mut token, plugin) = parse_response(&resp);
        let mut scramble: &[u8] = SCRAMBLE;
        if script.switch {
            assert_eq!(plugin, "mysql_native_password");
            let mut sw = vec![0xfe];
            sw.extend_from_slice(b"caching_sha2_password\0");
            sw.extend_from_slice(SWITCH_SCRAMBLE);
            sw.push(0);
            w.send(&sw);
            let Some(t) = w.recv() else {
                return say("closed");
            };
            say("switched");
            token = t;
            scramble = SWITCH_SCRAMBLE;
        }
        if token != sha2_token(scramble) {
            say("bad scramble");
            return w.send(b"\xff\x15\x04#28000Access denied");
        }
        say("scramble ok");
        if script.cache == Cache::Warm {
            w.send(&[0x01, 0x03]);
            return w.send(&[0, 0, 0, 2, 0, 0, 0]);
        }
        w.send(&[0x01, 0x04]);
        let Some(mut p) = w.recv() else {
            return say("closed");
        };
        if p == [0x02] {
            say("key request");
            let mut k = vec![0x01];
            k.extend_from_slice(&rsa_pub);
            w.send(&k);
            let Some(e) = w.recv() else {
                return say("closed");
            };
            p = e;
        }
        let mut want = PASSWORD.as_bytes().to_vec();
        want.push(0);
        let ok = if p == want {
            say(if script.tls {
                "password in TLS"
            } else {
                "PASSWORD IN CLEAR"
            });
            script.tls
        } else {
            match rsa_key.decrypt(rsa::Oaep::new::<sha1::Sha1>(), &p) {
                Ok(mut d) => {
                    for (i, b) in d.iter_mut().enumerate() {
                        *b ^= scramble[i % scramble.len()];
                    }
                    say(if d == want {
                        "rsa ok"
                    } else {
                        "rsa wrong password"
                    });
                    d == want
                }
                Err(_) => {
                    say("not rsa");
                    false
                }
            }
        };
        if ok {
            w.send(&[0, 0, 0, 2, 0, 0, 0]);
        } else {
            w.send(b"\xff\x15\x04#28000Access denied");
        }
    });
    (addr, rx)
}

fn login(addr: SocketAddr, tls: TlsOptions) -> Result<Conn, keepalived_mysql::wire::WireError> {
    let creds = Credentials {
        user: "app",
        password: PASSWORD,
        tls: &tls,
    };
    Conn::connect(Target::Tcp(addr), &creds, Duration::from_secs(5))
}

fn steps(rx: mpsc::Receiver<String>) -> Vec<String> {
    rx.iter().collect()
}

#[test]
fn fast_path_with_a_warm_cache() {
    let pki = pki();
    let (addr, rx) = server(
        Script {
            tls: false,
            cache: Cache::Warm,
            switch: false,
        },
        &pki,
    );
    login(addr, TlsOptions::default()).unwrap();
    assert_eq!(steps(rx), ["scramble ok"]);
}

#[test]
fn full_authentication_inside_tls() {
    let pki = pki();
    let (addr, rx) = server(
        Script {
            tls: true,
            cache: Cache::Cold,
            switch: false,
        },
        &pki,
    );
    let tls = TlsOptions {
        mode: SslMode::VerifyIdentity,
        ca: Some(pki.ca.clone()),
        ..TlsOptions::default()
    };
    login(addr, tls).unwrap();
    assert_eq!(
        steps(rx),
        ["ssl-request", "tls", "scramble ok", "password in TLS"]
    );
}

#[test]
fn full_authentication_with_the_servers_rsa_key() {
    let pki = pki();
    // Requested from the server (get-server-public-key).
    let (addr, rx) = server(
        Script {
            tls: false,
            cache: Cache::Cold,
            switch: false,
        },
        &pki,
    );
    let tls = TlsOptions {
        get_server_public_key: true,
        ..TlsOptions::default()
    };
    login(addr, tls).unwrap();
    assert_eq!(steps(rx), ["scramble ok", "key request", "rsa ok"]);

    // From a file (server-public-key-path): no request.
    let (addr, rx) = server(
        Script {
            tls: false,
            cache: Cache::Cold,
            switch: false,
        },
        &pki,
    );
    let tls = TlsOptions {
        server_public_key_path: Some(pki.rsa_public.clone()),
        ..TlsOptions::default()
    };
    login(addr, tls).unwrap();
    assert_eq!(steps(rx), ["scramble ok", "rsa ok"]);
}

#[test]
fn never_the_password_in_clear_over_plain_tcp() {
    let pki = pki();
    let (addr, rx) = server(
        Script {
            tls: false,
            cache: Cache::Cold,
            switch: false,
        },
        &pki,
    );
    let e = match login(addr, TlsOptions::default()) {
        Ok(_) => panic!("logged in without TLS or RSA"),
        Err(e) => e,
    };
    let c = classify(&e);
    assert_eq!(c.class, Class::Config, "{c:?}");
    assert!(c.msg.contains("get-server-public-key"), "{}", c.msg);
    let seen = steps(rx);
    assert!(!seen.iter().any(|s| s.contains("CLEAR")), "{seen:?}");
    assert_eq!(seen, ["scramble ok", "closed"]);
}

#[test]
fn auth_switch_to_caching_sha2_then_rsa() {
    let pki = pki();
    let (addr, rx) = server(
        Script {
            tls: false,
            cache: Cache::Cold,
            switch: true,
        },
        &pki,
    );
    let tls = TlsOptions {
        get_server_public_key: true,
        ..TlsOptions::default()
    };
    login(addr, tls).unwrap();
    assert_eq!(
        steps(rx),
        ["switched", "scramble ok", "key request", "rsa ok"]
    );
}

#[test]
fn required_tls_against_a_server_without_it_is_a_tls_error() {
    let pki = pki();
    let (addr, _rx) = server(
        Script {
            tls: false,
            cache: Cache::Warm,
            switch: false,
        },
        &pki,
    );
    let tls = TlsOptions {
        mode: SslMode::Required,
        ..TlsOptions::default()
    };
    let e = match login(addr, tls) {
        Ok(_) => panic!("REQUIRED accepted a server without TLS"),
        Err(e) => e,
    };
    let c = classify(&e);
    assert_eq!(c.class, Class::Tls, "{c:?}");
    assert!(c.msg.contains("does not offer TLS"), "{}", c.msg);
}
