//! The VPC's resolver end to end: the "public internet" and the "on-premises" DNS are BIND instances on loopback
//! ports; vpcdns resolves names outside its private zones through upstreams and forwarding rules, caches, crosses
//! CNAMEs both ways, and fails in time with an Extended DNS Error.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::bind::Named;
use common::{dig_at, http_get, metrics_addr, Server, ACCOUNT};

const PUBLIC: &str = "$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
ns A 127.0.0.1
www A 192.0.2.10
short 2 A 192.0.2.11
host.onprem A 192.0.2.98
toprivate CNAME db.corp.internal.
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
timeout_ms = 400
attempts = 1
deadline_ms = 1500
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
    assert!(took < Duration::from_secs(5), "SERVFAIL took {took:?}: within the deadline of 1.5 s, give or take");
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
