//! Hostile input against the real server: raw bytes over UDP and TCP, each with the exact expected outcome
//! (dropped, or the rcode the RFCs give), and never a crash.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Server, ACCOUNT};

const SOURCE: &str = "127.0.60.9";

fn server() -> Server {
    let big: Vec<String> =
        (0..4).map(|i| format!("{{ name = \"big\", type = \"TXT\", data = \"{}\" }}", "x".repeat(200 + i))).collect();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.60.0/24\", \"127.0.0.1/32\"]\n\
         [[vpcs]]\nid = \"v2\"\naccount = \"1\"\ncidrs = [\"127.0.61.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\nrecords = [\n\
         {{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }},\n{}\n]\n\
         [[zones]]\nid = \"other\"\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v2\"]\nrecords = [\n\
         {{ name = \"www\", type = \"A\", data = \"10.9.9.9\" }}\n]\n",
        big.join(",\n")
    );
    Server::start(&config, &[])
}

/// Header: id 0xabcd, flags, counts.
fn header(flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = vec![0xab, 0xcd];
    for v in [flags, qd, an, ns, ar] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn qname(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A well-formed query with `extra` appended and ARCOUNT = `ar`.
fn query(name: &str, qtype: u16, qclass: u16, ar: u16, extra: &[u8]) -> Vec<u8> {
    let mut q = header(0, 1, 0, 0, ar);
    q.extend(qname(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q.extend_from_slice(extra);
    q
}

/// An OPT record: owner, payload size, extended rcode/version/flags, options.
fn opt(owner: &[u8], size: u16, version: u8, options: &[u8]) -> Vec<u8> {
    let mut o = owner.to_vec();
    o.extend_from_slice(&41u16.to_be_bytes());
    o.extend_from_slice(&size.to_be_bytes());
    o.extend_from_slice(&[0, version, 0, 0]);
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

fn udp(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((SOURCE, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(400))).expect("timeout");
    socket.send_to(packet, server).expect("send");
    let mut buf = [0u8; 65535];
    socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

fn tcp(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut stream = std::net::TcpStream::connect(server).expect("connect");
    stream.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).expect("send");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

fn rcode(resp: &[u8]) -> u8 {
    resp[3] & 0x0F
}

fn counts(resp: &[u8]) -> [u16; 4] {
    [0, 1, 2, 3].map(|i| u16::from_be_bytes([resp[4 + 2 * i], resp[5 + 2 * i]]))
}

#[test]
fn malformed_packets_are_dropped_or_formerr_in_bounded_time() {
    let s = server();
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let started = Instant::now();
    // Dropped: shorter than a header, and any response (QR=1).
    assert_eq!(udp(at, &[0u8; 11]), None);
    let mut response = query("www.corp.internal", 1, 1, 0, &[]);
    response[2] |= 0x80;
    assert_eq!(udp(at, &response), None);

    let long_name: String = (0..5).map(|_| "a".repeat(60)).collect::<Vec<_>>().join(".");
    let mut loop_pointer = query("www.corp.internal", 1, 1, 1, &[]);
    let at_rr = loop_pointer.len() as u16;
    loop_pointer.extend_from_slice(&(0xC000 | at_rr).to_be_bytes());
    loop_pointer.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    let mut chain = query("www.corp.internal", 1, 1, 1, &[]);
    // 120 pointers, each to the one before it, ending at the question name.
    let first = chain.len();
    chain.extend_from_slice(&0xC00Cu16.to_be_bytes());
    for i in 1..120 {
        let previous = (first + 2 * (i - 1)) as u16;
        chain.extend_from_slice(&(0xC000 | previous).to_be_bytes());
    }
    chain.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated question", query("www.corp.internal", 1, 1, 0, &[])[..20].to_vec()),
        ("name over 255 octets", query(&long_name, 1, 1, 0, &[])),
        ("label type 0x40", [header(0, 1, 0, 0, 0), vec![0x40, 1, 0, 0, 1, 0, 1]].concat()),
        ("label type 0x80", [header(0, 1, 0, 0, 0), vec![0x80, 1, 0, 0, 1, 0, 1]].concat()),
        ("pointer in the question", [header(0, 1, 0, 0, 0), vec![0xC0, 0x0C, 0, 1, 0, 1]].concat()),
        ("pointer loop", loop_pointer),
        ("forward pointer", query("www.corp.internal", 1, 1, 1, &[0xC0, 0xFF, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])),
        ("out-of-bounds pointer", query("www.corp.internal", 1, 1, 1, &[0xFF, 0xFF, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])),
        ("120 chained pointers", chain),
        ("QDCOUNT 0", header(0, 0, 0, 0, 0)),
        (
            "QDCOUNT 2",
            query("www.corp.internal", 1, 1, 0, &[])[..]
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 5 { 2 } else { *b })
                .collect(),
        ),
        ("ARCOUNT larger than present", query("www.corp.internal", 1, 1, 2, &opt(&[0], 1232, 0, &[]))),
        ("RDLENGTH past the end", query("www.corp.internal", 1, 1, 1, &[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2])),
        (
            "two OPT records",
            query("www.corp.internal", 1, 1, 2, &[opt(&[0], 1232, 0, &[]), opt(&[0], 1232, 0, &[])].concat()),
        ),
        ("OPT with a non-root owner", query("www.corp.internal", 1, 1, 1, &opt(&qname("x"), 1232, 0, &[]))),
        ("OPT option past its RDATA", query("www.corp.internal", 1, 1, 1, &opt(&[0], 1232, 0, &[0, 10, 0, 9, 1]))),
        ("QTYPE OPT", query("www.corp.internal", 41, 1, 0, &[])),
        ("QTYPE TSIG", query("www.corp.internal", 250, 1, 0, &[])),
        ("QTYPE TKEY", query("www.corp.internal", 249, 1, 0, &[])),
        ("AXFR over UDP", query("corp.internal", 252, 1, 0, &[])),
    ];
    for (what, packet) in &cases {
        let resp = udp(at, packet).unwrap_or_else(|| panic!("{what}: no answer over UDP"));
        assert_eq!(rcode(&resp), 1, "{what}: FORMERR over UDP");
        assert_eq!(&resp[..2], &[0xab, 0xcd], "{what}: the id is echoed");
        assert_eq!(counts(&resp)[1..3], [0, 0], "{what}: no records");
        if *what != "AXFR over UDP" {
            let resp = tcp(at, packet).unwrap_or_else(|| panic!("{what}: no answer over TCP"));
            assert_eq!(rcode(&resp), 1, "{what}: FORMERR over TCP");
        }
    }
    // An OPT in the answer section.
    let mut in_answer = header(0, 1, 1, 0, 0);
    in_answer.extend(qname("www.corp.internal"));
    in_answer.extend_from_slice(&[0, 1, 0, 1]);
    in_answer.extend(opt(&[0], 1232, 0, &[]));
    assert_eq!(udp(at, &in_answer).map(|r| rcode(&r)), Some(1), "OPT outside the additional section");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded time");
}

#[test]
fn opcodes_classes_and_meta_types() {
    let s = server();
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let with_flags = |flags: u16| {
        let mut q = query("www.corp.internal", 1, 1, 0, &[]);
        q[2..4].copy_from_slice(&flags.to_be_bytes());
        q
    };
    for (what, flags, expected) in
        [("STATUS", 2u16 << 11, 4), ("opcode 15", 15 << 11, 4), ("NOTIFY", 4 << 11, 5), ("UPDATE", 5 << 11, 5)]
    {
        let resp = udp(at, &with_flags(flags)).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(rcode(&resp), expected, "{what}");
        assert_eq!(resp[2] & 0x78, ((flags >> 8) as u8) & 0x78, "{what}: the opcode is echoed");
    }
    for (what, name, qtype, qclass) in [
        ("CHAOS version.bind", "version.bind", 16, 3),
        ("CHAOS hostname.bind", "hostname.bind", 16, 3),
        ("CHAOS id.server", "id.server", 16, 3),
        ("class ANY", "www.corp.internal", 1, 255),
        ("class NONE", "www.corp.internal", 1, 254),
        ("class 300", "www.corp.internal", 1, 300),
    ] {
        let resp = udp(at, &query(name, qtype, qclass, 0, &[])).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(rcode(&resp), 5, "{what}: REFUSED");
        assert_eq!(counts(&resp)[1..], [0, 0, 0], "{what}: leaks nothing");
        assert_eq!(resp[2] & 0x04, 0, "{what}: no AA");
    }
    assert_eq!(tcp(at, &query("corp.internal", 252, 1, 0, &[])).map(|r| rcode(&r)), Some(5), "AXFR over TCP");
    assert_eq!(udp(at, &query("corp.internal", 251, 1, 0, &[])).map(|r| rcode(&r)), Some(5), "IXFR over UDP");
    assert_eq!(udp(at, &query("www.corp.internal", 254, 1, 0, &[])).map(|r| rcode(&r)), Some(4), "MAILA");
}

#[test]
fn edns_versions_options_and_buffer_sizes() {
    let s = server();
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    // EDNS version 1: BADVERS (extended rcode 1 in the OPT, header rcode 0), no answer.
    let resp = udp(at, &query("www.corp.internal", 1, 1, 1, &opt(&[0], 1232, 1, &[]))).expect("answer");
    assert_eq!((rcode(&resp), counts(&resp)[1]), (0, 0));
    assert_eq!(resp[resp.len() - 6], 1, "extended rcode: BADVERS");
    // Unknown options are ignored and not echoed; an ECS option never moves the query into another VPC.
    let unknown = [0xFD, 0xE9, 0, 2, 0xAA, 0xBB];
    let ecs_other_vpc = [0, 8, 0, 8, 0, 1, 24, 0, 127, 0, 61, 0];
    for options in [&unknown[..], &ecs_other_vpc[..]] {
        let resp = udp(at, &query("www.corp.internal", 1, 1, 1, &opt(&[0], 1232, 0, options))).expect("answer");
        assert_eq!((rcode(&resp), counts(&resp)[1]), (0, 1));
        // The A record's RDATA sits just before our 11-byte OPT.
        assert_eq!(&resp[resp.len() - 15..resp.len() - 11], &[10, 0, 0, 1], "the answer is v1's 10.0.0.1");
        assert_eq!(&resp[resp.len() - 2..], &[0, 0], "our OPT carries no options");
    }
    // Buffer sizes 0 and 100 are treated as 512: the 800-byte TXT set does not fit and is truncated; 65535 is capped
    // at 1232, where it fits.
    for (size, truncated) in [(0u16, true), (100, true), (512, true), (65535, false)] {
        let resp = udp(at, &query("big.corp.internal", 16, 1, 1, &opt(&[0], size, 0, &[]))).expect("answer");
        assert_eq!(resp[2] & 0x02 != 0, truncated, "size {size}");
        assert!(resp.len() <= if truncated { 512 } else { 1232 }, "size {size}: {} bytes", resp.len());
        assert_eq!(u16::from_be_bytes([resp[resp.len() - 8], resp[resp.len() - 7]]), 1232, "we advertise 1232");
    }
    // IPv4-mapped sources classify as IPv4 — covered by tests/rules.rs through the configuration side; here the
    // same VPC answers whatever the query's transport.
    assert_eq!(tcp(at, &query("www.corp.internal", 1, 1, 0, &[])).map(|r| counts(&r)[1]), Some(1));
}

/// The COOKIE option of a response's OPT (the OPT is the last record), if any.
fn response_cookie(resp: &[u8]) -> Option<Vec<u8>> {
    // Our OPT: 0, type 41 (2), class (2), ttl (4), rdlen (2), then options; find it from the end by its rdlen.
    let mut at = resp.len();
    for start in (12..resp.len().saturating_sub(10)).rev() {
        if resp[start] == 0 && resp[start + 1..start + 3] == [0, 41] {
            let rdlen = u16::from_be_bytes([resp[start + 9], resp[start + 10]]) as usize;
            if start + 11 + rdlen == resp.len() {
                at = start + 11;
                break;
            }
        }
    }
    let mut options = resp.get(at..)?;
    while options.len() >= 4 {
        let code = u16::from_be_bytes([options[0], options[1]]);
        let len = u16::from_be_bytes([options[2], options[3]]) as usize;
        if code == 10 {
            return options.get(4..4 + len).map(<[u8]>::to_vec);
        }
        options = options.get(4 + len..)?;
    }
    None
}

#[test]
fn dns_cookies() {
    let s = server();
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let cookie_opt = |data: &[u8]| {
        let mut o = vec![0, 10];
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        opt(&[0], 1232, 0, &o)
    };
    let client = [1u8, 2, 3, 4, 5, 6, 7, 8];
    // A client cookie gets the client cookie back with a 16-byte RFC 9018 server cookie (version 1).
    let resp = udp(at, &query("www.corp.internal", 1, 1, 1, &cookie_opt(&client))).expect("answer");
    assert_eq!((rcode(&resp), counts(&resp)[1]), (0, 1));
    let cookie = response_cookie(&resp).expect("a COOKIE option");
    assert_eq!((cookie.len(), &cookie[..8], cookie[8]), (24, &client[..], 1));
    // Returning it works, over UDP and TCP.
    let full = cookie_opt(&cookie);
    assert_eq!(udp(at, &query("www.corp.internal", 1, 1, 1, &full)).map(|r| rcode(&r)), Some(0));
    assert_eq!(tcp(at, &query("www.corp.internal", 1, 1, 1, &full)).map(|r| rcode(&r)), Some(0));
    // No question but a client cookie: NOERROR with a server cookie (RFC 7873 §5.4).
    let mut bare = header(0, 0, 0, 0, 1);
    bare.extend(cookie_opt(&client));
    let resp = udp(at, &bare).expect("answer");
    assert_eq!((rcode(&resp), counts(&resp)[0]), (0, 0));
    assert_eq!(response_cookie(&resp).map(|c| c.len()), Some(24));
    // Malformed cookie lengths: FORMERR.
    for len in [5usize, 12, 41] {
        let resp = udp(at, &query("www.corp.internal", 1, 1, 1, &cookie_opt(&vec![9u8; len]))).expect("answer");
        assert_eq!(rcode(&resp), 1, "cookie of {len} bytes");
    }
}

#[test]
fn response_rate_limiting_slips_drops_and_spares_cookies() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[rrl]\nresponses_per_second = 5\nslip = 2\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.60.0/24\", \"127.0.62.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let ask = |source: &str, packet: &[u8]| {
        let socket = UdpSocket::bind((source, 0)).expect("bind");
        // A dropped reply is waited for this long; a slow machine's answers come well within it.
        socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        socket.send_to(packet, at).expect("send");
        let mut buf = [0u8; 1500];
        socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
    };
    let plain = query("www.corp.internal", 1, 1, 0, &[]);
    // A burst of 30 from one socket, then every reply that comes within half a second.
    let socket = UdpSocket::bind((SOURCE, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let started = std::time::Instant::now();
    for _ in 0..30 {
        socket.send_to(&plain, at).expect("send");
    }
    let (mut full, mut slipped) = (0usize, 0usize);
    let mut buf = [0u8; 1500];
    let mut last = started.elapsed();
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        last = started.elapsed();
        if buf[2] & 0x02 != 0 {
            assert_eq!(counts(&buf[..n])[1..], [0, 0, 0], "a slipped reply is empty");
            slipped += 1;
        } else {
            full += 1;
        }
    }
    let dropped = 30 - full - slipped;
    // The bucket holds 5 and refills 5 a second while the burst is answered (however slow the machine).
    let allowed = 5 + (5.0 * last.as_secs_f64()).ceil() as usize;
    assert!((5..=allowed).contains(&full), "the bucket's worth answered in {last:?}: {full}, at most {allowed}");
    assert!(full < 30, "the burst was limited");
    assert!(slipped.abs_diff(dropped) <= 1, "every second limited response slips ({slipped}, {dropped})");
    // Another network has its own budget.
    assert_eq!(ask("127.0.62.9", &plain).map(|r| counts(&r)[1]), Some(1));
    // A client that returns our server cookie has proved its address and is not limited.
    let mut with_cookie = vec![0, 10, 0, 8];
    with_cookie.extend_from_slice(&[5; 8]);
    let first =
        (0..20).find_map(|_| ask(SOURCE, &query("www.corp.internal", 1, 1, 1, &opt(&[0], 1232, 0, &with_cookie))));
    let cookie = response_cookie(&first.expect("a reply within 20 tries")).expect("cookie");
    let mut returned = vec![0, 10, 0, 24];
    returned.extend_from_slice(&cookie);
    let with_valid = query("www.corp.internal", 1, 1, 1, &opt(&[0], 1232, 0, &returned));
    let answered = (0..20).filter(|_| ask(SOURCE, &with_valid).is_some_and(|r| counts(&r)[1] == 1)).count();
    assert_eq!(answered, 20, "valid cookies are exempt");
}

#[test]
fn truncation_lands_exactly_on_512_and_1232_bytes_and_big_rrsets_stay_cheap() {
    let txt = |parts: &[(char, usize)]| {
        let strings: Vec<String> = parts.iter().map(|(c, n)| format!("\\\"{}\\\"", c.to_string().repeat(*n))).collect();
        strings.join(" ")
    };
    let quarter = [('a', 255), ('b', 255), ('c', 255), ('d', 255)];
    let record = |name: &str, parts: &[(char, usize)]| {
        format!("{{ name = \"{name}\", type = \"TXT\", data = \"{}\" }}", txt(parts))
    };
    let mut records = vec![
        // 12 header + 26 question + 12 RR header + 462 RDATA = 512 bytes (and one more).
        record("fit512", &[('a', 255), ('b', 205)]),
        record("big512", &[('a', 255), ('b', 206)]),
        // 12 + 27 + 12 + 1170 RDATA + 11 OPT = 1232 bytes (and one more).
        record("fit1232", &[quarter.as_slice(), &[('e', 145)]].concat()),
        record("big1232", &[quarter.as_slice(), &[('e', 146)]].concat()),
    ];
    for i in 0..100 {
        records.push(format!("{{ name = \"many\", type = \"MX\", data = \"{i} mx{i}.host{i}.corp.internal.\" }}"));
        records.push(format!("{{ name = \"wide\", type = \"A\", data = \"10.1.0.{}\" }}", i + 1));
    }
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}[[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.60.0/24\", \"127.0.0.1/32\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\nrecords = [\n{}\n]\n",
        records.join(",\n")
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let plain = |name: &str| udp(at, &query(name, 16, 1, 0, &[])).expect("answer");
    let edns = |name: &str, qtype: u16| udp(at, &query(name, qtype, 1, 1, &opt(&[0], 1232, 0, &[]))).expect("answer");
    let exact = plain("fit512.corp.internal");
    assert_eq!((exact.len(), exact[2] & 0x02), (512, 0), "512 bytes fit without EDNS");
    assert_ne!(plain("big512.corp.internal")[2] & 0x02, 0, "513 do not");
    let exact = edns("fit1232.corp.internal", 16);
    assert_eq!((exact.len(), exact[2] & 0x02), (1232, 0), "1232 bytes fit with EDNS 1232");
    assert_ne!(edns("big1232.corp.internal", 16)[2] & 0x02, 0, "1233 do not");
    // An RRset at the 100-record cap with 100 distinct compressible names: a prompt, truncated UDP answer, and the
    // whole set over TCP.
    let started = Instant::now();
    for qtype in [15u16, 1] {
        let name = if qtype == 15 { "many.corp.internal" } else { "wide.corp.internal" };
        let resp = edns(name, qtype);
        assert_ne!(resp[2] & 0x02, 0, "{name}: truncated over UDP");
        let full = tcp(at, &query(name, qtype, 1, 0, &[])).expect("tcp answer");
        assert_eq!(counts(&full)[1], 100, "{name}: all 100 over TCP");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "bounded time");
}
