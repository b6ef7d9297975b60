//! Properties of the whole query path over random states, checked against a model of its own — never against the
//! implementation's classifier, views or link rules:
//! - every record on the wire belongs to a zone the source's VPC sees, where "sees" is worked out here from the
//!   state (longest prefix among the VPCs that accept the listener; the zones whose scope names that VPC);
//! - every zone's data is its own (TTLs, addresses, texts and serials differ from zone to zone), so a leak of any
//!   record type — A, TXT, MX, CNAME, SOA — would show;
//! - a state whose scope names a VPC of an account its owner has not linked is refused by `validate`;
//! - arbitrary bytes never panic the handler.
//!
//! States have nested prefixes, listener-restricted VPCs and IPv6 VPCs; sources include IPv4-mapped IPv6.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;
use proptest::prelude::*;

use vpcdns::dataplane::respond;
use vpcdns::dns::name::Name;
use vpcdns::dns::rdata::{RData, Record};
use vpcdns::dns::{Rcode, Transport};
use vpcdns::model::compile::Compiler;
use vpcdns::model::state::{Account, Link, Site, State, Uid, Vpc, VpcId, Zone, ZoneId};
use vpcdns::model::validate::validate;
use vpcdns::settings::Served;

const ZONE_NAMES: [&str; 6] = ["test.", "a.test.", "b.a.test.", "c.test.", "x.b.a.test.", "other."];
const LABELS: [&str; 6] = ["www", "*", "x.y", "mail", "@", "b"];
const TARGETS: [&str; 6] = ["www.a.test.", "mail.test.", "www.b.a.test.", "nowhere.", "x.y.c.test.", "b.a.test."];
const QNAMES: [&str; 10] = [
    "www.test.",
    "www.a.test.",
    "zz.b.a.test.",
    "mail.c.test.",
    "x.y.x.b.a.test.",
    "b.a.test.",
    "y.a.test.",
    "q.other.",
    "nothing.",
    "deep.www.b.a.test.",
];
const QTYPES: [u16; 8] = [1, 15, 5, 16, 255, 6, 2, 28];

/// Prefixes a VPC may have: nested pairs in IPv4 and IPv6.
const PREFIXES: [&str; 8] = [
    "127.0.60.0/24",
    "127.0.60.128/25",
    "127.0.61.0/24",
    "127.0.61.7/32",
    "127.0.62.0/24",
    "fd00:60::/64",
    "fd00:60::/96",
    "fd00:61::/64",
];
/// Sources queries come from: inside each prefix (deepest and shallowest), outside all, and IPv4-mapped IPv6.
const SOURCES: [&str; 9] = [
    "127.0.60.5",
    "127.0.60.200",
    "127.0.61.7",
    "127.0.61.8",
    "127.0.62.9",
    "127.0.99.1",
    "fd00:60::5",
    "fd00:60::1:0:5",
    "::ffff:127.0.60.200",
];
const LISTENERS: [&str; 2] = ["127.0.0.1:53", "127.0.0.2:53"];
/// Endpoint ids a VPC may have; a front end's header names one of them, a VPC id, or something unknown.
const ENDPOINTS: [&str; 4] = ["vpce-0", "alibaba:ep-1", "psc:2", "vpce-3"];

fn n(text: &str) -> Name {
    Name::from_text(text, None).expect("valid name")
}

#[derive(Debug, Clone)]
struct VpcSpec {
    owner: usize,
    prefixes: Vec<usize>,
    /// None: every listener; Some(i): only `LISTENERS[i]`.
    listener: Option<usize>,
    /// Some(i): the VPC has endpoint `ENDPOINTS[i]`, so a front end names it and its prefixes may overlap.
    endpoint: Option<usize>,
}

fn vpc_spec() -> impl Strategy<Value = VpcSpec> {
    (
        0..3usize,
        prop::collection::vec(0..PREFIXES.len(), 1..3),
        prop::option::of(0..LISTENERS.len()),
        prop::option::weighted(0.4, 0..ENDPOINTS.len()),
    )
        .prop_map(|(owner, prefixes, listener, endpoint)| VpcSpec { owner, prefixes, listener, endpoint })
}

/// What a front end's header names: an endpoint id, a VPC id (`vpc<i>`), or an endpoint no VPC has.
#[derive(Debug, Clone, Copy)]
enum Named {
    Endpoint(usize),
    VpcId(usize),
    Unknown,
}

fn named() -> impl Strategy<Value = Option<Named>> {
    prop::option::weighted(
        0.5,
        prop_oneof![
            (0..ENDPOINTS.len()).prop_map(Named::Endpoint),
            (0..5usize).prop_map(Named::VpcId),
            Just(Named::Unknown)
        ],
    )
}

/// The identity bytes a front end sends for `named`, as `Identity` borrows them.
fn identity_of(named: Named, buf: &mut Vec<u8>) -> vpcdns::model::identity::Identity<'_> {
    use vpcdns::model::identity::{Identity, IdentityKind};
    buf.clear();
    let kind = match named {
        Named::Endpoint(i) => match ENDPOINTS[i].split_once(':') {
            Some(("alibaba", id)) => {
                buf.extend_from_slice(id.as_bytes());
                IdentityKind::AlibabaEndpoint
            }
            Some(("psc", n)) => {
                buf.extend_from_slice(&n.parse::<u64>().expect("psc id").to_be_bytes());
                IdentityKind::PscConnection
            }
            _ => {
                buf.extend_from_slice(ENDPOINTS[i].as_bytes());
                IdentityKind::AwsEndpoint
            }
        },
        Named::VpcId(i) => {
            buf.extend_from_slice(format!("vpc{i}").as_bytes());
            IdentityKind::VpcId
        }
        Named::Unknown => {
            buf.extend_from_slice(b"vpce-nobody");
            IdentityKind::AwsEndpoint
        }
    };
    Identity { kind, value: buf }
}

#[derive(Debug, Clone)]
struct ZoneSpec {
    name: usize,
    owner: usize,
    scope: Vec<usize>,
    records: Vec<(usize, u8, usize)>,
}

fn zone_spec() -> impl Strategy<Value = ZoneSpec> {
    (
        0..ZONE_NAMES.len(),
        0..3usize,
        prop::collection::vec(0..5usize, 0..4),
        prop::collection::vec((0..LABELS.len(), 0..5u8, 0..TARGETS.len()), 0..8),
    )
        .prop_map(|(name, owner, scope, records)| ZoneSpec { name, owner, scope, records })
}

fn uid(i: usize) -> Uid {
    Uid(format!("{}", 1000 + i))
}

/// Zone `zi`'s own TTL: it marks every record of that zone on the wire.
fn zone_ttl(zi: usize) -> u32 {
    1000 + 10 * zi as u32
}

fn build_state(vpc_specs: &[VpcSpec], links: &[(usize, usize)], zones: &[ZoneSpec]) -> State {
    let accounts: BTreeMap<Uid, Account> = (0..3)
        .map(|i| {
            let a = Account {
                uid: uid(i),
                name: format!("acct{i}"),
                email: format!("root@acct{i}.example"),
                site: Site::Intl,
            };
            (a.uid.clone(), a)
        })
        .collect();
    let vpcs: BTreeMap<VpcId, Vpc> = vpc_specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let cidrs: BTreeSet<usize> = spec.prefixes.iter().copied().collect();
            let v = Vpc {
                id: VpcId::new(&format!("vpc{i}")),
                account: uid(spec.owner),
                region: String::new(),
                cidrs: cidrs.into_iter().map(|p| PREFIXES[p].parse().expect("cidr")).collect(),
                listeners: spec.listener.map(|l| LISTENERS[l].parse().expect("listener")).into_iter().collect(),
                query_limit: None,
                endpoints: spec.endpoint.map(|e| ENDPOINTS[e].to_string()).into_iter().collect(),
                cloud_id: None,
            };
            (v.id.clone(), v)
        })
        .collect();
    let links: BTreeSet<Link> =
        links.iter().filter(|(a, b)| a != b).map(|(a, b)| Link { account: uid(*a), linked: uid(*b) }).collect();
    let mut state_zones = BTreeMap::new();
    for (zi, spec) in zones.iter().enumerate() {
        let origin = n(ZONE_NAMES[spec.name]);
        let mut seen_owner_types: BTreeMap<Name, u8> = BTreeMap::new();
        let mut records = Vec::new();
        for (label, kind, target) in &spec.records {
            let Ok(owner) = Name::from_text(LABELS[*label], Some(&origin)) else { continue };
            // Keep CNAMEs alone at their owner (and off the apex) so that most generated zones are valid.
            let is_cname = *kind == 1;
            if is_cname && owner == origin {
                continue;
            }
            match seen_owner_types.get(&owner) {
                Some(&k) if (k == 1) != is_cname || is_cname => continue,
                _ => {}
            }
            seen_owner_types.insert(owner.clone(), *kind);
            // Every value says which zone it is from.
            let rdata = match kind {
                0 => RData::A(Ipv4Addr::new(10, zi as u8, *label as u8, *target as u8)),
                1 => RData::Cname(n(TARGETS[*target])),
                2 => RData::Mx { preference: zi as u16, exchange: n(TARGETS[*target]) },
                3 => RData::Aaaa(format!("fd00::{zi}:{target}").parse().expect("aaaa")),
                _ => RData::Txt(vec![format!("z{zi}-t{target}").into_bytes().into_boxed_slice()]),
            };
            records.push(Record { owner, ttl: zone_ttl(zi), rdata });
        }
        let id = ZoneId(format!("z{zi}"));
        let scope: BTreeSet<usize> = spec.scope.iter().filter(|v| **v < vpc_specs.len()).copied().collect();
        state_zones.insert(
            id.clone(),
            Zone {
                id,
                name: origin,
                account: uid(spec.owner),
                scope: scope.into_iter().map(|v| VpcId::new(&format!("vpc{v}"))).collect(),
                records: vpcdns::model::state::records_from(records),
                // The generated SOA's serial: distinct per zone, so its negative answers are its own too.
                revision: 100 + zi as u64,
                origin: "generated".into(),
                fallback: Default::default(),
            },
        );
    }
    State {
        revision: 1,
        served: Served {
            listen: LISTENERS.iter().map(|l| l.parse().expect("listener")).collect(),
            nameserver: n("ns.test."),
            ..Served::default()
        },
        accounts,
        users: BTreeMap::new(),
        vpcs,
        links,
        zones: state_zones,
        rules: Default::default(),
    }
}

/// The model: the VPC a (listener, source) belongs to — the longest of the prefixes that hold the source, among
/// the VPCs that accept the listener and have no endpoint (those are named by their front ends only); IPv4-mapped
/// IPv6 counts as IPv4. With a front end's identity: the VPC it names, when that VPC accepts the listener and holds
/// the source; never a fallback to prefixes.
fn model_vpc(state: &State, listener: SocketAddr, source: IpAddr, named: Option<Named>) -> Option<VpcId> {
    let source = match source {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
        v4 => v4,
    };
    let accepts = |v: &Vpc| v.listeners.is_empty() || v.listeners.contains(&listener);
    if let Some(named) = named {
        let vpc = state.vpcs.values().find(|v| match named {
            Named::Endpoint(i) => v.endpoints.iter().any(|e| e == ENDPOINTS[i]),
            Named::VpcId(i) => v.id.as_str() == format!("vpc{i}"),
            Named::Unknown => false,
        })?;
        let holds = vpc.cidrs.iter().any(|net| net.contains(&source));
        return (accepts(vpc) && holds).then(|| vpc.id.clone());
    }
    state
        .vpcs
        .values()
        .filter(|v| v.endpoints.is_empty() && accepts(v))
        .flat_map(|v| v.cidrs.iter().filter(|net| net.contains(&source)).map(move |net| (net.prefix_len(), v)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, v)| v.id.clone())
}

/// The model: everything a VPC may be answered with — (type, TTL, RDATA) of every record of every zone whose scope
/// names it, with the generated SOA (its serial is the zone's revision) and NS.
fn model_data(state: &State, vpc: &VpcId) -> BTreeSet<(u16, u32, String)> {
    let mut data = BTreeSet::new();
    for zone in state.zones.values().filter(|z| z.scope.contains(vpc)) {
        for record in zone.records.values() {
            data.insert((record.rdata.rtype(), record.ttl, record.rdata.to_string()));
        }
        let soa = format!("ns.test. hostmaster.{} {} 3600 600 86400 60", zone.name, zone.revision);
        // Its SOA as an answer, at the negative TTL in a negative answer (min(SOA TTL, minimum)), and at 0 in an
        // NXDOMAIN for an SOA question (as BIND 9.18).
        for ttl in [vpcdns::model::compile::GENERATED_TTL, 60, 0] {
            data.insert((6, ttl, soa.clone()));
        }
        data.insert((2, vpcdns::model::compile::GENERATED_TTL, "ns.test.".to_string()));
    }
    data
}

/// The model: a zone's scope names a VPC of an account its owner has not linked.
fn model_unlinked_scope(state: &State) -> bool {
    state.zones.values().any(|z| {
        z.scope.iter().any(|v| {
            state.vpcs.get(v).is_some_and(|vpc| {
                vpc.account != z.account
                    && !state.links.contains(&Link { account: z.account.clone(), linked: vpc.account.clone() })
            })
        })
    })
}

/// RDATA as hickory-proto encodes it without name compression (case kept), for our own decoder to read back.
fn uncompressed_rdata(data: &hickory_proto::rr::RData) -> Vec<u8> {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder).expect("rdata encodes");
    bytes
}

fn query_packet(qname: &Name, qtype: u16) -> Vec<u8> {
    let mut q = vec![0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(qname.wire());
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn responses_hold_only_records_of_the_zones_the_model_says_a_vpc_sees(
        vpc_specs in prop::collection::vec(vpc_spec(), 1..5),
        links in prop::collection::vec((0..3usize, 0..3usize), 0..4),
        zones in prop::collection::vec(zone_spec(), 1..6),
        queries in prop::collection::vec(
            (0..SOURCES.len(), 0..LISTENERS.len(), 0..QNAMES.len(), 0..QTYPES.len(), any::<bool>(), named()),
            1..20,
        ),
    ) {
        let state = build_state(&vpc_specs, &links, &zones);
        if model_unlinked_scope(&state) {
            let refused = validate(&state);
            prop_assert!(refused.is_err(), "a scope names an unlinked account's VPC, yet the state validates");
            let problems = refused.err().map(|p| p.to_string()).unwrap_or_default();
            prop_assert!(problems.contains("nor of an account it has linked"), "{}", problems);
            return Ok(());
        }
        prop_assume!(validate(&state).is_ok());
        let snap = Compiler::default().compile(&state);
        let mut identity_bytes = Vec::new();
        for (src, li, qn, qt, tcp, named) in queries {
            let source: IpAddr = SOURCES[src].parse().expect("source");
            let local: SocketAddr = LISTENERS[li].parse().expect("listener");
            let transport = if tcp { Transport::Tcp } else { Transport::Udp };
            let qname = n(QNAMES[qn]);
            let mut out = Vec::new();
            let packet = query_packet(&qname, QTYPES[qt]);
            let identity = named.map(|named| identity_of(named, &mut identity_bytes));
            let request = respond::Request { packet: &packet, source, local, transport, identity };
            let cx = respond::Context { snapshot: &snap, cookies: None, now: 0 };
            let handled = respond::handle(&request, &cx, &mut out).without_resolver(&mut out);
            let outcome = handled.expect("a query is always answered");
            let msg = hickory_proto::op::Message::from_vec(&out).expect("our response decodes");
            let records: Vec<&hickory_proto::rr::Record> =
                msg.answers.iter().chain(&msg.authorities).chain(&msg.additionals).collect();
            let Some(vpc) = model_vpc(&state, local, source, named) else {
                prop_assert_eq!(outcome.rcode, Rcode::Refused, "{} on {} is in no VPC", source, local);
                prop_assert!(records.is_empty(), "REFUSED carries no records");
                continue;
            };
            let allowed = model_data(&state, &vpc);
            for record in records {
                let rtype = u16::from(record.record_type());
                if rtype == 41 {
                    continue; // OPT
                }
                let data = RData::from_wire(rtype, &uncompressed_rdata(&record.data)).map(|d| d.to_string()).unwrap_or_default();
                prop_assert!(
                    allowed.contains(&(rtype, record.ttl, data.clone())),
                    "{} {} {} {} answered to {} ({}) is in no zone the model says it sees", record.name, record.ttl, rtype, data, source, vpc
                );
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_handler(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let specs: Vec<VpcSpec> = (0..4).map(|i| VpcSpec { owner: i % 3, prefixes: vec![i], listener: None, endpoint: None }).collect();
        let state = build_state(&specs, &[], &[]);
        let snap = Compiler::default().compile(&state);
        let mut out = Vec::new();
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 60, 1));
        let cx = respond::Context { snapshot: &snap, cookies: None, now: 0 };
        for transport in [Transport::Udp, Transport::Tcp] {
            let request = respond::Request { packet: &bytes, source, local: "127.0.0.1:53".parse().expect("addr"), transport, identity: None };
            let _ = respond::handle(&request, &cx, &mut out).without_resolver(&mut out);
        }
    }
}

/// The model itself, on a hand-made state: nested prefixes, a listener restriction, IPv4-mapped sources.
#[test]
fn the_model_classifies_by_longest_prefix_and_listener() {
    let specs = vec![
        VpcSpec { owner: 0, prefixes: vec![0], listener: None, endpoint: None },
        VpcSpec { owner: 0, prefixes: vec![1], listener: Some(1), endpoint: None },
    ];
    let state = build_state(&specs, &[], &[]);
    let (l1, l2): (SocketAddr, SocketAddr) = (LISTENERS[0].parse().unwrap(), LISTENERS[1].parse().unwrap());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(model_vpc(&state, l1, ip("127.0.60.200"), None).map(|v| v.0.to_string()), Some("vpc0".into()));
    assert_eq!(model_vpc(&state, l2, ip("127.0.60.200"), None).map(|v| v.0.to_string()), Some("vpc1".into()));
    assert_eq!(model_vpc(&state, l2, ip("::ffff:127.0.60.200"), None).map(|v| v.0.to_string()), Some("vpc1".into()));
    assert_eq!(model_vpc(&state, l1, ip("127.0.99.1"), None), None);
    let _: IpNet = PREFIXES[0].parse().unwrap();
}
