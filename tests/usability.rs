//! Issue 17: what a new user meets following the README — managed mode after the example, tables for people,
//! times, link requests, help texts, errors and exit codes, logs, ids — each held by a test of the CLI's output.
// A failing expectation is the test failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::store::StoreServer;
use common::{free_port, BIN};

/// A managed server whose DNS port is taken (the example server runs there) fails with a clear error and leaves
/// nothing behind: no store, no secret, no socket.
#[test]
fn a_managed_server_on_a_taken_port_creates_nothing() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = free_port();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[store]\npath = \"state.db\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    );
    std::fs::write(dir.path().join("managed.toml"), config).expect("config");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("managed.toml"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run vpcdns");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("in use"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    assert_eq!(left, ["managed.toml"], "a failed start left files behind");
    drop(taken);
}

/// The managed example in `config/` runs beside the file-mode example: its own DNS port.
#[test]
fn the_managed_example_has_its_own_port() {
    let managed = std::fs::read_to_string("config/managed.toml").expect("config/managed.toml");
    let example = std::fs::read_to_string("config/example.toml").expect("config/example.toml");
    assert!(managed.contains("127.0.0.1:5301") && !example.contains(":5301"), "the two examples would collide");
}

/// Runs the CLI: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run vpcdns");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Exit codes tell a usage error (2), a refusal (3) and a failure or no answer (4) apart, and `--json` applies
/// to errors too: one JSON object on stderr.
#[test]
fn exit_codes_and_json_errors() {
    let s = StoreServer::start();
    let url = format!("http://{}", s.admin);
    let (code, _, stderr) = cli(&["admin", "--url", &url, "--key", "vpcdns_0000_bad", "whoami"]);
    assert_eq!(code, 3, "a refusal: {stderr}");
    assert!(stderr.starts_with("vpcdns: 401 "), "{stderr}");
    let (code, stdout, stderr) = cli(&["admin", "--url", &url, "--key", "vpcdns_0000_bad", "--json", "whoami"]);
    let error: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON error");
    assert_eq!((code, error["status"].as_u64(), stdout.as_str()), (3, Some(401), ""), "{stderr}");
    assert!(error["code"].is_string() && error["message"].is_string(), "{error}");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, stderr) = cli(&["admin", "--url", &closed, "--key", "k", "--json", "whoami"]);
    let error: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON error");
    assert_eq!((code, error["code"].as_str()), (4, Some("unreachable")), "{stderr}");
    let (code, _, stderr) = cli(&["admin", "no-such-command"]);
    assert_eq!(code, 2, "a usage error: {stderr}");
}

/// A command run by a person prints no INFO lines and no colours when stderr is not a terminal; the server
/// removes its operator socket when it exits.
#[test]
fn logs_for_people_and_no_socket_left_behind() {
    let mut s = StoreServer::start();
    let socket = s.dir.path().join("state.db.sock");
    assert!(socket.exists());
    s.terminate();
    assert!(!socket.exists(), "the operator socket outlived the server");
    // With the server stopped, operator commands run in-process on the store: quietly.
    let config = s.config();
    let (code, stdout, stderr) = cli(&["operator", "--config", &config, "vpcs", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("INFO"), "an offline command logged: {stderr}");
    assert!(!stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'), "colours on a pipe: {stderr}");
    let log = s.log();
    assert!(!log.contains('\u{1b}'), "the server's log on a file has colours");
}
