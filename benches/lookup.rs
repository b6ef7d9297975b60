//! The in-process query path: classify + select zone + build answer + encode (`respond::handle`), over
//! pseudo-random names and sources so that caches do not flatter it, along three axes (the others held at the
//! base shape of 100 zones, 16 VPCs, 10,000 records):
//!   zones   10 → 100,000      (every zone seen by half the VPCs)
//!   vpcs    10 → 10,000       (each its own /24 source range)
//!   records 1,000 → 1,000,000 (spread over the zones)
//! The target: median ≤ 150 ns, and within 1.5 × from one end of each axis to the other.
//!
//! Run: `cargo bench --bench lookup` (criterion prints the time per query for each point of each curve).
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use vpcdns::dataplane::respond;
use vpcdns::dns::name::Name;
use vpcdns::dns::rdata::{RData, Record};
use vpcdns::dns::Transport;
use vpcdns::model::compile::Compiler;
use vpcdns::model::snapshot::Snapshot;
use vpcdns::model::state::{Account, Site, State, Uid, Vpc, VpcId, Zone, ZoneId};
use vpcdns::settings::Served;

/// One point of a curve.
#[derive(Clone, Copy)]
struct Shape {
    zones: usize,
    vpcs: usize,
    records: usize,
}

impl Shape {
    fn per_zone(&self) -> usize {
        (self.records / self.zones).max(1)
    }
}

const BASE: Shape = Shape { zones: 100, vpcs: 16, records: 10_000 };

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn name(text: &str) -> Name {
    Name::from_text(text, None).expect("bench name")
}

fn state(shape: Shape) -> State {
    let uid = Uid("1".into());
    let account =
        Account { uid: uid.clone(), name: "bench".into(), email: "root@bench.example".into(), site: Site::Intl };
    let vpcs: BTreeMap<VpcId, Vpc> = (0..shape.vpcs)
        .map(|i| {
            let id = VpcId::new(&format!("vpc{i}"));
            let cidr = source_range(i).parse().expect("cidr");
            (
                id.clone(),
                Vpc {
                    id,
                    account: uid.clone(),
                    region: String::new(),
                    cidrs: vec![cidr],
                    listeners: vec![],
                    query_limit: None,
                    endpoints: vec![],
                    cloud_id: None,
                },
            )
        })
        .collect();
    let mut state_zones = BTreeMap::new();
    for z in 0..shape.zones {
        let origin = name(&format!("zone{z}.internal."));
        let records = (0..shape.per_zone())
            .map(|r| Record {
                owner: name(&format!("host{r}.zone{z}.internal.")),
                ttl: 300,
                rdata: RData::A(Ipv4Addr::new(10, (z >> 8) as u8, z as u8, r as u8)),
            })
            .collect::<Vec<_>>();
        let records = vpcdns::model::state::records_from(records);
        // Every zone is visible to half the VPCs.
        let scope = (0..shape.vpcs).filter(|v| (v + z) % 2 == 0).map(|v| VpcId::new(&format!("vpc{v}"))).collect();
        let id = ZoneId(format!("z{z}"));
        state_zones.insert(
            id.clone(),
            Zone {
                id,
                name: origin,
                account: uid.clone(),
                scope,
                records,
                revision: 1,
                origin: "bench".into(),
                fallback: Default::default(),
            },
        );
    }
    State {
        revision: 1,
        served: Served {
            listen: vec!["127.0.0.1:53".parse().expect("addr")],
            nameserver: name("ns.bench."),
            ..Served::default()
        },
        accounts: [(uid, account)].into_iter().collect(),
        users: BTreeMap::new(),
        vpcs,
        links: BTreeSet::new(),
        zones: state_zones,
        rules: Default::default(),
    }
}

/// VPC `i`'s source range: 10,000 distinct /24s inside 127.0.0.0/8.
fn source_range(i: usize) -> String {
    format!("127.{}.{}.0/24", 1 + i / 200, i % 200)
}

fn queries(shape: Shape, count: usize) -> Vec<(IpAddr, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let v = rng.next() as usize % shape.vpcs;
            let z = rng.next() as usize % shape.zones;
            // One name in 12 does not exist (NXDOMAIN); half the VPCs do not see the zone (REFUSED).
            let r = rng.next() as usize % (shape.per_zone() + shape.per_zone().div_ceil(11));
            let source = IpAddr::V4(Ipv4Addr::new(127, 1 + (v / 200) as u8, (v % 200) as u8, 7));
            let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
            q.extend_from_slice(name(&format!("host{r}.zone{z}.internal.")).wire());
            q.extend_from_slice(&[0, 1, 0, 1]);
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
            (source, q)
        })
        .collect()
}

fn curve(c: &mut Criterion, axis: &str, shapes: &[(usize, Shape)]) {
    let local: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    let mut group = c.benchmark_group(format!("handle/{axis}"));
    group.throughput(Throughput::Elements(1));
    for &(point, shape) in shapes {
        let snap: Snapshot = Compiler::default().compile(&state(shape));
        let qs = queries(shape, 1 << 16);
        let mut out = Vec::with_capacity(1232);
        let mut i = 0usize;
        let cx = respond::Context { snapshot: &snap, cookies: None, now: 0 };
        group.bench_with_input(BenchmarkId::from_parameter(point), &point, |b, _| {
            b.iter(|| {
                let (source, q) = &qs[i % qs.len()];
                i += 1;
                let request =
                    respond::Request { packet: q, source: *source, local, transport: Transport::Udp, identity: None };
                respond::handle(&request, &cx, &mut out)
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let zones = [10, 1_000, 100_000].map(|n| (n, Shape { zones: n, records: BASE.records.max(n), ..BASE }));
    curve(c, "zones", &zones);
    let vpcs = [10, 1_000, 10_000].map(|n| (n, Shape { vpcs: n, ..BASE }));
    curve(c, "vpcs", &vpcs);
    let records = [1_000, 100_000, 1_000_000].map(|n| (n, Shape { records: n, ..BASE }));
    curve(c, "records", &records);
}

criterion_group!(benches, bench);
criterion_main!(benches);
