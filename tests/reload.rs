//! Hot swap: file edits and SIGHUP publish a new snapshot; an invalid state never replaces the served one; queries
//! in flight during swaps are all answered.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::Server;

fn config() -> String {
    common::ACCOUNT.to_string()
        + r#"
[server]
listen = ["127.0.0.1:0"]
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.50.0/24"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
file = "corp.zone"
"#
}

const ZONE: &str = "$ORIGIN corp.internal.\n$TTL 300\nwww A 10.0.0.1\n";
const SRC: &str = "127.0.50.9";

fn serial(s: &Server) -> u64 {
    let d = s.dig(SRC, "corp.internal", "SOA");
    d.data("SOA")[0].split_whitespace().nth(2).and_then(|v| v.parse().ok()).expect("serial")
}

#[test]
fn zone_file_edits_are_served_and_serials_grow() {
    let s = Server::start(&config(), &[("corp.zone", ZONE)]);
    assert_eq!(s.dig(SRC, "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    let before = serial(&s);
    std::fs::write(s.dir.path().join("corp.zone"), format!("{ZONE}new A 10.0.0.2\n")).expect("write");
    s.wait_until("the new record", || s.dig(SRC, "new.corp.internal", "A").data("A") == ["10.0.0.2"]);
    assert!(serial(&s) > before);
}

#[test]
fn an_invalid_change_keeps_the_old_state_serving() {
    let s = Server::start(&config(), &[("corp.zone", ZONE)]);
    std::fs::write(s.dir.path().join("corp.zone"), format!("{ZONE}bad A 10.0.0\n")).expect("write");
    s.wait_until("the reload error in the log", || s.log().contains("reload failed"));
    assert!(s.log().contains("corp.zone:4"), "{}", s.log());
    assert_eq!(s.dig(SRC, "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    // A broken config file too.
    std::fs::write(s.config_path(), "[[zones]\n").expect("write");
    s.wait_until("a second reload error", || s.log().matches("reload failed").count() >= 2);
    assert_eq!(s.dig(SRC, "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    // Fixing the files recovers.
    std::fs::write(s.config_path(), config()).expect("write");
    std::fs::write(s.dir.path().join("corp.zone"), format!("{ZONE}fixed A 10.0.0.3\n")).expect("write");
    s.wait_until("the fixed record", || s.dig(SRC, "fixed.corp.internal", "A").data("A") == ["10.0.0.3"]);
}

#[test]
fn sighup_reloads() {
    let s = Server::start(&config(), &[("corp.zone", ZONE)]);
    let before = s.log().matches("new snapshot published").count();
    let status = std::process::Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().expect("kill");
    assert!(status.success());
    s.wait_until("a SIGHUP reload", || s.log().matches("new snapshot published").count() > before);
    assert!(s.log().contains("SIGHUP"));
}

/// A query for www.corp.internal/A with the given id.
fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x03www\x04corp\x08internal\x00\x00\x01\x00\x01");
    q
}

#[test]
fn queries_in_flight_during_swaps_are_all_answered() {
    let s = Server::start(&config(), &[("corp.zone", ZONE)]);
    let port = s.port;
    let sender = std::thread::spawn(move || {
        let sock = UdpSocket::bind((SRC, 0)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut answered = 0;
        let mut buf = [0u8; 1500];
        for id in 0..600u16 {
            sock.send_to(&query(id), ("127.0.0.1", port)).expect("send");
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                // NOERROR with one answer: the name exists in every version of the zone.
                if n > 12 && buf[..2] == id.to_be_bytes() && buf[3] & 0x0F == 0 && buf[7] == 1 {
                    answered += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        answered
    });
    for i in 0..8 {
        // Replaced atomically (write, then rename), as in tests/swap_load.rs.
        let staged = s.dir.path().join("corp.zone.new");
        std::fs::write(&staged, format!("{ZONE}v{i} A 10.0.1.{i}\n")).expect("write");
        std::fs::rename(&staged, s.dir.path().join("corp.zone")).expect("rename");
        std::thread::sleep(Duration::from_millis(150));
    }
    let answered = sender.join().expect("sender thread");
    assert_eq!(answered, 600, "every query during the swaps got its answer");
    assert!(s.log().matches("new snapshot published").count() >= 2, "{}", s.log());
}

#[test]
fn included_files_are_watched_too() {
    let zone = format!("{ZONE}$INCLUDE extra.zone\n");
    let s = Server::start(&config(), &[("corp.zone", &zone), ("extra.zone", "one A 10.0.2.1\n")]);
    assert_eq!(s.dig(SRC, "one.corp.internal", "A").data("A"), ["10.0.2.1"]);
    std::fs::write(s.dir.path().join("extra.zone"), "two A 10.0.2.2\n").expect("write");
    s.wait_until("the included record", || s.dig(SRC, "two.corp.internal", "A").data("A") == ["10.0.2.2"]);
    assert_eq!(s.dig(SRC, "one.corp.internal", "A").status, "NXDOMAIN");
}
