//! Protocol edge cases that a real server will not produce on demand, against a scripted
//! server (a test double of mysqld speaking the documented wire format): a reply that
//! arrives after the client's read timeout, and a reply that breaks the protocol.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread::{self, sleep};
use std::time::Duration;

use keepalived_mysql::connection;
use keepalived_mysql::verdict::Class;
use keepalived_mysql::wire::{Conn, Credentials, Target, WireError};

/// User "u" without a password, PREFERRED TLS (the scripted server offers none).
fn plain() -> Credentials<'static> {
    Credentials {
        user: "u",
        password: "",
        tls: Box::leak(Box::default()),
    }
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], seq];
    out.extend_from_slice(payload);
    out
}

fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).ok()?;
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], 0]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn lenenc_str(out: &mut Vec<u8>, v: &[u8]) {
    out.push(v.len() as u8);
    out.extend_from_slice(v);
}

fn handshake(protocol: u8) -> Vec<u8> {
    const CAPS: u32 = 1 | 4 | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 17) | (1 << 19);
    let mut p = vec![protocol];
    p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-double\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(CAPS as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&((CAPS >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

/// One-column result set whose single value is `v`.
fn result(v: &[u8]) -> Vec<u8> {
    let mut out = packet(1, &[1]);
    let mut def = Vec::new();
    for s in [&b"def"[..], b"", b"", b"", b"v", b"v"] {
        lenenc_str(&mut def, s);
    }
    def.extend_from_slice(&[0x0c, 45, 0, 0, 1, 0, 0, 253, 0, 0, 0, 0, 0]);
    out.extend(packet(2, &def));
    out.extend(packet(3, &[0xfe, 0, 0, 2, 0]));
    let mut row = Vec::new();
    lenenc_str(&mut row, v);
    out.extend(packet(4, &row));
    out.extend(packet(5, &[0xfe, 0, 0, 2, 0]));
    out
}

/// Serves every connection: handshake (protocol `protocol`), OK for any login, then
/// each query is answered with its own text as the value; a query containing SLOW is
/// answered only after `delay`.
fn scripted_server(protocol: u8, delay: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                s.write_all(&packet(0, &handshake(protocol))).unwrap();
                if read_packet(&mut s).is_none() {
                    return;
                }
                let _ = s.write_all(&packet(2, &[0, 0, 0, 2, 0, 0, 0]));
                while let Some(q) = read_packet(&mut s) {
                    if q.first() != Some(&0x03) {
                        return;
                    }
                    let sql = q[1..].to_vec();
                    if sql.windows(4).any(|w| w == b"SLOW") {
                        sleep(delay);
                    }
                    if s.write_all(&result(&sql)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_late_reply_is_never_taken_for_the_next_statements() {
    let addr = scripted_server(10, Duration::from_millis(400));
    let mut c = Conn::connect(Target::Tcp(addr), &plain(), Duration::from_millis(200)).unwrap();
    assert_eq!(
        c.query("SELECT 'fast'").unwrap().rows[0][0].as_deref(),
        Some("SELECT 'fast'")
    );
    let e = c.query("SELECT 'SLOW one'").unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // The late reply to the slow statement arrives while the next one waits: it must
    // not be read as that statement's answer.
    sleep(Duration::from_millis(100));
    match c.query("SELECT 'two'") {
        Ok(r) => panic!("the next statement got {:?}", r.rows),
        Err(e) => assert!(c.is_broken(), "{e}"),
    }
    // A new connection gets its own reply.
    let mut c = Conn::connect(Target::Tcp(addr), &plain(), Duration::from_millis(200)).unwrap();
    assert_eq!(
        c.query("SELECT 'three'").unwrap().rows[0][0].as_deref(),
        Some("SELECT 'three'")
    );
}

#[test]
fn a_malformed_reply_is_its_own_class() {
    let addr = scripted_server(9, Duration::ZERO);
    let e = match Conn::connect(Target::Tcp(addr), &plain(), Duration::from_millis(500)) {
        Ok(_) => panic!("protocol 9 accepted"),
        Err(e) => e,
    };
    assert!(matches!(e, WireError::Protocol(_)), "{e:?}");
    assert_eq!(connection::classify(&e).class, Class::Protocol);

    // The check says so with its own exit code: alive but not answering as a server.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PathBuf::from(env!("CARGO_BIN_EXE_keepalived-mysql-check")))
        .args([
            "--no-defaults",
            "--host",
            "127.0.0.1",
            "--syslog-facility",
            "none",
        ])
        .arg(format!("--port={}", addr.port()))
        .arg(format!("--runtime-dir={}", dir.path().display()))
        .arg(format!(
            "--maintenance-file={}",
            dir.path().join("m").display()
        ))
        .args(["--format", "text"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(19), "{text}");
    assert!(text.contains("bad reply from server"), "{text}");
}
