//! Several vpcdns nodes sharing one state through a real etcd (started by the tests on loopback ports): writes
//! through one node's admin API are answered by the others' DNS; races lose nothing; the nodes survive a leader
//! failover, a compaction past their revision, and etcd being down.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "etcd")]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::store::{token, StoreServer};
use common::{http_get, metrics_addr_in};
use serde_json::Value;

/// One test at a time: each starts etcd members and several nodes, and on 2 cores running them side by side only
/// measures the machine (a failover or a restart then takes seconds instead of one).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const UNLIMITED_WRITES: &str = "writes_per_second = 1000000\nwrite_burst = 1000000\n";

/// The secret every node shares (link codes minted on one node verify on another).
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-shared-secret";

fn node(etcd: &Etcd, name: &str) -> StoreServer {
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    // These tests write as fast as they can (propagation, races): the per-account write limit is not their subject.
    StoreServer::start_on(&etcd.store_section(name), UNLIMITED_WRITES, metrics, &[("vpcdns.secret", SECRET)])
}

/// An account, a VPC on 127.0.90.0/24, a root key, and a zone scoped to the VPC; the key and the zone id.
fn inventory(a: &StoreServer) -> (String, String) {
    a.put_account("1001", "acme");
    a.operator(&["vpcs", "put", "--id", "vpc-acme", "--account", "1001", "--cidr", "127.0.90.0/24"]).expect("vpc");
    let key = token(a.operator(&["key", "acme"]));
    let zone = a.admin(&key, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    (key, zone["id"].as_str().expect("zone id").to_string())
}

/// One A query over UDP from a VPC source, with a short timeout: the answer's addresses, or None (no answer).
fn query_a(server: &str, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
    let sock = UdpSocket::bind("127.0.90.7:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).ok()?;
    let answer = &buf[..n];
    let count = u16::from_be_bytes([answer[6], answer[7]]) as usize;
    // Skip the question (the same bytes as ours), then read A records (name is a pointer: 2 bytes).
    let mut at = q.len();
    let mut addrs = Vec::new();
    for _ in 0..count {
        let rtype = u16::from_be_bytes([answer[at + 2], answer[at + 3]]);
        let len = u16::from_be_bytes([answer[at + 10], answer[at + 11]]) as usize;
        if rtype == 1 && len == 4 {
            addrs.push(std::net::Ipv4Addr::new(answer[at + 12], answer[at + 13], answer[at + 14], answer[at + 15]));
        }
        at += 12 + len;
    }
    Some(addrs)
}

/// Waits (bounded) until `server` answers `name` with `addr`; how long it took, or None.
fn wait_answer(server: &str, name: &str, addr: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let want: std::net::Ipv4Addr = addr.parse().expect("address");
    while started.elapsed() < limit {
        if query_a(server, name).is_some_and(|a| a.contains(&want)) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// A metric's value from a node's /metrics.
fn metric(s: &StoreServer, name: &str) -> Option<f64> {
    let (_, body) = http_get(&metrics_addr_in(&s.log()), "/metrics");
    body.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().last()?.parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn a_write_on_one_node_is_answered_by_the_other() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    let (mut delays, mut totals) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let name = format!("h{i}");
        let addr = format!("10.1.{}.{}", i / 200, i % 200 + 1);
        let issued = Instant::now();
        let written = a.admin(&key, &["records", "add", &zone, &name, "A", &addr]).expect("write");
        let revision = written["revision"].as_u64().expect("revision");
        let fqdn = format!("{name}.corp.internal");
        // Polled, with a generous bound: the figures (p50, p99) are what this measures, not a limit.
        let delay = wait_answer(&b.dns, &fqdn, &addr, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("node b never answered {fqdn}; log:\n{}", b.log()));
        delays.push(delay);
        totals.push(issued.elapsed());
        if i % 50 == 0 {
            let applied = metric(&b, "vpcdns_store_applied_revision").expect("applied revision");
            assert!(applied as u64 >= revision, "b applied {applied}, a committed {revision}");
        }
    }
    for (what, sample) in
        [("after a's acknowledgement", &mut delays), ("from the CLI's start (the whole write)", &mut totals)]
    {
        sample.sort();
        println!(
            "answered by b, {what}, over {} writes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            sample.len(),
            percentile(sample, 0.5).as_secs_f64() * 1e3,
            percentile(sample, 0.99).as_secs_f64() * 1e3,
            sample[sample.len() - 1].as_secs_f64() * 1e3
        );
    }
    // Both nodes derive the same SOA serial from the store's revision.
    let soa = |s: &StoreServer| common::dig_at(&s.dns, "127.0.90.7", "corp.internal", "SOA", &[]).data("SOA");
    assert_eq!(soa(&a), soa(&b));
    // A write through b is answered by a.
    b.admin(&key, &["records", "add", &zone, "back", "A", "10.2.0.1"]).expect("write on b");
    assert!(wait_answer(&a.dns, "back.corp.internal", "10.2.0.1", Duration::from_secs(2)).is_some());
}

#[test]
fn racing_writers_on_two_nodes_lose_nothing() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    for (id, cidr) in [("vpc-x", "127.0.91.0/24"), ("vpc-y", "127.0.92.0/24")] {
        a.operator(&["vpcs", "put", "--id", id, "--account", "1001", "--cidr", cidr]).expect("vpc");
    }
    // Records and scope edits race on one zone from both nodes, without If-Match.
    let acked: Vec<(String, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = [(&a, "a", "vpc-x"), (&b, "b", "vpc-y")]
            .into_iter()
            .map(|(s, tag, vpc)| {
                let (key, zone) = (key.clone(), zone.clone());
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..25 {
                        let (name, addr) = (format!("{tag}{i}"), format!("10.3.{}.{}", tag.len(), i + 1));
                        if s.admin(&key, &["records", "add", &zone, &name, "A", &addr]).is_ok() {
                            acked.push((name, addr));
                        }
                        if i == 10 {
                            s.admin(&key, &["zones", "scope", &zone, "--add", vpc]).expect("scope add");
                        }
                    }
                    acked
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert_eq!(acked.len(), 50, "plain adds are retried by the server, never refused");
    for s in [&a, &b] {
        for (name, addr) in &acked {
            let fqdn = format!("{name}.corp.internal");
            assert!(wait_answer(&s.dns, &fqdn, addr, Duration::from_secs(2)).is_some(), "{fqdn} lost");
        }
        // Both scope additions survived: neither overwrote the other.
        let scope = s.admin(&key, &["zones", "show", &zone]).expect("zone");
        let vpcs: Vec<&str> = scope["scope"].as_array().expect("scope").iter().filter_map(Value::as_str).collect();
        assert!(vpcs.contains(&"vpc-x") && vpcs.contains(&"vpc-y"), "scope {vpcs:?}");
    }
    // With If-Match both read the same revision: exactly one of two racing writes wins, the other gets 412.
    let shown = a.admin(&key, &["zones", "show", &zone]).expect("zone");
    let revision = shown["scope_revision"].as_u64().expect("scope revision");
    let rev = revision.to_string();
    let results: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let r1 = scope.spawn(|| a.admin(&key, &["zones", "scope", &zone, "--set", "vpc-acme", "--if-match", &rev]));
        let r2 = scope.spawn(|| b.admin(&key, &["zones", "scope", &zone, "--set", "vpc-x", "--if-match", &rev]));
        vec![r1.join().expect("a"), r2.join().expect("b")]
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().any(|r| r.as_ref().is_err_and(|e| e.contains("412") || e.contains("revision"))));
}

#[test]
fn a_zone_never_shows_half_of_a_change() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    // A 100,000-record import is some 800 times etcd's 128 operations per transaction: it must appear whole, at once.
    const N: usize = 100_000;
    let addr = |i: usize| format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let mut text = String::from("$TTL 300\n");
    for i in 0..N {
        text.push_str(&format!("n{i} A {}\n", addr(i)));
    }
    let file = a.dir.path().join("import.zone");
    std::fs::write(&file, &text).expect("zone file");
    let last_name = format!("n{}.corp.internal", N - 1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let importer = scope.spawn(|| a.admin(&key, &["zones", "import", &zone, &file.display().to_string()]));
        // While it runs, b answers either the old zone (n0 absent) or the whole new one (n0 and the last present).
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let first = query_a(&b.dns, "n0.corp.internal").unwrap_or_default();
            let last = query_a(&b.dns, &last_name).unwrap_or_default();
            if !first.is_empty() {
                assert!(!last.is_empty(), "b served the first record of the import without the last");
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        importer.join().expect("importer").expect("import");
    });
    let imported = started.elapsed();
    assert!(wait_answer(&b.dns, &last_name, &addr(N - 1), Duration::from_secs(30)).is_some());
    println!(
        "import of {N} records through node a: acknowledged and answered by node b after {:.1} s",
        imported.as_secs_f64()
    );
    // Both nodes hold exactly the imported records, and nothing of the old generation is left in etcd.
    for s in [&a, &b] {
        let shown = s.admin(&key, &["zones", "show", &zone]).expect("zone");
        assert_eq!(shown["records"].as_array().map(Vec::len), Some(N));
    }
    let keys = etcd.ctl(&["get", "--prefix", "--keys-only", "/vpcdns/record/"]).expect("etcdctl get");
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), N, "stale generations left in etcd");
    // A second import replaces the first whole.
    std::fs::write(&file, "$TTL 300\nonly A 10.5.0.1\n").expect("zone file");
    a.admin(&key, &["zones", "import", &zone, &file.display().to_string()]).expect("second import");
    assert!(wait_answer(&b.dns, "only.corp.internal", "10.5.0.1", Duration::from_secs(5)).is_some());
    assert_eq!(query_a(&b.dns, "n0.corp.internal").unwrap_or_default(), Vec::<std::net::Ipv4Addr>::new());
    let keys = etcd.ctl(&["get", "--prefix", "--keys-only", "/vpcdns/record/"]).expect("etcdctl get");
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 1);
}

#[test]
fn leader_failover_loses_no_acknowledged_write() {
    let _serial = serial();
    let mut etcd = Etcd::start(3);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    let mut acked = Vec::new();
    let mut killed = None;
    let mut failures = Vec::new();
    for i in 0..40 {
        if i == 15 {
            let leader = etcd.leader().expect("a leader");
            etcd.kill(leader);
            killed = Some(leader);
        }
        let (name, addr) = (format!("f{i}"), format!("10.6.0.{}", i + 1));
        // The client retries as a client would: a write either is acknowledged or fails with a clear error.
        for _ in 0..20 {
            match a.admin(&key, &["records", "add", &zone, &name, "A", &addr]) {
                Ok(_) => {
                    acked.push((name.clone(), addr.clone()));
                    break;
                }
                Err(e) => {
                    failures.push(e.lines().last().unwrap_or_default().to_string());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    assert!(killed.is_some());
    println!("leader {killed:?} killed after 15 writes; {} failed attempts, retried: {failures:?}", failures.len());
    assert!(acked.len() >= 35, "only {} of 40 writes were acknowledged", acked.len());
    let c = node(&etcd, "c");
    for s in [&b, &c] {
        for (name, addr) in &acked {
            let fqdn = format!("{name}.corp.internal");
            assert!(
                wait_answer(&s.dns, &fqdn, addr, Duration::from_secs(5)).is_some(),
                "{fqdn} lost; log:\n{}",
                s.log()
            );
        }
    }
}

#[test]
fn a_node_behind_a_compaction_reads_everything_again() {
    let _serial = serial();
    let mut etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    a.admin(&key, &["records", "add", &zone, "before", "A", "10.7.0.1"]).expect("write");
    assert!(wait_answer(&b.dns, "before.corp.internal", "10.7.0.1", Duration::from_secs(2)).is_some());
    // b stops following: frozen while etcd restarts (which breaks b's watch; while the connection lived, the
    // kernel would have buffered new events for b), a writes, and etcd compacts past b's revision.
    let pid = b.pid().expect("b runs").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    etcd.kill(0);
    etcd.restart(0);
    etcd.wait_for_leader(Duration::from_secs(10));
    let write = |name: &str, addr: &str| {
        for _ in 0..150 {
            if a.admin(&key, &["records", "add", &zone, name, "A", addr]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("a could not write {name} within 15 s; log:\n{}", a.log());
    };
    for i in 0..5 {
        write(&format!("c{i}"), &format!("10.7.1.{}", i + 1));
    }
    write("after", "10.7.0.2");
    let revision = etcd.revision();
    etcd.ctl(&["compact", &revision.to_string()]).expect("compact");
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    assert!(
        wait_answer(&b.dns, "after.corp.internal", "10.7.0.2", Duration::from_secs(20)).is_some(),
        "b did not converge; log:\n{}",
        b.log()
    );
    assert!(b.log().contains("compacted"), "b should say it read everything again; log:\n{}", b.log());
    // The new snapshot is served a moment before the relist is counted: poll.
    let counted = (0..50).any(|_| {
        let done = metric(&b, "vpcdns_store_relists").unwrap_or(0.0) >= 1.0;
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(counted, "vpcdns_store_relists stayed 0");
    // Same state on both: every record of a is answered by b.
    for i in 0..5 {
        let name = format!("c{i}.corp.internal");
        assert!(wait_answer(&b.dns, &name, &format!("10.7.1.{}", i + 1), Duration::from_secs(2)).is_some());
    }
}

#[test]
fn with_etcd_down_nodes_keep_answering_and_writes_fail_clearly() {
    let _serial = serial();
    let mut etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    a.admin(&key, &["records", "add", &zone, "www", "A", "10.8.0.1"]).expect("write");
    assert!(wait_answer(&b.dns, "www.corp.internal", "10.8.0.1", Duration::from_secs(2)).is_some());
    etcd.kill(0);
    // Both keep answering from their last state.
    for s in [&a, &b] {
        assert_eq!(query_a(&s.dns, "www.corp.internal"), Some(vec!["10.8.0.1".parse().expect("ip")]));
    }
    // A write fails at once with a clear error.
    let started = Instant::now();
    let error = a.admin(&key, &["records", "add", &zone, "down", "A", "10.8.0.2"]).expect_err("write must fail");
    assert!(error.contains("etcd is unreachable"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Readiness and metrics say the node serves a stale state.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(&metrics_addr_in(&b.log()), "/ready");
        if body.contains("unreachable") {
            assert_eq!(status, 200, "a node with a state keeps serving");
            break;
        }
        assert!(Instant::now() < deadline, "/ready never said the store is unreachable: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&b, "vpcdns_store_connected"), Some(0.0));
    assert!(b.log().contains("store unreachable"));
    // etcd returns: writes work again and both nodes converge.
    etcd.restart(0);
    etcd.wait_for_leader(Duration::from_secs(10));
    let mut written = false;
    for _ in 0..50 {
        if a.admin(&key, &["records", "add", &zone, "back", "A", "10.8.0.3"]).is_ok() {
            written = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(written, "writes never worked again");
    for s in [&a, &b] {
        assert!(wait_answer(&s.dns, "back.corp.internal", "10.8.0.3", Duration::from_secs(5)).is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&b, "vpcdns_store_connected") != Some(1.0) {
        assert!(Instant::now() < deadline, "b never reported the store back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcd_over_tls_with_client_certificates_and_authentication() {
    let _serial = serial();
    let mut etcd = Etcd::start_tls(1);
    // etcd authentication: a root, and a user that may only read and write vpcdns's prefix.
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "vpcdns:s3cret"],
        &["role", "add", "vpcdns"],
        &["role", "grant-permission", "vpcdns", "--prefix=true", "readwrite", "/vpcdns/"],
        &["user", "grant-role", "vpcdns", "vpcdns"],
        &["auth", "enable"],
    ] {
        etcd.ctl(args).unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"));
    }
    etcd.user = Some("root:rootpw".into());
    let tls = etcd.tls().cloned().expect("tls");
    let section = |node: &str, password_file: &str, with_cert: bool| {
        let mut s = etcd.store_section(node);
        s.push_str(&format!("tls_ca = {:?}\n", tls.ca.display().to_string()));
        if with_cert {
            s.push_str(&format!(
                "tls_cert = {:?}\ntls_key = {:?}\n",
                tls.cert.display().to_string(),
                tls.key.display().to_string()
            ));
        }
        s.push_str(&format!("user = \"vpcdns\"\npassword_file = \"{password_file}\"\n"));
        s
    };
    let files: [(&str, &[u8]); 3] = [("vpcdns.secret", SECRET), ("good.pw", b"s3cret\n"), ("bad.pw", b"wrong\n")];
    let a = StoreServer::start_on(&section("n1", "good.pw", true), "", "", &files);
    let b = StoreServer::start_on(&section("n2", "good.pw", true), "", "", &files);
    let (key, zone) = inventory(&a);
    a.admin(&key, &["records", "add", &zone, "tls", "A", "10.9.0.1"]).expect("write over TLS");
    assert!(wait_answer(&b.dns, "tls.corp.internal", "10.9.0.1", Duration::from_secs(2)).is_some());
    // A wrong password, or no client certificate, stops the start-up with an error that says why.
    for (config, expect) in
        [(section("n3", "bad.pw", true), "password"), (section("n3", "good.pw", false), "tls_cert and tls_key")]
    {
        let dir = tempfile::tempdir().expect("dir");
        let text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{config}[admin]\nlisten = \"127.0.0.1:0\"\n");
        std::fs::write(dir.path().join("vpcdns.toml"), text).expect("config");
        for (name, content) in &files {
            std::fs::write(dir.path().join(name), content).expect("file");
        }
        // Bounded: a server that starts anyway (the bug this checks for) is killed and the test fails.
        let mut child = std::process::Command::new(common::BIN)
            .args(["serve", "--config"])
            .arg(dir.path().join("vpcdns.toml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vpcdns");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
        let status = status.unwrap_or_else(|| panic!("started without valid credentials ({expect}): {stderr}"));
        assert!(!status.success(), "started without valid credentials: {stderr}");
        println!("refused as expected: {}", stderr.trim());
        assert!(stderr.contains("etcd") && stderr.contains(expect), "{stderr}");
    }
}

/// The store contract the embedded store is held to, checked against etcd (each check under a fresh prefix).
#[test]
fn the_etcd_store_keeps_the_store_contract() {
    let _serial = serial();
    use vpcdns::control::store::etcd::EtcdStore;
    use vpcdns::settings::EtcdSettings;
    let etcd = Etcd::start(1);
    let mut n = 0;
    vpcdns::control::store::conformance::run_all(&mut || {
        n += 1;
        let settings = EtcdSettings { prefix: format!("/contract{n}/"), ..EtcdSettings::plain(etcd.endpoints()) };
        std::sync::Arc::new(EtcdStore::open(&settings).expect("open the etcd store"))
    });
}

/// `apply` of a large zone stays within etcd's limits and atomic: its records go in as a new generation.
#[test]
fn apply_of_a_large_zone_goes_in_whole() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let state = "[[accounts]]\nuid = \"1001\"\nname = \"acme\"\nemail = \"root@acme.example\"\nsite = \"intl\"\n\
                 [[vpcs]]\nid = \"vpc-acme\"\naccount = \"1001\"\ncidrs = [\"127.0.90.0/24\"]\n\
                 [[zones]]\nname = \"bulk.internal.\"\naccount = \"1001\"\nscope = [\"vpc-acme\"]\nfile = \"bulk.zone\"\n";
    std::fs::write(a.dir.path().join("state.toml"), state).expect("state");
    let file = a.dir.path().join("state.toml").display().to_string();
    for (round, base) in [(0, 1), (1, 2)] {
        let mut zone = String::from("$TTL 300\n");
        for i in 0..1000 {
            zone.push_str(&format!("h{i} A 10.{base}.{}.{}\n", i / 200, i % 200 + 1));
        }
        std::fs::write(a.dir.path().join("bulk.zone"), zone).expect("zone");
        let applied = a.operator(&["apply", "-f", &file]).expect("apply");
        assert_eq!(applied["result"], "applied", "round {round}");
        let addr = format!("10.{base}.4.200");
        assert!(wait_answer(&b.dns, "h999.bulk.internal", &addr, Duration::from_secs(10)).is_some(), "round {round}");
        let keys = etcd.ctl(&["get", "--prefix", "--keys-only", "/vpcdns/record/"]).expect("etcdctl get");
        assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 1000, "round {round}: one generation left");
    }
    assert_eq!(a.operator(&["apply", "-f", &file]).expect("apply")["result"], "unchanged");
}

/// Each node counts the queries it answers under its own name; usage sums them.
#[test]
fn usage_is_counted_per_node_and_summed() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    let written = a.admin(&key, &["records", "add", &zone, "www", "A", "10.10.0.1"]).expect("write");
    let revision = written["revision"].as_f64().expect("revision");
    // b has the record (watched through its metrics, so that no query is counted before the five below).
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&b, "vpcdns_store_applied_revision").unwrap_or(0.0) < revision {
        assert!(Instant::now() < deadline, "b never applied revision {revision}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = 0;
    for (s, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            assert!(query_a(&s.dns, "www.corp.internal").is_some_and(|r| !r.is_empty()));
        }
    }
    // Counts are written every 5 seconds by each node.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut usage = Value::Null;
    while Instant::now() < deadline {
        usage = b.admin(&key, &["usage"]).expect("usage");
        if usage["total"].as_u64() == Some(before + 5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(usage["total"].as_u64(), Some(before + 5), "{usage}");
    let nodes = etcd.ctl(&["get", "--prefix", "--keys-only", "/vpcdns/usage/"]).expect("etcdctl get");
    assert!(nodes.lines().any(|k| k.ends_with("/a")) && nodes.lines().any(|k| k.ends_with("/b")), "{nodes}");
}

/// Issue 16, finding 1: one hung member (SIGSTOP: it keeps its connections and answers nothing) must not stop
/// writes. The node moves off a member that does not answer within the per-attempt deadline (1 s here), so writes
/// are acknowledged again within a few seconds — at most the ones in flight on the hung member fail.
#[test]
fn a_hung_member_stops_writes_only_briefly() {
    let _serial = serial();
    let etcd = Etcd::start(3);
    let a = node(&etcd, "a");
    let (key, zone) = inventory(&a);
    // The node's first endpoint is the member it prefers after its start-up: hang that one.
    etcd.pause(0, true);
    let hung = Instant::now();
    let mut first_ack = None;
    let mut failed = 0;
    for i in 0..100 {
        if hung.elapsed() > Duration::from_secs(20) {
            break;
        }
        let addr = format!("10.7.0.{}", i + 1);
        match a.admin(&key, &["records", "add", &zone, &format!("h{i}"), "A", &addr]) {
            Ok(_) => {
                first_ack.get_or_insert(hung.elapsed());
                if i >= 3 {
                    break;
                }
            }
            Err(_) => failed += 1,
        }
    }
    etcd.pause(0, false);
    let back = first_ack.expect("writes were never acknowledged again while one member hung");
    println!("one member hung: writes acknowledged again after {back:?}; {failed} write(s) failed meanwhile");
    assert!(back < Duration::from_secs(6), "writes came back only after {back:?}");
    assert!(failed <= 2, "{failed} writes failed: more than the ones in flight on the hung member");
}

/// Issue 16, finding 3: a node whose watch is on a member that hangs must notice (no progress notice within 1.5 s)
/// and resume on another member, so its DNS is behind the cluster by seconds, not by HTTP/2's keepalive.
#[test]
fn a_watch_on_a_hung_member_moves_on() {
    let _serial = serial();
    let etcd = Etcd::start(3);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    // Both nodes started on their first endpoint: b's watch is on member 0. Hang it, then write through a.
    etcd.pause(0, true);
    let hung = Instant::now();
    let mut acked = None;
    while acked.is_none() && hung.elapsed() < Duration::from_secs(20) {
        if a.admin(&key, &["records", "add", &zone, "late", "A", "10.8.0.1"]).is_ok() {
            acked = Some(hung.elapsed());
        }
    }
    let acked = acked.expect("the write was acknowledged");
    let seen = wait_answer(&b.dns, "late.corp.internal", "10.8.0.1", Duration::from_secs(20));
    etcd.pause(0, false);
    let seen = seen.expect("node b never saw the write");
    println!("member 0 hung: write acknowledged after {acked:?}, answered by the other node {seen:?} later");
    assert!(seen < Duration::from_secs(5), "node b was behind by {seen:?}");
}

/// Issue 16, finding 5: with `[store] max_staleness_s`, a node that has gone longer than that without word from the
/// store says it is not ready (a load balancer stops sending it traffic), and says why; it keeps answering DNS for
/// clients that still reach it, and is ready again once the store is back.
#[test]
fn a_node_staler_than_allowed_is_not_ready() {
    let _serial = serial();
    let mut etcd = Etcd::start(1);
    let section = format!("{}max_staleness_s = 2\n", etcd.store_section("a"));
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let a = StoreServer::start_on(&section, UNLIMITED_WRITES, metrics, &[("vpcdns.secret", SECRET)]);
    let (key, zone) = inventory(&a);
    a.admin(&key, &["records", "add", &zone, "www", "A", "10.9.0.1"]).expect("write");
    let ready = || http_get(&metrics_addr_in(&a.log()), "/ready");
    assert_eq!(ready().0, 200, "{}", ready().1);
    etcd.kill(0);
    let killed = Instant::now();
    let (status, body) = loop {
        let (status, body) = ready();
        if status == 503 || killed.elapsed() > Duration::from_secs(15) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("store down: not ready after {:?}: {body}", killed.elapsed());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_staleness_s = 2"), "{body}");
    assert!(killed.elapsed() >= Duration::from_secs(2), "not ready before the store was stale");
    assert_eq!(query_a(&a.dns, "www.corp.internal"), Some(vec!["10.9.0.1".parse().expect("ip")]), "DNS still answers");
    etcd.restart(0);
    etcd.wait_for_leader(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready().0 != 200 {
        assert!(Instant::now() < deadline, "never ready again: {}", ready().1);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 16, finding 2 (its read half): every write answers with its commit revision, and `?min_revision=` (CLI:
/// `--min-revision`) makes any node wait until it has applied it, so a client reads its own write through any node;
/// a node that does not get there in time answers 503 `behind` instead of an old state.
#[test]
fn a_client_reads_its_own_write_through_another_node() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let b = node(&etcd, "b");
    let (key, zone) = inventory(&a);
    let added = a.admin(&key, &["records", "add", &zone, "mine", "A", "10.10.0.1"]).expect("write");
    let revision = added["revision"].as_u64().expect("a write answers with its revision");
    let shown = b.admin(&key, &["zones", "show", &zone, "--min-revision", &revision.to_string()]).expect("read");
    assert!(shown.to_string().contains("10.10.0.1"), "{shown}");
    let started = Instant::now();
    let future = (revision + 1_000_000).to_string();
    let behind = common::store::err(b.admin(&key, &["zones", "list", "--min-revision", &future]));
    assert!(behind.contains("503 behind"), "{behind}");
    assert!(started.elapsed() < Duration::from_secs(15), "the wait is bounded");
}

/// Issue 16, finding 6: a node holds its name under an etcd lease while it runs, so a second node started under the
/// same name (both would count usage under it, losing each other's counts) is refused with a clear error; after a
/// clean shutdown the name is free at once.
#[test]
fn two_running_nodes_never_share_a_name() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let mut a = node(&etcd, "a");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{}[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"twin.sock\"\n",
        etcd.store_section("a")
    );
    std::fs::write(dir.path().join("vpcdns.toml"), config).expect("config");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut secret = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.path().join("vpcdns.secret"))
            .expect("secret");
        std::io::Write::write_all(&mut secret, SECRET).expect("secret");
    }
    let mut twin = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("vpcdns.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the twin");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = twin.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(40) {
            let _ = twin.kill();
            panic!("a second node named \"a\" kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut twin.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("held by another running node"), "{stderr}");
    // A clean shutdown gives the name back: a node under it starts at once.
    a.terminate();
    let again = Instant::now();
    let _b = node(&etcd, "a");
    assert!(again.elapsed() < Duration::from_secs(8), "the name came free only after {:?}", again.elapsed());
}

/// Issue 16, finding 4 (its first part): vpcdns compacts etcd's history on a schedule, keeping `[store] history_s`
/// of it (5 minutes by default, as kube-apiserver does), so etcd never fills its quota with old revisions.
#[test]
fn the_shared_history_is_compacted_on_a_schedule() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let section = format!("{}history_s = 2\n", etcd.store_section("a"));
    let a = StoreServer::start_on(&section, UNLIMITED_WRITES, "", &[("vpcdns.secret", SECRET)]);
    let (key, zone) = inventory(&a);
    for i in 0..5 {
        a.admin(&key, &["records", "add", &zone, &format!("c{i}"), "A", "10.11.0.1"]).expect("write");
    }
    let started = Instant::now();
    let compacted = loop {
        match etcd.ctl(&["get", "--rev=2", "--prefix", "/vpcdns/"]) {
            Err(e) if e.contains("compacted") => break Some(started.elapsed()),
            _ if started.elapsed() > Duration::from_secs(20) => break None,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let compacted = compacted.expect("etcd's history was never compacted");
    println!("history_s = 2: revision 2 compacted {compacted:?} after the writes");
    // The node still serves and writes after the compaction.
    a.admin(&key, &["records", "add", &zone, "after", "A", "10.11.0.2"]).expect("write after compaction");
}

/// Issue 16, finding 2: the CLI retries a change whose outcome the node could not tell (`503 outcome_unknown`) by
/// itself, with the same Idempotency-Key, so the change is made exactly once. The only member hangs while the write
/// is in flight (the node's calls time out: outcome unknown, after the node's own two retries under the key) and
/// comes back before the CLI's retry; etcd then applies the requests it held, and the retry finds the first outcome
/// instead of adding the record again.
#[test]
fn the_cli_retries_an_unknown_outcome_and_the_change_is_made_once() {
    let _serial = serial();
    let etcd = Etcd::start(1);
    let a = node(&etcd, "a");
    let (key, zone) = inventory(&a);
    etcd.pause(0, true);
    let url = format!("http://{}", a.admin);
    let (cli_key, cli_zone) = (key.clone(), zone.clone());
    let write = std::thread::spawn(move || {
        let args = [
            "admin",
            "--url",
            &url,
            "--key",
            &cli_key,
            "--json",
            "records",
            "add",
            &cli_zone,
            "once",
            "A",
            "10.12.0.1",
        ];
        std::process::Command::new(common::BIN).args(args).output().expect("run vpcdns")
    });
    // The node sends the change to the hung member three times (each 1 s without an answer), then answers
    // outcome_unknown; the CLI waits a second before sending it again: the member is back by then.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log().contains("the client must send it again") {
        assert!(Instant::now() < deadline, "the node never gave up: {}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    etcd.pause(0, false);
    let out = write.join().expect("the CLI thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the change failed: {stderr}");
    assert!(stderr.contains("outcome_unknown") && stderr.contains("same Idempotency-Key"), "no retry: {stderr}");
    let shown = a.admin(&key, &["zones", "show", &zone]).expect("zone");
    let copies = shown["records"].as_array().expect("records").iter().filter(|r| r["data"] == "10.12.0.1").count();
    assert_eq!(copies, 1, "{shown}");
}
