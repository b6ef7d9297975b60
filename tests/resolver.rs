//! The VPC's resolver end to end: the "public internet" and the "on-premises" DNS are BIND instances on loopback
//! ports; vpcdns resolves names outside its private zones through upstreams and forwarding rules, caches, crosses
//! CNAMEs both ways, and fails in time with an Extended DNS Error.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::bind::Named;
use common::{dig_at, http_get, metrics_addr, Server, ACCOUNT};
use serde_json::{json, Value};

const PUBLIC: &str = "$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
ns A 127.0.0.1
www A 192.0.2.10
short 2 A 192.0.2.11
host.onprem A 192.0.2.98
toprivate CNAME db.corp.internal.
toonprem CNAME host.onprem.example.
";

const PUBLIC_CORP: &str = "$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
public A 192.0.2.20
own A 192.0.2.21
";

const ONPREM: &str = "$TTL 300
@ SOA ns.onprem.example. hostmaster.onprem.example. 1 3600 600 86400 60
@ NS ns.onprem.example.
ns A 127.0.0.1
host A 10.99.0.1
";

/// VPC v1 (127.0.70.0/24) sees the on-premises rule and the dead rule; v2 (127.0.71.0/24) does not.
fn config(public: &str, onprem: &str, dead: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[resolver]
upstreams = ["{public}"]
allow_targets = ["127.0.0.0/8"]
timeout_ms = 500
attempts = 2
deadline_ms = 2500
[metrics]
listen = "127.0.0.1:0"
{ACCOUNT}
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.70.0/24"]
[[vpcs]]
id = "v2"
account = "1"
cidrs = ["127.0.71.0/24"]
[[forward_rules]]
id = "onprem"
account = "1"
domain = "onprem.example."
targets = ["{onprem}"]
scope = ["v1"]
[[forward_rules]]
id = "dead"
account = "1"
domain = "dead.example."
targets = ["{dead}"]
scope = ["v1"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1", "v2"]
records = [
  {{ name = "db", type = "A", data = "10.0.0.5" }},
  {{ name = "alias", type = "CNAME", data = "www.example." }},
]
[[zones]]
name = "corp.example."
account = "1"
scope = ["v1", "v2"]
fallback = "recurse"
records = [{{ name = "own", type = "A", data = "10.0.0.6" }}]
"#
    )
}

struct Setup {
    public: Named,
    onprem: Named,
    /// Holds the dead rule's port: datagrams to it are never answered.
    _blackhole: UdpSocket,
    server: Server,
}

fn setup() -> Setup {
    let public = Named::start(&[("example.", PUBLIC), ("corp.example.", PUBLIC_CORP)]);
    let onprem = Named::start(&[("onprem.example.", ONPREM)]);
    let blackhole = UdpSocket::bind("127.0.0.1:0").expect("blackhole");
    let dead = blackhole.local_addr().expect("addr").to_string();
    let server = Server::start(&config(&public.addr(), &onprem.addr(), &dead), &[]);
    Setup { public, onprem, _blackhole: blackhole, server }
}

#[test]
fn names_outside_private_zones_go_through_upstreams_and_rules() {
    let s = setup();
    let srv = &s.server;
    // Public names through the upstream, with RA; TCP as well.
    let www = srv.dig("127.0.70.5", "www.example", "A");
    assert_eq!((www.status.as_str(), www.data("A")), ("NOERROR", vec!["192.0.2.10".to_string()]));
    assert!(www.has_flag("ra") && !www.has_flag("aa"), "{:?}", www.flags);
    let tcp = srv.dig_with("127.0.71.5", "www.example", "A", &["+tcp"]);
    assert_eq!(tcp.data("A"), ["192.0.2.10"]);
    // The rule sends onprem.example. from v1 to the on-premises server; v2 is outside its scope: public answer.
    assert_eq!(srv.dig("127.0.70.5", "host.onprem.example", "A").data("A"), ["10.99.0.1"]);
    assert_eq!(srv.dig("127.0.71.5", "host.onprem.example", "A").data("A"), ["192.0.2.98"]);
    assert!(s.onprem.queries_for("host.onprem.example") >= 1);
    // A recurse-fallback zone answers its own names privately (AA), absent names through the upstream; a default
    // zone answers NXDOMAIN.
    let own = srv.dig("127.0.70.5", "own.corp.example", "A");
    assert_eq!(own.data("A"), ["10.0.0.6"], "private even though the public zone has another address");
    assert!(own.has_flag("aa"));
    assert_eq!(srv.dig("127.0.70.5", "public.corp.example", "A").data("A"), ["192.0.2.20"]);
    assert_eq!(srv.dig("127.0.70.5", "nope.corp.internal", "A").status, "NXDOMAIN");
    // An absent name below the public zone: the upstream's NXDOMAIN, with its SOA.
    let nx = srv.dig("127.0.70.5", "absent.example", "A");
    assert_eq!(nx.status, "NXDOMAIN");
    // Sources in no VPC are refused, public names included: never an open resolver.
    assert_eq!(srv.dig("127.0.72.5", "www.example", "A").status, "REFUSED");
}

#[test]
fn cnames_cross_the_boundary_both_ways() {
    let s = setup();
    let srv = &s.server;
    // Private CNAME to a public name: completed through the upstream.
    let alias = srv.dig("127.0.70.5", "alias.corp.internal", "A");
    assert_eq!(alias.data("CNAME"), ["www.example."]);
    assert_eq!(alias.data("A"), ["192.0.2.10"]);
    // Public CNAME into a private zone the VPC sees: completed from the zone.
    let back = srv.dig("127.0.70.5", "toprivate.example", "A");
    assert_eq!(back.data("CNAME"), ["db.corp.internal."]);
    assert_eq!(back.data("A"), ["10.0.0.5"]);
}

#[test]
fn answers_are_cached_until_their_ttl_runs_out() {
    let s = setup();
    let srv = &s.server;
    assert_eq!(srv.dig("127.0.70.5", "short.example", "A").data("A"), ["192.0.2.11"]);
    let after_first = s.public.queries_for("short.example");
    assert!(after_first >= 1);
    let second = srv.dig("127.0.70.5", "short.example", "A");
    assert_eq!(second.data("A"), ["192.0.2.11"]);
    assert_eq!(s.public.queries_for("short.example"), after_first, "the second answer came from the cache");
    // The record's TTL is 2 s: after it runs out, the upstream is asked again.
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(srv.dig("127.0.70.5", "short.example", "A").data("A"), ["192.0.2.11"]);
    assert_eq!(s.public.queries_for("short.example"), after_first + 1);
    // Negative answers are cached too (RFC 2308): the SOA's negative TTL is 60 s.
    srv.dig("127.0.70.5", "gone.example", "A");
    let seen = s.public.queries_for("gone.example");
    assert_eq!(srv.dig("127.0.70.5", "gone.example", "A").status, "NXDOMAIN");
    assert_eq!(s.public.queries_for("gone.example"), seen);
    // Cache and upstream counters are in the metrics, per route.
    let (_, metrics) = http_get(&metrics_addr(srv), "/metrics");
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(value("vpcdns_resolver_cache_hits_total") >= 2.0, "{metrics}");
    assert!(value("vpcdns_upstream_queries_total{route=\"upstreams\"}") >= 3.0, "{metrics}");
}

#[test]
fn a_dead_upstream_means_servfail_with_ede_in_time_and_never_delays_private_answers() {
    let s = setup();
    let srv = &s.server;
    let addr = srv.addrs[0].clone();
    let started = Instant::now();
    let slow = std::thread::spawn(move || dig_at(&addr, "127.0.70.5", "x.dead.example", "A", &["+time=5", "+tries=1"]));
    // While that waits on the dead rule, a private name is answered: before the dead one gives up.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(srv.dig("127.0.70.5", "db.corp.internal", "A").data("A"), ["10.0.0.5"]);
    assert!(!slow.is_finished(), "the private answer did not wait for the dead rule");
    let failed = slow.join().expect("dig");
    let took = started.elapsed();
    assert_eq!(failed.status, "SERVFAIL");
    assert!(failed.raw.contains("EDE: 22"), "{}", failed.raw);
    assert!(took < Duration::from_secs(5), "SERVFAIL took {took:?}: within the deadline of 2.5 s, give or take");
    let (_, metrics) = http_get(&metrics_addr(srv), "/metrics");
    assert!(metrics.contains("vpcdns_upstream_failures_total{route=\"dead\"}"), "{metrics}");
}

#[test]
fn explain_tells_the_route_and_why() {
    let s = setup();
    let config = s.server.config_path();
    let run = |source: &str, name: &str| {
        let out = std::process::Command::new(common::BIN)
            .args(["explain", "--config"])
            .arg(&config)
            .args(["--source", source, name, "A"])
            .output()
            .expect("explain");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rule = run("127.0.70.5", "host.onprem.example");
    assert!(rule.contains("route:") && rule.contains("onprem") && rule.contains("forwarding rule"), "{rule}");
    let upstream = run("127.0.71.5", "host.onprem.example");
    assert!(upstream.contains("upstreams") && upstream.contains("no zone or forwarding rule"), "{upstream}");
    let fallback = run("127.0.70.5", "public.corp.example");
    assert!(fallback.contains("fallback"), "{fallback}");
}

/// Rules and fallback are part of the managed state: created, changed and removed through the admin API.
#[test]
fn rules_and_fallback_through_the_admin_api() {
    use common::store::{err, token, StoreServer};
    let public = Named::start(&[("example.", PUBLIC), ("corp.example.", PUBLIC_CORP)]);
    let onprem = Named::start(&[("onprem.example.", ONPREM)]);
    let sections = format!("[resolver]\nupstreams = [\"{}\"]\nallow_targets = [\"127.0.0.0/8\"]\n", public.addr());
    let s = StoreServer::start_with("", &sections, &[]);
    s.put_account("1001", "acme");
    s.put_account("1002", "beta");
    s.operator(&["vpcs", "put", "--id", "vpc-a", "--account", "1001", "--cidr", "127.0.73.0/24"]).expect("vpc");
    s.operator(&["vpcs", "put", "--id", "vpc-b", "--account", "1002", "--cidr", "127.0.74.0/24"]).expect("vpc");
    let key = token(s.operator(&["key", "acme"]));
    let dig = |name: &str| dig_at(&s.dns, "127.0.73.5", name, "A", &[]);
    assert_eq!(dig("host.onprem.example").data("A"), ["192.0.2.98"], "before the rule: the upstream");
    let rule = s
        .admin(&key, &["rules", "add", "onprem", "onprem.example.", "--target", &onprem.addr(), "--scope", "vpc-a"])
        .expect("rule");
    let id = rule["id"].as_str().expect("id").to_string();
    assert_eq!(id, "1001-onprem");
    assert_eq!(dig("host.onprem.example").data("A"), ["10.99.0.1"], "the rule applies at once");
    // The live explain names the rule and what the rule's cache holds.
    let listener = s.dns.clone();
    let explained = s
        .admin(&key, &["explain", "--source", "127.0.73.5", "--listener", &listener, "host.onprem.example", "A"])
        .expect("explain");
    let text = explained["explain"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("1001-onprem") && text.contains("cache:   holds"), "{text}");
    let listed = s.admin(&key, &["rules", "list"]).expect("list");
    assert_eq!(listed["rules"][0]["domain"], "onprem.example.");
    // A VPC of an account not linked cannot be in a rule's scope.
    let refused = err(s.admin(&key, &["rules", "add", "x", "x.example.", "--target", "127.0.0.1", "--scope", "vpc-b"]));
    assert!(refused.contains("vpc_not_selectable"), "{refused}");
    // Seven targets are too many.
    let many: Vec<String> = (1..=7).flat_map(|i| ["--target".to_string(), format!("127.0.0.{i}")]).collect();
    let mut args = vec!["rules", "add", "y", "y.example."];
    args.extend(many.iter().map(String::as_str));
    assert!(err(s.admin(&key, &args)).contains("1 to 6"));
    // A zone that falls back to recursion, then does not.
    let zone = s
        .admin(&key, &["zones", "create", "corp.example.", "--scope", "vpc-a", "--fallback", "recurse"])
        .expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    s.admin(&key, &["records", "add", &zone_id, "own", "A", "10.0.0.6"]).expect("record");
    assert_eq!(dig("own.corp.example").data("A"), ["10.0.0.6"]);
    assert_eq!(dig("public.corp.example").data("A"), ["192.0.2.20"]);
    s.admin(&key, &["zones", "fallback", &zone_id, "nxdomain"]).expect("fallback");
    assert_eq!(dig("public.corp.example").status, "NXDOMAIN");
    // Removing the rule sends the domain back to the upstream.
    s.admin(&key, &["rules", "rm", &id]).expect("rm");
    assert_eq!(dig("host.onprem.example").data("A"), ["192.0.2.98"]);
}

/// Two accounts, each with a VPC: acme's vpc-a (127.0.75.0/24) has a rule to `dead` (never answers) and one to six
/// silent targets; beta's vpc-b (127.0.76.0/24) only the upstreams.
fn two_tenants(public: &str, dead: &str, six: &[String], resolver: &str) -> String {
    let six: Vec<String> = six.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[limits]
queries_per_source = 0
[resolver]
upstreams = ["{public}"]
allow_targets = ["127.0.0.0/8"]
{resolver}
{ACCOUNT}
[[accounts]]
uid = "2"
name = "beta"
email = "root@beta.example"
site = "intl"
[[vpcs]]
id = "vpc-a"
account = "1"
cidrs = ["127.0.75.0/24"]
[[vpcs]]
id = "vpc-b"
account = "2"
cidrs = ["127.0.76.0/24"]
[[forward_rules]]
id = "dead"
account = "1"
domain = "dead.example."
targets = ["{dead}"]
scope = ["vpc-a"]
[[forward_rules]]
id = "six"
account = "1"
domain = "six.example."
targets = [{}]
scope = ["vpc-a"]
"#,
        six.join(", ")
    )
}

/// A raw A query with the given id.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Finding 7 (issue 13): one tenant flooding a dead target fails alone; another tenant's lookups go on.
#[test]
fn a_tenant_flooding_a_dead_target_fails_alone() {
    let public = Named::start(&[("example.", PUBLIC)]);
    let blackhole = UdpSocket::bind("127.0.0.1:0").expect("blackhole");
    let dead = blackhole.local_addr().expect("addr").to_string();
    let resolver =
        "timeout_ms = 1500\nattempts = 1\ndeadline_ms = 4000\nmax_pending = 40\nmax_pending_per_account = 20";
    let config = two_tenants(&public.addr(), &dead, std::slice::from_ref(&dead), resolver);
    let server = Server::start(&config, &[]);
    let flood = UdpSocket::bind("127.0.75.9:0").expect("bind");
    flood.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    for i in 0..60u16 {
        flood.send_to(&query(i, &format!("x{i}.dead.example")), &server.addrs[0]).expect("send");
    }
    // Past its share, acme's queries fail at once (SERVFAIL), while its first 20 wait on the dead target.
    let mut busy = 0;
    let mut buf = [0u8; 512];
    while let Ok((n, _)) = flood.recv_from(&mut buf) {
        busy += usize::from(n >= 4 && buf[3] & 0x0F == 2);
    }
    assert!(busy >= 30, "acme's flood past its share is refused at once ({busy} of 60)");
    let other = server.dig("127.0.76.5", "www.example", "A");
    assert_eq!(other.data("A"), ["192.0.2.10"], "beta resolves while acme floods: {}", other.raw);
}

/// Finding 6 (issue 13): a rule with six targets asks one at a time, the next only when one fails.
#[test]
fn a_rule_asks_one_target_at_a_time() {
    let public = Named::start(&[("example.", PUBLIC)]);
    let sinks: Vec<UdpSocket> = (0..6).map(|_| UdpSocket::bind("127.0.0.1:0").expect("sink")).collect();
    let six: Vec<String> = sinks.iter().map(|s| s.local_addr().expect("addr").to_string()).collect();
    let resolver = "timeout_ms = 1500\nattempts = 1\ndeadline_ms = 3000";
    let server = Server::start(&two_tenants(&public.addr(), &six[0], &six, resolver), &[]);
    let client = UdpSocket::bind("127.0.75.9:0").expect("bind");
    client.send_to(&query(7, "www.six.example"), &server.addrs[0]).expect("send");
    std::thread::sleep(Duration::from_millis(700));
    let mut buf = [0u8; 512];
    let per_target: Vec<usize> = sinks
        .iter()
        .map(|sink| {
            sink.set_nonblocking(true).expect("nonblocking");
            std::iter::from_fn(|| sink.recv_from(&mut buf).ok()).count()
        })
        .collect();
    let asked = per_target.iter().filter(|n| **n > 0).count();
    assert_eq!(asked, 1, "one target asked within the first attempt's timeout, not several: {per_target:?}");
}

/// Finding 14 (issue 13): what one tenant resolved is not served to another from the cache (nor its aged TTL):
/// nobody learns what others look up.
#[test]
fn tenants_never_share_cached_answers() {
    let public = Named::start(&[("example.", PUBLIC)]);
    let blackhole = UdpSocket::bind("127.0.0.1:0").expect("blackhole");
    let dead = blackhole.local_addr().expect("addr").to_string();
    let server = Server::start(&two_tenants(&public.addr(), &dead, std::slice::from_ref(&dead), ""), &[]);
    assert_eq!(server.dig("127.0.75.5", "www.example", "A").data("A"), ["192.0.2.10"]);
    assert_eq!(public.queries_for("www.example"), 1);
    std::thread::sleep(Duration::from_millis(1200));
    let again = server.dig("127.0.75.6", "www.example", "A");
    assert_eq!(again.answer[0].ttl, 299, "acme's own second query is a cache hit");
    let beta = server.dig("127.0.76.5", "www.example", "A");
    assert_eq!(beta.answer[0].ttl, 300, "beta does not see acme's aged entry");
    assert_eq!(public.queries_for("www.example"), 2, "beta's query went upstream");
}

/// A chain that enters a name a forwarding rule of this VPC owns is cut there and completed through the rule: the
/// upstream's own data for that name (it holds host.onprem.example too) is never served to a VPC the rule applies to.
#[test]
fn a_chain_is_cut_where_it_enters_a_rule() {
    let s = setup();
    let srv = &s.server;
    let ruled = srv.dig("127.0.70.5", "toonprem.example", "A");
    assert_eq!(ruled.data("CNAME"), ["host.onprem.example."], "{}", ruled.raw);
    assert_eq!(ruled.data("A"), ["10.99.0.1"], "completed through the rule, not the upstream's copy: {}", ruled.raw);
    assert!(s.onprem.queries_for("host.onprem.example") >= 1);
    // v2 is outside the rule's scope: the upstream's whole chain.
    let public = srv.dig("127.0.71.5", "toonprem.example", "A");
    assert_eq!(public.data("A"), ["192.0.2.98"], "{}", public.raw);
}

/// RA says whether recursion is offered to the asking VPC, on every answer, private ones included (as BIND views
/// and Unbound): a VPC with upstreams or a rule in its scope gets it; one with neither never does.
#[test]
fn ra_is_set_for_vpcs_offered_a_resolver_and_only_for_them() {
    let onprem = Named::start(&[("onprem.example.", ONPREM)]);
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[resolver]
allow_targets = ["127.0.0.0/8"]
{ACCOUNT}
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.70.0/24"]
[[vpcs]]
id = "v2"
account = "1"
cidrs = ["127.0.71.0/24"]
[[forward_rules]]
id = "onprem"
account = "1"
domain = "onprem.example."
targets = ["{}"]
scope = ["v1"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1", "v2"]
records = [{{ name = "db", type = "A", data = "10.0.0.5" }}]
"#,
        onprem.addr()
    );
    let srv = Server::start(&config, &[]);
    for (name, status) in [("db.corp.internal", "NOERROR"), ("nope.corp.internal", "NXDOMAIN")] {
        let with_rule = srv.dig("127.0.70.5", name, "A");
        assert_eq!(with_rule.status, status);
        assert!(with_rule.has_flag("ra") && with_rule.has_flag("aa"), "v1 sees a rule: {:?}", with_rule.flags);
        let without = srv.dig("127.0.71.5", name, "A");
        assert_eq!(without.status, status);
        assert!(!without.has_flag("ra"), "v2 has no resolver: {:?}", without.flags);
    }
    assert_eq!(srv.dig("127.0.70.5", "host.onprem.example", "A").data("A"), ["10.99.0.1"]);
    let outside = srv.dig("127.0.71.5", "www.example", "A");
    assert_eq!(outside.status, "REFUSED");
    assert!(!outside.has_flag("ra"));
    // With upstreams every VPC has a resolver: v2's private answers say RA too.
    let s = setup();
    assert!(s.server.dig("127.0.71.5", "db.corp.internal", "A").has_flag("ra"));
}

/// A UDP relay to `upstream` that drops the first datagram it receives: one lost packet.
struct LossyRelay {
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl LossyRelay {
    fn start(upstream: &str) -> LossyRelay {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("relay");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let addr = socket.local_addr().expect("addr").to_string();
        let upstream = upstream.to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = 0usize;
            let mut buf = [0u8; 4096];
            // Bounded: at most 60 s, and until the test is done.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                seen += 1;
                if seen == 1 {
                    continue; // the lost packet
                }
                let out = UdpSocket::bind("127.0.0.1:0").expect("forward");
                out.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
                out.send_to(&buf[..n], &upstream).expect("forward");
                let mut answer = [0u8; 4096];
                if let Ok((m, _)) = out.recv_from(&mut answer) {
                    let _ = socket.send_to(&answer[..m], from);
                }
            }
            seen
        });
        LossyRelay { addr, stop, thread: Some(thread) }
    }

    /// Stops the relay; how many datagrams it received.
    fn finish(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

/// `attempts` means each server is tried that many times within the deadline: a timeout shorter than hickory's
/// retransmission interval and one lost datagram still end in the answer, not SERVFAIL.
#[test]
fn one_lost_datagram_is_retried_while_time_is_left() {
    let public = Named::start(&[("example.", PUBLIC)]);
    let relay = LossyRelay::start(&public.addr());
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[resolver]
upstreams = ["{}"]
timeout_ms = 300
attempts = 2
deadline_ms = 3000
{ACCOUNT}
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.70.0/24"]
"#,
        relay.addr
    );
    let srv = Server::start(&config, &[]);
    let answer = srv.dig_with("127.0.70.5", "www.example", "A", &["+time=5", "+tries=1"]);
    assert_eq!(
        (answer.status.as_str(), answer.data("A")),
        ("NOERROR", vec!["192.0.2.10".to_string()]),
        "{}",
        answer.raw
    );
    assert!(relay.finish() >= 2, "the first datagram was lost and a second attempt made");
}

/// One billing rule on every path (issue 14): an answer from a private zone, or whose chain starts in one (here a
/// `fallback = "recurse"` zone), is billed to the zone's owner; through a forwarding rule to the rule's owner; from
/// the upstreams to the asking VPC's own account, as resolver usage apart from private-zone usage — over UDP (cache
/// miss: answered later; cache hit: in the batch) and TCP, each answer exactly once.
#[test]
fn every_answer_is_billed_once_by_one_rule() {
    use common::store::{token, StoreServer};
    let public = Named::start(&[("example.", PUBLIC), ("corp.example.", PUBLIC_CORP)]);
    let onprem = Named::start(&[("onprem.example.", ONPREM)]);
    let sections = format!("[resolver]\nupstreams = [\"{}\"]\nallow_targets = [\"127.0.0.0/8\"]\n", public.addr());
    let s = StoreServer::start_with("", &sections, &[]);
    s.put_account("1001", "acme");
    s.put_account("1002", "beta");
    s.operator(&["vpcs", "put", "--id", "vpc-a", "--account", "1001", "--cidr", "127.0.77.0/24"]).expect("vpc");
    s.operator(&["vpcs", "put", "--id", "vpc-b", "--account", "1002", "--cidr", "127.0.78.0/24"]).expect("vpc");
    s.operator(&["link", "acme", "beta"]).expect("link");
    let acme = token(s.operator(&["key", "acme"]));
    let beta = token(s.operator(&["key", "beta"]));
    let zone = s
        .admin(&acme, &["zones", "create", "corp.example.", "--scope", "vpc-b", "--fallback", "recurse"])
        .expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "own", "A", "10.0.0.6"]).expect("record");
    s.admin(&acme, &["rules", "add", "onprem", "onprem.example.", "--target", &onprem.addr(), "--scope", "vpc-b"])
        .expect("rule");
    let dig = |name: &str, extra: &[&str]| dig_at(&s.dns, "127.0.78.5", name, "A", extra);
    for (name, expected) in
        [("public.corp.example", "192.0.2.20"), ("host.onprem.example", "10.99.0.1"), ("www.example", "192.0.2.10")]
    {
        assert_eq!(dig(name, &[]).data("A"), [expected], "{name} over UDP: a cache miss, answered later");
        assert_eq!(dig(name, &[]).data("A"), [expected], "{name} over UDP: a cache hit, answered in the batch");
        assert_eq!(dig(name, &["+tcp"]).data("A"), [expected], "{name} over TCP");
    }
    assert_eq!(dig("own.corp.example", &[]).data("A"), ["10.0.0.6"], "a private answer");
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = s.admin(&acme, &["usage"]).expect("usage");
        if usage["total"] == 7 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(usage["total"], 7, "acme pays for its zone (4) and its rule (3): {usage}");
    let items = usage["items"].as_array().cloned().unwrap_or_default();
    let zone_line = items.iter().find(|i| i["kind"] == "zone").expect("zone line");
    assert_eq!(
        (&zone_line["zone"], &zone_line["consumer"], &zone_line["queries"]),
        (&json!(zone_id), &json!("1002"), &json!(4))
    );
    let rule_line = items.iter().find(|i| i["kind"] == "rule").expect("rule line");
    assert_eq!((&rule_line["rule"], &rule_line["queries"]), (&json!("1001-onprem"), &json!(3)));
    assert_eq!(usage["resolver"]["total"], 0, "acme's VPCs asked the upstreams nothing");
    let mut theirs = Value::Null;
    for _ in 0..50 {
        theirs = s.admin(&beta, &["usage"]).expect("beta usage");
        if theirs["resolver"]["total"] == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(theirs["total"], 0, "beta owns no zone or rule: {theirs}");
    assert_eq!(theirs["resolver"]["total"], 3, "beta's VPC pays for its upstream answers: {theirs}");
    assert_eq!(theirs["resolver"]["items"][0]["vpc"], "vpc-b");
}
