//! Issue 16's proof: two nodes on a 3-member etcd cluster take concurrent writes (through the real CLI, each write
//! with an idempotency key, retried until acknowledged) while the test injects, in turn: SIGSTOP of a follower,
//! SIGSTOP of the leader, SIGKILL of the leader, a member's disk filled (a small tmpfs: etcd exits on the write its
//! disk refuses), and every member down and back. It records every attempt's outcome and each node's applied
//! revision, then checks the history: every acknowledged write is present exactly once on every node, nothing
//! refused is present, retries never duplicate, each node's revision only grows, and each node converges within
//! 3 s of each fault's end. It prints a figure per fault (the README's "Several nodes" table).
// A failing expectation is the test failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "etcd")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::store::{run, token, StoreServer};
use common::{http_get, metrics_addr_in};

const UNLIMITED_WRITES: &str = "writes_per_second = 1000000\nwrite_burst = 1000000\n";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-shared-secret";
/// The member whose data is on the small file system.
const DISK_MEMBER: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    StopFollower,
    StopLeader,
    KillLeader,
    DiskFull,
    EtcdDown,
}

/// One attempt at one write: which write, when, and what came of it.
#[derive(Debug, Clone)]
struct Attempt {
    write: (usize, usize),
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Acknowledged at this revision.
    Acked(u64),
    /// Refused with nothing done (etcd unreachable: `503 store_unavailable`).
    Refused,
    /// Anything else: the outcome is not known to the client.
    Unknown(String),
}

/// One sample of a node's applied revision.
struct Sample {
    at: Instant,
    node: usize,
    revision: u64,
    staleness: f64,
}

/// A small tmpfs of the test's own, unmounted when dropped.
struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    /// Mounts a tmpfs big enough for etcd's preallocated 64 MB write-ahead log and a little more.
    fn mount() -> Disk {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=96m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs (this test needs root, as scripts/test.sh runs)");
        Disk { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn fill_path(&self) -> PathBuf {
        self.dir.path().join("fill")
    }

    /// Fills what is left (the write stops at ENOSPC).
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M"])
            .arg(format!("of={}", self.fill_path().display()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.fill_path());
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn node(etcd: &Etcd, name: &str) -> StoreServer {
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    StoreServer::start_on(&etcd.store_section(name), UNLIMITED_WRITES, metrics, &[("vpcdns.secret", SECRET)])
}

/// One write: `w<writer>-<seq>` A 10.<writer>.x.y through the node at `admin`, under the write's idempotency key.
fn write_once(admin: &str, key: &str, zone: &str, write: (usize, usize)) -> Outcome {
    let (writer, seq) = write;
    let (name, addr) = (format!("w{writer}-{seq}"), format!("10.{}.{}.{}", 20 + writer, seq / 250, seq % 250 + 1));
    let url = format!("http://{admin}");
    let idem = format!("fault-{writer}-{seq}");
    let args = ["admin", "--url", &url, "--key", key, "--json", "--idempotency-key", &idem];
    match run(&[&args[..], &["records", "add", zone, &name, "A", &addr]].concat()) {
        Ok(answer) => Outcome::Acked(answer["revision"].as_u64().expect("a write answers with its revision")),
        Err(e) if e.contains("503 store_unavailable") => Outcome::Refused,
        Err(e) => Outcome::Unknown(e.lines().last().unwrap_or_default().to_string()),
    }
}

/// Writes w<writer>-0, -1, … through one node until told to stop, each retried (same key) until acknowledged.
fn writer(admin: String, key: String, zone: String, id: usize, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Attempt>>>) {
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) && seq < 5_000 {
        let started = Instant::now();
        let outcome = write_once(&admin, &key, &zone, (id, seq));
        let acked = matches!(outcome, Outcome::Acked(_));
        log.lock().expect("log").push(Attempt { write: (id, seq), started, ended: Instant::now(), outcome });
        if acked {
            seq += 1;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Samples each node's applied revision and staleness every 50 ms until told to stop.
fn sampler(metrics: Vec<String>, stop: Arc<AtomicBool>, samples: Arc<Mutex<Vec<Sample>>>) {
    while !stop.load(Ordering::Relaxed) {
        for (node, addr) in metrics.iter().enumerate() {
            let (_, body) = http_get(addr, "/metrics");
            let value = |name: &str| {
                body.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            };
            if let Some(revision) = value("vpcdns_store_applied_revision") {
                let staleness = value("vpcdns_store_staleness_seconds").unwrap_or(0.0);
                let sample = Sample { at: Instant::now(), node, revision: revision as u64, staleness };
                samples.lock().expect("samples").push(sample);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Injects `fault`, noting the member it hit.
fn inject(etcd: &mut Etcd, fault: Fault, disk: &Disk, victim: &mut Option<usize>) {
    let leader = etcd.wait_for_leader(Duration::from_secs(10));
    match fault {
        Fault::StopFollower => {
            let follower = (0..etcd.members()).find(|&i| i != leader).expect("a follower");
            etcd.pause(follower, true);
            *victim = Some(follower);
        }
        Fault::StopLeader => {
            etcd.pause(leader, true);
            *victim = Some(leader);
        }
        Fault::KillLeader => {
            etcd.kill(leader);
            *victim = Some(leader);
        }
        Fault::DiskFull => {
            disk.fill();
            *victim = Some(DISK_MEMBER);
        }
        Fault::EtcdDown => (0..etcd.members()).for_each(|i| etcd.kill(i)),
    }
}

/// Ends `fault`: the member runs again on its data, and the cluster has a leader.
fn undo(etcd: &mut Etcd, fault: Fault, disk: &Disk, victim: Option<usize>) {
    match (fault, victim) {
        (Fault::StopFollower | Fault::StopLeader, Some(i)) => etcd.pause(i, false),
        (Fault::KillLeader, Some(i)) => etcd.restart(i),
        (Fault::DiskFull, Some(i)) => {
            disk.free();
            // The member exits on the first write its disk refuses; if no write needed space yet, it still runs.
            let exited = etcd.exited(i);
            println!("disk full: member {i} {}", if exited { "exited, restarted" } else { "still ran" });
            if exited {
                etcd.restart(i);
            }
        }
        _ => (0..etcd.members()).for_each(|i| etcd.restart(i)),
    }
    etcd.wait_for_leader(Duration::from_secs(20));
}

/// What the attempts and samples say about one fault, from its start `t0` to `t1` (its end) and on until `until`.
struct Figures {
    fault: Fault,
    back: Option<Duration>,
    /// The longest an acknowledged write in flight during the fault or after it took.
    slowest: Option<Duration>,
    failed: usize,
    converged: Option<Duration>,
    staleness: f64,
}

fn figures(
    fault: Fault,
    t0: Instant,
    t1: Instant,
    until: Instant,
    attempts: &[Attempt],
    samples: &[Sample],
) -> Figures {
    // Writes back: the first write started after the fault began (after its end, when the whole store was down)
    // that was acknowledged.
    let from = if fault == Fault::EtcdDown { t1 } else { t0 };
    let back = attempts
        .iter()
        .filter(|a| a.started >= from && matches!(a.outcome, Outcome::Acked(_)))
        .map(|a| a.ended - from)
        .min();
    let failed = attempts
        .iter()
        .filter(|a| a.started >= t0 && a.started < until && !matches!(a.outcome, Outcome::Acked(_)))
        .count();
    // Converged: both nodes have applied every write acknowledged by the fault's end.
    let target = attempts
        .iter()
        .filter(|a| a.ended <= t1)
        .filter_map(|a| if let Outcome::Acked(r) = a.outcome { Some(r) } else { None })
        .max()
        .unwrap_or(0);
    let caught_up = |node: usize| {
        samples.iter().filter(|s| s.node == node && s.at >= t1 && s.revision >= target).map(|s| s.at - t1).min()
    };
    let converged = caught_up(0).zip(caught_up(1)).map(|(a, b)| a.max(b));
    let staleness = samples.iter().filter(|s| s.at >= t0 && s.at < until).map(|s| s.staleness).fold(0.0, f64::max);
    let slowest = attempts
        .iter()
        .filter(|a| a.ended >= t0 && a.started < until && matches!(a.outcome, Outcome::Acked(_)))
        .map(|a| a.ended - a.started)
        .max();
    Figures { fault, back, slowest, failed, converged, staleness }
}

/// Every record name a node serves in the zone, with how many records it has.
fn names_on(node: &StoreServer, key: &str, zone: &str, min_revision: u64) -> HashMap<String, usize> {
    let shown = node
        .admin(key, &["zones", "show", zone, "--min-revision", &min_revision.to_string()])
        .expect("the zone, at the last acknowledged revision");
    let mut names = HashMap::new();
    for record in shown["records"].as_array().expect("records") {
        let name = record["name"].as_str().expect("name");
        *names.entry(name.split('.').next().unwrap_or(name).to_string()).or_default() += 1;
    }
    names
}

#[test]
fn writes_survive_every_single_fault_exactly_once() {
    let disk = Disk::mount();
    let mut etcd = Etcd::start_with_data(3, DISK_MEMBER, disk.path());
    let nodes = [node(&etcd, "a"), node(&etcd, "b")];
    nodes[0].put_account("1001", "acme");
    nodes[0]
        .operator(&["vpcs", "put", "--id", "vpc-acme", "--account", "1001", "--cidr", "127.0.90.0/24"])
        .expect("vpc");
    let key = token(nodes[0].operator(&["key", "acme"]));
    let zone = nodes[0].admin(&key, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone = zone["id"].as_str().expect("zone id").to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let metrics: Vec<String> = nodes.iter().map(|n| metrics_addr_in(&n.log())).collect();
    let mut threads = Vec::new();
    for (id, n) in nodes.iter().enumerate() {
        let (admin, key, zone, stop, log) =
            (n.admin.clone(), key.clone(), zone.clone(), stop.clone(), attempts.clone());
        threads.push(std::thread::spawn(move || writer(admin, key, zone, id, stop, log)));
    }
    let (stop_sampler, sampled) = (stop.clone(), samples.clone());
    threads.push(std::thread::spawn(move || sampler(metrics, stop_sampler, sampled)));

    let mut phases = Vec::new();
    for fault in [Fault::StopFollower, Fault::StopLeader, Fault::KillLeader, Fault::DiskFull, Fault::EtcdDown] {
        std::thread::sleep(Duration::from_secs(2));
        let mut victim = None;
        inject(&mut etcd, fault, &disk, &mut victim);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        undo(&mut etcd, fault, &disk, victim);
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_secs(4));
        phases.push((fault, t0, t1, Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a test thread panicked");
    }
    let attempts = attempts.lock().expect("attempts").clone();
    let samples = std::mem::take(&mut *samples.lock().expect("samples"));

    let header = ("fault", "writes back", "slowest ack", "failed", "converged", "staleness");
    println!("{:<14} {:>11} {:>11} {:>6} {:>9} {:>9}", header.0, header.1, header.2, header.3, header.4, header.5);
    let mut figures_all = Vec::new();
    for &(fault, t0, t1, until) in &phases {
        let f = figures(fault, t0, t1, until, &attempts, &samples);
        let ms = |d: Option<Duration>| d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
        let name = format!("{fault:?}");
        let (back, slowest, converged) = (ms(f.back), ms(f.slowest), ms(f.converged));
        println!("{name:<14} {back:>11} {slowest:>11} {:>6} {converged:>9} {:>7.1} s", f.failed, f.staleness);
        figures_all.push(f);
    }

    // The history: per write, what the client was told.
    let mut told: BTreeMap<(usize, usize), Vec<&Outcome>> = BTreeMap::new();
    for a in &attempts {
        told.entry(a.write).or_default().push(&a.outcome);
    }
    let last_revision = attempts
        .iter()
        .filter_map(|a| if let Outcome::Acked(r) = a.outcome { Some(r) } else { None })
        .max()
        .expect("some writes were acknowledged");
    let (mut lost, mut duplicated, mut refused_present) = (0, 0, 0);
    for n in &nodes {
        let names = names_on(n, &key, &zone, last_revision);
        for (&(writer, seq), outcomes) in &told {
            let count = names.get(&format!("w{writer}-{seq}")).copied().unwrap_or(0);
            let acked = outcomes.iter().any(|o| matches!(o, Outcome::Acked(_)));
            let all_refused = outcomes.iter().all(|o| **o == Outcome::Refused);
            lost += usize::from(acked && count == 0);
            duplicated += usize::from(count > 1);
            refused_present += usize::from(all_refused && count > 0);
        }
    }
    let acked = told.values().filter(|o| o.iter().any(|o| matches!(o, Outcome::Acked(_)))).count();
    println!(
        "{} attempts, {acked} writes acknowledged; on both nodes: lost {lost}, duplicated {duplicated}, refused but \
         present {refused_present}",
        attempts.len()
    );
    assert_eq!((lost, duplicated, refused_present), (0, 0, 0));

    // Each node's revision only grows.
    for node in 0..2 {
        let revisions: Vec<u64> = samples.iter().filter(|s| s.node == node).map(|s| s.revision).collect();
        assert!(revisions.len() > 100, "node {node} was sampled {} times", revisions.len());
        assert!(revisions.windows(2).all(|w| w[0] <= w[1]), "node {node}'s revision went back");
    }
    for f in &figures_all {
        assert!(f.back.is_some(), "{:?}: writes never came back", f.fault);
        let converged = f.converged.unwrap_or_else(|| panic!("{:?}: the nodes never converged", f.fault));
        assert!(converged < Duration::from_secs(3), "{:?}: the nodes converged only after {converged:?}", f.fault);
    }
    assert!(Path::new(&disk.path()).exists());
}
