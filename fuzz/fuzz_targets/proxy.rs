//! Fuzz target: raw bytes as a datagram from a trusted front end — the PROXY v2 header parser, then the query behind
//! it through the whole handler. Three tenants claim the same prefix and are told apart by endpoint, by Alibaba's
//! VPC id or by the operator's TLV; each tenant's zone answers with an address of its own. It must never panic; a
//! header is never longer than 512 bytes or than the datagram; a client named by an identity is answered only from
//! that identity's VPC (an A record of another tenant's zone in the answer is a leak); and a client's own bytes,
//! from a source that is no front end, are never read as a header.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vpcdns::dataplane::proxy::{self, MAX_HEADER};
use vpcdns::dataplane::respond;
use vpcdns::dns::Transport;
use vpcdns::model::compile::Compiler;
use vpcdns::model::snapshot::Snapshot;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:5300"]
proxy_from = ["127.0.0.77/32"]
proxy_vpc_tlv = 0xE4
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
[[accounts]]
uid = "3"
name = "gamma"
email = "root@gamma.example"
site = "intl"
[[vpcs]]
id = "vpc-a"
account = "1"
cidrs = ["172.16.0.0/12"]
endpoints = ["vpce-aaa", "psc:42"]
[[vpcs]]
id = "vpc-b"
account = "2"
cidrs = ["172.16.0.0/12"]
endpoints = ["alibaba:ep-bbb", "azure:7"]
cloud_id = "vpc-bcloud"
[[vpcs]]
id = "vpc-c"
account = "3"
cidrs = ["172.16.0.0/12"]
endpoints = ["vpce-ccc"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["vpc-a"]
records = [{ name = "www", type = "A", data = "10.0.0.1" }]
[[zones]]
name = "corp.internal."
account = "2"
scope = ["vpc-b"]
records = [{ name = "www", type = "A", data = "10.0.0.2" }]
[[zones]]
name = "corp.internal."
account = "3"
scope = ["vpc-c"]
records = [{ name = "www", type = "A", data = "10.0.0.3" }]
"#;

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let loaded = vpcdns::process::config::from_str(CONFIG, Path::new("fuzz.toml"), Path::new("."), None)
            .expect("the fuzz configuration loads");
        vpcdns::model::validate::validate(&loaded.state).expect("the fuzz configuration is valid");
        Compiler::default().compile(&loaded.state)
    })
}

/// The address each VPC's zone answers with, by the identity's VPC id.
fn expected(vpc: &str) -> [u8; 4] {
    match vpc {
        "vpc-a" => [10, 0, 0, 1],
        "vpc-b" => [10, 0, 0, 2],
        _ => [10, 0, 0, 3],
    }
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let local: SocketAddr = "127.0.0.1:5300".parse().expect("address");
    let front_end = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 77));
    // From a client, the bytes are the query itself, whatever they look like.
    let direct = IpAddr::V4(Ipv4Addr::new(172, 16, 0, 9));
    let client = proxy::relay(snap.classifier(), local, direct, data).expect("a client's datagram is never refused");
    assert_eq!((client.query.len(), client.identity, client.front_end), (data.len(), None, None));
    let Ok(relayed) = proxy::relay(snap.classifier(), local, front_end, data) else { return };
    let header_len = data.len() - relayed.query.len();
    assert!(header_len >= 16 && header_len <= MAX_HEADER, "a header of {header_len} bytes");
    assert_eq!(relayed.front_end, Some(front_end));
    let request = respond::Request {
        packet: relayed.query,
        source: relayed.client,
        local,
        transport: Transport::Udp,
        identity: relayed.identity,
    };
    let cx = respond::Context { snapshot: snap, cookies: None, now: 1_700_000_000 };
    let mut out = Vec::new();
    let Some(outcome) = respond::handle(&request, &cx, &mut out).without_resolver(&mut out) else { return };
    let Some(vpc) = outcome.vpc else { return };
    let named = &snap.vpcs()[vpc as usize].id;
    if relayed.identity.is_some() {
        // Every A record in the answer is the named VPC's own.
        let Ok(message) = hickory_proto::op::Message::from_vec(&out) else { panic!("the response does not parse") };
        for record in &message.answers {
            if let hickory_proto::rr::RData::A(a) = &record.data {
                assert_eq!(a.0.octets(), expected(named.as_str()), "an answer of another tenant's zone");
            }
        }
    }
});
