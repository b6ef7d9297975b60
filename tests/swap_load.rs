//! Reload and change safety under load (issue 4 §4): a bounded query load runs across 100 hot swaps — config
//! edits and SIGHUPs in file mode, API writes in managed mode — and every query must be answered, never SERVFAIL, and
//! always with a value that one of the states served (old or new).
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, ACCOUNT, BIN};

const SOURCE: &str = "127.0.65.9";

/// Tallies of the load.
#[derive(Debug, Default)]
struct Load {
    sent: usize,
    lost: usize,
    servfail: usize,
    foreign: Vec<String>,
}

/// Sends www.corp.internal/A queries until `stop` (at most 500,000, at most 60 s); every answer's A must be one of
/// `allowed` at the time it arrives, and never older than one this client already got (the third octet is the
/// generation: a swap may be seen late, never undone).
fn load(
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    allowed: Arc<Mutex<BTreeSet<[u8; 4]>>>,
) -> std::thread::JoinHandle<Load> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind((SOURCE, 0)).expect("bind");
        socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        let mut tally = Load::default();
        let started = Instant::now();
        let mut buf = [0u8; 1500];
        let mut newest = 0u8;
        for id in 0..500_000u32 {
            if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            let id = id as u16;
            let mut q = id.to_be_bytes().to_vec();
            q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
            q.extend_from_slice(b"\x03www\x04corp\x08internal\x00\x00\x01\x00\x01");
            socket.send_to(&q, server).expect("send");
            tally.sent += 1;
            let n = loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, _)) if buf[..2] == id.to_be_bytes() => break Some(n),
                    Ok(_) => continue, // a late answer to an earlier query
                    Err(_) => break None,
                }
            };
            let Some(n) = n else {
                tally.lost += 1;
                continue;
            };
            match buf[3] & 0x0F {
                0 if buf[7] == 1 => {
                    let mut a = [0u8; 4];
                    a.copy_from_slice(&buf[n - 4..n]);
                    if !allowed.lock().map(|s| s.contains(&a)).unwrap_or(false) {
                        tally.foreign.push(format!("{a:?}"));
                    }
                    if a[2] < newest {
                        tally.foreign.push(format!("rolled back from generation {newest} to {}", a[2]));
                    }
                    newest = newest.max(a[2]);
                }
                2 => tally.servfail += 1,
                other => tally.foreign.push(format!("rcode {other}")),
            }
        }
        tally
    })
}

fn zone(generation: u8) -> String {
    format!("$ORIGIN corp.internal.\n$TTL 300\nwww A 10.0.{generation}.1\n")
}

#[test]
fn a_hundred_file_swaps_under_load() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nqueries_per_source = 0\n{ACCOUNT}[[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.65.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\nfile = \"corp.zone\"\n"
    );
    let s = Server::start(&config, &[("corp.zone", &zone(0))]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let allowed = Arc::new(Mutex::new(BTreeSet::from([[10, 0, 0, 1]])));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = load(at, stop.clone(), allowed.clone());
    let started = Instant::now();
    for swap in 1..=100u8 {
        if swap % 2 == 1 {
            // A config edit: the new value joins the allowed set before it can be served.
            allowed.lock().expect("lock").insert([10, 0, swap, 1]);
            // Replaced atomically, as deploy tools do (write, then rename): this test is about swaps, not about a
            // reader racing a writer that rewrites in place (the watcher's settling and empty-file guard cover those).
            let staged = s.dir.path().join("corp.zone.new");
            std::fs::write(&staged, zone(swap)).expect("write");
            std::fs::rename(&staged, s.dir.path().join("corp.zone")).expect("rename");
            let want = format!("10.0.{swap}.1");
            s.wait_until("the edit to be served", || {
                s.dig(SOURCE, "www.corp.internal", "A").data("A") == [want.clone()]
            });
        } else {
            let status = Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().expect("kill");
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let tally = worker.join().expect("load thread");
    println!("file swaps: 100 in {:.1} s; {tally:?}", started.elapsed().as_secs_f64());
    assert!(tally.sent > 100);
    assert_eq!((tally.lost, tally.servfail, tally.foreign.len()), (0, 0, 0), "{tally:?}");
    assert!(s.log().matches("new snapshot published").count() >= 100, "every swap published");
}

#[test]
fn a_hundred_api_writes_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nqueries_per_source = 0\n[store]\npath = \"state.db\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(dir.path().join("vpcdns.toml"), config).expect("config");
    let cfg = dir.path().join("vpcdns.toml").display().to_string();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", &cfg, "--udp-sockets", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().expect("stdout")));
    let ready = lines.next().and_then(Result::ok).expect("ready line");
    let admin = lines.next().and_then(Result::ok).expect("admin line");
    let dns: SocketAddr = ready.rsplit(' ').next().and_then(|a| a.parse().ok()).expect("dns address");
    let url = admin.split_whitespace().nth(2).expect("url").to_string();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let op = |args: &[&str]| {
        let mut all = vec!["operator", "--config", cfg.as_str(), "--json"];
        all.extend_from_slice(args);
        run(&all)
    };
    op(&["accounts", "put", "--uid", "1", "--name", "acme", "--email", "root@acme.example", "--site", "intl"]);
    op(&["vpcs", "put", "--id", "v1", "--account", "1", "--cidr", "127.0.65.0/24"]);
    let key = op(&["key", "acme"])["token"].as_str().expect("token").to_string();
    let admin_cmd = |args: &[&str]| {
        let mut all = vec!["admin", "--url", url.as_str(), "--key", key.as_str(), "--json"];
        all.extend_from_slice(args);
        run(&all)
    };
    admin_cmd(&["zones", "create", "corp.internal.", "--scope", "v1"]);
    let rid = admin_cmd(&["records", "add", "1/corp.internal.", "www", "A", "10.0.0.1"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let allowed = Arc::new(Mutex::new(BTreeSet::from([[10, 0, 0, 1]])));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = load(dns, stop.clone(), allowed.clone());
    let started = Instant::now();
    for write in 1..=100u8 {
        allowed.lock().expect("lock").insert([10, 0, write, 1]);
        admin_cmd(&["records", "change", "1/corp.internal.", &rid, "www", "A", &format!("10.0.{write}.1")]);
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let tally = worker.join().expect("load thread");
    println!("API writes: 100 in {:.1} s; {tally:?}", started.elapsed().as_secs_f64());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(tally.sent > 100);
    assert_eq!((tally.lost, tally.servfail, tally.foreign.len()), (0, 0, 0), "{tally:?}");
    assert_eq!(status, Some(0), "SIGTERM ends the server cleanly, within the deadline");
}

fn wait_exit(child: &mut std::process::Child, deadline: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}
