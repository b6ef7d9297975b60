//! Resource bounds on the wire: one client network cannot take every TCP slot.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{connect_from, Server, ACCOUNT};

/// One query for www.corp.internal/A over `stream`; the answer's rcode, or None when the server closed it.
fn ask(stream: &mut TcpStream) -> Option<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03www\x04corp\x08internal\x00\x00\x01\x00\x01");
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body[3] & 0x0F)
}

#[test]
fn one_network_cannot_take_every_tcp_slot() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.70.0/24\", \"127.0.71.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    // 256 connections from one /24 hold every slot that network may have (they stay idle and open).
    let mut held: Vec<TcpStream> =
        (0..256).map(|i| connect_from(Ipv4Addr::new(127, 0, 70, 1 + (i % 250) as u8), at)).collect();
    assert_eq!(ask(&mut held[0]), Some(0), "a held connection answers");
    // The next one from that network is closed at once; another network is still served.
    let mut refused = connect_from(Ipv4Addr::new(127, 0, 70, 251), at);
    assert_eq!(ask(&mut refused), None, "the 257th connection from one /24 is closed");
    let mut other = connect_from(Ipv4Addr::new(127, 0, 71, 9), at);
    assert_eq!(ask(&mut other), Some(0));
    // Slots come back when connections close (the server notices within moments: polled, bounded).
    held.truncate(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let answered = std::iter::from_fn(|| {
        (std::time::Instant::now() < deadline).then(|| ask(&mut connect_from(Ipv4Addr::new(127, 0, 70, 252), at)))
    })
    .any(|answer| answer == Some(0));
    assert!(answered, "a freed slot takes a new connection");
}

#[test]
fn pipelined_queries_on_one_connection_are_all_answered_in_order() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.72.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 72, 9), at);
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // 200 queries in one write, before reading anything.
    let mut burst = Vec::new();
    for id in 0..200u16 {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(b"\x03www\x04corp\x08internal\x00\x00\x01\x00\x01");
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    stream.write_all(&burst).expect("send");
    for id in 0..200u16 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("length");
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).expect("answer");
        assert_eq!(&body[..2], &id.to_be_bytes(), "answers come in order");
        assert_eq!((body[3] & 0x0F, body[7]), (0, 1));
    }
}

#[test]
fn sigterm_drains_open_connections_and_exits_zero() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.73.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let mut s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let mut idle = connect_from(Ipv4Addr::new(127, 0, 73, 9), at);
    assert_eq!(ask(&mut idle), Some(0), "answered before the signal");
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().expect("kill");
    assert!(status.success());
    // The idle connection is closed by the server, not left to its idle timeout.
    idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(idle.read(&mut byte).ok(), Some(0), "closed (EOF)");
    let code = s.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0), "exit status");
    assert!(started.elapsed() < Duration::from_secs(8), "drained within the deadline: {:?}", started.elapsed());
    assert!(s.log().contains("drained"), "{}", s.log());
}

#[test]
fn idle_connections_are_closed_after_the_configured_timeout() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[limits]\ntcp_idle_ms = 300\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.76.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 76, 9), at);
    assert_eq!(ask(&mut stream), Some(0));
    let started = std::time::Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).ok(), Some(0), "closed by the server");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(8), "{waited:?}");
}

/// Sends `n` queries for www.corp.internal/A from `source` at about 4,000 a second (which the server keeps up
/// with, so what is measured is the limit, not a full buffer) while collecting the replies: (full answers,
/// truncated replies).
fn flood(server: SocketAddr, source: Ipv4Addr, n: u16) -> (usize, usize) {
    let socket = std::net::UdpSocket::bind((source, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let sender = socket.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        for id in 0..n {
            let mut q = id.to_be_bytes().to_vec();
            q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
            q.extend_from_slice(b"\x03www\x04corp\x08internal\x00\x00\x01\x00\x01");
            sender.send_to(&q, server).expect("send");
            if id % 4 == 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 512];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        if len >= 12 && buf[2] & 0x02 != 0 {
            truncated += 1;
        } else if len >= 12 && buf[7] == 1 {
            full += 1;
        }
    }
    sending.join().expect("sender");
    (full, truncated)
}

/// Issue 13 finding 10: one source address gets at most its VPC's rate of full answers (1,024 a second by
/// default); past it every other query gets a truncated reply (a real client retries over TCP) and the rest none.
#[test]
fn one_source_gets_its_rate_of_full_answers_and_no_more() {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.77.0/24\"]\n\
         [[vpcs]]\nid = \"v2\"\naccount = \"1\"\ncidrs = [\"127.0.78.0/24\"]\nquery_limit = 50\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\", \"v2\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    let started = std::time::Instant::now();
    let (full, truncated) = flood(at, Ipv4Addr::new(127, 0, 77, 9), 3000);
    let secs = started.elapsed().as_secs_f64();
    println!("3,000 queries from one source in {secs:.2} s: {full} full answers, {truncated} truncated");
    // The bucket starts full (1,024) and refills at 1,024 a second while the queries arrive.
    let allowed = 1024.0 * (1.0 + secs);
    assert!((full as f64) <= allowed && full < 2900, "{full} full answers in {secs:.2} s");
    assert!(truncated > 100 && full + 2 * truncated > 2500, "every other limited query slips: {full} + {truncated}");
    // A neighbour is not limited by that source's flood; a VPC's own limit applies to its sources.
    assert_eq!(s.dig("127.0.77.10", "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    let started = std::time::Instant::now();
    let (full, _) = flood(at, Ipv4Addr::new(127, 0, 78, 9), 500);
    let allowed = 50.0 * (1.0 + started.elapsed().as_secs_f64());
    assert!((full as f64) <= allowed, "v2's own limit of 50: {full}");
}
