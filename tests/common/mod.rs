//! Test harness: runs the real `vpcdns` binary on a temporary config and queries it with real `dig`.
//!
//! `Server` writes the config (and zone files) to a temp dir, starts `vpcdns serve` on port 0, waits for the
//! readiness line and kills the child on drop. `dig` runs `dig -b <source>` and parses its output into `Dig`.
#![allow(dead_code)]
// Shared by every test crate, each of which uses a part: `pub` here is for the sibling modules, and helpers state
// their expectations with expect() as tests do.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod bind;
pub mod etcd;
pub mod store;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vpcdns");

/// One root account, uid "1", for the small configs tests write.
pub const ACCOUNT: &str =
    "[[accounts]]\nuid = \"1\"\nname = \"acme\"\nemail = \"root@acme.example\"\nsite = \"intl\"\n";

/// A running server on a temporary configuration.
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub addrs: Vec<String>,
    pub port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `vpcdns serve` with `config` (its `listen` should use port 0) and extra files beside it.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        write_files(dir.path(), config, files);
        Server::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> Server {
        Server::try_start_in(dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a free port that `config(port)` writes into the configuration. Free ports are probed, so
    /// a parallel test may take one first: a start that fails on "Address already in use" is retried (bounded).
    pub fn start_on_free_port(config: impl Fn(u16) -> String, files: &[(&str, &str)]) -> (Server, u16) {
        let mut last = String::new();
        for _ in 0..8 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            write_files(dir.path(), &config(port), files);
            match Server::try_start_in(dir) {
                Ok(server) => return (server, port),
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no free port after 8 tries: {last}");
    }

    /// Starts `vpcdns serve` on the configuration in `dir`; the error holds the server's log.
    pub fn try_start_in(dir: tempfile::TempDir) -> Result<Server, String> {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.path().join("vpcdns.toml"))
            .args(["--watch-interval-ms", "100", "--udp-sockets", "2"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vpcdns");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            // The log thread may still be reading the last lines.
            std::thread::sleep(Duration::from_millis(50));
            return Err(format!(
                "vpcdns did not become ready; stderr:\n{}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            ));
        };
        let addrs: Vec<String> = line
            .strip_prefix("vpcdns ready: listening on ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let port = addrs[0].rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        Ok(Server { child, dir, addrs, port, stderr: log })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("vpcdns.toml")
    }

    /// Queries the first listener from `source`.
    pub fn dig(&self, source: &str, name: &str, qtype: &str) -> Dig {
        dig_at(&self.addrs[0], source, name, qtype, &[])
    }

    pub fn dig_with(&self, source: &str, name: &str, qtype: &str, extra: &[&str]) -> Dig {
        dig_at(&self.addrs[0], source, name, qtype, extra)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the server to exit; its exit code, or None if it did not exit in time.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits (bounded) until `check` holds, polling every 50 ms.
    pub fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; server log:\n{}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_files(dir: &Path, config: &str, files: &[(&str, &str)]) {
    std::fs::write(dir.join("vpcdns.toml"), config).expect("write config");
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write file");
    }
}

/// One record line of dig's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub data: String,
}

/// dig's answer, parsed.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Rec>,
    pub authority: Vec<Rec>,
    pub additional: Vec<Rec>,
    pub raw: String,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The data of every answer record of `rtype`.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        self.answer.iter().filter(|r| r.rtype == rtype).map(|r| r.data.clone()).collect()
    }
}

/// Runs dig against `server` ("ip:port") from `source` and parses the output.
pub fn dig_at(server: &str, source: &str, name: &str, qtype: &str, extra: &[&str]) -> Dig {
    let (ip, port) = server.rsplit_once(':').expect("server address");
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let output = Command::new("dig")
        .arg(format!("@{ip}"))
        .args(["-p", port, "-b", source, "+tries=1", "+time=3", "+norecurse"])
        .args(extra)
        .args([name, qtype])
        .output()
        .expect("dig must be installed (scripts/test.sh installs it)");
    parse_dig(&String::from_utf8_lossy(&output.stdout))
}

pub fn parse_dig(text: &str) -> Dig {
    let mut dig = Dig { raw: text.to_string(), ..Dig::default() };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or("").to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or("");
            dig.flags = flags.split_whitespace().map(str::to_string).collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
            continue;
        }
        if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
            continue;
        }
        if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
            continue;
        }
        if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = "";
            }
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 4 {
            continue;
        }
        let rec = Rec {
            name: parts[0].to_string(),
            ttl: parts[1].parse().unwrap_or(0),
            rtype: parts[3].to_string(),
            data: parts[4..].join(" "),
        };
        match section {
            "answer" => dig.answer.push(rec),
            "authority" => dig.authority.push(rec),
            "additional" => dig.additional.push(rec),
            _ => {}
        }
    }
    dig
}

/// Runs the binary with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run vpcdns");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port free on UDP and TCP on both 127.0.0.1 and 127.0.0.2 (bounded tries).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = udp.local_addr() else { continue };
        let port = addr.port();
        let others = (
            std::net::TcpListener::bind(("127.0.0.1", port)),
            std::net::TcpListener::bind(("127.0.0.2", port)),
            std::net::UdpSocket::bind(("127.0.0.2", port)),
        );
        if let (Ok(_), Ok(_), Ok(_)) = others {
            return port;
        }
    }
    panic!("no free port found");
}

/// The example configuration (config/example.toml and its zone files) copied to a temp dir, with port 5300
/// replaced by a free port so tests can run side by side.
pub fn example_dir() -> (tempfile::TempDir, u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let text = std::fs::read_to_string(root.join("example.toml")).expect("example config");
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("zones")).expect("mkdir");
    for entry in std::fs::read_dir(root.join("zones")).expect("zones dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join("zones").join(entry.file_name())).expect("copy zone");
    }
    let text = text.replace(":5300", &format!(":{port}"));
    std::fs::write(dir.path().join("vpcdns.toml"), text).expect("write config");
    (dir, port)
}

/// The metrics listener's address, as the server logged it (`[metrics] listen` may use port 0).
pub fn metrics_addr(s: &Server) -> String {
    s.wait_until("the metrics address in the log", || s.log().contains("http://"));
    let log = s.log();
    let start = log.find("http://").map(|i| i + "http://".len()).expect("metrics address in the log");
    log[start..].split('/').next().expect("address").to_string()
}

/// The metrics listener's address in a server log ("metrics on http://ADDR/metrics").
pub fn metrics_addr_in(log: &str) -> String {
    let start =
        log.find("metrics on http://").map(|i| i + "metrics on http://".len()).expect("metrics address in the log");
    log[start..].split('/').next().expect("address").to_string()
}

/// A plain HTTP/1.1 GET over loopback: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A TCP connection from `source` (bound before connecting, so it can stand for a client network).
pub fn connect_from(source: std::net::Ipv4Addr, server: std::net::SocketAddr) -> std::net::TcpStream {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrStorage};
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)))
        .expect("bind");
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(server)).expect("connect");
    std::net::TcpStream::from(fd)
}
