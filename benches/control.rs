//! The control plane's change path: one record added through the admin operation on a store holding a 1,000,000-record
//! zone (`VPCDNS_BENCH_RECORDS` to change) (plus 99 small zones), measured from the call to the moment the published snapshot answers the new name —
//! plan, validation, durable commit (SQLite, synchronous=FULL on a temp file), memory update, compile, swap.
//!
//! Run: `cargo bench --bench control` (criterion prints the time per change; the target is < 10 ms).
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use vpcdns::control::docs::{encode, AccountDoc, RecordDoc, ScopeDoc, VpcDoc, ZoneDoc};
use vpcdns::control::keys;
use vpcdns::control::ops::tenant::{self, RecordInput};
use vpcdns::control::store::sqlite::SqliteStore;
use vpcdns::control::store::{Op, Store};
use vpcdns::control::{auth, Actor, ControlPlane};
use vpcdns::dns::name::Name;
use vpcdns::dns::{Rcode, Transport};
use vpcdns::model::lookup;
use vpcdns::model::state::{Policy, Uid};
use vpcdns::settings::Served;

/// Records in the big zone: `VPCDNS_BENCH_RECORDS`, 1,000,000 unless set.
fn big_zone_records() -> usize {
    std::env::var("VPCDNS_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}
const SMALL_ZONES: usize = 99;

fn seed(store: &SqliteStore) {
    let mut ops = vec![
        put(
            keys::account("1"),
            &AccountDoc {
                uid: "1".into(),
                name: "bench".into(),
                email: "root@bench.example".into(),
                site: "intl".into(),
            },
        ),
        put(
            keys::vpc("v1"),
            &VpcDoc {
                id: "v1".into(),
                account: "1".into(),
                region: String::new(),
                cidrs: vec!["127.0.10.0/24".into()],
                listeners: vec![],
                query_limit: None,
                endpoints: vec![],
                cloud_id: None,
            },
        ),
    ];
    for z in 0..=SMALL_ZONES {
        let name = if z == 0 { "big.internal.".to_string() } else { format!("z{z}.internal.") };
        let id = format!("1/{name}");
        ops.push(put(
            keys::zone(&id),
            &ZoneDoc {
                id: id.clone(),
                name: name.clone(),
                account: "1".into(),
                generation: String::new(),
                fallback: String::new(),
            },
        ));
        ops.push(put(keys::scope(&id), &ScopeDoc { vpcs: vec!["v1".into()] }));
        let count = if z == 0 { big_zone_records() } else { 10 };
        for r in 0..count {
            let doc = RecordDoc {
                name: format!("h{r}.{name}"),
                rtype: "A".into(),
                ttl: 300,
                data: format!("10.{}.{}.{}", z % 250, r / 250 % 250, r % 250),
            };
            ops.push(put(keys::record(&id, &format!("r{r:07}")), &doc));
        }
    }
    store.txn(&[], &ops).expect("seed");
}

fn put<T: serde::Serialize>(key: String, doc: &T) -> Op {
    Op::Put { key, value: encode(doc) }
}

fn bench(c: &mut Criterion) {
    // RUST_LOG=vpcdns=debug shows the phases of the start-up.
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("store");
    seed(&store);
    let server = Served {
        listen: vec!["127.0.0.1:53".parse().expect("addr")],
        nameserver: Name::from_text("ns.bench.", None).expect("name"),
        // Room for the big zone and every record the benchmark adds.
        limits: vpcdns::settings::Limits { max_records_per_account: 5_000_000, ..Default::default() },
        ..Default::default()
    };
    let started = Instant::now();
    let plane = ControlPlane::open(Arc::new(store), server, vec![7u8; 32]).expect("plane");
    println!("start-up with {} records: {:?}", big_zone_records() + SMALL_ZONES * 10, started.elapsed());
    let actor =
        Actor::Tenant(auth::Tenant { account: Uid("1".into()), user: None, policies: vec![Policy::DnsFullAccess] });
    let local: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 10, 9));
    let mut n = 0u64;
    let mut group = c.benchmark_group("change");
    group.sample_size(20).measurement_time(Duration::from_secs(20));
    group.bench_function(format!("add a record to a {}-record zone, until answered", big_zone_records()), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("new{n}");
                let input = RecordInput { name: name.clone(), rtype: "A".into(), ttl: None, data: "10.9.9.9".into() };
                let start = Instant::now();
                plane
                    .execute(&bench_caller(&actor), move |c, ctx| {
                        tenant::add_record(c, ctx, "1/big.internal.", input.clone())
                    })
                    .expect("add");
                let snap = plane.snapshot();
                let vpc = snap.classifier().classify(local, source).expect("classified").vpc;
                let qname = Name::from_text(&format!("{name}.big.internal."), None).expect("name");
                let answer = lookup::lookup(&snap, vpc, qname.wire(), 1, Transport::Udp);
                total += start.elapsed();
                assert_eq!(answer.rcode, Rcode::NoError);
                assert_eq!(answer.answer.len(), 1);
            }
            total
        })
    });
    group.finish();
}

/// A plane on a fresh store with accounts 1 and 2 (a VPC each), 100 small zones of account 1 and `rules` forwarding
/// rules of account 2.
fn small_plane(dir: &std::path::Path, rules: usize) -> ControlPlane {
    let store = SqliteStore::open(&dir.join(format!("small-{rules}.db"))).expect("store");
    let mut ops = Vec::new();
    for (uid, cidr) in [("1", "127.0.10.0/24"), ("2", "127.0.20.0/24")] {
        let account = AccountDoc {
            uid: uid.into(),
            name: format!("a{uid}"),
            email: format!("root@a{uid}.example"),
            site: "intl".into(),
        };
        ops.push(put(keys::account(uid), &account));
        let vpc = VpcDoc {
            id: format!("v{uid}"),
            account: uid.into(),
            region: String::new(),
            cidrs: vec![cidr.into()],
            listeners: vec![],
            query_limit: None,
            endpoints: vec![],
            cloud_id: None,
        };
        ops.push(put(keys::vpc(&format!("v{uid}")), &vpc));
    }
    for z in 0..100 {
        let id = format!("1/z{z}.internal.");
        let zone = ZoneDoc {
            id: id.clone(),
            name: format!("z{z}.internal."),
            account: "1".into(),
            generation: String::new(),
            fallback: String::new(),
        };
        ops.push(put(keys::zone(&id), &zone));
        ops.push(put(keys::scope(&id), &ScopeDoc { vpcs: vec!["v1".into()] }));
    }
    for r in 0..rules {
        let rule = vpcdns::control::docs::RuleDoc {
            id: format!("2-r{r}"),
            account: "2".into(),
            domain: format!("d{r}.example."),
            targets: vec!["10.0.0.53:53".into()],
            vpcs: vec!["v2".into()],
        };
        ops.push(put(keys::rule(&format!("2-r{r}")), &rule));
    }
    store.txn(&[], &ops).expect("seed");
    let server = Served {
        listen: vec!["127.0.0.1:53".parse().expect("addr")],
        nameserver: Name::from_text("ns.bench.", None).expect("name"),
        limits: vpcdns::settings::Limits { max_rules_per_account: 10_000, ..Default::default() },
        ..Default::default()
    };
    ControlPlane::open(Arc::new(store), server, vec![7u8; 32]).expect("plane")
}

/// The mean time of `n` record adds of account 1 (names `w<first>`…).
fn mean_write(plane: &ControlPlane, first: usize, n: usize) -> Duration {
    let actor =
        Actor::Tenant(auth::Tenant { account: Uid("1".into()), user: None, policies: vec![Policy::DnsFullAccess] });
    let started = Instant::now();
    for i in first..first + n {
        let input = RecordInput { name: format!("w{i}"), rtype: "A".into(), ttl: None, data: "10.9.9.9".into() };
        plane
            .execute(&bench_caller(&actor), move |c, ctx| tenant::add_record(c, ctx, "1/z0.internal.", input.clone()))
            .expect("add");
    }
    started.elapsed() / n as u32
}

/// Issue 13: what another tenant's state costs a tenant's writes — 1,500 rules of account 2 beside account 1's
/// record adds — and how long a small write waits while another tenant imports 30,000 records.
fn tenants_apart(_: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let without = mean_write(&small_plane(dir.path(), 0), 0, 200);
    let with = mean_write(&small_plane(dir.path(), 1500), 0, 200);
    println!(
        "record add, mean of 200: {without:?} alone, {with:?} beside 1,500 rules of another account ({:.2}x)",
        with.as_secs_f64() / without.as_secs_f64()
    );
    let plane = small_plane(dir.path(), 0);
    let importer =
        Actor::Tenant(auth::Tenant { account: Uid("1".into()), user: None, policies: vec![Policy::DnsFullAccess] });
    let text: String =
        (0..30_000).map(|i| format!("h{i} 300 IN A 10.{}.{}.{}\n", i / 65536, i / 256 % 256, i % 256)).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (imported, slowest, writes) = std::thread::scope(|scope| {
        let import = scope.spawn(|| {
            let started = Instant::now();
            plane
                .execute(&bench_caller(&importer), |c, ctx| tenant::import_zone(c, ctx, "1/z1.internal.", &text))
                .expect("import");
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(5));
        let (mut slowest, mut writes) = (Duration::ZERO, 0);
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            mean_write(&plane, writes, 1);
            slowest = slowest.max(started.elapsed());
            writes += 1;
        }
        (import.join().expect("import"), slowest, writes)
    });
    println!(
        "a 30,000-record import took {imported:?}; {writes} small writes went in meanwhile, the slowest in {slowest:?}"
    );
}

criterion_group!(benches, bench, tenants_apart);
criterion_main!(benches);

/// `actor` as a caller of the control plane (no If-Match).
fn bench_caller(actor: &Actor) -> vpcdns::control::Caller {
    vpcdns::control::Caller { actor: actor.clone(), remote: "bench".into(), if_match: None, idempotency: None }
}
