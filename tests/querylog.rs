//! The query log: JSON lines for the listed VPCs, rotated by size; a writer that cannot keep up costs dropped
//! (and counted) entries, never a delayed answer.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;

fn config(query_log: &str) -> String {
    common::ACCOUNT.to_string()
        + r#"
[server]
listen = ["127.0.0.1:0"]
[metrics]
listen = "127.0.0.1:0"
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.70.0/24"]
[[vpcs]]
id = "v2"
account = "1"
cidrs = ["127.0.71.0/24"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
records = [{ name = "www", type = "A", data = "10.0.0.1" }]
"# + query_log
}

fn lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for name in ["q.jsonl.2", "q.jsonl.1", "q.jsonl"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        all.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")));
    }
    all
}

#[test]
fn queries_of_the_listed_vpcs_are_logged_as_json_lines_and_rotated() {
    let s =
        Server::start(&config("[query_log]\npath = \"q.jsonl\"\nvpcs = [\"v1\"]\nmax_bytes = 700\nkeep = 2\n"), &[]);
    for _ in 0..5 {
        assert_eq!(s.dig("127.0.70.5", "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    }
    assert_eq!(s.dig("127.0.70.5", "nope.corp.internal", "AAAA").status, "NXDOMAIN");
    for _ in 0..2 {
        assert_eq!(s.dig("127.0.71.5", "www.corp.internal", "A").status, "REFUSED");
        // v2: not logged
    }
    s.wait_until("six logged queries", || lines(s.dir.path()).len() == 6);
    let logged = lines(s.dir.path());
    assert!(s.dir.path().join("q.jsonl.1").exists(), "the log was rotated at 700 bytes");
    assert!(std::fs::metadata(s.dir.path().join("q.jsonl")).map(|m| m.len()).unwrap_or(0) <= 700);
    let first = &logged[0];
    assert_eq!(first["vpc"], "v1");
    assert_eq!(first["account"], "1");
    assert_eq!(first["source"], "127.0.70.5");
    assert_eq!(first["name"], "www.corp.internal.");
    assert_eq!(first["type"], "A");
    assert_eq!(first["rcode"], "NOERROR");
    assert_eq!(first["zone"], "1/corp.internal.");
    assert!(first["latency_us"].is_u64(), "{first}");
    let time = first["time"].as_str().expect("time");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    let last = &logged[5];
    assert_eq!(
        (&last["rcode"], &last["type"], &last["name"]),
        (&"NXDOMAIN".into(), &"AAAA".into(), &"nope.corp.internal.".into())
    );
    assert!(logged.iter().all(|l| l["vpc"] == "v1"), "only v1 is logged");
}

#[test]
fn a_writer_that_cannot_keep_up_drops_entries_and_answers_go_on() {
    // A FIFO nobody reads: opening it for writing never returns, so the writer is stuck for good.
    let dir = tempfile::tempdir().expect("temp dir");
    nix::unistd::mkfifo(&dir.path().join("q.jsonl"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    common::write_files(dir.path(), &config("[query_log]\npath = \"q.jsonl\"\nqueue = 2\n"), &[]);
    let s = Server::start_in(dir);
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(s.dig("127.0.70.5", "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    }
    assert!(started.elapsed() < Duration::from_secs(20), "answers were held up: {:?}", started.elapsed());
    let (_, text) = common::http_get(&common::metrics_addr(&s), "/metrics");
    let dropped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vpcdns_query_log_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the dropped counter");
    assert!(dropped >= 7.0, "10 entries, a queue of 2 and one in the stuck writer's hands: {dropped} dropped");
}
