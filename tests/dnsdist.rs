//! A real dnsdist (Debian's package) in front of vpcdns, as a cloud's private endpoints would be: one dnsdist
//! listener per "endpoint", each adding its vendor TLV with `SetProxyProtocolValuesAction`, PROXY v2 to vpcdns over
//! UDP and TCP. Three tenants whose VPCs all claim the same prefix each get their own zone, and the same client
//! address through two endpoints gets two different answers.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{dig_at, free_port, Server};

/// The address dnsdist sends from: the only trusted front end.
const FRONT_END: &str = "127.0.0.77";
/// Where dnsdist listens, one port per endpoint.
const DNSDIST: &str = "127.0.0.80";
/// A client address; every tenant's VPC claims it.
const CLIENT: &str = "127.0.40.9";

/// dnsdist on loopback, stopped on drop.
struct Dnsdist {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsdist {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsdist relaying to `backend` with PROXY v2; each (port, TLV type, value) is a listener that adds that TLV.
fn dnsdist(backend: &str, endpoints: &[(u16, u8, &str)]) -> Dnsdist {
    let dir = tempfile::tempdir().expect("temp dir");
    // No security polling (it would query the internet), no packet cache (it is looked up before the header is
    // added, so a cached answer would cross tenants), the backend marked up (no health checks needed).
    let mut conf = String::from("setSecurityPollSuffix(\"\")\n");
    for (i, (port, _, _)) in endpoints.iter().enumerate() {
        let verb = if i == 0 { "setLocal" } else { "addLocal" };
        conf.push_str(&format!("{verb}(\"{DNSDIST}:{port}\")\n"));
    }
    conf.push_str(&format!(
        "newServer({{address=\"{backend}\", useProxyProtocol=true, source=\"{FRONT_END}\", checkInterval=3600}})\n\
         getServer(0):setUp()\n"
    ));
    for (port, tlv, value) in endpoints {
        let lua: String = value.bytes().map(|b| format!("\\{b:03}")).collect();
        conf.push_str(&format!(
            "addAction(DSTPortRule({port}), SetProxyProtocolValuesAction({{[{tlv}]=\"{lua}\"}}))\n"
        ));
    }
    let path = dir.path().join("dnsdist.conf");
    std::fs::write(&path, conf).expect("dnsdist.conf");
    let child = Command::new("dnsdist")
        .args(["--supervised", "--disable-syslog", "-C"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsdist (Debian package dnsdist; scripts/test.sh installs it)");
    Dnsdist { child, _dir: dir }
}

fn server() -> Server {
    let tenant = |uid: &str, name: &str| {
        format!("[[accounts]]\nuid = \"{uid}\"\nname = \"{name}\"\nemail = \"root@{name}.example\"\nsite = \"intl\"\n")
    };
    let vpc = |id: &str, account: &str, identity: &str| {
        format!("[[vpcs]]\nid = \"{id}\"\naccount = \"{account}\"\ncidrs = [\"127.0.40.0/24\"]\n{identity}\n")
    };
    let zone = |account: &str, vpc: &str, address: &str| {
        format!(
            "[[zones]]\nname = \"corp.internal.\"\naccount = \"{account}\"\nscope = [\"{vpc}\"]\n\
             records = [{{ name = \"www\", type = \"A\", data = \"{address}\" }}]\n"
        )
    };
    let config = [
        format!("[server]\nlisten = [\"127.0.0.1:0\"]\nproxy_from = [\"{FRONT_END}/32\"]\nproxy_vpc_tlv = 0xE4\n"),
        tenant("1", "acme"),
        tenant("2", "beta"),
        tenant("3", "gamma"),
        vpc("vpc-a", "1", "endpoints = [\"vpce-aaa\"]"),
        vpc("vpc-b", "2", "endpoints = [\"alibaba:ep-bbb\"]"),
        vpc("vpc-c", "3", "cloud_id = \"vpc-ccc\""),
        zone("1", "vpc-a", "10.0.0.1"),
        zone("2", "vpc-b", "10.0.0.2"),
        zone("3", "vpc-c", "10.0.0.3"),
    ]
    .concat();
    Server::start(&config, &[])
}

#[test]
fn tenants_on_one_prefix_through_dnsdist_get_their_own_zones() {
    let server = server();
    let (aws, alibaba, custom) = (free_port(), free_port(), free_port());
    let _dnsdist = dnsdist(
        &server.addrs[0],
        &[(aws, 0xEA, "\u{1}vpce-aaa"), (alibaba, 0xE1, "\u{2}ep-bbb"), (custom, 0xE4, "vpc-ccc")],
    );
    let ask = |port: u16, extra: &[&str]| {
        dig_at(&format!("{DNSDIST}:{port}"), CLIENT, "www.corp.internal.", "A", extra).data("A")
    };
    // dnsdist takes a moment to listen.
    let started = Instant::now();
    while ask(aws, &[]).is_empty() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for transport in [&[][..], &["+tcp"][..]] {
        assert_eq!(ask(aws, transport), vec!["10.0.0.1"], "AWS endpoint {transport:?}");
        assert_eq!(ask(alibaba, transport), vec!["10.0.0.2"], "Alibaba endpoint {transport:?}");
        assert_eq!(ask(custom, transport), vec!["10.0.0.3"], "the operator's TLV {transport:?}");
    }
    // Straight to vpcdns, the same client is in none of them: the overlapping VPCs are found by identity only.
    let direct = server.dig(CLIENT, "www.corp.internal.", "A");
    assert!(direct.data("A").is_empty(), "{direct:?}");
}
