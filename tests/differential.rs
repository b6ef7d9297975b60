//! Differential test against BIND 9: the same zone files, the same VPCs as BIND views, the same queries from every
//! VPC (IPv4 and IPv6 sources, one VPC restricted to a listener) and from outside them; responses compared whole.
//! Both servers run in a network namespace the test makes (`ip netns`), whose loopback also holds 127.0.0.2 (the
//! second listener: BIND listens only on an interface's addresses) and IPv6 addresses of its own; the querying
//! thread joins it. Nothing leaves the namespace, and it is removed at the end.
//!
//! Compared: the header flags and rcode (everything but the id), the question's bytes, every section — answer,
//! authority, additional — RRset by RRset in order (owners lower-cased, TTLs and data included), and the OPT record
//! (present, version, DO, payload size, options). The queries mix UDP and TCP, no EDNS, EDNS at 512 and 1232, the DO
//! bit, ANY, and CNAME chains of every length up to 17 hops. BIND gets the very zone files vpcdns reads.
//!
//! The differences allowed, each on purpose and each checked where it applies:
//! - the order of the records within one RRset (BIND's `rrset-order` is random; RFC 2181 §5 leaves it open) — the
//!   RRsets, and their order, must match;
//! - a zone without SOA and NS (vpcdns generates them; BIND cannot load such a zone): BIND's copy of the file gets
//!   the SOA and NS vpcdns generates, appended;
//! - a CNAME whose target is in another zone the VPC sees: vpcdns follows it (BIND stops at the zone boundary); left
//!   out of the corpus and checked on its own (`check_cross_zone_cname`);
//! - the records of a truncated reply (TC): the client asks again over TCP; BIND keeps the records that fit, vpcdns
//!   none — header, question and OPT are compared;
//! - ANY: over UDP each server answers with one RRset of the name, the one it picks (RFC 8482 §4.1: "one RRset"),
//!   so only that it is one is compared; over TCP every RRset, in an order each server picks;
//! - the additional section when the client's EDNS buffer is 512: BIND 9.18 leaves it empty there, vpcdns adds what
//!   fits (optional either way, RFC 1035 §4.1, §6.3.2).
//!
//! BIND runs with `minimal-responses no-auth` (additional data for MX, SRV and NS targets, no NS in the authority of
//! positive answers: what vpcdns does) and `minimal-any yes` (one RRset for ANY over UDP, RFC 8482).
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};

/// One VPC: id, owner uid, prefix, the listener it is restricted to (if any), a source inside it, and the zones
/// (by index into ZONES) it sees.
struct Vpc {
    id: &'static str,
    account: &'static str,
    cidr: &'static str,
    /// Only queries to this address (on the servers' port) belong to the VPC.
    listener: Option<Ipv4Addr>,
    source: IpAddr,
    zones: &'static [usize],
}

/// One zone: name, owner uid, file text.
struct Zone {
    name: &'static str,
    account: &'static str,
    text: &'static str,
}

const CORP: &str = r#"$TTL 300
@           SOA   ns1 hostmaster 2026112501 3600 600 86400 60
            NS    ns1
            MX    10 mail
            TXT   "v=spf1 mx -all"
            CAA   0 issue "ca.example"
ns1         A     10.0.0.53
www         A     10.0.1.10
            AAAA  fd00::10
WWW2        A     10.0.1.11
api         CNAME www
c1          CNAME c2
c2          CNAME c3
c3          CNAME www
loop1       CNAME loop2
loop2       CNAME loop1
h1          CNAME h2
h2          CNAME h3
h3          CNAME h4
h4          CNAME h5
h5          CNAME h6
h6          CNAME h7
h7          CNAME h8
h8          CNAME h9
h9          CNAME h10
h10         CNAME h11
h11         CNAME h12
h12         CNAME h13
h13         CNAME h14
h14         CNAME h15
h15         CNAME h16
h16         CNAME h17
h17         CNAME h18
h18         A     10.0.9.18
ext         CNAME www.example.com.
cross       CNAME a.gen.test.
mail        A     10.0.1.25
info        TXT   "first string" "second string"
_ldap._tcp  SRV   0 100 389 ldap
ldap        A     10.0.1.30
*.apps      A     10.0.2.1
*.apps      TXT   "wild"
static.apps A     10.0.2.2
*.alias     CNAME www
x.lab       A     10.0.3.1
deep.a.b.c  A     10.0.3.2
host1       HINFO "x86_64" "Linux"
custom      TYPE65534 \# 4 0a000001
big         TXT   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
big         TXT   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
big         TXT   "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
"#;

const DEV: &str = "$TTL 120\n@ SOA ns hostmaster 7 3600 600 86400 30\n@ NS ns\nns A 10.1.0.53\nwww A 10.1.1.10\n* TXT \"dev wildcard\"\n";
const BETA_CORP: &str = "$TTL 600\n@ SOA ns hostmaster 9 3600 600 86400 120\n@ NS ns\nns A 10.2.0.53\nwww A 10.2.1.10\nmail A 10.2.1.25\n@ MX 5 mail\n";
const SVC: &str = "$TTL 300\n@ SOA ns hostmaster 3 3600 600 86400 60\n@ NS ns\nns A 10.3.0.53\nqueue A 10.3.0.5\nwww CNAME queue\n_http._tcp SRV 10 0 80 queue\n";
const REVERSE: &str = "$TTL 300\n@ SOA ns.corp.internal. hostmaster.corp.internal. 5 3600 600 86400 60\n@ NS ns.corp.internal.\n10.1.0 PTR www.corp.internal.\n25.1.0 PTR mail.corp.internal.\n";
const BROAD: &str = "$TTL 300\n@ SOA ns hostmaster 11 3600 600 86400 60\n@ NS ns\nns A 10.4.0.53\nsomething A 10.4.0.1\nx.y.z A 10.4.0.2\n*.w A 10.4.0.3\n";

const GENERATED: &str = "$TTL 300\na A 10.5.0.1\n*.w TXT \"generated SOA and NS\"\n";

const ZONES: [Zone; 7] = [
    Zone { name: "corp.internal.", account: "1001", text: CORP },
    Zone { name: "dev.corp.internal.", account: "1001", text: DEV },
    Zone { name: "corp.internal.", account: "1002", text: BETA_CORP },
    Zone { name: "svc.corp.internal.", account: "1002", text: SVC },
    Zone { name: "10.in-addr.arpa.", account: "1001", text: REVERSE },
    Zone { name: "internal.", account: "1001", text: BROAD },
    // No SOA, no NS: both servers serve the ones vpcdns generates (BIND's copy is written from the state).
    Zone { name: "gen.test.", account: "1001", text: GENERATED },
];

const fn v4(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, c, d))
}

const LISTENER_2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

const fn v6(net: u16, host: u32) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, net, 0, 0, 0, 0, (host >> 16) as u16, host as u16))
}

/// The servers' IPv6 address.
const LISTENER_6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0x53, 0, 0, 0, 0, 0, 1);

const VPCS: [Vpc; 10] = [
    Vpc { id: "v-a1", account: "1001", cidr: "127.0.110.0/24", listener: None, source: v4(110, 9), zones: &[0, 4, 6] },
    Vpc { id: "v-a2", account: "1001", cidr: "127.0.111.0/24", listener: None, source: v4(111, 9), zones: &[0, 1] },
    Vpc { id: "v-a3", account: "1001", cidr: "127.0.112.0/24", listener: None, source: v4(112, 9), zones: &[4, 5] },
    Vpc { id: "v-a3n", account: "1001", cidr: "127.0.112.128/25", listener: None, source: v4(112, 200), zones: &[5] },
    // beta's VPCs: b1 sees acme's corp.internal. through the link, and beta's own svc zone.
    Vpc { id: "v-b1", account: "1002", cidr: "127.0.120.0/24", listener: None, source: v4(120, 9), zones: &[0, 3] },
    Vpc { id: "v-b2", account: "1002", cidr: "127.0.121.0/24", listener: None, source: v4(121, 9), zones: &[2] },
    Vpc { id: "v-a4", account: "1001", cidr: "127.0.113.0/24", listener: None, source: v4(113, 9), zones: &[0, 1, 4] },
    // Only for queries to the second listener (BIND: match-destinations); elsewhere its sources are in no VPC.
    Vpc {
        id: "v-a5",
        account: "1001",
        cidr: "127.0.114.0/24",
        listener: Some(LISTENER_2),
        source: v4(114, 9),
        zones: &[0, 6],
    },
    // An IPv6 VPC of beta's, and a nested one of acme's (a source in the nested prefix is the deeper VPC's).
    Vpc { id: "v-6", account: "1002", cidr: "fd00:d::/64", listener: None, source: v6(0xd, 9), zones: &[2, 3] },
    Vpc {
        id: "v-6n",
        account: "1002",
        cidr: "fd00:d::8000:0/112",
        listener: None,
        source: v6(0xd, 0x8000_0009),
        zones: &[3],
    },
];

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 99, 9);

/// vpcdns's configuration: every VPC and zone, served on 127.0.0.1, 127.0.0.2 and fd00:53::1 on `port`.
fn vpcdns_config(port: u16) -> String {
    // BIND runs without rate limits here, so vpcdns does too: this compares answers, not limits.
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\", \"{LISTENER_2}:{port}\", \"[{LISTENER_6}]:{port}\"]\n\
         [limits]\nqueries_per_source = 0\n"
    );
    for (uid, name) in [("1001", "acme"), ("1002", "beta")] {
        text += &format!(
            "[[accounts]]\nuid = \"{uid}\"\nname = \"{name}\"\nemail = \"root@{name}.example\"\nsite = \"intl\"\n"
        );
    }
    text += "[[links]]\naccount = \"1001\"\nlinked = \"beta\"\n";
    for v in &VPCS {
        text += &format!("[[vpcs]]\nid = \"{}\"\naccount = \"{}\"\ncidrs = [\"{}\"]\n", v.id, v.account, v.cidr);
        if let Some(listener) = v.listener {
            text += &format!("listeners = [\"{listener}:{port}\"]\n");
        }
    }
    for (i, z) in ZONES.iter().enumerate() {
        let scope: Vec<String> =
            VPCS.iter().filter(|v| v.zones.contains(&i)).map(|v| format!("\"{}\"", v.id)).collect();
        text += &format!(
            "[[zones]]\nid = \"z{i}\"\nname = \"{}\"\naccount = \"{}\"\nscope = [{}]\nfile = \"z{i}.zone\"\n",
            z.name,
            z.account,
            scope.join(", ")
        );
    }
    text
}

/// BIND 9's equivalent: one view per VPC (longest prefix first), `match-clients` on its prefix and, for a VPC
/// restricted to a listener, `match-destinations` on it; in each view the zones whose scope lists the VPC, from the
/// very files vpcdns reads. `generated` holds, per zone without SOA and NS, the ones vpcdns generates.
fn bind_config(dir: &Path, files: &Path, port: u16, generated: &[String]) -> String {
    let mut text = format!(
        "options {{\n directory \"{}\";\n pid-file \"{}/named.pid\";\n listen-on port {port} {{ 127.0.0.1; {LISTENER_2}; }};\n \
         listen-on-v6 port {port} {{ {LISTENER_6}; }};\n recursion no;\n minimal-responses no-auth;\n minimal-any yes;\n \
         notify no;\n allow-transfer {{ none; }};\n dnssec-validation no;\n empty-zones-enable no;\n \
         edns-udp-size 1232;\n max-udp-size 1232;\n}};\ncontrols {{ }};\n",
        dir.display(),
        dir.display()
    );
    let mut views: Vec<&Vpc> = VPCS.iter().collect();
    views.sort_by_key(|v| (std::cmp::Reverse(v.cidr.parse::<ipnet::IpNet>().map_or(0, |n| n.prefix_len())), v.id));
    for vpc in views {
        text += &format!("view \"{}\" {{\n match-clients {{ {}; }};\n", vpc.id, vpc.cidr);
        if let Some(listener) = vpc.listener {
            text += &format!(" match-destinations {{ {listener}; }};\n");
        }
        for &z in vpc.zones {
            let file = files.join(format!("z{z}.zone"));
            let file = match generated.get(z).filter(|g| !g.is_empty()) {
                // The only edit: the SOA and NS vpcdns generates, appended to the same text.
                Some(extra) => {
                    let copy = dir.join(format!("z{z}-with-soa.zone"));
                    let original = std::fs::read_to_string(&file).expect("zone file");
                    std::fs::write(&copy, format!("{original}{extra}")).expect("zone copy");
                    copy
                }
                None => file,
            };
            text += &format!(" zone \"{}\" {{ type primary; file \"{}\"; }};\n", ZONES[z].name, file.display());
        }
        text += "};\n";
    }
    text
}

/// The SOA and NS vpcdns generates for a zone that has none, as master-file lines (empty for a zone that has them),
/// read from the running server (the serial is the zone's load time).
fn generated_soa_ns(dir: &Path, port: u16) -> Vec<String> {
    let state = vpcdns::process::reload::load_valid(&dir.join("vpcdns.toml"), None).expect("the config loads").state;
    (0..ZONES.len())
        .map(|i| {
            let Some(zone) = state.zones.get(format!("z{i}").as_str()) else { return String::new() };
            let apex = zone.name.lower();
            let has = |t: u16| zone.records.values().any(|r| r.rdata.rtype() == t && r.owner.lower() == apex);
            let mut lines = String::new();
            for (t, name) in [(6, "SOA"), (2, "NS")] {
                if has(t) {
                    continue;
                }
                let asker = VPCS.iter().find(|v| v.zones.contains(&i) && v.listener.is_none()).expect("a VPC sees it");
                let (server, _) = target(asker.source, port, 0, false);
                let answer = exchange(server, asker.source, &query(9, ZONES[i].name, t, None), true).expect("answer");
                let msg = Message::from_vec(&answer).expect("decodes");
                for record in &msg.answers {
                    lines += &format!("@ {} IN {name} {}\n", record.ttl, record.data);
                }
            }
            lines
        })
        .collect()
}

/// The test's network namespace, with the servers running in it; both go on drop.
struct Namespace {
    name: String,
    children: Vec<Child>,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for child in &mut self.children {
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

impl Namespace {
    /// A namespace whose loopback holds 127.0.0.2, the servers' IPv6 address and every IPv6 source.
    fn new() -> Namespace {
        let name = format!("vpcdns-diff-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Namespace { name, children: Vec::new() };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&["-n", &ns.name, "addr", "add", &format!("{LISTENER_2}/32"), "dev", "lo"]);
        let mut v6: Vec<String> = vec![LISTENER_6.to_string()];
        v6.extend(VPCS.iter().filter(|v| v.source.is_ipv6()).map(|v| v.source.to_string()));
        for addr in v6 {
            ip(&["-n", &ns.name, "-6", "addr", "add", &format!("{addr}/128"), "dev", "lo", "nodad"]);
        }
        ns
    }

    /// Starts `program args…` inside the namespace.
    fn spawn(&mut self, program: &str, args: &[&str], stdout: Stdio) -> &mut Child {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} in the namespace: {e}"));
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    /// Moves the calling thread into the namespace (its sockets are then the namespace's).
    fn enter(&self) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("the namespace's handle");
        // SAFETY: setns on a valid, open namespace file descriptor only changes this thread's network namespace.
        let done = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(done, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

/// Starts vpcdns in the namespace on `dir`'s configuration; waits for its readiness line.
fn start_vpcdns(ns: &mut Namespace, dir: &Path) {
    let config = dir.join("vpcdns.toml").display().to_string();
    let child = ns.spawn(common::BIN, &["serve", "--udp-sockets", "1", "--config", &config], Stdio::piped());
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30)).expect("vpcdns's readiness line");
    assert!(ready.contains("ready"), "{ready}");
}

fn start_named(ns: &mut Namespace, dir: &Path, files: &Path, port: u16, generated: &[String]) {
    std::fs::write(dir.join("named.conf"), bind_config(dir, files, port, generated)).expect("named.conf");
    let conf = dir.join("named.conf").display().to_string();
    ns.spawn("named", &["-g", "-c", &conf], Stdio::null());
}

/// EDNS as a query carries it: the payload size and the DO bit.
#[derive(Debug, Clone, Copy)]
struct Edns {
    size: u16,
    dnssec_ok: bool,
}

/// A query: id, flags (RD), one question, optional EDNS.
fn query(id: u16, name: &str, qtype: u16, edns: Option<Edns>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if let Some(edns) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&edns.size.to_be_bytes());
        q.extend_from_slice(&[0, 0, if edns.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

/// A socket bound to `source` (any port), of the family of `source`.
fn bound_socket(source: IpAddr, kind: nix::sys::socket::SockType) -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockaddrStorage};
    let family = if source.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, kind, SockFlag::SOCK_CLOEXEC, None).ok()?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(SocketAddr::new(source, 0))).ok()?;
    Some(fd)
}

/// Sends over UDP from `source` (one retry), or over TCP.
fn exchange(server: SocketAddr, source: IpAddr, packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if tcp {
        return exchange_tcp(server, source, packet);
    }
    let socket = std::net::UdpSocket::from(bound_socket(source, nix::sys::socket::SockType::Datagram)?);
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = [0u8; 65535];
    for _ in 0..2 {
        socket.send_to(packet, server).ok()?;
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if buf[..2] == packet[..2] {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

fn exchange_tcp(server: SocketAddr, source: IpAddr, packet: &[u8]) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let socket = bound_socket(source, nix::sys::socket::SockType::Stream)?;
    let remote = nix::sys::socket::SockaddrStorage::from(server);
    nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&socket), &remote).ok()?;
    let mut stream = std::net::TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// An RRset as the comparison sees it: owner (lower case) and type, and its records' (TTL, data) as a set — the
/// order within an RRset is the one difference allowed.
type Rrset = (String, String, BTreeSet<String>);

/// The comparable view of a response: everything but the id.
#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    /// Header bytes 2–3: QR, opcode, AA, TC, RD, RA, Z, AD, CD and the rcode.
    flags: u16,
    rcode: ResponseCode,
    question: Vec<u8>,
    answer: Vec<Rrset>,
    authority: Vec<Rrset>,
    additional: Vec<Rrset>,
    /// The OPT record: payload size, extended rcode and version, DO, and the options' codes.
    opt: Option<(u16, u8, u8, bool, Vec<u16>)>,
}

fn rrsets(records: &[hickory_proto::rr::Record]) -> Vec<Rrset> {
    let mut sets: Vec<Rrset> = Vec::new();
    for r in records {
        let (owner, rtype) = (r.name.to_string().to_ascii_lowercase(), r.record_type().to_string());
        let data = format!("{} {}", r.ttl, r.data);
        match sets.iter_mut().find(|(o, t, _)| *o == owner && *t == rtype) {
            Some((_, _, set)) => {
                set.insert(data);
            }
            None => sets.push((owner, rtype, BTreeSet::from([data]))),
        }
    }
    sets
}

/// The response as compared: every field but the id, with the allowed differences (see the module documentation)
/// taken out — a truncated reply's records, which RRset ANY over UDP picks and the order of ANY's RRsets over TCP,
/// and the additional section at an EDNS buffer of 512.
fn normalize(
    response: &[u8],
    question_len: usize,
    qtype: u16,
    tcp: bool,
    edns: Option<Edns>,
) -> Result<Normalized, String> {
    let msg = Message::from_vec(response).map_err(|e| format!("undecodable: {e}"))?;
    let flags = u16::from_be_bytes([response[2], response[3]]);
    let question = response.get(12..12 + question_len).unwrap_or_default().to_vec();
    let opt = msg.edns.as_ref().map(|e| {
        let codes = e.options().as_ref().iter().map(|(k, _)| u16::from(*k)).collect();
        (e.max_payload(), e.rcode_high(), e.version(), e.flags().dnssec_ok, codes)
    });
    let mut normalized = Normalized {
        flags,
        rcode: msg.metadata.response_code,
        question,
        answer: rrsets(&msg.answers),
        authority: rrsets(&msg.authorities),
        additional: rrsets(&msg.additionals),
        opt,
    };
    if flags & 0x0200 != 0 {
        normalized.answer.clear();
        normalized.authority.clear();
        normalized.additional.clear();
    }
    if qtype == 255 && !normalized.answer.is_empty() {
        if tcp {
            normalized.answer.sort();
        } else {
            let one = normalized.answer.len() == 1;
            normalized.answer =
                vec![("ANY over UDP".into(), if one { "one RRset" } else { "several" }.into(), BTreeSet::new())];
        }
    }
    if edns.is_some_and(|e| e.size < 1232) {
        normalized.additional.clear();
    }
    Ok(normalized)
}

/// Every name worth asking: owners, names below, beside and above them, mixed case, and names in no zone.
fn corpus_names() -> Vec<String> {
    let mut names = BTreeSet::new();
    for zone in &ZONES {
        names.insert(zone.name.to_string());
        let mut last = String::new();
        for line in zone.text.lines().skip(1) {
            let owner = line.split_whitespace().next().unwrap_or_default();
            if line.starts_with(char::is_whitespace) || owner.is_empty() || owner.starts_with('$') {
                continue;
            }
            let full = if owner == "@" { zone.name.to_string() } else { format!("{owner}.{}", zone.name) };
            if full == last {
                continue;
            }
            last = full.clone();
            let concrete = full.replace('*', "any");
            names.insert(concrete.clone());
            names.insert(format!("below.{concrete}"));
            names.insert(format!("zz{concrete}"));
            names.insert(mixed_case(&concrete));
        }
    }
    for extra in [
        "lab.corp.internal.",
        "b.c.corp.internal.",
        "a.b.apps.corp.internal.",
        "x.static.apps.corp.internal.",
        "y.z.internal.",
        "q.w.internal.",
        "example.com.",
        "nothing.",
        "corp.internal.example.",
        "99.10.in-addr.arpa.",
    ] {
        names.insert(extra.to_string());
    }
    names.into_iter().collect()
}

fn mixed_case(name: &str) -> String {
    name.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect()
}

const TYPES: [u16; 13] = [1, 28, 15, 16, 33, 5, 6, 2, 12, 257, 13, 65534, 255];

/// Where a source's queries go: the address its VPC accepts (the second listener for v-a5; the IPv6 one for IPv6).
fn target(source: IpAddr, vpcdns_port: u16, bind_port: u16, second: bool) -> (SocketAddr, SocketAddr) {
    let ip = match source {
        IpAddr::V6(_) => IpAddr::V6(LISTENER_6),
        IpAddr::V4(_) if second => IpAddr::V4(LISTENER_2),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    (SocketAddr::new(ip, vpcdns_port), SocketAddr::new(ip, bind_port))
}

#[test]
fn vpcdns_answers_like_bind_views() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, bind_port) = (5353, 5354);
    std::fs::write(dir.path().join("vpcdns.toml"), vpcdns_config(port)).expect("config");
    for (i, z) in ZONES.iter().enumerate() {
        std::fs::write(dir.path().join(format!("z{i}.zone")), format!("$ORIGIN {}\n{}", z.name, z.text)).expect("zone");
    }
    let mut ns = Namespace::new();
    start_vpcdns(&mut ns, dir.path());
    let bind_dir = tempfile::tempdir().expect("temp dir");
    let ns = std::sync::Arc::new(std::sync::Mutex::new(ns));
    let inside = ns.clone();
    // Everything from here on runs in the namespace, on a thread of its own.
    std::thread::spawn(move || {
        inside.lock().expect("namespace").enter();
        wait_for(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        // BIND reads the same files; only the zone without SOA and NS gets the ones vpcdns serves for it.
        let generated = generated_soa_ns(dir.path(), port);
        start_named(&mut inside.lock().expect("namespace"), bind_dir.path(), dir.path(), bind_port, &generated);
        compare(port, bind_port);
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn compare(port: u16, bind_port: u16) {
    wait_for(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bind_port));
    // Every VPC's source to the listener it accepts; v-a5's source also to the first listener (in no VPC there);
    // and a source in no VPC.
    let mut askers: Vec<(IpAddr, bool)> = VPCS.iter().map(|v| (v.source, v.listener.is_some())).collect();
    askers.push((v4(114, 9), false));
    askers.push((IpAddr::V4(OUTSIDE), false));
    let names = corpus_names();
    let (mut total, mut same, mut failures) = (0usize, 0usize, Vec::new());
    // What the identical answers were, so the figure shows the corpus covers every outcome.
    let mut tally: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    // And what differs, by asker, when something does.
    let mut kinds: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut id = 0u16;
    let started = Instant::now();
    for (si, &(source, second)) in askers.iter().enumerate() {
        let (ours, bind) = target(source, port, bind_port, second);
        // The deliberate difference (a CNAME followed into another zone the VPC sees) is checked on its own below.
        for (ni, name) in names.iter().enumerate().filter(|(_, n)| n.to_ascii_lowercase() != CROSS) {
            for (ti, &qtype) in TYPES.iter().enumerate() {
                // A deterministic mix of transports, EDNS buffer sizes and the DO bit.
                let pick = si * 7 + ni * 13 + ti;
                let tcp = pick % 5 == 0;
                let edns = match pick % 4 {
                    0 => None,
                    1 => Some(Edns { size: 1232, dnssec_ok: false }),
                    2 => Some(Edns { size: 512, dnssec_ok: false }),
                    _ => Some(Edns { size: 1232, dnssec_ok: true }),
                };
                id = id.wrapping_add(1);
                let packet = query(id, name, qtype, edns);
                let question_len = packet.len() - 12 - if edns.is_some() { 11 } else { 0 };
                total += 1;
                let a = exchange(ours, source, &packet, tcp).map(|r| normalize(&r, question_len, qtype, tcp, edns));
                let b = exchange(bind, source, &packet, tcp).map(|r| normalize(&r, question_len, qtype, tcp, edns));
                match (a, b) {
                    (Some(Ok(a)), Some(Ok(b))) if a == b && a.question == packet[12..12 + question_len] => {
                        same += 1;
                        let tc = a.flags & 0x0200 != 0;
                        let kind = match (tc, a.answer.is_empty()) {
                            (true, _) => "TC".to_string(),
                            (false, false) => format!("{} with answers", a.rcode),
                            (false, true) => format!("{} without answers", a.rcode),
                        };
                        *tally.entry(kind).or_default() += 1;
                    }
                    (a, b) => {
                        let fields = match (&a, &b) {
                            (Some(Ok(a)), Some(Ok(b))) => [
                                ("flags", a.flags != b.flags),
                                ("answer", a.answer != b.answer),
                                ("authority", a.authority != b.authority),
                                ("additional", a.additional != b.additional),
                                ("opt", a.opt != b.opt),
                            ]
                            .iter()
                            .filter(|(_, differs)| *differs)
                            .map(|(field, _)| *field)
                            .collect::<Vec<_>>()
                            .join("+"),
                            _ => "no answer".to_string(),
                        };
                        *kinds.entry(format!("{source} {fields}")).or_default() += 1;
                        failures.push(format!(
                            "{source} → {ours} {name} {qtype} tcp={tcp} edns={edns:?}\n  vpcdns: {a:?}\n  bind:   {b:?}"
                        ))
                    }
                }
            }
        }
    }
    println!(
        "differential: {same}/{total} identical ({:.2} %) over {} askers ({} VPCs, one outside its listener, one \
         outside every VPC), {:.1} s",
        100.0 * same as f64 / total as f64,
        askers.len(),
        VPCS.len(),
        started.elapsed().as_secs_f64()
    );
    println!("outcomes: {tally:?}");
    if !kinds.is_empty() {
        println!("differences: {kinds:#?}");
    }
    for f in failures.iter().take(20) {
        println!("{f}");
    }
    assert!(total >= 10_000, "the corpus has {total} queries");
    check_cross_zone_cname(port, bind_port);
    assert!(failures.is_empty(), "{} of {total} responses differ", failures.len());
}

/// A CNAME whose target lies in another zone.
const CROSS: &str = "cross.corp.internal.";

/// vpcdns's one deliberate difference: where the VPC sees the target's zone, vpcdns follows the CNAME (BIND stops at
/// the zone boundary); where it does not, both answer alike.
fn check_cross_zone_cname(port: u16, bind_port: u16) {
    let edns = Some(Edns { size: 1232, dnssec_ok: false });
    let packet = query(0x7777, CROSS, 1, edns);
    let question_len = packet.len() - 12 - 11;
    let (ours, bind) = target(VPCS[0].source, port, bind_port, false);
    let ask = |server, source| {
        let answer = exchange(server, source, &packet, false).expect("answer");
        normalize(&answer, question_len, 1, false, edns).expect("decodes")
    };
    let (a, b) = (ask(ours, VPCS[0].source), ask(bind, VPCS[0].source));
    assert_eq!((a.rcode, b.rcode), (ResponseCode::NoError, ResponseCode::NoError));
    assert_eq!(a.answer.first(), b.answer.first(), "vpcdns keeps BIND's answer: {b:?} ⊂ {a:?}");
    assert!(
        a.answer.iter().any(|(owner, _, data)| owner == "a.gen.test." && data.contains("300 10.5.0.1")),
        "and follows the CNAME: {a:?}"
    );
    assert_eq!(b.answer.len(), 1, "BIND stops at the CNAME");
    // v-a2 does not see gen.test.: the chain ends at the CNAME on both.
    assert_eq!(ask(ours, VPCS[1].source), ask(bind, VPCS[1].source));
    println!(
        "cross-zone CNAME: followed where the target zone is visible ({} RRsets vs BIND's {}), identical elsewhere",
        a.answer.len(),
        b.answer.len()
    );
}

/// Waits (bounded) until the server answers.
fn wait_for(server: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if exchange(server, VPCS[0].source, &query(1, "corp.internal.", 6, None), false).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no answer from {server}");
}
