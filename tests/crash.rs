//! Durability under `kill -9`: every write the admin API acknowledged survives the server being killed at a random
//! moment, and the restarted server both lists it and answers it over DNS.
//!
//! Each round, a writer adds records one after another with `vpcdns admin records add`, keeping the names the CLI
//! acknowledged (exit 0), while the server gets SIGKILL after a random 100–600 ms. Then: the store files (copied,
//! so the server does its own recovery) pass SQLite's `integrity_check`; the server restarts on the same store and
//! logs no warning or error; `zones show` lists every record acknowledged in this and all earlier rounds with its
//! data, and nothing else but, at most, the one write in flight at the kill; `dig` answers a sample of them. The
//! seed is printed; `CRASH_SEED=<n>` replays a run's kill times.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::store::StoreServer;
use common::{dig_at, BIN};
use serde_json::Value;

const ROUNDS: u64 = 5;
/// Bounds on one round's writer: it normally stops at the first failure, which the kill causes.
const MAX_WRITES: u64 = 2000;
const WRITER_TIME: Duration = Duration::from_secs(8);
/// The VPC's prefix, and the source dig queries from.
const CIDR: &str = "127.0.90.0/24";
const SOURCE: &str = "127.0.90.5";

fn admin_args(admin: &str, key: &str, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> =
        ["admin", "--url", &format!("http://{admin}"), "--key", key, "--json"].map(String::from).into();
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Value, String> {
    let out = Command::new(BIN).args(args).output().expect("run vpcdns");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// xorshift64: kill times that differ from run to run without a new crate, replayable from the printed seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The address record `r<round>-<i>` gets.
fn address(round: u64, i: u64) -> String {
    format!("10.{round}.{}.{}", i / 256, i % 256)
}

/// What one round's writer saw: the acknowledged names in order, and the first failure (when, and what it said).
struct Writes {
    acked: Vec<String>,
    failure: Option<(Instant, String)>,
}

/// Adds `r<round>-0`, `r<round>-1`, … one after another until a write fails (bounded in count and time).
fn write_until_failure(admin: String, key: String, zone: String, round: u64) -> Writes {
    let start = Instant::now();
    let mut acked = Vec::new();
    for i in 0..MAX_WRITES {
        if start.elapsed() > WRITER_TIME {
            break;
        }
        let name = format!("r{round}-{i}");
        let data = address(round, i);
        match run(&admin_args(&admin, &key, &["records", "add", &zone, &name, "A", &data])) {
            Ok(_) => acked.push(name),
            Err(e) => return Writes { acked, failure: Some((Instant::now(), e)) },
        }
    }
    Writes { acked, failure: None }
}

/// SQLite's own check of the store as the kill left it, on a copy of the database and its WAL.
fn integrity_check(dir: &std::path::Path) -> String {
    let copy = tempfile::tempdir().expect("temp dir");
    for file in ["state.db", "state.db-wal"] {
        if dir.join(file).exists() {
            std::fs::copy(dir.join(file), copy.path().join(file)).expect("copy the store");
        }
    }
    let conn = rusqlite::Connection::open(copy.path().join("state.db")).expect("open the copy");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check")
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let test_start = Instant::now();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1);
    println!("CRASH_SEED={seed}");
    let mut rng = XorShift(seed);

    // The client writes as fast as it can: the per-account write limit is not this test's subject.
    let mut s = StoreServer::start_with("writes_per_second = 1000000\nwrite_burst = 1000000\n", "", &[]);
    s.put_account("1001", "acme");
    s.operator(&["vpcs", "put", "--id", "vpc-crash", "--account", "1001", "--cidr", CIDR]).expect("vpc");
    let key = s.operator(&["key", "acme"]).expect("key")["token"].as_str().expect("token").to_string();
    let zone = s.admin(&key, &["zones", "create", "corp.internal.", "--scope", "vpc-crash"]).expect("zone");
    let zone = zone["id"].as_str().expect("zone id").to_string();

    // Every name acknowledged so far, with its data; and per round, the one write that may have landed unacknowledged.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut in_flight: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let (admin, k, z) = (s.admin.clone(), key.clone(), zone.clone());
        let writer = std::thread::spawn(move || write_until_failure(admin, k, z, round));
        let delay = Duration::from_millis(100 + rng.next() % 501);
        std::thread::sleep(delay);
        let killed_at = Instant::now();
        s.kill();
        let writes = writer.join().expect("writer thread");
        match &writes.failure {
            Some((at, e)) => assert!(*at >= killed_at, "round {round}: a write failed before the kill: {e}"),
            None => panic!("round {round}: the writer never saw the kill ({} writes)", writes.acked.len()),
        }
        let n = writes.acked.len() as u64;
        for (i, name) in writes.acked.iter().enumerate() {
            acked.insert(name.clone(), address(round, i as u64));
        }
        in_flight.push(format!("r{round}-{n}"));

        assert_eq!(integrity_check(s.dir.path()), "ok", "round {round}: the store as the kill left it");
        s.spawn();
        let log = s.log();
        assert!(log.contains("store opened"), "round {round}: server log:\n{log}");
        assert!(
            !log.contains(" WARN ") && !log.contains(" ERROR "),
            "round {round}: the store did not open cleanly:\n{log}"
        );

        // zones show: every acknowledged record, with its data; nothing else but in-flight writes.
        let shown = s.admin(&key, &["zones", "show", &zone]).expect("zones show after restart");
        let records = shown["records"].as_array().expect("records");
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        for r in records {
            let name = r["name"].as_str().expect("name");
            let short = name.trim_end_matches('.').trim_end_matches(".corp.internal").to_string();
            listed.insert(short, r["data"].as_str().expect("data").to_string());
        }
        let lost: Vec<&String> = acked.keys().filter(|k| !listed.contains_key(*k)).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged but lost after kill -9: {lost:?}");
        for (name, data) in &acked {
            assert_eq!(&listed[name], data, "round {round}: {name}");
        }
        let extra: Vec<&String> = listed.keys().filter(|k| !acked.contains_key(*k) && !in_flight.contains(k)).collect();
        assert!(extra.is_empty(), "round {round}: records nobody wrote: {extra:?}");
        let landed = listed.contains_key(&in_flight[round as usize]);

        // dig: the first and last acknowledged of this round (the last is the write just before the kill), and a
        // few from any round.
        let names: Vec<&String> = acked.keys().collect();
        let mut sample: Vec<String> = writes.acked.first().into_iter().chain(writes.acked.last()).cloned().collect();
        for _ in 0..3.min(names.len()) {
            sample.push(names[(rng.next() % names.len() as u64) as usize].clone());
        }
        for name in &sample {
            let dig = dig_at(&s.dns, SOURCE, &format!("{name}.corp.internal"), "A", &[]);
            assert_eq!(dig.data("A"), [acked[name].clone()], "round {round}: dig {name}:\n{}", dig.raw);
        }
        println!(
            "round {round}: killed after {} ms; {n} writes acknowledged this round, {} checked by zones show, {} by \
             dig; the write in flight {}",
            delay.as_millis(),
            acked.len(),
            sample.len(),
            if landed { "landed" } else { "did not land" }
        );
    }
    assert!(acked.len() as u64 >= ROUNDS, "too few acknowledged writes to prove anything: {}", acked.len());
    println!(
        "{} acknowledged writes survived {ROUNDS} kills in {:.1} s",
        acked.len(),
        test_start.elapsed().as_secs_f64()
    );
}
