//! Test harness: real mariadbd instances in temporary datadirs, on loopback ports and
//! their own sockets, paired as dual masters with GTID replication.
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};
use tempfile::TempDir;

pub const MONITOR_USER: &str = "monitor";
pub const MONITOR_PASS: &str = "mon#pw;1";
pub const NOTIFY_USER: &str = "notifier";
pub const NOTIFY_PASS: &str = "notify-pw";
pub const APP_USER: &str = "app";
pub const APP_PASS: &str = "apppw";

pub fn check_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keepalived-mysql-check"))
}

fn sbin(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install mariadb-server (see .ci/run)");
}

/// One pristine datadir per test run, copied for every instance: mariadb-install-db
/// takes seconds, a copy milliseconds. Shared by the test binaries through a lock.
fn template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join("mariadb-template-v1");
        let lock = File::create(base.join("mariadb-template.lock")).unwrap();
        lock.lock().unwrap();
        if !dir.join("mysql").exists() {
            let staging = base.join(format!("mariadb-template.{}", std::process::id()));
            let tmp = base.join(format!("mariadb-template-tmp.{}", std::process::id()));
            let _ = fs::remove_dir_all(&staging);
            fs::create_dir_all(&staging).unwrap();
            fs::create_dir_all(&tmp).unwrap();
            let out = Command::new(sbin("mariadb-install-db"))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", staging.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs::rename(&staging, &dir).unwrap();
            let _ = fs::remove_dir_all(&tmp);
        }
        dir
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Mariadb {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub port: u16,
    pub server_id: u32,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl Mariadb {
    pub fn start(server_id: u32) -> Mariadb {
        Self::start_with(server_id, &[])
    }

    pub fn start_with(server_id: u32, extra: &[&str]) -> Mariadb {
        let dir = tempfile::Builder::new()
            .prefix("kmysql-db")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let st = Command::new("cp")
            .arg("-a")
            .arg(template())
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success());
        // A private tmpdir: a starting mariadbd deletes every #sql* file in its tmpdir,
        // which with a shared /tmp breaks the temporary tables of the other instances.
        fs::create_dir(dir.path().join("tmp")).unwrap();
        let mut m = Mariadb {
            socket: dir.path().join("mysqld.sock"),
            dir,
            port: free_port(),
            server_id,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        m.spawn();
        m.wait_ready(Duration::from_secs(60));
        m.root().query_drop(format!(
            "SET sql_log_bin = 0; \
             CREATE USER '{MONITOR_USER}'@'localhost' IDENTIFIED BY '{MONITOR_PASS}'; \
             CREATE USER '{MONITOR_USER}'@'127.0.0.1' IDENTIFIED BY '{MONITOR_PASS}'; \
             GRANT SLAVE MONITOR, PROCESS ON *.* TO '{MONITOR_USER}'@'localhost', '{MONITOR_USER}'@'127.0.0.1'; \
             GRANT SELECT, INSERT, UPDATE, CREATE ON keepalived_mysql.* TO '{MONITOR_USER}'@'localhost', '{MONITOR_USER}'@'127.0.0.1'; \
             CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'replpw'; \
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'; \
             CREATE USER '{NOTIFY_USER}'@'localhost' IDENTIFIED BY '{NOTIFY_PASS}'; \
             CREATE USER '{NOTIFY_USER}'@'127.0.0.1' IDENTIFIED BY '{NOTIFY_PASS}'; \
             GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* \
               TO '{NOTIFY_USER}'@'localhost', '{NOTIFY_USER}'@'127.0.0.1'; \
             GRANT SELECT, INSERT, CREATE ON keepalived_mysql.* \
               TO '{NOTIFY_USER}'@'localhost', '{NOTIFY_USER}'@'127.0.0.1'; \
             GRANT EVENT, SET USER, BINLOG ADMIN ON *.* \
               TO '{NOTIFY_USER}'@'localhost', '{NOTIFY_USER}'@'127.0.0.1'; \
             GRANT SELECT ON mysql.event \
               TO '{NOTIFY_USER}'@'localhost', '{NOTIFY_USER}'@'127.0.0.1'; \
             CREATE USER '{APP_USER}'@'localhost' IDENTIFIED BY '{APP_PASS}'; \
             GRANT ALL ON app.* TO '{APP_USER}'@'localhost'; \
             SET sql_log_bin = 1"
        ))
        .unwrap();
        m
    }

    /// The mariadbd command line of this instance.
    fn command_line(&self) -> Vec<String> {
        let data = self.dir.path().join("data");
        let id = self.server_id;
        let mut args = vec![
            sbin("mariadbd").display().to_string(),
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", self.dir.path().join("tmp").display()),
            format!("--socket={}", self.socket.display()),
            format!("--port={}", self.port),
            format!("--pid-file={}", self.pid_file().display()),
            format!(
                "--log-error={}",
                self.dir.path().join("error.log").display()
            ),
            format!(
                "--log-bin={}",
                self.dir.path().join("data/binlog").display()
            ),
            format!("--server-id={id}"),
            format!("--gtid-domain-id={id}"),
            format!("--auto-increment-offset={id}"),
        ];
        for a in [
            "--user=root",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--log-slave-updates",
            "--auto-increment-increment=2",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--performance-schema=OFF",
            "--skip-slave-start",
        ] {
            args.push(a.into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("mysqld.pid")
    }

    fn spawn(&mut self) {
        let argv = self.command_line();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
    }

    /// A restart-command for keepalived-mysql-restart: counts its runs in
    /// `restarts.log`, waits `delay_ms`, then starts this server again (or, with
    /// `fail`, exits 1 without starting anything).
    pub fn restart_script(&self, delay_ms: u64, fail: bool) -> PathBuf {
        let path = self.dir.path().join(if fail {
            "restart-fail.sh"
        } else {
            "restart.sh"
        });
        let argv: Vec<String> = self
            .command_line()
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        let body = if fail {
            format!(
                "#!/bin/sh\necho restart >> {}\nexit 1\n",
                self.restarts_log().display()
            )
        } else {
            format!(
                "#!/bin/sh\necho restart >> {}\nsleep {}\nexec {} >/dev/null 2>&1\n",
                self.restarts_log().display(),
                delay_ms as f64 / 1000.0,
                argv.join(" ")
            )
        };
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn restarts_log(&self) -> PathBuf {
        self.dir.path().join("restarts.log")
    }

    /// How many times the restart script ran.
    pub fn restarts(&self) -> usize {
        fs::read_to_string(self.restarts_log())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The running server's pid, whoever started it (the pid file).
    pub fn server_pid(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    pub fn serving(&self) -> bool {
        self.try_root().is_some()
    }

    pub fn wait_serving(&self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.serving() {
                return true;
            }
            sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn pid(&self) -> i32 {
        self.server_pid()
            .or_else(|| self.child.as_ref().map(|c| c.id() as i32))
            .expect("running")
    }

    fn wait_ready(&mut self, limit: Duration) {
        let t = Instant::now();
        loop {
            if self.try_root().is_some() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mariadbd exited ({st}): {}", self.error_log());
            }
            assert!(
                t.elapsed() < limit,
                "mariadbd not ready: {}",
                self.error_log()
            );
            sleep(Duration::from_millis(100));
        }
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn try_root(&self) -> Option<Conn> {
        let opts = OptsBuilder::new()
            .socket(Some(self.socket.to_string_lossy().into_owned()))
            .user(Some("root"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(30)));
        Conn::new(opts).ok()
    }

    /// A root session over the socket.
    pub fn root(&self) -> Conn {
        self.try_root().expect("root connection")
    }

    pub fn app(&self) -> Conn {
        let opts = OptsBuilder::new()
            .socket(Some(self.socket.to_string_lossy().into_owned()))
            .user(Some(APP_USER))
            .pass(Some(APP_PASS))
            .prefer_socket(false);
        Conn::new(opts).expect("app connection")
    }

    pub fn exec(&self, sql: &str) {
        self.root()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn value(&self, sql: &str) -> Option<String> {
        self.root()
            .query_first::<Option<String>, _>(sql)
            .unwrap()
            .flatten()
    }

    pub fn replicate_from(&self, other: &Mariadb) {
        self.exec(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD='replpw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_HEARTBEAT_PERIOD=0.5; START SLAVE",
            other.port
        ));
    }

    pub fn slave_field(&self, col: &str) -> Option<String> {
        let mut c = self.root();
        let row: Option<mysql::Row> = c.query_first("SHOW SLAVE STATUS").unwrap();
        row.and_then(|r| {
            r.get_opt::<Option<String>, _>(col)
                .and_then(|v| v.ok())
                .flatten()
        })
    }

    pub fn wait_slave_field(&self, col: &str, want: &str, limit: Duration) {
        let t = Instant::now();
        loop {
            let v = self.slave_field(col);
            if v.as_deref() == Some(want) {
                return;
            }
            assert!(t.elapsed() < limit, "{col} stayed {v:?}, wanted {want}");
            sleep(Duration::from_millis(100));
        }
    }

    /// Blocks until this server has applied everything `source` has in its binlog.
    pub fn sync_with(&self, source: &Mariadb) {
        let pos = source.value("SELECT @@gtid_binlog_pos").unwrap_or_default();
        let r = self.value(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"));
        assert_eq!(r.as_deref(), Some("0"), "replica did not reach {pos}");
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGKILL, whether the test or a restart script started the server, and wait
    /// until it is gone.
    pub fn kill(&mut self) {
        if let Some(pid) = self.server_pid() {
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
            let t = Instant::now();
            while alive(pid) && t.elapsed() < Duration::from_secs(10) {
                sleep(Duration::from_millis(20));
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready(Duration::from_secs(60));
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A process that exists and is not a zombie (an orphaned server may wait to be reaped).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn notify_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keepalived-mysql-notify"))
}

pub fn restart_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keepalived-mysql-restart"))
}

/// A stop-command for tests: counts its runs in `file`.
pub fn counting_script(dir: &Path, name: &str, file: &Path) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        format!("#!/bin/sh\necho \"$(date +%s.%N)\" >> {}\n", file.display()),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

pub fn lines(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// Two servers replicating from each other (server ids 1 and 2), both threads running.
pub fn pair() -> (Mariadb, Mariadb) {
    let a = Mariadb::start(1);
    let b = Mariadb::start(2);
    a.replicate_from(&b);
    b.replicate_from(&a);
    for m in [&a, &b] {
        m.wait_slave_field("Slave_IO_Running", "Yes", Duration::from_secs(30));
        m.wait_slave_field("Slave_SQL_Running", "Yes", Duration::from_secs(30));
    }
    (a, b)
}

/// A config directory for one node: option file, runtime dir, log file, drain file path.
pub struct NodeConfig {
    pub dir: TempDir,
    pub cnf: PathBuf,
    pub log_file: PathBuf,
}

/// A test leaves no process behind: the notify hook's detached watcher
/// (`--watch-peer`) would otherwise outlive the test, waiting for its peer.
impl Drop for NodeConfig {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-f", "--"])
            .arg(format!("--defaults-file={} ", self.cnf.display()))
            .stderr(Stdio::null())
            .status();
    }
}

impl NodeConfig {
    /// `active` decides the role through `vip`: 127.0.0.1 is on lo (active),
    /// 192.0.2.100 is on no interface here (standby).
    pub fn new(db: &Mariadb, active: bool, extra: &str) -> NodeConfig {
        Self::with_log(db, active, extra, "check.log")
    }

    /// `log`: the log file's path below the node's directory.
    pub fn with_log(db: &Mariadb, active: bool, extra: &str, log: &str) -> NodeConfig {
        let dir = tempfile::Builder::new()
            .prefix("kmysql-cfg")
            .tempdir()
            .unwrap();
        let p = dir.path();
        let vip = if active { "127.0.0.1" } else { "192.0.2.100" };
        let body = format!(
            "[client]\nuser = {MONITOR_USER}\npassword = \"{MONITOR_PASS}\"\nsocket = {}\n\n\
             [keepalived-mysql]\nvip = {vip}\nruntime-dir = {}\nlog-file = {}\n\
             syslog-facility = none\nmaintenance-file = {}\n{extra}\n",
            db.socket.display(),
            p.join("run").display(),
            p.join(log).display(),
            p.join("maintenance").display(),
        );
        let cnf = p.join("keepalived-mysql.cnf");
        write_private(&cnf, &body);
        let log_file = p.join(log);
        NodeConfig { dir, cnf, log_file }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn state(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.path("run/check.json")).expect("check.json");
        serde_json::from_str(&text).expect("valid JSON")
    }

    pub fn check(&self, args: &[&str]) -> CheckRun {
        run_check(&self.cnf, args)
    }

    pub fn restart(&self, args: &[&str]) -> CheckRun {
        run_bin(&restart_bin(), &self.cnf, args)
    }

    pub fn notify(&self, args: &[&str]) -> CheckRun {
        run_bin(&notify_bin(), &self.cnf, args)
    }

    pub fn notify_spawn(&self, args: &[&str]) -> Child {
        Command::new(notify_bin())
            .arg(format!("--defaults-file={}", self.cnf.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn notify_state(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.path("run/notify.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).expect("valid JSON")
    }
}

/// The user keepalived runs scripts as (the package creates it; so do the tests when
/// it is missing): (uid, gid).
pub fn script_user() -> (u32, u32) {
    static U: OnceLock<(u32, u32)> = OnceLock::new();
    *U.get_or_init(|| {
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, "keepalived_script"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        };
        if id("-u").is_none() {
            // Concurrent test binaries may race here: a second useradd fails harmlessly.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "keepalived_script",
                ])
                .status();
        }
        (
            id("-u").expect("keepalived_script user"),
            id("-g").expect("keepalived_script group"),
        )
    })
}

/// Who runs a program: root, or the script user the way keepalived runs it (setgid,
/// supplementary groups dropped, setuid, umask 0177).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    Script,
}

pub fn run_as(who: As, bin: &Path, cnf: &Path, args: &[&str]) -> CheckRun {
    use std::os::unix::process::CommandExt;
    let t = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--defaults-file={}", cnf.display()))
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null());
    if who == As::Script {
        let (uid, gid) = script_user();
        // std drops supplementary groups when it changes the uid as root.
        cmd.uid(uid).gid(gid);
    }
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o177);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    CheckRun::from_output(&out, t)
}

/// Lays a node out the way the package does: option file 0640 root:keepalived_script,
/// runtime dir owned by the script user (tmpfiles.d), log dir keepalived_script:adm
/// 2750, and the server's socket directory reachable by that user.
pub fn packaged_layout(db: &Mariadb, node: &NodeConfig) {
    use std::os::unix::fs::chown;
    let (uid, gid) = script_user();
    fs::set_permissions(db.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(node.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown(&node.cnf, Some(0), Some(gid)).unwrap();
    fs::set_permissions(&node.cnf, fs::Permissions::from_mode(0o640)).unwrap();
    let run = node.path("run");
    fs::create_dir_all(&run).unwrap();
    chown(&run, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    let logdir = node.log_file.parent().unwrap();
    fs::create_dir_all(logdir).unwrap();
    chown(logdir, Some(uid), Some(4)).unwrap(); // adm is gid 4 on Debian
    fs::set_permissions(logdir, fs::Permissions::from_mode(0o2750)).unwrap();
}

/// Owner uid of every file in `dir`, by name.
pub fn owners(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().uid(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn write_private(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[derive(Debug)]
pub struct CheckRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CheckRun {
    /// A finished process's result, timed from `t`.
    pub fn from_output(out: &Output, t: Instant) -> CheckRun {
        CheckRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: t.elapsed(),
        }
    }
}

pub fn run_check(cnf: &Path, args: &[&str]) -> CheckRun {
    run_bin(&check_bin(), cnf, args)
}

pub fn run_bin(bin: &Path, cnf: &Path, args: &[&str]) -> CheckRun {
    let t = Instant::now();
    let out: Output = Command::new(bin)
        .arg(format!("--defaults-file={}", cnf.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    CheckRun::from_output(&out, t)
}

/// Runs the check until it returns `code`, for states that settle asynchronously.
pub fn wait_for_code(node: &NodeConfig, code: i32, limit: Duration) -> CheckRun {
    let t = Instant::now();
    loop {
        let r = node.check(&["--format", "text"]);
        if r.code == code || t.elapsed() > limit {
            return r;
        }
        sleep(Duration::from_millis(200));
    }
}

/// Starts `n` copies of `bin` on `cnf` at once and returns their exit codes.
pub fn run_concurrently(bin: &Path, cnf: &Path, n: usize) -> Vec<i32> {
    let children: Vec<Child> = (0..n)
        .map(|_| {
            Command::new(bin)
                .arg(format!("--defaults-file={}", cnf.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect()
}

/// Test certificates made with openssl: a CA, a server certificate for 127.0.0.1 signed
/// by it, an unrelated CA, and an RSA key pair (PEM).
pub struct Pki {
    _dir: TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub wrong_ca: PathBuf,
    pub rsa_private: PathBuf,
    pub rsa_public: PathBuf,
    /// A server certificate from the CA that does not name 127.0.0.1.
    pub noip_cert: PathBuf,
    pub noip_key: PathBuf,
    /// Client certificates: from the CA, and from the unrelated one.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (key, cert, cn) in [
        ("ca.key", "ca.pem", "test-ca"),
        ("wrong.key", "wrong.pem", "other-ca"),
    ] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=server",
        ],
    );
    fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    openssl(d, &["pkey", "-in", "rsa.key", "-pubout", "-out", "rsa.pub"]);
    fs::write(
        d.join("ext-noip"),
        "subjectAltName=DNS:mysql.invalid\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    fs::write(
        d.join("ext-client"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, ca, ext) in [
        ("noip", "ca", "ext-noip"),
        ("client", "ca", "ext-client"),
        ("stranger", "wrong", "ext-client"),
    ] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        let subj = format!("/CN={name}");
        openssl(
            d,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                &subj,
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
    Pki {
        noip_cert: d.join("noip.pem"),
        noip_key: d.join("noip.key"),
        client_cert: d.join("client.pem"),
        client_key: d.join("client.key"),
        stranger_cert: d.join("stranger.pem"),
        stranger_key: d.join("stranger.key"),
        rsa_private: d.join("rsa.key"),
        rsa_public: d.join("rsa.pub"),
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        wrong_ca: d.join("wrong.pem"),
        _dir: dir,
    }
}
