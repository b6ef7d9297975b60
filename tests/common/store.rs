//! A managed-mode (store) server for tests: DNS and admin API on free ports, a store in a temp dir, the real CLI.
//!
//! `StoreServer::start_with` writes the config (extra `[admin]` keys, extra sections, files beside it), starts
//! `vpcdns serve`, reads both readiness lines, and logs each start's stderr to a file in the temp dir.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{dig_at, Dig, BIN};

pub struct StoreServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// DNS address (`ip:port`).
    pub dns: String,
    /// Admin API address (`ip:port`), or the full `https://…` URL when TLS is on.
    pub admin: String,
    starts: usize,
}

impl StoreServer {
    pub fn start() -> StoreServer {
        StoreServer::start_with("", "", &[])
    }

    /// With more `[admin]` keys, more sections after it, and files beside the config.
    pub fn start_with(admin: &str, sections: &str, files: &[(&str, &[u8])]) -> StoreServer {
        StoreServer::start_on("[store]\npath = \"state.db\"\n", admin, sections, files)
    }

    /// With the given `[store]` section (an etcd store, say).
    pub fn start_on(store: &str, admin: &str, sections: &str, files: &[(&str, &[u8])]) -> StoreServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n{store}[admin]\nlisten = \"127.0.0.1:0\"\n{admin}{sections}"
        );
        std::fs::write(dir.path().join("vpcdns.toml"), config).expect("config");
        for (name, content) in files {
            // Owner-only, as the server expects of a secret (and as any file with credentials should be).
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.path().join(name))
                .expect("file");
            std::io::Write::write_all(&mut file, content).expect("file");
        }
        let mut server = StoreServer { child: None, dir, dns: String::new(), admin: String::new(), starts: 0 };
        server.spawn();
        server
    }

    pub fn config(&self) -> String {
        self.dir.path().join("vpcdns.toml").display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("serve-{}.log", self.starts))
    }

    /// The current start's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts (again) on the same store; the ports may change.
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--config", &self.config(), "--udp-sockets", "1"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start vpcdns");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut line = |what: &str, secs| {
            rx.recv_timeout(Duration::from_secs(secs)).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no {what} line; server log:\n{}", self.log())
            })
        };
        let ready = line("readiness", 20);
        let admin = line("admin", 5);
        self.dns = ready.rsplit(' ').next().expect("dns address").to_string();
        self.admin = admin.split_whitespace().nth(2).expect("admin address").trim_start_matches("http://").to_string();
        self.child = Some(child);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded): the graceful path.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `vpcdns operator … --json` (over the socket while the server runs).
    pub fn operator(&self, args: &[&str]) -> Result<Value, String> {
        let config = self.config();
        run(&[&["operator", "--config", config.as_str(), "--json"], args].concat())
    }

    /// A root account on the intl site, `root@<name>.example`, through the operator socket.
    pub fn put_account(&self, uid: &str, name: &str) {
        let email = format!("root@{name}.example");
        let args = ["accounts", "put", "--uid", uid, "--name", name, "--email", &email, "--site", "intl"];
        self.operator(&args).unwrap_or_else(|e| panic!("account {name}: {e}"));
    }

    /// `vpcdns admin … --json` with `key`.
    pub fn admin(&self, key: &str, args: &[&str]) -> Result<Value, String> {
        let url = format!("http://{}", self.admin);
        run(&[&["admin", "--url", url.as_str(), "--key", key, "--json"], args].concat())
    }

    /// An A query from `source`.
    pub fn dig(&self, source: &str, name: &str) -> Dig {
        dig_at(&self.dns, source, name, "A", &[])
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the binary; the JSON it printed, or its error as `<status> <code>: <message>` (with `--json` the CLI
/// prints its error as JSON on stderr: `{"status","code","message","problems"}`), each problem on a line of its own.
pub fn run(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(BIN).args(args).output().expect("run vpcdns");
    if out.status.success() {
        return Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Some(error) = stderr.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()) else {
        return Err(stderr);
    };
    let mut text = match error["status"].as_u64() {
        Some(status) => {
            format!("{status} {}: {}", error["code"].as_str().unwrap_or(""), error["message"].as_str().unwrap_or(""))
        }
        None => format!("{}: {}", error["code"].as_str().unwrap_or(""), error["message"].as_str().unwrap_or("")),
    };
    for p in error["problems"].as_array().into_iter().flatten() {
        text.push_str(&format!("\n  {}", p.as_str().unwrap_or_default()));
    }
    Err(text)
}

/// The token of a key-creating answer.
pub fn token(v: Result<Value, String>) -> String {
    v.expect("key created")["token"].as_str().expect("token").to_string()
}

/// The error text of an answer that must fail.
pub fn err(v: Result<Value, String>) -> String {
    v.expect_err("expected an error")
}
