//! Growth (issue 16, finding 4): audited changes must not make start-up slower or the store larger without bound.
//! Start-up reads only the served state (never the audit and usage history), and retention deletes the audit
//! entries past `[store] audit_retention_s`. CI runs 6,000 changes; `scripts/test-extended.sh` runs 100,000
//! (`VPCDNS_GROWTH_CHANGES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::store::{token, StoreServer};

/// A keep-alive HTTP/1.1 connection to the admin API.
struct Client {
    reader: BufReader<TcpStream>,
    key: String,
}

impl Client {
    fn connect(addr: &str, key: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Client { reader: BufReader::new(stream), key: key.to_string() }
    }

    /// Sends one request and reads its answer: (status, body).
    fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).expect("send");
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).expect("status line");
        let status = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Bytes of the store's database file and of its write-ahead log.
fn store_bytes(s: &StoreServer) -> (u64, u64) {
    let size = |f: &str| std::fs::metadata(s.dir.path().join(f)).map_or(0, |m| m.len());
    (size("state.db"), size("state.db-wal"))
}

/// Stops the server, and times a start on the same store (until both readiness lines).
fn restart(s: &mut StoreServer) -> Duration {
    s.terminate();
    let started = Instant::now();
    s.spawn();
    started.elapsed()
}

#[test]
fn start_up_and_store_size_stay_flat_across_many_audited_changes() {
    let total: usize = std::env::var("VPCDNS_GROWTH_CHANGES").ok().and_then(|n| n.parse().ok()).unwrap_or(6_000);
    let store = "[store]\npath = \"state.db\"\naudit_retention_s = 2\n";
    let limits = "writes_per_second = 100000\nwrite_burst = 100000\n";
    let mut s = StoreServer::start_on(store, limits, "", &[]);
    s.put_account("1001", "acme");
    s.operator(&["vpcs", "put", "--id", "vpc-acme", "--account", "1001", "--cidr", "127.0.90.0/24"]).expect("vpc");
    let key = token(s.operator(&["key", "acme"]));
    let zone = s.admin(&key, &["zones", "create", "grow.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone = zone["id"].as_str().expect("zone id").replace('/', "%2F");

    let quarter = total / 4;
    let mut figures = Vec::new();
    for round in 0..=4 {
        if round > 0 {
            let mut client = Client::connect(&s.admin, &key);
            let changed = Instant::now();
            for i in 0..quarter {
                let fallback = if i % 2 == 0 { "recurse" } else { "nxdomain" };
                let (status, body) = client.send(
                    "PUT",
                    &format!("/v1/zones/{zone}/fallback"),
                    &format!("{{\"fallback\":\"{fallback}\"}}"),
                );
                assert_eq!(status, 200, "change {i}: {body}");
            }
            let rate = quarter as f64 / changed.elapsed().as_secs_f64();
            // Past the retention (2 s) the sweep (every second) has deleted what came before.
            std::thread::sleep(Duration::from_secs(4));
            eprintln!("round {round}: {quarter} changes at {rate:.0}/s");
        }
        let start_up = restart(&mut s);
        let (bytes, wal) = store_bytes(&s);
        let ms = start_up.as_secs_f64() * 1e3;
        eprintln!(
            "after {:>6} changes: start-up {ms:>5.0} ms, store {:>6} KiB (WAL {} KiB)",
            round * quarter,
            bytes / 1024,
            wal / 1024
        );
        figures.push((start_up, bytes));
    }
    let audit = s.operator(&["audit", "--limit", "100000"]).expect("audit");
    let kept = audit["entries"].as_array().map_or(0, Vec::len);
    assert!(kept < quarter, "audit entries past their retention are deleted ({kept} kept of {total})");
    // Generous bounds: flat means the last quarter costs about what the first did, not four times as much.
    let (first_start, first_bytes) = figures[1];
    let (last_start, last_bytes) = figures[4];
    assert!(
        last_start < first_start * 2 + Duration::from_secs(2),
        "start-up grew from {first_start:?} to {last_start:?}"
    );
    assert!(last_bytes < first_bytes * 2 + (1 << 20), "the store grew from {first_bytes} to {last_bytes} bytes");
    // The write-ahead log is bounded by itself (16 MiB, see `store::sqlite::schema`), whatever was written.
    assert!(store_bytes(&s).1 <= 17 << 20, "WAL over its limit");
    assert_eq!(s.dig("127.0.90.1", "grow.internal").status, "NOERROR");
}
