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

/// A TLV value as a Lua string literal's contents (decimal escapes).
fn lua_bytes(value: &str) -> String {
    value.bytes().map(|b| format!("\\{b:03}")).collect()
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
        let lua = lua_bytes(value);
        conf.push_str(&format!(
            "addAction(DSTPortRule({port}), SetProxyProtocolValuesAction({{[{tlv}]=\"{lua}\"}}))\n"
        ));
    }
    run_dnsdist(dir, &conf)
}

/// dnsdist on the configuration `conf` (Lua), in `dir`.
fn run_dnsdist(dir: tempfile::TempDir, conf: &str) -> Dnsdist {
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
    ask_when_up(aws);
    for transport in [&[][..], &["+tcp"][..]] {
        assert_eq!(ask(aws, transport), vec!["10.0.0.1"], "AWS endpoint {transport:?}");
        assert_eq!(ask(alibaba, transport), vec!["10.0.0.2"], "Alibaba endpoint {transport:?}");
        assert_eq!(ask(custom, transport), vec!["10.0.0.3"], "the operator's TLV {transport:?}");
    }
    // Straight to vpcdns, the same client is in none of them: the overlapping VPCs are found by identity only.
    let direct = server.dig(CLIENT, "www.corp.internal.", "A");
    assert!(direct.data("A").is_empty(), "{direct:?}");
}

/// Waits until dnsdist answers on `port` (it takes a moment to listen); the answer's A records.
fn ask_when_up(port: u16) -> Vec<String> {
    let ask = || dig_at(&format!("{DNSDIST}:{port}"), CLIENT, "www.corp.internal.", "A", &[]).data("A");
    let started = Instant::now();
    loop {
        let answer = ask();
        if !answer.is_empty() || started.elapsed() > Duration::from_secs(20) {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// dnsdist's packet cache is looked up before the PROXY v2 header is added, so one cache shared by endpoints answers
/// one tenant with another's answer (the README says to keep it off or per VPC); one pool and cache per endpoint
/// keeps tenants apart, cache hits included.
#[test]
fn dnsdists_packet_cache_must_be_one_per_vpc() {
    let server = server();
    let backend = &server.addrs[0];
    let (a, b) = (free_port(), free_port());
    let endpoint_tlvs = |conf: &mut String, pools: bool| {
        for (port, tlv, value, pool) in [(a, 0xEA, "\u{1}vpce-aaa", "a"), (b, 0xE1, "\u{2}ep-bbb", "b")] {
            conf.push_str(&format!(
                "addAction(DSTPortRule({port}), SetProxyProtocolValuesAction({{[{tlv}]=\"{}\"}}))\n",
                lua_bytes(value)
            ));
            if pools {
                conf.push_str(&format!("addAction(DSTPortRule({port}), PoolAction(\"{pool}\"))\n"));
            }
        }
    };
    let listeners = format!("setSecurityPollSuffix(\"\")\nsetLocal(\"{DNSDIST}:{a}\")\naddLocal(\"{DNSDIST}:{b}\")\n");
    let server_args = format!("useProxyProtocol=true, source=\"{FRONT_END}\", checkInterval=3600");

    // One cache for both endpoints: the second tenant gets the first one's answer.
    let mut shared = listeners.clone();
    shared.push_str(&format!("newServer({{address=\"{backend}\", {server_args}}})\ngetServer(0):setUp()\n"));
    shared.push_str("getPool(\"\"):setCache(newPacketCache(1000))\n");
    endpoint_tlvs(&mut shared, false);
    let dnsdist = run_dnsdist(tempfile::tempdir().expect("temp dir"), &shared);
    assert_eq!(ask_when_up(a), vec!["10.0.0.1"]);
    assert_eq!(ask_when_up(b), vec!["10.0.0.1"], "a shared packet cache crosses tenants");
    drop(dnsdist);

    // A pool and a cache per endpoint: each tenant its own answer, from the cache too.
    let mut apart = listeners;
    for (i, pool) in ["a", "b"].iter().enumerate() {
        apart.push_str(&format!(
            "newServer({{address=\"{backend}\", pool=\"{pool}\", {server_args}}})\ngetServer({i}):setUp()\n\
             getPool(\"{pool}\"):setCache(newPacketCache(1000))\n"
        ));
    }
    endpoint_tlvs(&mut apart, true);
    let _dnsdist = run_dnsdist(tempfile::tempdir().expect("temp dir"), &apart);
    for _ in 0..2 {
        assert_eq!(ask_when_up(a), vec!["10.0.0.1"]);
        assert_eq!(ask_when_up(b), vec!["10.0.0.2"]);
    }
}
