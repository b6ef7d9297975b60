//! The server's rules, checked with real `dig` from distinct loopback sources against the example configuration
//! (config/example.toml), which the README's dig lines also use.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dig_at, example_dir, Server, ACCOUNT};

fn example() -> Server {
    // The example's ports are replaced by a free one; retry if a parallel test takes it first.
    for _ in 0..8 {
        let (dir, _) = example_dir();
        match Server::try_start_in(dir) {
            Ok(server) => return server,
            Err(e) if e.contains("Address already in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port for the example after 8 tries");
}

const PROD: &str = "127.0.10.7";
const CANARY: &str = "127.0.10.200";
const DEV: &str = "127.0.11.5";
const MGMT: &str = "127.0.12.5";
const BETA: &str = "127.0.20.5";
const GAMMA: &str = "127.0.30.7";
const NOWHERE: &str = "127.0.99.1";

#[test]
fn classification_by_source_and_listener() {
    let s = example();
    let d = s.dig(PROD, "www.corp.internal", "A");
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("aa"));
    assert_eq!(d.data("A"), ["10.0.1.10"]);

    // Same name, another tenant's zone: the China-site account's own corp.internal.
    assert_eq!(s.dig(GAMMA, "www.corp.internal", "A").data("A"), ["10.30.0.10"]);

    // A source in no VPC: REFUSED, no AA, no records.
    let d = s.dig(NOWHERE, "www.corp.internal", "A");
    assert_eq!(d.status, "REFUSED");
    assert!(!d.has_flag("aa"));
    assert!(d.answer.is_empty() && d.authority.is_empty() && d.additional.is_empty());

    // vpc-acme-mgmt accepts only queries that arrive on the second listener.
    assert_eq!(s.dig(MGMT, "www.corp.internal", "A").status, "REFUSED");
    let second = &s.addrs[1];
    let d = dig_at(second, MGMT, "www.corp.internal", "A", &[]);
    assert_eq!(d.data("A"), ["10.0.1.10"], "{}", d.raw);
}

#[test]
fn linked_account_vpc_sees_the_zone_and_its_own_more_specific_one() {
    let s = example();
    assert_eq!(s.dig(BETA, "www.corp.internal", "A").data("A"), ["10.0.1.10"]);
    assert_eq!(s.dig(BETA, "queue.svc.corp.internal", "A").data("A"), ["10.20.0.5"]);
    // Prod does not see beta's zone: the name falls into corp.internal. and does not exist there.
    assert_eq!(s.dig(PROD, "queue.svc.corp.internal", "A").status, "NXDOMAIN");
    // beta's CNAME into acme's zone is followed across zones the VPC sees.
    let d = s.dig(BETA, "www.svc.corp.internal", "A");
    assert_eq!(d.data("CNAME"), ["www.corp.internal."]);
    assert_eq!(d.data("A"), ["10.0.1.10"]);
}

#[test]
fn most_specific_visible_zone_wins() {
    let s = example();
    let d = s.dig(DEV, "www.dev.corp.internal", "A");
    assert_eq!(d.data("A"), ["10.1.1.10"]);
    assert_eq!(d.answer[0].ttl, 60);
    let d = s.dig(PROD, "www.dev.corp.internal", "A");
    assert_eq!(d.status, "NXDOMAIN");
    assert_eq!(d.authority[0].name, "corp.internal.");
    // Names outside every visible zone are refused.
    assert_eq!(s.dig(PROD, "example.com", "A").status, "REFUSED");
    assert_eq!(s.dig(DEV, "nothing.internal", "A").status, "REFUSED");
}

#[test]
fn negative_answers_carry_the_soa_with_the_negative_ttl() {
    let s = example();
    let d = s.dig(PROD, "nope.corp.internal", "A");
    assert_eq!(d.status, "NXDOMAIN");
    assert!(d.has_flag("aa"));
    assert_eq!(d.authority.len(), 1);
    assert_eq!(d.authority[0].rtype, "SOA");
    assert_eq!(d.authority[0].ttl, 60, "min(SOA TTL 300, minimum 60)");
    let d = s.dig(PROD, "www.corp.internal", "MX");
    assert_eq!(d.status, "NOERROR");
    assert!(d.answer.is_empty());
    assert_eq!(d.authority[0].rtype, "SOA");
    // An empty non-terminal is NODATA, not NXDOMAIN.
    let d = s.dig(PROD, "lab.corp.internal", "A");
    assert_eq!(d.status, "NOERROR");
    assert!(d.answer.is_empty());
    assert_eq!(d.authority[0].rtype, "SOA");
    // A zone without SOA gets the generated one.
    let d = s.dig(DEV, "nope.dev.corp.internal", "A");
    assert!(d.authority[0].data.starts_with("ns.vpcdns.internal. hostmaster.dev.corp.internal."), "{}", d.raw);
}

#[test]
fn wildcards_follow_the_closest_encloser() {
    let s = example();
    let d = s.dig(PROD, "anything.apps.corp.internal", "A");
    assert_eq!(d.data("A"), ["10.0.2.1"]);
    assert_eq!(d.answer[0].name, "anything.apps.corp.internal.");
    assert_eq!(s.dig(PROD, "a.b.apps.corp.internal", "A").data("A"), ["10.0.2.1"]);
    assert_eq!(s.dig(PROD, "static.apps.corp.internal", "A").data("A"), ["10.0.2.2"]);
    // static.apps exists, so it is the closest encloser of x.static.apps, which has no wildcard.
    assert_eq!(s.dig(PROD, "x.static.apps.corp.internal", "A").status, "NXDOMAIN");
    // The wildcard owns only A: other types are NODATA.
    let d = s.dig(PROD, "anything.apps.corp.internal", "TXT");
    assert_eq!(d.status, "NOERROR");
    assert!(d.answer.is_empty());
}

#[test]
fn cname_chains_and_cross_zone_targets() {
    let s = example();
    let d = s.dig(PROD, "api.corp.internal", "A");
    assert_eq!(d.data("CNAME"), ["www.corp.internal."]);
    assert_eq!(d.data("A"), ["10.0.1.10"]);
    let d = s.dig(PROD, "api.corp.internal", "CNAME");
    assert_eq!(d.answer.len(), 1);
    // git → git.tools.internal.: followed where tools.internal. is visible, the chain ends elsewhere.
    let d = s.dig(PROD, "git.corp.internal", "A");
    assert_eq!(d.data("A"), ["10.0.5.1"], "{}", d.raw);
    let d = s.dig(CANARY, "git.corp.internal", "A");
    assert_eq!(d.status, "NOERROR");
    assert_eq!(d.data("CNAME"), ["git.tools.internal."]);
    assert!(d.data("A").is_empty());
}

#[test]
fn case_is_ignored_and_the_question_is_echoed() {
    let s = example();
    let d = s.dig(PROD, "WwW.CoRp.InTeRnAl", "A");
    assert_eq!(d.data("A"), ["10.0.1.10"]);
    assert!(d.raw.contains(";WwW.CoRp.InTeRnAl."), "{}", d.raw);
}

#[test]
fn record_types_and_additional_section() {
    let s = example();
    let d = s.dig(PROD, "corp.internal", "MX");
    assert_eq!(d.data("MX"), ["10 mail.corp.internal."]);
    assert_eq!(
        d.additional.iter().filter(|r| r.rtype == "A").map(|r| r.data.as_str()).collect::<Vec<_>>(),
        ["10.0.1.25"]
    );
    let d = s.dig(PROD, "_ldap._tcp.corp.internal", "SRV");
    assert_eq!(d.data("SRV"), ["0 100 389 ldap.corp.internal."]);
    assert!(d.additional.iter().any(|r| r.name == "ldap.corp.internal." && r.data == "10.0.1.30"));
    let d = s.dig(PROD, "corp.internal", "NS");
    assert_eq!(d.data("NS"), ["ns1.corp.internal."]);
    assert!(d.additional.iter().any(|r| r.data == "10.0.0.53"));
    assert_eq!(s.dig(PROD, "info.corp.internal", "TXT").data("TXT"), ["\"first string\" \"second string\""]);
    assert_eq!(s.dig(PROD, "www.corp.internal", "AAAA").data("AAAA"), ["fd00::10"]);
    assert_eq!(s.dig(PROD, "corp.internal", "CAA").data("CAA"), ["0 issue \"letsencrypt.org\""]);
    assert_eq!(s.dig(PROD, "host1.corp.internal", "HINFO").data("HINFO"), ["\"x86_64\" \"Linux\""]);
    assert_eq!(s.dig(PROD, "custom.corp.internal", "TYPE65534").data("TYPE65534"), ["\\# 4 0A000001"]);
    let soa = s.dig(PROD, "corp.internal", "SOA");
    assert_eq!(soa.data("SOA"), ["ns1.corp.internal. hostmaster.corp.internal. 2026112501 3600 600 86400 60"]);
}

#[test]
fn any_is_minimal_over_udp_and_complete_over_tcp() {
    let s = example();
    let udp = s.dig_with(PROD, "corp.internal", "ANY", &["+notcp"]);
    assert_eq!(udp.status, "NOERROR");
    let types: std::collections::BTreeSet<_> = udp.answer.iter().map(|r| r.rtype.clone()).collect();
    assert_eq!(types.len(), 1, "{}", udp.raw);
    let tcp = s.dig_with(PROD, "corp.internal", "ANY", &["+tcp"]);
    let types: std::collections::BTreeSet<_> = tcp.answer.iter().map(|r| r.rtype.as_str()).collect();
    assert_eq!(types, ["CAA", "MX", "NS", "SOA", "TXT"].into_iter().collect(), "{}", tcp.raw);
}

#[test]
fn tcp_serves_several_queries_per_connection() {
    let s = example();
    let d = s.dig_with(PROD, "www.corp.internal", "A", &["+tcp"]);
    assert_eq!(d.data("A"), ["10.0.1.10"]);
    // dig +keepopen sends the second query on the same connection.
    let (ip, port) = s.addrs[0].rsplit_once(':').unwrap();
    let out = std::process::Command::new("dig")
        .args([&format!("@{ip}"), "-p", port, "-b", PROD, "+tcp", "+keepopen", "+norecurse", "+short"])
        .args(["www.corp.internal", "A", "mail.corp.internal", "A", "ldap.corp.internal", "A"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["10.0.1.10", "10.0.1.25", "10.0.1.30"], "{text}");
}

#[test]
fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let mut records = String::new();
    for i in 0..90 {
        records.push_str(&format!(
            "{{ name = \"big\", type = \"A\", data = \"10.9.{}.{}\" }},\n",
            i / 200,
            i % 200 + 1
        ));
    }
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
{ACCOUNT}[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.40.0/24"]
[[zones]]
name = "big.test."
account = "1"
scope = ["v1"]
records = [
{records}]
"#
    );
    let s = Server::start(&config, &[]);
    let src = "127.0.40.1";
    let d = s.dig_with(src, "big.big.test", "A", &["+ignore", "+bufsize=1232"]);
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.answer.is_empty());
    let d = s.dig_with(src, "big.big.test", "A", &["+ignore", "+noedns"]);
    assert!(d.has_flag("tc"));
    // Without +ignore dig retries over TCP and gets all 90 records.
    let d = s.dig(src, "big.big.test", "A");
    assert_eq!(d.data("A").len(), 90, "{}", d.raw);
    // A small answer fits in 512 bytes without EDNS.
    let d = s.dig_with(src, "nothing.big.test", "A", &["+noedns"]);
    assert_eq!(d.status, "NXDOMAIN");
    assert!(!d.has_flag("tc"));
}

#[test]
fn ipv4_mapped_prefixes_classify_as_ipv4() {
    // vpc-acme-dev lists ::ffff:127.0.14.0/120, which is normalized to 127.0.14.0/24.
    let s = example();
    let d = s.dig(DEV.replace("11", "14").as_str(), "www.dev.corp.internal", "A");
    assert_eq!(d.data("A"), ["10.1.1.10"], "{}", d.raw);
}

fn listener_config(listen: &str, vpcs: &str) -> String {
    format!(
        r#"
[server]
listen = [{listen}]
{ACCOUNT}{vpcs}
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1", "v2"]
records = [{{ name = "www", type = "A", data = "10.0.0.1" }}]
"#
    )
}

#[test]
fn a_wildcard_listener_classifies_by_destination_and_replies_from_it() {
    let config = |port: u16| {
        let vpcs = format!(
            "[[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.70.0/24\"]\n\
             [[vpcs]]\nid = \"v2\"\naccount = \"1\"\ncidrs = [\"127.0.71.0/24\"]\nlisteners = [\"127.0.0.2:{port}\"]\n"
        );
        listener_config(&format!("\"0.0.0.0:{port}\""), &vpcs)
    };
    let (_server, port) = Server::start_on_free_port(config, &[]);
    let on = |ip: &str, src: &str| dig_at(&format!("{ip}:{port}"), src, "www.corp.internal", "A", &[]);
    // dig accepts a UDP reply only from the address it asked: an answer proves the reply came from there.
    assert_eq!(on("127.0.0.2", "127.0.71.1").data("A"), ["10.0.0.1"]);
    assert_eq!(on("127.0.0.1", "127.0.71.1").status, "REFUSED");
    assert_eq!(on("127.0.0.3", "127.0.70.1").data("A"), ["10.0.0.1"]);
    let tcp = dig_at(&format!("127.0.0.2:{port}"), "127.0.71.1", "www.corp.internal", "A", &["+tcp"]);
    assert_eq!(tcp.data("A"), ["10.0.0.1"]);
}

#[test]
fn ipv6_sources_and_listeners() {
    let vpcs = "[[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"::1/128\"]\n\
                [[vpcs]]\nid = \"v2\"\naccount = \"1\"\ncidrs = [\"127.0.72.0/24\"]\n";
    let s = Server::start(&listener_config("\"[::1]:0\", \"127.0.0.1:0\"", vpcs), &[]);
    let d = dig_at(&s.addrs[0], "::1", "www.corp.internal", "A", &[]);
    assert_eq!(d.data("A"), ["10.0.0.1"], "{}", d.raw);
    let d = dig_at(&s.addrs[0], "::1", "www.corp.internal", "A", &["+tcp"]);
    assert_eq!(d.data("A"), ["10.0.0.1"], "{}", d.raw);
    assert_eq!(dig_at(&s.addrs[1], "127.0.72.9", "www.corp.internal", "A", &[]).data("A"), ["10.0.0.1"]);
}
