//! IPv6 VPCs, tested like IPv4 ones: loopback has only `::1`, so this test makes its own network namespace (with
//! `ip netns`), gives its loopback ULA addresses (fd00::/8, private to the namespace) and runs vpcdns and dig inside
//! it. Nothing leaves the namespace; it is removed at the end.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{parse_dig, Dig, BIN};

/// A network namespace that is deleted on drop, with a vpcdns server running inside it.
struct Namespace {
    name: String,
    server: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip (iproute2) must be installed");
    assert!(status.success(), "ip {args:?}");
}

const CONFIG: &str = r#"
[server]
listen = ["[fd00:53::1]:5300"]
[[accounts]]
uid = "1"
name = "acme"
email = "root@acme.example"
site = "intl"
[[accounts]]
uid = "2"
name = "beta"
email = "root@beta.example"
site = "intl"
[[links]]
account = "1"
linked = "beta"
[[vpcs]]
id = "v6-prod"
account = "1"
cidrs = ["fd00:a::/64"]
[[vpcs]]
id = "v6-canary"
account = "1"
cidrs = ["fd00:a::8000:0/112"]
[[vpcs]]
id = "v6-beta"
account = "2"
cidrs = ["fd00:b::/64"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v6-prod", "v6-beta"]
records = [{ name = "www", type = "AAAA", data = "fd00:1::10" }, { name = "www", type = "A", data = "10.0.0.10" }]
[[zones]]
id = "canary"
name = "corp.internal."
account = "1"
scope = ["v6-canary"]
records = [{ name = "www", type = "AAAA", data = "fd00:2::10" }]
"#;

fn start() -> Namespace {
    let name = format!("vpcdns-test-{}", std::process::id());
    ip(&["netns", "add", &name]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ns = Namespace { name: name.clone(), server: None, _dir: dir };
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    for addr in ["fd00:53::1", "fd00:a::9", "fd00:a::8000:9", "fd00:b::9", "fd00:c::9"] {
        ip(&["-n", &name, "-6", "addr", "add", &format!("{addr}/128"), "dev", "lo", "nodad"]);
    }
    std::fs::write(ns._dir.path().join("vpcdns.toml"), CONFIG).expect("config");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &name, BIN, "serve", "--udp-sockets", "1", "--config"])
        .arg(ns._dir.path().join("vpcdns.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vpcdns in the namespace");
    let stdout = child.stdout.take().expect("stdout");
    ns.server = Some(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(20)).expect("readiness line");
    assert!(ready.contains("[fd00:53::1]:5300"), "{ready}");
    ns
}

fn dig(ns: &Namespace, source: &str, qtype: &str, tcp: bool) -> Dig {
    let mut args =
        vec!["netns", "exec", &ns.name, "dig", "@fd00:53::1", "-p", "5300", "-b", source, "+tries=1", "+time=3"];
    if tcp {
        args.push("+tcp");
    }
    args.extend_from_slice(&["www.corp.internal", qtype]);
    let out = Command::new("ip").args(&args).output().expect("dig in the namespace");
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn ipv6_sources_classify_by_longest_prefix_in_a_namespace() {
    let ns = start();
    for tcp in [false, true] {
        assert_eq!(dig(&ns, "fd00:a::9", "AAAA", tcp).data("AAAA"), ["fd00:1::10"], "prod, tcp={tcp}");
        assert_eq!(dig(&ns, "fd00:a::8000:9", "AAAA", tcp).data("AAAA"), ["fd00:2::10"], "nested canary, tcp={tcp}");
        assert_eq!(dig(&ns, "fd00:b::9", "AAAA", tcp).data("AAAA"), ["fd00:1::10"], "linked account's VPC, tcp={tcp}");
        let outside = dig(&ns, "fd00:c::9", "AAAA", tcp);
        assert_eq!(outside.status, "REFUSED", "in no VPC, tcp={tcp}");
        assert!(outside.answer.is_empty());
    }
    assert_eq!(dig(&ns, "fd00:a::8000:9", "A", false).status, "NOERROR", "the canary zone has no A: NODATA");
    assert!(dig(&ns, "fd00:a::8000:9", "A", false).answer.is_empty());
}
