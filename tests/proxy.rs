//! Behind a front end: PROXY v2 headers from a trusted source name the client and, in vendor TLVs, its VPC or
//! endpoint. Three tenants whose VPCs all use 172.16.0.0/12 each get only their own zone; raw headers, good and
//! bad, over UDP and TCP, each with its exact outcome.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{connect_from, run_cli, Server};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use vpcdns::dataplane::proxy::{build, Command};

/// The front end's address: the only trusted one.
const FRONT_END: &str = "127.0.0.77";
/// A client that talks to the server directly.
const DIRECT: &str = "127.0.50.9";

fn tenant(uid: &str, name: &str) -> String {
    format!("[[accounts]]\nuid = \"{uid}\"\nname = \"{name}\"\nemail = \"root@{name}.example\"\nsite = \"intl\"\n")
}

fn zone(account: &str, vpc: &str, address: &str) -> String {
    format!(
        "[[zones]]\nname = \"corp.internal.\"\naccount = \"{account}\"\nscope = [\"{vpc}\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"{address}\" }}]\n"
    )
}

fn server() -> (Server, SocketAddr) {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nproxy_from = [\"{FRONT_END}/32\"]\nproxy_vpc_tlv = 0xE4\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[query_log]\npath = \"q.jsonl\"\n\
         {}{}{}\
         [[vpcs]]\nid = \"vpc-a\"\naccount = \"1\"\ncidrs = [\"172.16.0.0/12\"]\nendpoints = [\"vpce-aaa\"]\n\
         [[vpcs]]\nid = \"vpc-b\"\naccount = \"2\"\ncidrs = [\"172.16.0.0/12\"]\nendpoints = [\"alibaba:ep-bbb\"]\n\
         cloud_id = \"vpc-bcloud\"\n\
         [[vpcs]]\nid = \"vpc-c\"\naccount = \"3\"\ncidrs = [\"172.16.0.0/12\"]\nendpoints = [\"psc:42\"]\n\
         [[vpcs]]\nid = \"direct\"\naccount = \"1\"\ncidrs = [\"127.0.50.0/24\"]\n\
         {}{}{}{}",
        tenant("1", "acme"),
        tenant("2", "beta"),
        tenant("3", "gamma"),
        zone("1", "vpc-a", "10.0.0.1"),
        zone("2", "vpc-b", "10.0.0.2"),
        zone("3", "vpc-c", "10.0.0.3"),
        "[[zones]]\nname = \"direct.internal.\"\naccount = \"1\"\nscope = [\"direct\"]\n\
         records = [{ name = \"www\", type = \"A\", data = \"10.0.5.1\" }]\n",
    );
    let server = Server::start(&config, &[]);
    let addr: SocketAddr = server.addrs[0].parse().expect("server address");
    (server, addr)
}

/// An A query for `name`, id 0x1234, RD.
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn client(ip: &str) -> (SocketAddr, SocketAddr) {
    (SocketAddr::new(ip.parse().expect("ip"), 40000), "10.0.0.53:53".parse().expect("addr"))
}

/// Sends `packet` from `source` and returns the reply, if one comes.
fn udp(server: SocketAddr, source: &str, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((source, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    socket.send_to(packet, server).expect("send");
    let mut buf = [0u8; 4096];
    socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

/// The rcode and the A addresses of a reply.
fn answer(reply: &[u8]) -> (ResponseCode, Vec<String>) {
    let message = Message::from_vec(reply).expect("a DNS message");
    let addresses = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    (message.metadata.response_code, addresses)
}

/// `www.corp.internal. A` relayed by the front end for `client` with `tlvs`.
fn relayed(server: SocketAddr, client_ip: &str, tlvs: &[(u8, &[u8])]) -> (ResponseCode, Vec<String>) {
    let mut packet = build(Command::Proxy, true, Some(client(client_ip)), tlvs, true);
    packet.extend(query("www.corp.internal."));
    answer(&udp(server, FRONT_END, &packet).expect("an answer"))
}

#[test]
fn three_tenants_on_the_same_prefix_each_get_their_own_zone() {
    let (running, addr) = server();
    let noerror = ResponseCode::NoError;
    let aws = relayed(addr, "172.16.0.9", &[(0xEA, b"\x01vpce-aaa")]);
    assert_eq!(aws, (noerror, vec!["10.0.0.1".to_string()]), "AWS endpoint → acme's VPC");
    let ali = relayed(addr, "172.16.0.9", &[(0xE1, b"\x02ep-bbb")]);
    assert_eq!(ali, (noerror, vec!["10.0.0.2".to_string()]), "Alibaba endpoint → beta's VPC");
    let ali_vpc = relayed(addr, "172.16.0.9", &[(0xE1, b"\x01vpc-bcloud")]);
    assert_eq!(ali_vpc, (noerror, vec!["10.0.0.2".to_string()]), "Alibaba's VPC id (the cloud id) → beta's VPC");
    let psc = relayed(addr, "172.16.0.9", &[(0xE0, &42u64.to_be_bytes())]);
    assert_eq!(psc, (noerror, vec!["10.0.0.3".to_string()]), "PSC connection → gamma's VPC");
    let custom = relayed(addr, "172.16.0.9", &[(0xE4, b"vpc-c")]);
    assert_eq!(custom, (noerror, vec!["10.0.0.3".to_string()]), "the operator's TLV names a VPC by id");
    // The same client address through two endpoints: two answers.
    assert_ne!(aws.1, ali.1);
    // The query log names the relayed client, the front end and the identity.
    let log = running.dir.path().join("q.jsonl");
    running.wait_until("the query log line of the AWS query", || {
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines().any(|l| {
                l.contains("\"source\":\"172.16.0.9\"")
                    && l.contains("\"front_end\":\"127.0.0.77\"")
                    && l.contains("\"identity\":\"vpce-aaa\"")
                    && l.contains("\"vpc\":\"vpc-a\"")
            })
        })
    });
}

#[test]
fn an_identity_never_falls_back_to_prefixes() {
    let (_server, addr) = server();
    let refused = (ResponseCode::Refused, Vec::new());
    assert_eq!(relayed(addr, "192.168.0.1", &[(0xEA, b"\x01vpce-aaa")]), refused, "client outside the VPC");
    assert_eq!(relayed(addr, "172.16.0.9", &[(0xEA, b"\x01vpce-nobody")]), refused, "unknown endpoint");
    assert_eq!(relayed(addr, "172.16.0.9", &[]), refused, "no identity: the overlapping VPCs are not found by prefix");
    // A relayed client of a VPC found by prefix is classified by the header's address, not the front end's.
    let mut packet = build(Command::Proxy, true, Some(client(DIRECT)), &[], false);
    packet.extend(query("www.direct.internal."));
    let reply = udp(addr, FRONT_END, &packet).expect("an answer");
    assert_eq!(answer(&reply), (ResponseCode::NoError, vec!["10.0.5.1".to_string()]));
}

#[test]
fn headers_count_only_from_trusted_front_ends_and_only_when_whole() {
    let (server, addr) = server();
    // From the front end: no header, a bad checksum, a v1 text header — dropped.
    assert_eq!(udp(addr, FRONT_END, &query("www.corp.internal.")), None, "a front end must send a header");
    let mut bad = build(Command::Proxy, true, Some(client("172.16.0.9")), &[(0xEA, b"\x01vpce-aaa")], true);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    bad.extend(query("www.corp.internal."));
    assert_eq!(udp(addr, FRONT_END, &bad), None, "CRC32C mismatch");
    let mut v1 = b"PROXY UDP4 172.16.0.9 10.0.0.53 40000 53\r\n".to_vec();
    v1.extend(query("www.corp.internal."));
    assert_eq!(udp(addr, FRONT_END, &v1), None, "v1 text header");
    // From anyone else, a header is never honoured: its bytes are just a malformed query, never acme's answer.
    let mut forged = build(Command::Proxy, true, Some(client("172.16.0.9")), &[(0xEA, b"\x01vpce-aaa")], false);
    forged.extend(query("www.corp.internal."));
    if let Some(reply) = udp(addr, DIRECT, &forged) {
        let (rcode, addresses) = answer(&reply);
        assert!(addresses.is_empty() && rcode != ResponseCode::NoError, "{rcode:?} {addresses:?}");
    }
    // A LOCAL header (a health check) is answered as from the front end itself, which is in no VPC.
    let mut local = build(Command::Local, true, None, &[], false);
    local.extend(query("www.corp.internal."));
    let reply = udp(addr, FRONT_END, &local).expect("health checks are answered");
    assert_eq!(answer(&reply).0, ResponseCode::Refused);
    // The server is still serving direct clients.
    assert_eq!(server.dig(DIRECT, "www.direct.internal.", "A").data("A"), vec!["10.0.5.1"]);
    // The drops by cause, and what the front end relayed (the LOCAL health check), are in the metrics.
    let metrics = common::metrics_addr(&server);
    let expected = [
        "vpcdns_proxy_dropped_total{cause=\"signature\"} 2",
        "vpcdns_proxy_dropped_total{cause=\"checksum\"} 1",
        "vpcdns_relayed_queries_total{front_end=\"127.0.0.77/32\"} 1",
    ];
    server.wait_until("the metrics count the drops and the relayed query", || {
        let (_, text) = common::http_get(&metrics, "/metrics");
        expected.iter().all(|line| text.contains(line))
    });
}

#[test]
fn a_tcp_connection_carries_one_header_for_all_its_queries() {
    let (_server, addr) = server();
    let mut stream = connect_from(FRONT_END.parse().expect("ip"), addr);
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream
        .write_all(&build(Command::Proxy, false, Some(client("172.16.0.9")), &[(0xE0, &42u64.to_be_bytes())], true))
        .expect("header");
    for _ in 0..2 {
        let q = query("www.corp.internal.");
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend(q);
        stream.write_all(&framed).expect("query");
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("length");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).expect("answer");
        assert_eq!(answer(&body), (ResponseCode::NoError, vec!["10.0.0.3".to_string()]));
    }
}

#[test]
fn explain_follows_the_front_ends_identity() {
    let (server, _) = server();
    let config = server.config_path();
    let config = config.to_str().expect("path");
    let explain = |extra: &[&str]| {
        let mut args = vec!["explain", "-c", config, "--source", "172.16.0.9"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["www.corp.internal.", "A"]);
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let through_b = explain(&["--endpoint", "alibaba:ep-bbb"]);
    assert!(through_b.contains("vpc:     vpc-b") && through_b.contains("10.0.0.2"), "{through_b}");
    let by_id = explain(&["--vpc-id", "vpc-c"]);
    assert!(by_id.contains("vpc:     vpc-c") && by_id.contains("10.0.0.3"), "{by_id}");
    let direct = explain(&[]);
    assert!(direct.contains("REFUSED"), "the overlapping VPCs are not found by prefix: {direct}");
    let (code, _, err) = run_cli(&["explain", "-c", config, "--source", "172.16.0.9", "--endpoint", "ep-1", "x.", "A"]);
    assert!(code != 0 && err.contains("expected an AWS endpoint id"), "{err}");
}

/// Managed mode: the operator gives VPCs their endpoint ids; each tenant sees its own VPCs' ids and nothing else,
/// and the front end's identity picks the VPC as in file mode.
#[test]
fn managed_endpoints_are_the_operators_and_each_tenant_sees_its_own() {
    let mut s = common::store::StoreServer::start();
    // Trust the front end: the [server] section is the test harness's, so edit it and start again.
    s.kill();
    let config = std::fs::read_to_string(s.config()).expect("config");
    let trusted = config.replacen(
        "listen = [\"127.0.0.1:0\"]\n",
        "listen = [\"127.0.0.1:0\"]\nproxy_from = [\"127.0.0.77/32\"]\n",
        1,
    );
    std::fs::write(s.config(), trusted).expect("config");
    s.spawn();
    s.put_account("1", "acme");
    s.put_account("2", "beta");
    for (id, account, endpoint) in [("vpc-a", "1", "vpce-aaa"), ("vpc-b", "2", "psc:7")] {
        let args = ["vpcs", "put", "--id", id, "--account", account, "--cidr", "172.16.0.0/12", "--endpoint", endpoint];
        s.operator(&args).expect("vpc");
    }
    let bad = common::store::err(s.operator(&[
        "vpcs",
        "put",
        "--id",
        "x",
        "--account",
        "1",
        "--cidr",
        "10.0.0.0/8",
        "--endpoint",
        "psc:7",
    ]));
    assert!(bad.contains("already names vpc vpc-b"), "{bad}");
    let acme = common::store::token(s.operator(&["key", "acme"]));
    let beta = common::store::token(s.operator(&["key", "beta"]));
    for (key, vpc, address) in [(&acme, "vpc-a", "10.0.0.1"), (&beta, "vpc-b", "10.0.0.2")] {
        let zone = s.admin(key, &["zones", "create", "corp.internal.", "--scope", vpc]).expect("zone");
        let id = zone["id"].as_str().expect("zone id").to_string();
        s.admin(key, &["records", "add", &id, "www", "A", address]).expect("record");
    }
    let mine = s.admin(&acme, &["vpcs"]).expect("vpcs");
    assert_eq!(mine["vpcs"][0]["endpoints"], serde_json::json!(["vpce-aaa"]), "{mine}");
    assert!(!mine.to_string().contains("psc:7"), "another tenant's endpoint: {mine}");
    // A tenant cannot explain through another tenant's endpoint: one answer, whatever exists.
    let foreign = common::store::err(
        s.admin(&acme, &["explain", "--source", "172.16.0.9", "--endpoint", "psc:7", "www.corp.internal."]),
    );
    assert!(foreign.contains("403"), "{foreign}");
    let addr: SocketAddr = s.dns.parse().expect("dns address");
    for (tlv, expected) in [((0xEA, &b"\x01vpce-aaa"[..]), "10.0.0.1"), ((0xE0, &7u64.to_be_bytes()[..]), "10.0.0.2")] {
        let mut packet = build(Command::Proxy, true, Some(client("172.16.0.9")), &[tlv], false);
        packet.extend(query("www.corp.internal."));
        let reply = udp(addr, FRONT_END, &packet).expect("an answer");
        assert_eq!(answer(&reply), (ResponseCode::NoError, vec![expected.to_string()]));
    }
    let (_, export, _) = run_cli(&["operator", "--config", &s.config(), "export"]);
    assert!(export.contains("vpce-aaa") && export.contains("psc:7"), "export keeps the endpoints: {export}");
}

/// A listener for front ends only: a client talking to it directly is dropped, the front end is answered; the
/// other listener still serves clients directly.
#[test]
fn a_front_end_only_listener_drops_everyone_else() {
    let (server, port) = Server::start_on_free_port(
        |port| {
            format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\", \"127.0.0.2:{port}\"]\nproxy_from = [\"{FRONT_END}/32\"]\n\
                 proxy_listen = [\"127.0.0.2:{port}\"]\n\
                 [[accounts]]\nuid = \"1\"\nname = \"acme\"\nemail = \"root@acme.example\"\nsite = \"intl\"\n\
                 [[vpcs]]\nid = \"direct\"\naccount = \"1\"\ncidrs = [\"127.0.50.0/24\"]\n\
                 [[zones]]\nname = \"direct.internal.\"\naccount = \"1\"\nscope = [\"direct\"]\n\
                 records = [{{ name = \"www\", type = \"A\", data = \"10.0.5.1\" }}]\n"
            )
        },
        &[],
    );
    let open: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let proxied: SocketAddr = format!("127.0.0.2:{port}").parse().expect("address");
    let plain = query("www.direct.internal.");
    let reply = udp(open, DIRECT, &plain).expect("the open listener answers clients");
    assert_eq!(answer(&reply), (ResponseCode::NoError, vec!["10.0.5.1".to_string()]));
    assert_eq!(udp(proxied, DIRECT, &plain), None, "a client on the front ends' listener is dropped");
    let mut relayed = build(Command::Proxy, true, Some(client(DIRECT)), &[], false);
    relayed.extend(query("www.direct.internal."));
    let reply = udp(proxied, FRONT_END, &relayed).expect("the front end is answered");
    assert_eq!(answer(&reply), (ResponseCode::NoError, vec!["10.0.5.1".to_string()]));
    drop(server);
}
