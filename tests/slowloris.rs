//! Slowloris: idle and byte-by-byte TCP connections from one /24 while `dig +tcp` from another /24 keeps getting
//! answers (≥ 99 %). CI runs a short one (300 connections, past the per-network cap of 256); the extended suite
//! (`scripts/test-extended.sh`) runs 2,000.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{dig_at, Server, ACCOUNT};

fn connect_from(source: Ipv4Addr, server: SocketAddr) -> Option<TcpStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrStorage};
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).ok()?;
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)))
        .ok()?;
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(server)).ok()?;
    Some(TcpStream::from(fd))
}

/// Enough descriptors for the attack's sockets.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65_536), hard);
    }
}

#[test]
fn a_few_hundred_slow_clients_do_not_starve_another_network() {
    slowloris(300, 30);
}

#[test]
#[ignore = "extended suite: scripts/test-extended.sh"]
fn slow_clients_from_one_network_do_not_starve_another() {
    slowloris(2000, 200);
}

/// `attackers` connections, half idle and half trickling, while `digs` queries from another network go over TCP.
fn slowloris(attackers: usize, digs: usize) {
    raise_fd_limit();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{ACCOUNT}\
         [[vpcs]]\nid = \"v1\"\naccount = \"1\"\ncidrs = [\"127.0.74.0/24\", \"127.0.75.0/24\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
         records = [{{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }}]\n"
    );
    let s = Server::start(&config, &[]);
    let at: SocketAddr = s.addrs[0].parse().expect("address");
    // Half idle, half trickling one byte of a length prefix at a time.
    let mut attackers: Vec<TcpStream> =
        (0..attackers).filter_map(|i| connect_from(Ipv4Addr::new(127, 0, 74, 1 + (i % 250) as u8), at)).collect();
    println!("attack: {} connections opened from 127.0.74.0/24", attackers.len());
    let started = Instant::now();
    let mut answered = 0;
    for round in 0..digs {
        if round % 10 == 0 {
            for (i, stream) in attackers.iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
                let _ = stream.write_all(&[(i % 2) as u8]);
            }
        }
        let d = dig_at(&s.addrs[0], "127.0.75.9", "www.corp.internal", "A", &["+tcp"]);
        if d.data("A") == ["10.0.0.1"] {
            answered += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "bounded time");
    }
    let rate = 100.0 * answered as f64 / digs as f64;
    println!(
        "slowloris: {answered}/{digs} dig +tcp answered ({rate:.1} %) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(rate >= 99.0, "{rate:.1} % answered");
}
