//! Readiness for a service manager: with NOTIFY_SOCKET set (systemd's Type=notify), the server says READY=1 once it
//! answers and STOPPING=1 when a SIGTERM starts the drain, then exits 0.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config() -> String {
    common::ACCOUNT.to_string()
        + r#"
[server]
listen = ["127.0.0.1:0"]
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.80.0/24"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
records = [{ name = "www", type = "A", data = "10.0.0.1" }]
"#
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Runs one server with NOTIFY_SOCKET = `target`, notifications arriving on `socket`.
fn ready_then_stopping(socket: &UnixDatagram, target: &str) {
    socket.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_files(dir.path(), &config(), &[]);
    let mut child = Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("vpcdns.toml"))
        .env("NOTIFY_SOCKET", target)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vpcdns");
    assert_eq!(receive(socket), "READY=1");
    // The readiness line comes before READY=1; it names the port (0 in the config picks a free one).
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("readiness line");
    let addr = line.trim().strip_prefix("vpcdns ready: listening on ").expect("readiness line").to_string();
    let answer = common::dig_at(&addr, "127.0.80.5", "www.corp.internal", "A", &[]);
    assert_eq!(answer.data("A"), ["10.0.0.1"], "ready means answering");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    assert_eq!(receive(socket), "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn notify_socket_by_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    ready_then_stopping(&socket, path.to_str().expect("utf-8 path"));
}

#[test]
fn notify_socket_by_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("vpcdns-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
    ready_then_stopping(&socket, &format!("@{name}"));
}
