//! A UDP query sender for benchmarks, for what dnsperf cannot do: put a PROXY v2 header (with TLVs) before every
//! query, as a load balancer or dnsdist in front of the server would. `benches/peers.sh proxy` runs two of these
//! at once (one per client) against vpcdns and Knot, with and without headers, and measures the servers' CPU time
//! per answered query.
//!
//! ```text
//! udp_load SERVER SOURCE QUERIES SECONDS [CLIENT TLV_TYPE=VALUE]
//! udp_load 127.0.0.1:5310 127.100.0.1 queries.txt 15                              # plain queries from SOURCE
//! udp_load 127.0.0.1:5310 127.0.0.77 queries.txt 15 127.100.0.1 0xE4=vpc-00000   # relayed for CLIENT
//! ```
//!
//! QUERIES is dnsperf's format (`name type` per line). It keeps up to 64 queries outstanding; when no answer comes
//! within 100 ms the outstanding ones count as lost and it sends again. Prints `sent N completed N lost N qps N`.
//! Loopback only, bounded by SECONDS.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpcdns::dataplane::proxy::{build, Command};

/// Queries outstanding at once.
const WINDOW: usize = 64;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (server, source, queries, seconds, relay) = match args.as_slice() {
        [server, source, queries, seconds] => (server, source, queries, seconds, None),
        [server, source, queries, seconds, client, tlv] => (server, source, queries, seconds, Some((client, tlv))),
        _ => bail!("usage: udp_load SERVER SOURCE QUERIES SECONDS [CLIENT TLV_TYPE=VALUE]"),
    };
    let server: SocketAddr = server.parse().context("SERVER")?;
    let source: IpAddr = source.parse().context("SOURCE")?;
    let seconds: u64 = seconds.parse().context("SECONDS")?;
    let header = match relay {
        None => Vec::new(),
        Some((client, tlv)) => {
            let client: IpAddr = client.parse().context("CLIENT")?;
            let (kind, value) = tlv.split_once('=').context("TLV_TYPE=VALUE")?;
            let kind =
                u8::from_str_radix(kind.trim_start_matches("0x").trim_start_matches("0X"), 16).context("TLV_TYPE")?;
            let addresses = (SocketAddr::new(client, 40000), server);
            build(Command::Proxy, true, Some(addresses), &[(kind, value.as_bytes())], false)
        }
    };
    let text = std::fs::read_to_string(queries).with_context(|| format!("cannot read {queries}"))?;
    let packets: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .enumerate()
        .filter_map(|(i, (name, qtype))| Some([header.as_slice(), &query(i, name, type_code(qtype)?)].concat()))
        .collect();
    if packets.is_empty() {
        bail!("no queries in {queries}");
    }
    let socket = UdpSocket::bind((source, 0)).context("bind")?;
    socket.connect(server).context("connect")?;
    socket.set_read_timeout(Some(Duration::from_millis(100))).context("timeout")?;
    let (mut sent, mut completed, mut lost, mut outstanding) = (0u64, 0u64, 0u64, 0usize);
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        while outstanding < WINDOW {
            let packet = &packets[(sent % packets.len() as u64) as usize];
            if socket.send(packet).is_err() {
                break;
            }
            sent += 1;
            outstanding += 1;
        }
        match socket.recv(&mut buf) {
            Ok(_) => {
                completed += 1;
                outstanding = outstanding.saturating_sub(1);
            }
            Err(_) => {
                lost += outstanding as u64;
                outstanding = 0;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("sent {sent} completed {completed} lost {lost} qps {:.0}", completed as f64 / elapsed);
    Ok(())
}

/// An A/AAAA/… query for `name` with id `i`, RD set, no EDNS (as dnsperf sends by default).
fn query(i: usize, name: &str, qtype: u16) -> Vec<u8> {
    let id = (i as u16).to_be_bytes();
    let mut q = vec![id[0], id[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn type_code(text: &str) -> Option<u16> {
    vpcdns::dns::rdata::type_from_mnemonic(text)
}
