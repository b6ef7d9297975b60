//! The in-process query path: classify + select zone + build answer + encode (`respond::handle`), for 10, 1,000
//! and 100,000 zones, over pseudo-random names and sources so that caches do not flatter it.
//!
//! Run: `cargo bench --bench lookup` (criterion prints the time per query).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use vpcdns::compile::Compiler;
use vpcdns::lookup::Transport;
use vpcdns::name::Name;
use vpcdns::rdata::{RData, Record};
use vpcdns::respond;
use vpcdns::snapshot::Snapshot;
use vpcdns::state::{Account, ServerSettings, Site, State, Uid, Vpc, VpcId, Zone, ZoneId};

const VPCS: usize = 16;
const RECORDS_PER_ZONE: usize = 10;

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

fn state(zones: usize) -> State {
    let uid = Uid("1".into());
    let account =
        Account { uid: uid.clone(), name: "bench".into(), email: "root@bench.example".into(), site: Site::Intl };
    let vpcs: BTreeMap<VpcId, Vpc> = (0..VPCS)
        .map(|i| {
            let id = VpcId(format!("vpc{i}"));
            let cidr = format!("127.{}.{}.0/24", 1 + i / 200, i % 200).parse().expect("cidr");
            (id.clone(), Vpc { id, account: uid.clone(), region: String::new(), cidrs: vec![cidr], listeners: vec![] })
        })
        .collect();
    let mut state_zones = BTreeMap::new();
    for z in 0..zones {
        let origin = name(&format!("zone{z}.internal."));
        let records = (0..RECORDS_PER_ZONE)
            .map(|r| Record {
                owner: name(&format!("host{r}.zone{z}.internal.")),
                ttl: 300,
                rdata: RData::A(Ipv4Addr::new(10, (z >> 8) as u8, z as u8, r as u8)),
            })
            .collect::<Vec<_>>();
        let records = vpcdns::state::records_from(records);
        // Every zone is visible to half the VPCs.
        let scope = (0..VPCS).filter(|v| (v + z) % 2 == 0).map(|v| VpcId(format!("vpc{v}"))).collect();
        let id = ZoneId(format!("z{z}"));
        state_zones.insert(
            id.clone(),
            Zone { id, name: origin, account: uid.clone(), scope, records, revision: 1, origin: "bench".into() },
        );
    }
    State {
        revision: 1,
        server: ServerSettings {
            listen: vec!["127.0.0.1:53".parse().expect("addr")],
            nameserver: name("ns.bench."),
            limits: Default::default(),
            rrl: Default::default(),
        },
        accounts: [(uid, account)].into_iter().collect(),
        users: BTreeMap::new(),
        vpcs,
        links: BTreeSet::new(),
        zones: state_zones,
    }
}

fn queries(zones: usize, count: usize) -> Vec<(IpAddr, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let v = rng.next() as usize % VPCS;
            let z = rng.next() as usize % zones;
            let r = rng.next() as usize % (RECORDS_PER_ZONE + 2); // some names do not exist
            let source = IpAddr::V4(Ipv4Addr::new(127, 1 + (v / 200) as u8, (v % 200) as u8, 7));
            let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
            q.extend_from_slice(name(&format!("host{r}.zone{z}.internal.")).wire());
            q.extend_from_slice(&[0, 1, 0, 1]);
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
            (source, q)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let local: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    let mut group = c.benchmark_group("handle");
    group.throughput(Throughput::Elements(1));
    for zones in [10usize, 1_000, 100_000] {
        let snap: Snapshot = Compiler::default().compile(&state(zones));
        let qs = queries(zones, 4096);
        let mut out = Vec::with_capacity(1232);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(zones), &zones, |b, _| {
            b.iter(|| {
                let (source, q) = &qs[i % qs.len()];
                i += 1;
                respond::handle(q, *source, local, Transport::Udp, &snap, None, &mut out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
